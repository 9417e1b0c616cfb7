"""Trainers of the detectors that read ``spec.sequence_length`` consecutive crops of one face track
(:class:`~deepfake_kernel.detectors.SequenceClassifier`), on :func:`.engine.fit` like every member.

Training windows are cut from the cached tracks (crops of a track are stored in frame order; loose crops, which
have no track, are left out). ``resnet3d`` and ``stacked_xception`` train end to end with binary cross-entropy;
``temporal_lstm``/``temporal_mlp`` train in two stages as in their study: the frame embedder with the cosine hinge
loss (stage 1, shared by both heads through a cache keyed by its settings), then the head with binary
cross-entropy on frozen embeddings (stage 2). They run in one process (no DDP).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..detectors import create_model
from ..detectors.classifier import spread_window_probs, window_plan
from ..detectors.zoo import TemporalNet, cosine_hinge_loss
from . import engine
from .augment import AugmentConfig, FaceAugmenter
from .batches import epoch_indices
from .data import FaceSamples
from .engine import Job, track_ids

log = logging.getLogger("deepfake_kernel.train")

HEAD_EPOCHS = 20      # temporal head (stage 2), as in the study ("20 epochs to avoid over-fitting")
HEAD_BATCH = 32
EMBED_VIEWS = 2       # augmented windows per training track embedded for stage 2
MIN_PATIENCE = 4      # sequence members see ~100 windows an epoch: give them a few epochs before stopping


# ---------------------------------------------------------------------------------------------- tracks and windows
def track_rows(samples: FaceSamples) -> list[np.ndarray]:
    """Crop indices of each (video, track), in stored (frame) order; loose crops (video -1) are left out."""
    keep = samples.video >= 0
    keys = samples.video * 100_000 + samples.track
    order = {}
    for index in np.flatnonzero(keep):
        order.setdefault(int(keys[index]), []).append(int(index))
    return [np.array(rows) for rows in order.values()]


def make_windows(samples: FaceSamples, tracks: list[np.ndarray], picks: np.ndarray, size: int,
                 augmenter: FaceAugmenter | None, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``(B, T, H, W, 3)`` windows (a random run of ``size`` consecutive crops of each picked track; shorter
    tracks repeated) and their labels; the randomness of each window is fixed by (seed, epoch, position, track)."""
    windows, labels = [], []
    for position, pick in enumerate(picks):
        rows = tracks[int(pick)]
        rng = np.random.default_rng([seed, epoch, int(position), int(pick), 11])
        if len(rows) <= size:
            chosen = rows[np.arange(size) % len(rows)]
        else:
            start = int(rng.integers(0, len(rows) - size + 1))
            chosen = rows[start:start + size]
        frames = samples.crops[chosen]
        if augmenter is not None:
            frame_seed = int(rng.integers(1 << 31))
            frames = np.stack([augmenter(frame, None, 0, np.random.default_rng(frame_seed))[0] for frame in frames])
        windows.append(frames)
        labels.append(int(samples.labels[rows[0]]))
    return np.stack(windows), np.array(labels, dtype=np.float32)


@torch.no_grad()  # not inference_mode: the head trains on these tensors afterwards
def _embed(model, clips_fn, count: int, batch: int) -> torch.Tensor:
    model.network.embedder.eval()
    out = []
    for start in range(0, count, batch):
        out.append(model.network.embedder(model.preprocess(clips_fn(start, min(count, start + batch)))).float())
    return torch.cat(out)

def sequence_augment_config(augment: AugmentConfig) -> AugmentConfig:
    """The run's augmentations without the ones that differ frame to frame or change labels (pseudo-fakes, Face
    Feature Mask); one seed per window then gives every frame of it the same flip, crop, colour, blur and JPEG."""
    return dataclasses.replace(augment, fwa=0.0, sbi=0.0, face_feature_mask=0.0)


