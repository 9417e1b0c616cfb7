"""Training data: labelled sources → face-crop cache → group split.

Sources (combinable):

* DFDC training parts: folders holding ``metadata.json`` (label from ``label``; identity group from
  ``original``, so a fake and its original always land on the same side of the split);
* a CSV of videos with ``path,label[,group]`` (paths relative to the CSV), e.g. ``../shared/data/videos.csv``;
* a CSV of face crops with ``path,label`` (e.g. ``../shared/data/faces_ffpp.csv``): training material only,
  since crops carry no video identity to split by.

Videos go through the same :class:`~deepfake_kernel.pipeline.video.FrameReader` and
:class:`~deepfake_kernel.faces.FaceCropper` as ``predict``. The cache holds one ``.npz`` per video (crops,
landmarks in crop coordinates, frames, tracks, boxes; every track, bystanders included: scoring from the cache
drops them as ``predict`` does), written atomically, so an interrupted run resumes where it
stopped and a half-written file is never mistaken for a finished one. ``status.jsonl`` logs every video
(ok, or skipped with its reason).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from ..files import atomic_path
from ..pipeline.stage_config import CropperConfig, ReaderConfig

log = logging.getLogger(__name__)

LABELS = {"REAL": 0, "FAKE": 1, "0": 0, "1": 1}


@dataclass(frozen=True)
class VideoItem:
    """A labelled training video; ``group`` ties together videos that share a face or a scene."""

    path: str
    label: int
    group: str
    dataset: str = ""
    method: str = ""
    family: str = ""  # the source (``ffpp``, ``talking-head``, ``dfdc`` ...), for cross-family measurement

    @property
    def key(self) -> str:
        return hashlib.sha1(str(Path(self.path).resolve()).encode()).hexdigest()[:16]


def parse_label(value: str) -> int:
    label = LABELS.get(str(value).strip().upper())
    if label is None:
        raise ValueError(f"label must be REAL/FAKE or 0/1, got {value!r}")
    return label


def read_video_csv(path: str | Path) -> list[VideoItem]:
    """``path,label[,group,dataset,method]`` rows; paths relative to the CSV; no group → the file is its group."""
    path = Path(path)
    items = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            video = (path.parent / row["path"]).as_posix()
            items.append(VideoItem(video, parse_label(row["label"]), row.get("group") or row["path"],
                                   row.get("dataset", ""), row.get("method", ""), row.get("family", "") or ""))
    return items


def read_dfdc_folder(folder: str | Path) -> list[VideoItem]:
    """A DFDC training part: ``metadata.json`` beside the videos; group = the original a fake was made from."""
    folder = Path(folder)
    metadata = json.loads((folder / "metadata.json").read_text())
    items = []
    for name, info in sorted(metadata.items()):
        group = info.get("original") or name
        items.append(VideoItem((folder / name).as_posix(), parse_label(info["label"]), f"dfdc:{group}",
                               "DFDC", "" if info["label"] == "REAL" else "dfdc", "dfdc"))
    return items


def split_by_group(items: list[VideoItem], val_fraction: float = 0.3, seed: int = 0) -> tuple[list, list]:
    """Deterministic train/val split by group, stratified by what a group holds (real only, fake only, both)."""
    groups: dict[str, list[VideoItem]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    by_kind: dict[str, list[str]] = {}
    for name, members in sorted(groups.items()):
        kind = "".join(sorted({str(m.label) for m in members}))
        by_kind.setdefault(kind, []).append(name)
    rng = np.random.default_rng(seed)
    val_groups = set()
    for kind, names in sorted(by_kind.items()):
        names = list(names)
        rng.shuffle(names)
        val_groups.update(names[:int(round(len(names) * val_fraction))])
    train = [i for i in items if i.group not in val_groups]
    val = [i for i in items if i.group in val_groups]
    return train, val


def fingerprint(items: list[VideoItem], crops: list[tuple[str, int]] = ()) -> str:
    """sha256 over the sorted (path, label) list: identifies the training data behind a checkpoint."""
    digest = hashlib.sha256()
    for line in sorted(f"{Path(i.path).as_posix()}\t{i.label}" for i in items):
        digest.update(line.encode() + b"\n")
    for line in sorted(f"{p}\t{label}" for p, label in crops):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def atomic_savez(path: Path, **arrays) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


@dataclass
class CacheConfig:
    """How crops are cut for training: predict's reader and cropper with predict's settings by default
    (:mod:`deepfake_kernel.pipeline.stage_config`), ``frames`` per video at ``crop_size`` pixels."""

    frames: int = 16
    crop_size: int = 160
    cropper: CropperConfig = CropperConfig()
    reader: ReaderConfig = ReaderConfig()

    @property
    def margin(self) -> float:
        return self.cropper.margin

    def tag(self) -> str:
        """The cache folder's name: every setting that changes the crops (the others only when not the default)."""
        c, default = self.cropper, CropperConfig()
        extra = "".join(f"_{k}{getattr(c, k)}" for k in ("min_prob", "min_face_size", "detect_every")
                        if getattr(c, k) != getattr(default, k))
        return f"f{self.frames}_s{self.crop_size}_d{c.detect_long_side}_m{c.margin}_k{c.max_faces}{extra}"


