"""Training the learned temporal cue: a small network on what optical flow leaves of a face pair.

Material: for every cached video, ``predict``'s reading of it (the sampled frames, ``positions`` of them with their
next frame) with the cached faces placed on it, cut into pairs by :func:`~deepfake_kernel.pipeline.temporal.cue_pairs`
exactly as ``predict`` cuts them, with the 68 landmarks of the cached crop of each first frame; stored beside the
cached crops (``KEY.pairs_p8_m0.3.npz``), so the video is read once. REAL: pairs of real videos. FAKE: the same pairs
self-blended so that the blend wavers between the two frames (:func:`~.augment.wavering_self_blend`): no labelled
fake is used (``--fake-source sbi+real`` puts labelled fakes' pairs beside them, ``--frozen-share`` too-steady blends:
measured, not shipped). ``--pair-jitter P`` gives a share P of pairs one random look on both frames (crop window,
contrast, brightness, resolution loss). Both frames of a pair flipped together and JPEG re-compressed independently
(p 0.5, quality 60–95); the network reads :func:`~deepfake_kernel.pipeline.temporal.residual_image`. docs/cross_family.md has the
measurements behind the recipe.
"""
from __future__ import annotations

import csv
import logging
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..pipeline.temporal import cue_pairs, residual_image
from .augment import frozen_self_blend, jpeg_recompress, pair_jitter, wavering_self_blend
from .data import CacheConfig, CropCache, VideoItem, cached_tracks, read_video_csv

log = logging.getLogger("deepfake_kernel.train_temporal_cue")


@dataclass
class TemporalCueConfig:
    """Options of ``train_temporal_cue`` (each is also a ``--option``)."""

    videos: list[str] = field(default_factory=list, metadata={"help": "CSV(s) of videos: path,label[,group,family]"})
    out: str = field(default="weights", metadata={"help": "weights folder the network is exported to"})
    name: str = field(default="temporal_residual", metadata={"help": "its name in the manifest"})
    detector: str = field(default="temporal_residual_lite0", metadata={"help": "registry name of the network"})
    hold_out_family: list[str] = field(default_factory=list, metadata={
        "help": "families left out of training; their videos are scored into --scores (cross-family measurement)"})
    scores: str = field(default="", metadata={"help": "CSV of the held-out videos' learned cue (with --hold-out-family)"})
    fake_source: str = field(default="sbi", metadata={
        "help": "FAKE samples: sbi (wavering self-blends of real pairs), sbi+real (a --real-fake-share of them from "
                "the labelled FAKE videos of the training families instead)"})
    real_fake_share: float = field(default=0.5, metadata={"help": "with sbi+real: share of FAKE samples that are "
                                                                  "labelled fakes' pairs"})
    frozen_share: float = field(default=0.0, metadata={
        "help": "share of the self-blended FAKE samples made too steady (frozen_self_blend) instead of wavering"})
    pair_jitter: float = field(default=0.0, metadata={
        "help": "share of pairs given one random look on both frames (crop window, contrast, brightness, resolution "
                "loss: augment.pair_jitter), after the blend, before flip and JPEG (0: off)"})
    init_from: str = field(default="", metadata={"help": "start from this checkpoint (a --work-dir's last.pt) "
                                                         "instead of ImageNet: a second stage"})
    epochs: int = field(default=18, metadata={"help": "epochs of --samples pairs (18 since the thirty-third session; "
                                                      "3 then 9 before: each longer schedule lifted the held-out folds)"})
    samples: int = field(default=1024, metadata={"help": "pairs an epoch, half real, half wavering self-blends"})
    batch_size: int = 16
    lr: float = field(default=5e-4, metadata={"help": "one-cycle peak learning rate (AdamW, weight decay 1e-4)"})
    warmup: float = field(default=0.3, metadata={"help": "share of the steps rising to the peak rate"})
    clip_grad: float = field(default=1.0, metadata={"help": "gradient norm clipped to this (0: off)"})
    seed: int = 0
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch's default)"})
    positions: int = field(default=8, metadata={"help": "face pairs per video trained on"})
    score_positions: int = field(default=0, metadata={
        "help": "face pairs per held-out video scored into --scores, as predict's temporal cue reads them (the "
                "manifest's positions; 0: --positions)"})
    margin: float = 0.3
    cache_dir: str = field(default="cache", metadata={"help": "face-crop cache (train's / cross_family's)"})
    cache_frames: int = 32
    cache_size: int = 224
    storage_dtype: str = field(default="float16", metadata={"help": "export dtype: float32, float16 or int8"})
    work_dir: str = field(default="", metadata={"help": "folder for the checkpoint written after every epoch "
                                                         "(last.pt; empty: none)"})
    resume: bool = field(default=False, metadata={"help": "continue from --work-dir's last.pt (same settings)"})

    def resume_key(self) -> dict:
        """The settings a checkpoint must share to be resumed: what changes the steps taken."""
        skip = {"out", "name", "scores", "score_positions", "threads", "storage_dtype", "work_dir", "resume"}
        return {k: v for k, v in asdict(self).items() if k not in skip}

    def resumes(self, stored_key: dict) -> bool:
        """Whether a checkpoint made with ``stored_key`` continues under these settings: the same key, where an
        option added since (absent from it) counts as the same while left at its default."""
        defaults = {f.name: f.default for f in fields(self)}
        return stored_key == {k: v for k, v in self.resume_key().items() if k in stored_key or v != defaults[k]}


