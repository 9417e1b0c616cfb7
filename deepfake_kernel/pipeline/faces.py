"""Face cropper: MTCNN detection on downscaled frames, tracks across frames, square crops with margin.

Detection runs on frames resized so the long side is ``detect_long_side`` pixels; boxes are mapped back to the
decoded resolution. Faces with probability below ``min_prob`` are dropped, at most ``max_faces`` are kept per
frame, and detections are linked into tracks by IoU or centre distance, so two people give two tracks. Tracks
seen in under a quarter of the longest one's frames, and bystanders (faces under half the main face's size,
:func:`drop_bystanders`), are dropped.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Face:
    """One detected face: ``frame`` is its position in the frame batch, ``box`` is x1, y1, x2, y2."""

    frame: int
    box: np.ndarray
    prob: float
    landmarks: np.ndarray | None
    crop: np.ndarray | None = None


@dataclass
class Track:
    """Faces of one person across frames."""

    track_id: int
    faces: list[Face] = field(default_factory=list)

    @property
    def last_box(self) -> np.ndarray:
        return self.faces[-1].box

    @property
    def mean_prob(self) -> float:
        return float(np.mean([f.prob for f in self.faces]))

    def crops(self) -> np.ndarray:
        return np.stack([f.crop for f in self.faces])


BYSTANDER_SIZE_RATIO = 0.5  # CropperConfig's default too


def box_sides(boxes: np.ndarray) -> np.ndarray:
    """Each box's side: the geometric mean of its width and height."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.sqrt(np.clip((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 0.0, None))


def bystander_track_ids(track_ids: np.ndarray, boxes: np.ndarray,
                        min_size_ratio: float = BYSTANDER_SIZE_RATIO) -> set[int]:
    """The tracks (of one video; one id and one box per face) whose median face side is under ``min_size_ratio``
    times the largest track's: bystanders in the background, not subjects a forger swaps. With the max over
    tracks their score could only raise a real video's. Two subjects side by side (DFDC's two-person videos) are
    of a size and both stay; ``0`` marks none."""
    track_ids = np.asarray(track_ids)
    ids = np.unique(track_ids)
    if min_size_ratio <= 0 or len(ids) < 2:
        return set()
    sides = box_sides(boxes)
    median = {int(t): float(np.median(sides[track_ids == t])) for t in ids}
    largest = max(median.values())
    return {t for t, side in median.items() if side < min_size_ratio * largest}