@dataclass
class FaceSamples:
    """Face crops in memory, one row per crop."""

    crops: np.ndarray            # (N, S, S, 3) uint8
    landmarks: np.ndarray        # (N, 5, 2) float32, NaN when unknown
    labels: np.ndarray           # (N,) int64
    video: np.ndarray            # (N,) int64 index into ``videos`` (-1 for loose crops)
    track: np.ndarray            # (N,) int64
    videos: list[VideoItem]
    landmarks68: np.ndarray | None = None  # (N, 68, 2) float32, NaN when unknown (see :mod:`.landmarks`)
    bystander: np.ndarray | None = None    # (N,) bool: a bystander's face, which predict does not score

    def __len__(self) -> int:
        return len(self.labels)

    def scored_by_predict(self) -> np.ndarray:
        """Mask of the faces ``predict`` scores: every one but the bystanders'."""
        return ~self.bystander if self.bystander is not None else np.ones(len(self), bool)

    def fake_bystanders(self) -> np.ndarray:
        """Mask of the bystanders' faces in FAKE videos: background people labelled FAKE with their video."""
        return (self.bystander if self.bystander is not None else np.zeros(len(self), bool)) & (self.labels == 1)

    def select(self, mask: np.ndarray) -> "FaceSamples":
        """The rows where ``mask`` holds (video indices and the video list unchanged)."""
        return FaceSamples(self.crops[mask], self.landmarks[mask], self.labels[mask], self.video[mask],
                           self.track[mask], self.videos,
                           None if self.landmarks68 is None else self.landmarks68[mask],
                           None if self.bystander is None else self.bystander[mask])

    def with_landmarks68(self) -> np.ndarray:
        return (self.landmarks68 if self.landmarks68 is not None
                else np.full((len(self), 68, 2), np.nan, np.float32))

    @classmethod
    def concat(cls, parts: list["FaceSamples"]) -> "FaceSamples":
        parts = [p for p in parts if len(p)]
        if not parts:
            raise ValueError("no face crops: check the data sources")
        videos, video_ids = [], []
        for part in parts:
            video_ids.append(np.where(part.video >= 0, part.video + len(videos), -1))
            videos.extend(part.videos)
        marks68 = (np.concatenate([p.with_landmarks68() for p in parts])
                   if any(p.landmarks68 is not None for p in parts) else None)
        bystander = (np.concatenate([p.bystander if p.bystander is not None else np.zeros(len(p), bool)
                                     for p in parts])
                     if any(p.bystander is not None for p in parts) else None)
        return cls(np.concatenate([p.crops for p in parts]), np.concatenate([p.landmarks for p in parts]),
                   np.concatenate([p.labels for p in parts]), np.concatenate(video_ids),
                   np.concatenate([p.track for p in parts]), videos, marks68, bystander)