def stored_pairs(cache: CropCache, reader, item: VideoItem, positions: int = 8, margin: float = 0.3):
    """(first, second, landmarks68) arrays of a cached video's face pairs, read once with ``reader`` (predict's) and
    kept beside its crops; ``None`` when it has none (unreadable, no face, no next frame)."""
    from ..files import atomic_path
    from ..pipeline.faces import Track
    from ..pipeline.video import VideoReadError

    path = cache.video_file(item).with_suffix(f".pairs_p{positions}_m{margin:g}.npz")
    if not path.is_file():
        pairs = []
        try:
            batch = reader.read(item.path, cache.config.frames, positions)
        except VideoReadError as exc:
            log.warning("no face pairs for %s: %s", item.path, exc)
        else:
            where = {index: position for position, index in enumerate(batch.indices)}
            tracks = [Track(t.track_id, [replace(f, frame=where[f.frame]) for f in t.faces if f.frame in where])
                      for t in cached_tracks(cache, item)]
            with np.load(cache.video_file(item)) as data:  # cached face of each (source frame, box): its landmarks
                cached = {(int(frame), box.tobytes()): k for k, (frame, box) in enumerate(zip(data["frames"],
                                                                                             data["boxes"]))}
            marks68 = cache.video_landmarks68(item)
            for face, first, second in cue_pairs(batch.frames, batch.next_frames, [t for t in tracks if t.faces],
                                                 margin):
                k = cached[(int(batch.indices[face.frame]), np.asarray(face.box, np.float32).tobytes())]
                pairs.append((first, second, marks68[k] * first.shape[0] / cache.config.crop_size))
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, first=np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, 1, 1, 3), np.uint8),
                     second=np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, 1, 1, 3), np.uint8),
                     marks=np.stack([p[2] for p in pairs]).astype(np.float32) if pairs else np.zeros((0, 68, 2)))
    with np.load(path) as data:
        return (data["first"], data["second"], data["marks"]) if len(data["first"]) else None


def training_sample(first: np.ndarray, second: np.ndarray, marks: np.ndarray, fake: bool,
                    rng: np.random.Generator, frozen: bool = False, jitter: float = 0.0) -> np.ndarray:
    """One pair as the network reads it: wavering self-blend if ``fake`` (too steady a one if ``frozen`` too),
    one look on both frames (p ``jitter``: :func:`~.augment.pair_jitter`), flipped together (p 0.5), both frames
    JPEG re-compressed (p 0.5, quality 60–95 each), then :func:`residual_image`."""
    if fake:
        first, second = (frozen_self_blend if frozen else wavering_self_blend)(first, second, marks, rng)
    if jitter > 0 and rng.random() < jitter:
        first, second = pair_jitter(first, second, rng)
    if rng.random() < 0.5:
        first, second = np.ascontiguousarray(first[:, ::-1]), np.ascontiguousarray(second[:, ::-1])
    if rng.random() < 0.5:
        first, second = jpeg_recompress(first, rng, (60, 95)), jpeg_recompress(second, rng, (60, 95))
    return residual_image(first, second)


def build_network(config: TemporalCueConfig):
    """The registry's network from EfficientNet-Lite ImageNet weights, its new head started small (P ≈ 0.5); or,
    with ``config.init_from``, from that checkpoint's network."""
    from ..detectors import create_model
    from ..detectors.pretrained import load_efficientnet_lite_imagenet
    from .trainers import reset_head

    model = create_model(config.detector)
    if config.init_from:
        if not Path(config.init_from).is_file():
            raise FileNotFoundError(f"--init-from: no checkpoint {config.init_from}")
        state = torch.load(config.init_from, map_location="cpu", weights_only=False)
        model.network.load_state_dict(state["network"])
        return model
    load_efficientnet_lite_imagenet(model.network, int(model.spec.arch[-1]))
    reset_head(model.network.get_classifier())
    return model