def drop_bystanders(tracks: list[Track], min_size_ratio: float = BYSTANDER_SIZE_RATIO) -> list[Track]:
    """``tracks`` without the bystanders (:func:`bystander_track_ids`)."""
    if not tracks:
        return []
    ids = np.concatenate([np.full(len(t.faces), i) for i, t in enumerate(tracks)])
    boxes = np.stack([f.box for t in tracks for f in t.faces])
    dropped = bystander_track_ids(ids, boxes, min_size_ratio)
    return [t for i, t in enumerate(tracks) if i not in dropped]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _centre_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between box centres in units of the larger box side."""
    ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
    cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    side = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1], 1.0)
    return float(np.linalg.norm(ca - cb) / side)


def link_tracks(per_frame: list[list[Face]], min_iou: float = 0.2, max_centre_distance: float = 0.6,
                max_gap: int = 4, frame_numbers: list[int] | None = None) -> list[Track]:
    """Greedily link per-frame detections into tracks (best IoU first, then nearest centre).

    ``frame_numbers`` gives the frame each list belongs to when detection skipped frames (default: 0, 1, …);
    a track ends when it has seen no face for more than ``max_gap`` frames.
    """
    tracks: list[Track] = []
    for index, faces in enumerate(per_frame):
        position = index if frame_numbers is None else frame_numbers[index]
        candidates = []
        for ti, track in enumerate(tracks):
            if position - track.faces[-1].frame > max_gap:
                continue
            for fi, face in enumerate(faces):
                iou = box_iou(track.last_box, face.box)
                dist = _centre_distance(track.last_box, face.box)
                if iou >= min_iou or dist <= max_centre_distance:
                    candidates.append((-iou, dist, ti, fi))
        used_tracks, used_faces = set(), set()
        for _, _, ti, fi in sorted(candidates):
            if ti in used_tracks or fi in used_faces:
                continue
            tracks[ti].faces.append(faces[fi])
            used_tracks.add(ti)
            used_faces.add(fi)
        for fi, face in enumerate(faces):
            if fi not in used_faces:
                tracks.append(Track(len(tracks), [face]))
    return tracks


def crop_geometry(box: np.ndarray, margin: float) -> tuple[int, int, int]:
    """Left, top and side (pixels) of the square crop around ``box`` enlarged by ``margin``."""
    x1, y1, x2, y2 = [float(v) for v in box]
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), max(1, int(round(side)))


def landmarks_in_crop(landmarks: np.ndarray, box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """Map frame-coordinate landmarks into the ``size`` × ``size`` crop made by :func:`square_crop`."""
    left, top, side = crop_geometry(box, margin)
    return (np.asarray(landmarks, dtype=np.float32) - np.array([left, top], np.float32)) * (size / side)


def square_crop(frame: np.ndarray, box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """Square crop around ``box`` enlarged by ``margin`` (fraction of the side), zero-padded, resized."""
    left, top, side_px = crop_geometry(box, margin)
    h, w = frame.shape[:2]
    crop = np.zeros((side_px, side_px, 3), dtype=frame.dtype)
    sx1, sy1 = max(0, left), max(0, top)
    sx2, sy2 = min(w, left + side_px), min(h, top + side_px)
    if sx2 > sx1 and sy2 > sy1:
        crop[sy1 - top:sy2 - top, sx1 - left:sx2 - left] = frame[sy1:sy2, sx1:sx2]
    interp = cv2.INTER_AREA if side_px > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def add_next_frame_faces(tracks: list[Track], next_frames: dict[int, np.ndarray], margin: float,
                         size: int) -> list[Track]:
    """``tracks`` with, after each face whose frame's next frame was decoded (``next_frames``: position → frame),
    the same box cut from that next frame: the paired reading scores both frames of a pair
    (:class:`~.temporal.TemporalCue` ``paired``)."""
    out = []
    for track in tracks:
        faces = []
        for face in track.faces:
            faces.append(face)
            following = next_frames.get(face.frame)
            if face.crop is not None and following is not None:
                faces.append(Face(face.frame, face.box, face.prob, face.landmarks,
                                  square_crop(following, face.box, margin, size)))
        out.append(Track(track.track_id, faces))
    return out


class FaceCropper:
    """MTCNN (facenet-pytorch) face detection, tracking and cropping over a batch of frames."""

    def __init__(self, device: str = "cpu", detect_long_side: int = 1000, min_prob: float = 0.9,
                 margin: float = 0.3, max_faces: int = 2, crop_size: int = 299, batch_size: int = 16,
                 min_face_size: int = 24, min_track_fraction: float = 0.25, detect_every: int = 1,
                 min_track_size_ratio: float = BYSTANDER_SIZE_RATIO):
        from facenet_pytorch import MTCNN

        self.detector = MTCNN(keep_all=True, device=device, min_face_size=min_face_size, post_process=False,
                              select_largest=False)
        self.detect_long_side = detect_long_side
        self.min_face_size = min_face_size
        self.min_prob = min_prob
        self.margin = margin
        self.max_faces = max_faces
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.min_track_fraction = min_track_fraction
        self.min_track_size_ratio = min_track_size_ratio
        self.detect_every = max(1, int(detect_every))
        self.last_timings: dict[str, float] = {}

    def detect(self, frames: np.ndarray, long_side: int | None = None) -> list[list[Face]]:
        """Per frame, the faces above ``min_prob`` (boxes in ``frames`` coordinates), most probable first;
        MTCNN sees the frames resized so their long side is ``long_side`` (default ``detect_long_side``)."""
        h, w = frames.shape[1:3]
        scale = min(1.0, (long_side or self.detect_long_side) / max(h, w))
        results: list[list[Face]] = []
        size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
        if min(size) < self.min_face_size:  # no face can fit (and MTCNN's image pyramid would be empty)
            return [[] for _ in frames]
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start:start + self.batch_size]
            if scale < 1.0:
                chunk = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in chunk])
            boxes, probs, points = self.detector.detect(np.ascontiguousarray(chunk), landmarks=True)
            for offset in range(len(chunk)):
                faces = []
                if boxes[offset] is not None:
                    frame_boxes = np.asarray(boxes[offset], dtype=np.float64).reshape(-1, 4) / scale
                    frame_probs = np.asarray(probs[offset], dtype=np.float64).reshape(-1)
                    frame_points = np.asarray(points[offset], dtype=np.float64).reshape(-1, 5, 2) / scale
                    for box, prob, marks in zip(frame_boxes, frame_probs, frame_points):
                        if prob >= self.min_prob and box[2] > box[0] and box[3] > box[1]:
                            faces.append(Face(start + offset, box, float(prob), marks))
                faces.sort(key=lambda f: -f.prob)
                results.append(faces[:self.max_faces])
        return results

    def __call__(self, frames: np.ndarray, detect_every: int | None = None,
                 detect_long_side: int | None = None) -> list[Track]:
        """Tracks of cropped faces, longest first; short spurious tracks and bystanders are dropped.

        With ``detect_every`` k > 1 (default: the cropper's), MTCNN runs on every k-th frame (and the last); a
        track's boxes on the frames in between are interpolated from its detections on either side (tracks
        are reused, not re-detected). Timings of the last call are in ``last_timings``.
        """
        if len(frames) == 0:
            return []
        every = max(1, int(detect_every or self.detect_every))
        started = time.perf_counter()
        keyframes = list(range(0, len(frames), every))
        if keyframes[-1] != len(frames) - 1:
            keyframes.append(len(frames) - 1)
        detections = self.detect(frames if every == 1 else frames[keyframes], detect_long_side)
        for frame_number, faces in zip(keyframes, detections):
            for face in faces:
                face.frame = frame_number
        detected = time.perf_counter()
        tracks = link_tracks(detections, max_gap=4 * every, frame_numbers=keyframes)
        if tracks:
            longest = max(len(t.faces) for t in tracks)
            tracks = [t for t in tracks if len(t.faces) >= max(1, self.min_track_fraction * longest)]
            tracks = drop_bystanders(tracks, self.min_track_size_ratio)
            tracks.sort(key=lambda t: (-len(t.faces), -t.mean_prob))
            tracks = tracks[:self.max_faces]
        for new_id, track in enumerate(tracks):
            track.track_id = new_id
            if every > 1:
                track.faces = interpolate_track(track.faces)
            for face in track.faces:
                face.crop = square_crop(frames[face.frame], face.box, self.margin, self.crop_size)
        self.last_timings = {"detect": detected - started, "crop": time.perf_counter() - detected}
        return tracks


def interpolate_track(faces: list[Face]) -> list[Face]:
    """Fill the frames between consecutive detections of a track with linearly interpolated faces."""
    filled = [faces[0]]
    for a, b in zip(faces, faces[1:]):
        gap = b.frame - a.frame
        for step in range(1, gap):
            t = step / gap
            marks = None if a.landmarks is None or b.landmarks is None else (1 - t) * a.landmarks + t * b.landmarks
            filled.append(Face(a.frame + step, (1 - t) * a.box + t * b.box, min(a.prob, b.prob), marks))
        filled.append(b)
    return filled