class CropCache:
    """Face crops of videos (and of loose crop images) under ``root/<settings tag>/``."""

    def __init__(self, root: str | Path, config: CacheConfig = CacheConfig(), device: str = "cpu"):
        self.config = config
        self.root = Path(root) / config.tag()
        self.device = device
        self._reader = None
        self._cropper = None

    def _stages(self):
        if self._cropper is None:
            self._reader = self.config.reader.build(self.device)
            keep_every_track = replace(self.config.cropper, min_track_size_ratio=0.0)
            self._cropper = keep_every_track.build(self.config.crop_size, self.device)
        return self._reader, self._cropper

    def video_file(self, item: VideoItem) -> Path:
        return self.root / "videos" / f"{item.key}.npz"

    def _log_status(self, item: VideoItem, status: str, detail: str = "") -> None:
        with open(self.root / "status.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"path": item.path, "key": item.key, "status": status, "detail": detail}) + "\n")

    def skipped(self) -> dict[str, str]:
        """Videos that produced no crops, with the reason, from ``status.jsonl``."""
        path = self.root / "status.jsonl"
        out = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut by a kill: ignore it, the video is redone
                    continue
                if record["status"] == "skipped":
                    out[record["key"]] = record["detail"]
                else:
                    out.pop(record["key"], None)
        return out

    def build(self, items: list[VideoItem], progress: bool = True) -> dict[str, int]:
        """Crop every video not cached yet; unreadable or faceless videos are skipped with a logged reason."""
        from ..pipeline.faces import landmarks_in_crop
        from ..pipeline.video import VideoReadError

        (self.root / "videos").mkdir(parents=True, exist_ok=True)
        skipped = self.skipped()
        cached = [i for i in items if self.video_file(i).is_file()]
        todo = [i for i in items if not self.video_file(i).is_file() and i.key not in skipped]
        counts = {"cached": len(cached), "new": 0, "skipped": 0,
                  "skipped_before": len(items) - len(cached) - len(todo)}
        bar = None
        if progress and todo:
            from tqdm import tqdm
            bar = tqdm(total=len(todo), unit="video", desc="face-crop cache")
        for item in todo:
            reader, cropper = self._stages()
            try:
                batch = reader.read(item.path, self.config.frames)
                tracks = cropper(batch.frames)
            except VideoReadError as exc:
                log.warning("skipping %s: %s", item.path, exc)
                self._log_status(item, "skipped", exc.reason)
                counts["skipped"] += 1
                tracks = None
            if tracks is not None and not tracks:
                log.warning("skipping %s: no face found", item.path)
                self._log_status(item, "skipped", "no_face")
                counts["skipped"] += 1
            elif tracks:
                faces = [(t.track_id, f) for t in tracks for f in t.faces]
                marks = np.stack([landmarks_in_crop(f.landmarks, f.box, self.config.margin, self.config.crop_size)
                                  if f.landmarks is not None else np.full((5, 2), np.nan, np.float32)
                                  for _, f in faces])
                atomic_savez(self.video_file(item), crops=np.stack([f.crop for _, f in faces]),
                              landmarks=marks.astype(np.float32),
                              frames=np.array([batch.indices[f.frame] for _, f in faces]),
                              tracks=np.array([t for t, _ in faces]),
                              boxes=np.stack([f.box for _, f in faces]).astype(np.float32),
                              probs=np.array([f.prob for _, f in faces], np.float32))
                self._log_status(item, "ok", f"{len(faces)} faces")
                counts["new"] += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return counts

    def _landmark_model(self):
        if getattr(self, "_landmarks", None) is None:
            from .landmarks import LandmarkModel
            self._landmarks = LandmarkModel()
        return self._landmarks

    def video_landmarks68(self, item: VideoItem) -> np.ndarray:
        """68-point landmarks of a cached video's crops (from MTCNN's boxes), computed once into a sidecar file."""
        from .landmarks import box_in_crop

        path = self.video_file(item).with_suffix(".lm68.npy")
        if not path.is_file():
            with np.load(self.video_file(item)) as data:
                crops, boxes = data["crops"], data["boxes"]
            in_crop = np.stack([box_in_crop(b, self.config.margin, self.config.crop_size) for b in boxes])
            marks = self._landmark_model().for_crops(crops, in_crop)
            with atomic_path(path, suffix=".npy") as tmp:
                np.save(tmp, marks)
        return np.load(path)

    def load_videos(self, items: list[VideoItem], landmarks68: bool = False) -> FaceSamples:
        """Crops of the cached videos among ``items`` (videos without crops are left out); with ``landmarks68``
        also their 68-point landmarks (:meth:`video_landmarks68`). Every track is loaded; ``bystander`` marks the
        faces ``predict`` would not score (:func:`~deepfake_kernel.pipeline.faces.bystander_track_ids`)."""
        from ..pipeline.faces import bystander_track_ids

        crops, marks, marks68, labels, video_ids, tracks, kept, bystander = [], [], [], [], [], [], [], []
        for item in items:
            path = self.video_file(item)
            if not path.is_file():
                continue
            with np.load(path) as data:
                n = len(data["crops"])
                crops.append(data["crops"])
                marks.append(data["landmarks"])
                tracks.append(data["tracks"])
                dropped = bystander_track_ids(data["tracks"], data["boxes"], self.config.cropper.min_track_size_ratio)
                bystander.append(np.isin(data["tracks"], list(dropped)))
            if landmarks68:
                marks68.append(self.video_landmarks68(item))
            labels.append(np.full(n, item.label))
            video_ids.append(np.full(n, len(kept)))
            kept.append(item)
        if not kept:
            s = self.config.crop_size
            return FaceSamples(np.zeros((0, s, s, 3), np.uint8), np.zeros((0, 5, 2), np.float32),
                               np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), [],
                               np.zeros((0, 68, 2), np.float32) if landmarks68 else None)
        return FaceSamples(np.concatenate(crops), np.concatenate(marks), np.concatenate(labels).astype(np.int64),
                           np.concatenate(video_ids).astype(np.int64), np.concatenate(tracks).astype(np.int64), kept,
                           np.concatenate(marks68) if landmarks68 else None, np.concatenate(bystander))

    def load_crop_csv(self, csv_path: str | Path, limit: int | None = None, progress: bool = True,
                      landmarks: bool = False, landmarks68: bool = False, only_real: bool = False) -> FaceSamples:
        """Loose face crops (``path,label`` CSV), resized to the cache size and cached as one ``.npz``.

        With ``landmarks`` MTCNN locates the 5 landmarks of every crop (about a second a crop on a busy 2-core
        machine); without, they are left unknown (NaN) and the landmark-based augmentations fall back to the
        usual landmark positions of a face crop (:func:`deepfake_kernel.augment.estimated_landmarks`). With
        ``only_real`` the FAKE rows are dropped before ``limit`` applies.
        """
        csv_path = Path(csv_path)
        with open(csv_path, newline="", encoding="utf-8") as handle:
            rows = [(r["path"], parse_label(r["label"])) for r in csv.DictReader(handle)]
        if only_real:
            rows = [row for row in rows if row[1] == 0]
        if limit:
            rows = rows[:limit]
        digest = hashlib.sha1("\n".join(f"{p}\t{l}" for p, l in rows).encode()).hexdigest()[:12]
        out = self.root / f"crops_{csv_path.stem}_{digest}{'_lm' if landmarks else ''}.npz"
        if not out.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            cropper = self._stages()[1] if landmarks else None
            size = self.config.crop_size
            crops = np.zeros((len(rows), size, size, 3), np.uint8)
            marks = np.full((len(rows), 5, 2), np.nan, np.float32)
            readable = np.ones(len(rows), bool)
            iterator = range(len(rows))
            if progress:
                from tqdm import tqdm
                iterator = tqdm(iterator, desc=f"crops {csv_path.name}", unit="crop")
            for i in iterator:
                image = cv2.imread(str(csv_path.parent / rows[i][0]), cv2.IMREAD_COLOR)
                if image is None:
                    log.warning("skipping unreadable crop %s", rows[i][0])
                    readable[i] = False
                    continue
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                crops[i] = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
                if cropper is not None:
                    found = cropper.detect(crops[i][None])[0]
                    if found and found[0].landmarks is not None:
                        marks[i] = found[0].landmarks
            labels = np.array([l for _, l in rows])
            atomic_savez(out, crops=crops[readable], landmarks=marks[readable], labels=labels[readable])
        with np.load(out) as data:
            crops, labels = data["crops"], data["labels"].astype(np.int64)
            n = len(labels)
            samples = FaceSamples(crops, data["landmarks"], labels, np.full(n, -1, np.int64),
                                  np.zeros(n, np.int64), [])
        if landmarks68:
            samples.landmarks68 = self._crop_landmarks68(out, samples, progress)
        return samples

    def _crop_landmarks68(self, crops_file: Path, samples: FaceSamples, progress: bool) -> np.ndarray:
        """68-point landmarks of the REAL loose crops (the self-blend sources; FAKE ones stay NaN), once."""
        path = crops_file.with_suffix(".lm68.npy")
        if not path.is_file():
            model = self._landmark_model()
            marks = np.full((len(samples), 68, 2), np.nan, np.float32)
            real = np.flatnonzero(samples.labels == 0)
            iterator = real
            if progress:
                from tqdm import tqdm
                iterator = tqdm(real, desc="68-point landmarks", unit="crop")
            for i in iterator:
                marks[i] = model.for_crops(samples.crops[i:i + 1], margin=self.config.margin)[0]
            with atomic_path(path, suffix=".npy") as tmp:
                np.save(tmp, marks)
        return np.load(path)


def cached_tracks(cache: CropCache, item: VideoItem):
    """The cached crops of one video as the cropper's :class:`~deepfake_kernel.faces.Track` list, bystanders
    dropped as the cropper drops them (the cache keeps every track: training learns from all its faces). Only a
    video with more tracks than ``max_faces`` can differ from ``predict``: the cache kept the longest ones first."""
    from ..pipeline.faces import Face, Track, drop_bystanders

    with np.load(cache.video_file(item)) as data:
        crops, tracks, boxes, probs = data["crops"], data["tracks"], data["boxes"], data["probs"]
        frames = data["frames"]
    out: dict[int, Track] = {}
    for i in range(len(crops)):
        track = out.setdefault(int(tracks[i]), Track(int(tracks[i])))
        track.faces.append(Face(int(frames[i]), boxes[i], float(probs[i]), None, crops[i]))
    return drop_bystanders([out[k] for k in sorted(out)], cache.config.cropper.min_track_size_ratio)