def train_network(model, videos: list[dict], config: TemporalCueConfig, progress=print,
                  fakes: list[dict] | None = None) -> list[float]:
    """Train ``model`` (a residual-reading FaceClassifier) on ``videos`` (real ones: ``first``, ``second``,
    ``marks``) against their wavering self-blends and, with ``config.fake_source`` ``sbi+real``, the pairs of
    ``fakes`` (labelled FAKE videos) for a ``config.real_fake_share`` of the FAKE samples: balanced batches, AdamW,
    one-cycle schedule; with ``config.work_dir`` a checkpoint after every epoch, from which ``config.resume``
    continues exactly (network, optimiser, schedule and random state). Returns the losses per step."""
    share = config.real_fake_share if config.fake_source == "sbi+real" and fakes else 0.0
    rng = np.random.default_rng(config.seed)
    optimiser = torch.optim.AdamW(model.network.parameters(), lr=config.lr, weight_decay=1e-4)
    steps = max(1, config.epochs * config.samples // config.batch_size)
    per_epoch = max(1, steps // max(1, config.epochs))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.lr, total_steps=steps, pct_start=config.warmup)
    half = max(1, config.batch_size // 2)
    losses, clock, start = [], time.time(), 0
    checkpoint = Path(config.work_dir) / "last.pt" if config.work_dir else None
    if config.resume:
        if checkpoint is None or not checkpoint.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint {checkpoint or '(give --work-dir)'}")
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if not config.resumes(state["key"]):
            raise ValueError(f"--resume: {checkpoint} was made with other settings; use another --work-dir")
        model.network.load_state_dict(state["network"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        start, losses = state["step"], list(state["losses"])
        progress(f"resumed at step {start}/{steps}")
    model.train()
    for step in range(start, steps):
        images, labels = [], []
        for fake in (False, True):
            for _ in range(half):
                labelled = fake and share > 0 and rng.random() < share
                video = fakes[rng.integers(len(fakes))] if labelled else videos[rng.integers(len(videos))]
                j = int(rng.integers(len(video["first"])))
                blended = fake and not labelled
                frozen = blended and config.frozen_share > 0 and rng.random() < config.frozen_share
                images.append(training_sample(video["first"][j], video["second"][j], video["marks"][j],
                                              blended, rng, frozen, config.pair_jitter))
                labels.append(float(fake))
        logits = model(model.preprocess(np.stack(images)))
        loss = F.binary_cross_entropy_with_logits(logits, torch.tensor(labels))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.network.parameters(), config.clip_grad)
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 25 == 0 or step + 1 == steps:
            progress(f"step {step + 1}/{steps} loss {np.mean(losses[-25:]):.4f} {time.time() - clock:.0f} s")
        if checkpoint is not None and ((step + 1) % per_epoch == 0 or step + 1 == steps):
            from ..files import atomic_path

            with atomic_path(checkpoint, suffix=".pt") as tmp:
                torch.save({"key": config.resume_key(), "step": step + 1, "losses": losses,
                            "network": model.network.state_dict(), "optimiser": optimiser.state_dict(),
                            "schedule": schedule.state_dict(), "rng": rng.bit_generator.state,
                            "torch_rng": torch.get_rng_state()}, tmp)
    model.eval()
    return losses


def score_videos(models, videos: list[dict]) -> list[dict]:
    """Each video's learned cue (:func:`~deepfake_kernel.pipeline.temporal.learned_cue` of its stored pairs)."""
    from ..pipeline.temporal import learned_cue

    return [{"path": v["path"], "family": v["family"], "label": v["label"],
             "learned_cue": learned_cue(models, [(None, a, b) for a, b in zip(v["first"], v["second"])])}
            for v in videos]


def load_videos(config: TemporalCueConfig, positions: int = 0, families: set[str] | None = None) -> list[dict]:
    """Every cached video of ``config.videos`` (of ``families`` only, where given) with its stored face pairs,
    ``positions`` of them (0: ``config.positions``; read now where missing)."""
    cache = CropCache(config.cache_dir, CacheConfig(frames=config.cache_frames, crop_size=config.cache_size))
    items = [i for path in config.videos for i in read_video_csv(path)]
    missing = {i.key for i in items if not cache.video_file(i).is_file()}
    if missing:
        log.warning("%d of %d videos have no cached crops (build the cache with train or cross_family first); "
                    "left out", len(missing), len(items))
    reader = cache.config.reader.build("cpu")
    videos = []
    for item in items:
        if item.key in missing or (families is not None and item.family not in families):
            continue
        pairs = stored_pairs(cache, reader, item, positions or config.positions, config.margin)
        if pairs is not None:
            videos.append({"path": str(item.path), "label": int(item.label), "family": item.family,
                           "first": pairs[0], "second": pairs[1], "marks": pairs[2]})
    return videos


def run(config: TemporalCueConfig, command: str = "") -> dict:
    """Train on the REAL videos of every family not held out; export to ``config.out`` (without a held-out
    family) or score the held-out videos into ``config.scores`` (with one). Returns a summary."""
    from ..detectors.weights import STORAGE_DTYPES, export_member, read_manifest, write_manifest
    from ..metrics import roc_auc

    if not config.videos:
        raise ValueError("--videos: give the CSV(s) of videos whose cached crops the pairs come from")
    if config.storage_dtype not in STORAGE_DTYPES:
        raise ValueError(f"--storage-dtype must be one of {STORAGE_DTYPES}")
    if config.fake_source not in ("sbi", "sbi+real"):
        raise ValueError(f"--fake-source {config.fake_source!r}: use sbi or sbi+real")
    if not all(0.0 <= share <= 1.0 for share in (config.real_fake_share, config.frozen_share, config.pair_jitter)):
        raise ValueError("--real-fake-share, --frozen-share and --pair-jitter must lie in [0, 1]")
    if config.positions < 1 or config.score_positions < 0:
        raise ValueError("--positions must be at least 1 and --score-positions at least 0 (0: as --positions)")
    if config.hold_out_family and not config.scores:
        raise ValueError("--hold-out-family trains a fold model: give --scores FILE.csv for its held-out videos")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    videos = load_videos(config)
    unknown = sorted(set(config.hold_out_family) - {v["family"] for v in videos})
    if unknown:
        raise ValueError(f"--hold-out-family {unknown}: no cached video of that family; families: "
                         f"{sorted({v['family'] for v in videos})}")
    held = [v for v in videos if v["family"] in config.hold_out_family]
    if held and config.score_positions not in (0, config.positions):  # scored as predict reads them
        held = load_videos(config, config.score_positions, set(config.hold_out_family))
    reals = [v for v in videos if v["family"] not in config.hold_out_family and v["label"] == 0]
    if not reals:
        raise ValueError("no REAL video with face pairs to train on (check --videos and --cache-dir)")
    fakes = [v for v in videos if v["family"] not in config.hold_out_family and v["label"] == 1]
    if config.fake_source == "sbi+real" and not fakes:
        raise ValueError("--fake-source sbi+real: no labelled FAKE video with face pairs among the training families")
    log.info("%d real training videos, %d labelled fakes%s, %d held out", len(reals), len(fakes),
             "" if config.fake_source == "sbi+real" else " (unused)", len(held))
    clock = time.time()
    model = build_network(config)
    losses = train_network(model, reals, config, progress=lambda text: log.info(text), fakes=fakes)
    summary = {"real_videos": len(reals), "held_out_videos": len(held), "seconds": round(time.time() - clock, 1),
               "fake_videos": len(fakes) if config.fake_source == "sbi+real" else 0,
               "final_loss": round(float(np.mean(losses[-50:])), 4), "config": asdict(config)}
    if config.hold_out_family:
        rows = score_videos([model], held)
        Path(config.scores).parent.mkdir(parents=True, exist_ok=True)
        with open(config.scores, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["path"])
            writer.writeheader()
            writer.writerows(rows)
        for family in sorted({r["family"] for r in rows}):
            chosen = [r for r in rows if r["family"] == family and r["learned_cue"] is not None]
            labels = np.array([r["label"] for r in chosen])
            if len(set(labels)) == 2:
                summary.setdefault("held_out_auc", {})[family] = round(
                    roc_auc(labels, np.array([r["learned_cue"] for r in chosen])), 4)
    else:
        entry = export_member(model, config.out, name=config.name, storage_dtype=config.storage_dtype,
                              ensemble_weight=0.0, training_command=command, training=summary, reads="residual")
        if config.storage_dtype != "float32":
            summary["storage_fidelity"] = storage_fidelity(model, entry, config.out, videos)
            manifest = read_manifest(config.out)
            manifest.member(config.name).metrics["storage_fidelity"] = summary["storage_fidelity"]
            write_manifest(manifest, config.out)
    return summary


def storage_fidelity(model, entry, weights_dir: str, videos: list[dict]) -> dict:
    """How far the stored (float16 / int8) network's learned cue lies from the trained one's, over ``videos``."""
    from ..detectors.weights import load_member

    stored = load_member(entry, weights_dir)
    trained = np.array([r["learned_cue"] for r in score_videos([model], videos)], np.float64)
    kept = np.array([r["learned_cue"] for r in score_videos([stored], videos)], np.float64)
    gap = np.abs(trained - kept)
    return {"videos": len(videos), "storage_dtype": entry.storage_dtype, "max_abs_cue_difference": round(float(gap.max()), 5),
            "mean_abs_cue_difference": round(float(gap.mean()), 5),
            "cue_spread_sd": round(float(trained.std()), 4)}