class WindowEpochs:
    """Class-balanced epochs of augmented track windows (``recipe.samples_per_epoch`` tracks an epoch, in batches
    of ``recipe.batch_size``), the input of the end-to-end and the embedder trainers."""

    def __init__(self, train: FaceSamples, tracks: list[np.ndarray], recipe, job: Job, size: int):
        self.train, self.tracks, self.size, self.seed = train, tracks, size, job.config.seed
        self.batch_size = recipe.batch_size
        self.labels = np.array([train.labels[rows[0]] for rows in tracks])
        self.samples = recipe.samples_per_epoch or len(tracks)
        self.steps = max(1, self.samples // self.batch_size)
        self.augmenter = FaceAugmenter(sequence_augment_config(job.augment))

    def batches(self, epoch: int):
        """``(clips, labels)`` for each step of ``epoch``; the same for the same seed and epoch."""
        order = epoch_indices(self.labels, self.samples, self.seed, epoch)
        for step in range(self.steps):
            picks = order[step * self.batch_size:(step + 1) * self.batch_size]
            yield make_windows(self.train, self.tracks, picks, self.size, self.augmenter, self.seed, epoch)


def _epoch_of(step_fn, batches) -> dict:
    return {"train_loss": round(float(np.mean([step_fn(*batch) for batch in batches])), 5)}


# ---------------------------------------------------------------------------------------------- trainers
def train_sequence_member(name: str, job: Job, train: FaceSamples, val: FaceSamples) -> dict:
    """Train a :class:`SequenceClassifier` member on windows of the cached face tracks (see the module doc)."""
    engine.single_process(job.env, name)
    recipe = job.recipe(name)
    torch.manual_seed(job.config.seed)
    model = create_model(name, input_size=recipe.input_size).to(job.env.device)
    tracks = track_rows(train)
    if not tracks:
        raise ValueError(f"{name} needs face tracks from videos; loose crops alone cannot train it")
    extra = {"train_tracks": len(tracks), "sequence_length": model.sequence_length}
    if isinstance(model.network, TemporalNet):
        fitted = _train_temporal(name, model, recipe, job, train, val, tracks)
        extra.update(head_epochs=HEAD_EPOCHS, embed_views=EMBED_VIEWS, embedder_epochs=recipe.epochs)
    else:
        fitted = _train_end_to_end(name, model, recipe, job, train, val, tracks)
    return engine.finish_member(model, name, job, val, fitted, extra)


def _train_end_to_end(name, model, recipe, job: Job, train, val, tracks) -> engine.FitResult:
    body, head = engine.split_body_head(model.network, model.network.get_classifier())
    windows = WindowEpochs(train, tracks, recipe, job, model.sequence_length)
    optimizer, scheduler = engine.one_cycle(body, head, recipe, job.config.weight_decay, recipe.epochs * windows.steps)

    def step(clips, target):
        model.train()
        logits = model(model.preprocess(clips))
        loss = F.binary_cross_entropy_with_logits(logits.float(), torch.as_tensor(target, device=logits.device))
        return engine.optimizer_step(loss, optimizer, scheduler)

    return engine.fit(name, model.network, optimizer, scheduler, recipe.epochs,
                      lambda epoch: _epoch_of(step, windows.batches(epoch)), engine.validator(model, val), job,
                      patience=max(job.config.patience, MIN_PATIENCE))


def _embedder_key(model, recipe, job: Job) -> str:
    config = job.config
    settings = {"arch": model.spec.arch.split("+")[0], "recipe": dataclasses.asdict(recipe), "seed": config.seed,
                "weight_decay": config.weight_decay, "imagenet": config.imagenet, "data": job.data_fingerprint,
                "augment": dataclasses.asdict(sequence_augment_config(job.augment)),
                "sequence_length": model.sequence_length, "device": str(config.device)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _train_embedder(name, model, recipe, job: Job, train, tracks) -> list[dict]:
    """Stage 1: the frame embedder with the cosine hinge loss on adjacent frames (no validation: all epochs)."""
    embedder = model.network.embedder
    if job.config.imagenet and model.spec.arch.startswith("efficientnet_lite"):
        from ..detectors.pretrained import load_efficientnet_lite_imagenet
        load_efficientnet_lite_imagenet(embedder.backbone, int(model.spec.arch.split("+")[0][-1]))
    windows = WindowEpochs(train, tracks, recipe, job, model.sequence_length)
    optimizer, scheduler = engine.one_cycle(list(embedder.backbone.parameters()), list(embedder.proj.parameters()),
                                            recipe, job.config.weight_decay, recipe.epochs * windows.steps)

    def step(clips, target):
        embedder.train()
        loss = cosine_hinge_loss(embedder(model.preprocess(clips)).float(),
                                 torch.as_tensor(target, device=model.mean.device))
        return engine.optimizer_step(loss, optimizer, scheduler)

    fitted = engine.fit(name, embedder, optimizer, scheduler, recipe.epochs,
                        lambda epoch: _epoch_of(step, windows.batches(epoch)), None, job, stage="embedder")
    return fitted.history


def _train_temporal(name, model, recipe, job: Job, train, val, tracks) -> engine.FitResult:
    network: TemporalNet = model.network
    size = model.sequence_length
    # stage 1, shared by temporal_lstm and temporal_mlp through a cache keyed by every setting that shapes it
    cache = Path(job.config.work_dir) / "_temporal_embedder" / f"{_embedder_key(model, recipe, job)}.pt"
    if cache.is_file():
        saved = torch.load(cache, map_location=job.env.device, weights_only=False)
        network.embedder.load_state_dict(saved["embedder"])
        embed_history = saved["history"]
        log.warning("%s: embedder reused from %s", name, cache)
    else:
        embed_history = _train_embedder(name, model, recipe, job, train, tracks)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"embedder": network.embedder.state_dict(), "history": embed_history}, cache)
    for p in network.embedder.parameters():
        p.requires_grad_(False)
    # stage 2: the head on frozen embeddings of EMBED_VIEWS augmented windows per training track
    started = time.perf_counter()
    augmenter = FaceAugmenter(sequence_augment_config(job.augment))
    picks = np.tile(np.arange(len(tracks)), EMBED_VIEWS)
    views = np.repeat(np.arange(EMBED_VIEWS), len(tracks))
    train_labels = np.array([train.labels[tracks[p][0]] for p in picks], dtype=np.float32)
    seed = job.config.seed

    def train_clips(a, b):
        return np.stack([make_windows(train, tracks, picks[i:i + 1], size, augmenter, seed,
                                      10_000 + int(views[i]))[0][0] for i in range(a, b)])

    train_emb = _embed(model, train_clips, len(picks), 4)
    windows = window_plan(track_ids(val), size)
    val_emb = _embed(model, lambda a, b: np.stack([val.crops[w] for w in windows[a:b]]), len(windows), 4)
    embed_seconds = round(time.perf_counter() - started, 1)
    head = network.head
    optimizer = torch.optim.AdamW(head.parameters(), lr=recipe.lr, weight_decay=job.config.weight_decay)

    def run_epoch(epoch: int) -> dict:
        head.train()
        order = epoch_indices(train_labels.astype(np.int64), len(picks), seed, 500 + epoch)
        losses = []
        for start in range(0, len(order), HEAD_BATCH):
            rows = order[start:start + HEAD_BATCH]
            logits = network.head_logits(train_emb[rows]).reshape(-1)
            loss = F.binary_cross_entropy_with_logits(logits, torch.as_tensor(train_labels[rows], device=logits.device))
            losses.append(engine.optimizer_step(loss, optimizer))
        return {"train_loss": round(float(np.mean(losses)), 5)}

    def validate() -> dict:
        head.eval()
        with torch.inference_mode():
            logits = network.head_logits(val_emb).reshape(-1).float().cpu().numpy()
        probs = spread_window_probs(len(val), windows, 1 / (1 + np.exp(-logits)))
        return engine.video_metrics(probs, val)[0]

    fitted = engine.fit(name, head, optimizer, None, HEAD_EPOCHS, run_epoch, validate, job, stage="head",
                        patience=max(job.config.patience, MIN_PATIENCE), resume_key={"head_epochs": HEAD_EPOCHS,
                                                                                     **dataclasses.asdict(recipe)})
    for p in network.embedder.parameters():
        p.requires_grad_(True)
    history = list(embed_history) + [{"stage": "embed_windows", "seconds": embed_seconds}] + fitted.history
    return engine.FitResult(history, fitted.best_epoch, fitted.epochs_run)
