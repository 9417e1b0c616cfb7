"""Training routines for the reference detectors that ``train``'s SGD loop does not fit.

``train`` calls the routine named by a detector's ``DetectorSpec.trainer`` (see :func:`train.member_trainer`) with
the same arguments and the same group split as :func:`train.train_member`, and gets the same kind of report back;
the member is exported through :func:`weights.export_member` and its val face probabilities are saved as
``<work_dir>/<name>/val_face_probs.npy`` (crop order of ``CropCache.load_videos(val_items)``), like any member.

* :func:`train_sequence_member`: detectors reading ``spec.sequence_length`` consecutive crops of one face track
  (:class:`zoo.SequenceClassifier`). Training windows are cut from the cached tracks (crops of a track are
  stored in frame order; loose crops, which have no track, are left out). ``resnet3d`` and ``stacked_xception``
  train end to end with binary cross-entropy; ``temporal_lstm``/``temporal_mlp`` train in two stages as in their
  study: the frame embedder with the cosine hinge loss (stage 1, shared by both heads through a cache keyed by
  its settings), then the head with binary cross-entropy on frozen embeddings (stage 2).
* :func:`train_sklearn_member`: the linear baselines, fitted by scikit-learn (:meth:`zoo.LinearBaseline.fit_sklearn`).

Both run in one process (no DDP) and do not resume: they take minutes.
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

from .augment import FaceAugmenter
from .data import FaceSamples
from .weights import decode_state_dict, encode_state_dict, export_member
from .zoo import SequenceClassifier, TemporalNet, cosine_hinge_loss, spread_window_probs, window_plan

log = logging.getLogger("deepfake_kernel.zoo_train")

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


def track_ids(samples: FaceSamples) -> np.ndarray:
    """One id per crop naming its (video, track); what :meth:`SequenceClassifier.predict_proba` groups by."""
    return samples.video * 100_000 + samples.track


def sequence_augment_config(config):
    """The run's augmentations without the ones that differ frame to frame or change labels (pseudo-fakes, Face
    Feature Mask); one seed per window then gives every frame of it the same flip, crop, colour, blur and JPEG."""
    from .train import augment_config

    return dataclasses.replace(augment_config(config), fwa=0.0, sbi=0.0, face_feature_mask=0.0)


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


def _val_windows(model: SequenceClassifier, val: FaceSamples) -> list[np.ndarray]:
    return window_plan(track_ids(val), model.sequence_length)


# ---------------------------------------------------------------------------------------------- export
def finish_member(model, name: str, recipe, config, val: FaceSamples, env, command: str, data_fingerprint: str,
                  history: list, best_epoch: int, epochs_run: int, extra: dict | None = None) -> dict:
    """Score the trained member on val in float32 and as stored, export it, save its val face probabilities."""
    from .train import storage_dtype_for, video_metrics

    member_dir = Path(config.work_dir) / name
    member_dir.mkdir(parents=True, exist_ok=True)
    ids = track_ids(val) if isinstance(model, SequenceClassifier) else None

    def probabilities() -> np.ndarray:
        model.eval()
        if ids is not None:
            return model.predict_proba(val.crops, batch_size=4 * model.sequence_length, track_ids=ids)
        return model.predict_proba(val.crops, batch_size=64)

    fp32_probs = probabilities()
    fp32_metrics, _, _ = video_metrics(fp32_probs, val)
    storage_dtype = storage_dtype_for(name, config)
    model.network.load_state_dict(decode_state_dict(encode_state_dict(model.network.state_dict(), storage_dtype)))
    stored_probs = probabilities()
    stored_metrics, _, _ = video_metrics(stored_probs, val)
    report = {"member": name, "recipe": dataclasses.asdict(recipe), "best_epoch": best_epoch, "epochs_run": epochs_run,
              "history": history, "val": stored_metrics, "val_float32": fp32_metrics,
              "storage_max_abs_prob_diff": round(float(np.abs(stored_probs - fp32_probs).max()), 6),
              "parameters": int(sum(p.numel() for p in model.network.parameters())), **(extra or {})}
    if env.main:
        export_member(model, config.out, storage_dtype=storage_dtype, training_command=command,
                      metrics={"val_video": stored_metrics, "val_video_float32": fp32_metrics},
                      training={"preset": config.preset, "recipe": report["recipe"], "seed": config.seed,
                                "best_epoch": best_epoch, "epochs_run": epochs_run,
                                "data_fingerprint": data_fingerprint, "history": history, **(extra or {})})
        np.save(member_dir / "val_face_probs.npy", stored_probs)
    return report


def _single_process(env, name: str) -> None:
    if env.world > 1:
        raise ValueError(f"{name} trains in one process: run train without torchrun for it")


# ---------------------------------------------------------------------------------------------- scikit-learn
def train_sklearn_member(name: str, config, train: FaceSamples, val: FaceSamples, env, command: str,
                         data_fingerprint: str) -> dict:
    """Fit a linear baseline on every training crop (flattened at the recipe's input size), C by group CV."""
    from .models import create_model

    _single_process(env, name)
    recipe = config.recipe(name)
    torch.manual_seed(config.seed)
    model = create_model(name, input_size=recipe.input_size)
    with torch.inference_mode():
        features = torch.cat([model.preprocess(train.crops[i:i + 512]).float().reshape(-1, model.network.linear.in_features)
                              for i in range(0, len(train), 512)]).numpy()
    groups = np.array([train.videos[v].group if v >= 0 else f"loose:{i}" for i, v in enumerate(train.video)])
    started = time.perf_counter()
    fitted = model.network.fit_sklearn(features, train.labels, groups)
    history = [{"epoch": 1, "seconds": round(time.perf_counter() - started, 1), **fitted}]
    log.warning("%s: %s", name, json.dumps(history[0]))
    return finish_member(model, name, recipe, config, val, env, command, data_fingerprint, history, 1, 1,
                         {"sklearn": fitted})


# ---------------------------------------------------------------------------------------------- sequences
class _WindowEpochs:
    """Class-balanced epochs of augmented track windows (``recipe.samples_per_epoch`` tracks an epoch, in batches
    of ``recipe.batch_size``), the input of the end-to-end and the embedder trainers."""

    def __init__(self, train: FaceSamples, tracks: list[np.ndarray], recipe, config, size: int):
        self.train, self.tracks, self.size, self.seed = train, tracks, size, config.seed
        self.batch_size = recipe.batch_size
        self.labels = np.array([train.labels[rows[0]] for rows in tracks])
        self.samples = recipe.samples_per_epoch or len(tracks)
        self.steps = max(1, self.samples // self.batch_size)
        self.augmenter = FaceAugmenter(sequence_augment_config(config))

    def batches(self, epoch: int):
        """``(clips, labels)`` for each step of ``epoch``; the same for the same seed and epoch."""
        from .train import epoch_indices

        order = epoch_indices(self.labels, self.samples, self.seed, epoch)
        for step in range(self.steps):
            picks = order[step * self.batch_size:(step + 1) * self.batch_size]
            yield make_windows(self.train, self.tracks, picks, self.size, self.augmenter, self.seed, epoch)


def _optimizer(parameters_body, parameters_head, lr: float, body_mult: float, weight_decay: float, total: int):
    optimizer = torch.optim.AdamW([{"params": parameters_body, "lr": lr * body_mult},
                                   {"params": parameters_head, "lr": lr}], weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[lr * body_mult, lr], total_steps=max(1, total),
                                                    pct_start=0.2)
    return optimizer, scheduler


def _val_video_metrics(window_logits: np.ndarray, windows: list[np.ndarray], val: FaceSamples) -> dict:
    from .train import video_metrics

    probs = spread_window_probs(len(val), windows, 1 / (1 + np.exp(-window_logits)))
    return video_metrics(probs, val)[0]


def train_sequence_member(name: str, config, train: FaceSamples, val: FaceSamples, env, command: str,
                          data_fingerprint: str) -> dict:
    """Train a :class:`SequenceClassifier` member on windows of the cached face tracks (see the module doc)."""
    from .models import create_model

    _single_process(env, name)
    recipe = config.recipe(name)
    torch.manual_seed(config.seed)
    model = create_model(name, input_size=recipe.input_size).to(env.device)
    tracks = track_rows(train)
    if not tracks:
        raise ValueError(f"{name} needs face tracks from videos; loose crops alone cannot train it")
    if isinstance(model.network, TemporalNet):
        return _train_temporal(name, model, recipe, config, train, val, tracks, env, command, data_fingerprint)
    return _train_end_to_end(name, model, recipe, config, train, val, tracks, env, command, data_fingerprint)


def _train_end_to_end(name, model, recipe, config, train, val, tracks, env, command, data_fingerprint) -> dict:
    from .train import optimizer_step, video_metrics

    member_dir = Path(config.work_dir) / name
    member_dir.mkdir(parents=True, exist_ok=True)

    head = list(model.network.get_classifier().parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.network.parameters() if id(p) not in head_ids]
    size = model.sequence_length
    windows = _WindowEpochs(train, tracks, recipe, config, size)
    optimizer, scheduler = _optimizer(body, head, recipe.lr, recipe.body_lr_mult, config.weight_decay,
                                      recipe.epochs * windows.steps)
    history, best, best_epoch, bad = [], float("inf"), -1, 0
    patience = max(config.patience, MIN_PATIENCE)
    for epoch in range(recipe.epochs):
        started = time.perf_counter()
        model.train()
        losses = []
        for clips, target in windows.batches(epoch):
            logits = model(model.preprocess(clips))
            loss = F.binary_cross_entropy_with_logits(logits.float(), torch.as_tensor(target, device=logits.device))
            losses.append(optimizer_step(loss, optimizer, scheduler))
        model.eval()
        probs = model.predict_proba(val.crops, batch_size=4 * size, track_ids=track_ids(val))
        val_metrics = video_metrics(probs, val)[0]
        record = {"epoch": epoch + 1, "train_loss": round(float(np.mean(losses)), 5),
                  "seconds": round(time.perf_counter() - started, 1), **{f"val_{k}": v for k, v in val_metrics.items()}}
        history.append(record)
        log.warning("%s epoch %d/%d: %s", name, epoch + 1, recipe.epochs, json.dumps(record))
        if val_metrics["log_loss"] < best:
            best, best_epoch, bad = val_metrics["log_loss"], epoch + 1, 0
            torch.save(model.network.state_dict(), member_dir / "best.pt")
        else:
            bad += 1
            if bad >= patience:
                break
    model.network.load_state_dict(torch.load(member_dir / "best.pt", map_location=env.device, weights_only=True))
    return finish_member(model, name, recipe, config, val, env, command, data_fingerprint, history, best_epoch,
                         len(history), {"train_tracks": len(tracks), "sequence_length": size})


def _embedder_key(model, recipe, config, data_fingerprint: str) -> str:
    settings = {"arch": model.spec.arch.split("+")[0], "recipe": dataclasses.asdict(recipe), "seed": config.seed,
                "weight_decay": config.weight_decay, "imagenet": config.imagenet, "data": data_fingerprint,
                "augment": dataclasses.asdict(sequence_augment_config(config)),
                "sequence_length": model.sequence_length, "device": str(config.device)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _train_embedder(name, model, recipe, config, train, tracks, env) -> list[dict]:
    """Stage 1: the frame embedder with the cosine hinge loss on adjacent frames."""
    from .train import optimizer_step

    embedder = model.network.embedder
    if config.imagenet and model.spec.arch.startswith("efficientnet_lite"):
        from .pretrained import load_efficientnet_lite_imagenet
        load_efficientnet_lite_imagenet(embedder.backbone, int(model.spec.arch.split("+")[0][-1]))
    windows = _WindowEpochs(train, tracks, recipe, config, model.sequence_length)
    optimizer, scheduler = _optimizer(list(embedder.backbone.parameters()), list(embedder.proj.parameters()),
                                      recipe.lr, recipe.body_lr_mult, config.weight_decay, recipe.epochs * windows.steps)
    history = []
    for epoch in range(recipe.epochs):
        started = time.perf_counter()
        embedder.train()
        losses = []
        for clips, target in windows.batches(epoch):
            loss = cosine_hinge_loss(embedder(model.preprocess(clips)).float(),
                                     torch.as_tensor(target, device=model.mean.device))
            losses.append(optimizer_step(loss, optimizer, scheduler))
        record = {"stage": "embedder", "epoch": epoch + 1, "hinge_loss": round(float(np.mean(losses)), 5),
                  "seconds": round(time.perf_counter() - started, 1)}
        history.append(record)
        log.warning("%s embedder epoch %d/%d: %s", name, epoch + 1, recipe.epochs, json.dumps(record))
    return history


@torch.no_grad()  # not inference_mode: the head trains on these tensors afterwards
def _embed(model, clips_fn, count: int, batch: int) -> torch.Tensor:
    model.network.embedder.eval()
    out = []
    for start in range(0, count, batch):
        out.append(model.network.embedder(model.preprocess(clips_fn(start, min(count, start + batch)))).float())
    return torch.cat(out)


def _train_temporal(name, model, recipe, config, train, val, tracks, env, command, data_fingerprint) -> dict:
    from .train import epoch_indices

    member_dir = Path(config.work_dir) / name
    member_dir.mkdir(parents=True, exist_ok=True)
    network: TemporalNet = model.network
    size = model.sequence_length
    # stage 1, shared by temporal_lstm and temporal_mlp through a cache keyed by every setting that shapes it
    cache = Path(config.work_dir) / "_temporal_embedder" / f"{_embedder_key(model, recipe, config, data_fingerprint)}.pt"
    if cache.is_file():
        saved = torch.load(cache, map_location=env.device, weights_only=False)
        network.embedder.load_state_dict(saved["embedder"])
        embed_history = saved["history"]
        log.warning("%s: embedder reused from %s", name, cache)
    else:
        embed_history = _train_embedder(name, model, recipe, config, train, tracks, env)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"embedder": network.embedder.state_dict(), "history": embed_history}, cache)
    for p in network.embedder.parameters():
        p.requires_grad_(False)
    # stage 2: the head on frozen embeddings of EMBED_VIEWS augmented windows per training track
    started = time.perf_counter()
    augmenter = FaceAugmenter(sequence_augment_config(config))
    picks = np.tile(np.arange(len(tracks)), EMBED_VIEWS)
    views = np.repeat(np.arange(EMBED_VIEWS), len(tracks))
    train_labels = np.array([train.labels[tracks[p][0]] for p in picks], dtype=np.float32)

    def train_clips(a, b):
        return np.stack([make_windows(train, tracks, picks[i:i + 1], size, augmenter, config.seed,
                                      10_000 + int(views[i]))[0][0] for i in range(a, b)])

    train_emb = _embed(model, train_clips, len(picks), 4)
    windows = _val_windows(model, val)
    val_emb = _embed(model, lambda a, b: np.stack([val.crops[w] for w in windows[a:b]]), len(windows), 4)
    embed_seconds = round(time.perf_counter() - started, 1)
    head = network.head
    optimizer = torch.optim.AdamW(head.parameters(), lr=recipe.lr, weight_decay=config.weight_decay)
    history = list(embed_history) + [{"stage": "embed_windows", "seconds": embed_seconds}]
    best, best_epoch, bad, best_state = float("inf"), -1, 0, None
    patience = max(config.patience, MIN_PATIENCE)
    for epoch in range(HEAD_EPOCHS):
        started = time.perf_counter()
        head.train()
        order = epoch_indices(train_labels.astype(np.int64), len(picks), config.seed, 500 + epoch)
        losses = []
        for start in range(0, len(order), HEAD_BATCH):
            rows = order[start:start + HEAD_BATCH]
            logits = network.head_logits(train_emb[rows]).reshape(-1)
            loss = F.binary_cross_entropy_with_logits(logits, torch.as_tensor(train_labels[rows], device=logits.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        head.eval()
        with torch.inference_mode():
            val_logits = network.head_logits(val_emb).reshape(-1).float().cpu().numpy()
        val_metrics = _val_video_metrics(val_logits, windows, val)
        record = {"stage": "head", "epoch": epoch + 1, "train_loss": round(float(np.mean(losses)), 5),
                  "seconds": round(time.perf_counter() - started, 1), **{f"val_{k}": v for k, v in val_metrics.items()}}
        history.append(record)
        log.warning("%s head epoch %d/%d: %s", name, epoch + 1, HEAD_EPOCHS, json.dumps(record))
        if val_metrics["log_loss"] < best:
            best, best_epoch, bad = val_metrics["log_loss"], epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    head.load_state_dict(best_state)
    for p in network.embedder.parameters():
        p.requires_grad_(True)
    head_epochs_run = sum(1 for record in history if record.get("stage") == "head")
    return finish_member(model, name, recipe, config, val, env, command, data_fingerprint, history, best_epoch,
                         head_epochs_run, {"train_tracks": len(tracks), "sequence_length": size,
                                           "head_epochs": HEAD_EPOCHS, "embed_views": EMBED_VIEWS,
                                           "embedder_epochs": recipe.epochs})
