"""Temporal cue: how much of a face's change between two consecutive frames optical flow cannot explain.

A face generated or re-rendered frame by frame (swaps, re-enactment, lip-sync) changes in ways that smooth motion
does not account for. At a few positions of a video's main face track, frames ``i`` and ``i + 1`` are cut with the
same box (:func:`~.faces.square_crop`), frame ``i + 1`` is warped onto frame ``i`` with Farneback optical flow, and
the cue is the mean absolute residual inside an ellipse inscribed in the face box (axes times 0.85) over the mean
absolute change before warping. The video's cue is the log of the median over positions. No training: docs/cross_family.md
("temporal cue") has its per-family AUC and how its weight in the score was chosen.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .faces import Face, Track, crop_geometry, square_crop

CUE_SIZE = 224  # pixels of the square crops the flow runs on
MIN_CHANGE = 0.2  # mean grey-level change inside the face below which the pair is a repeated frame: skipped
EPS = 1e-3


@dataclass(frozen=True)
class TemporalCue:
    """How the cue enters the score: ``logit += weight * (cue - reference)``, on ``positions`` frame pairs, for
    videos scored by exactly ``members`` (the set whose calibration was fitted with it).

    ``paired``: the video is read as positions and their next frames (a level's ``frames`` / 2 positions, each
    with the frame after it); the members score both frames of every pair and the cue takes every pair (the light
    preset's reading: as many decoded frames, half the seeks; faces are detected on every (k / 2)-th position where
    the level asks for every k-th frame, the same spacing in time). Otherwise ``positions`` of the sampled frames
    also get their next frame, for the cue alone.

    ``networks`` (manifest members reading :func:`residual_image` of the same pairs, their mean logit averaged over
    pairs and networks): the learned temporal cue, which adds ``network_weight * (learned - network_reference)``."""

    weight: float
    reference: float
    positions: int = 8
    members: tuple[str, ...] = ()
    margin: float = 0.3
    shrink: float = 0.85  # the face ellipse's axes, as a fraction of the box's
    paired: bool = False
    networks: tuple[str, ...] = ()
    network_weight: float = 0.0
    network_reference: float = 0.0

    @classmethod
    def from_manifest(cls, entry: dict | None) -> "TemporalCue | None":
        if not entry or not float(entry.get("weight", 0.0)):
            return None
        return cls(weight=float(entry["weight"]), reference=float(entry.get("reference", 0.0)),
                   positions=int(entry.get("positions", 8)), members=tuple(entry.get("members", ())),
                   margin=float(entry.get("margin", 0.3)), shrink=float(entry.get("shrink", 0.85)),
                   paired=bool(entry.get("paired", False)), networks=tuple(entry.get("networks", ())),
                   network_weight=float(entry.get("network_weight", 0.0)),
                   network_reference=float(entry.get("network_reference", 0.0)))

    def entry(self) -> dict:
        """The manifest entry (``calibration["temporal_cue"]``)."""
        learned = ({"networks": list(self.networks), "network_weight": self.network_weight,
                    "network_reference": self.network_reference} if self.networks else {})
        return {"cue": "log_flow_residual", "weight": self.weight, "reference": self.reference,
                "positions": self.positions, "margin": self.margin, "shrink": self.shrink,
                "members": list(self.members), **({"paired": True} if self.paired else {}), **learned}

    def describe(self) -> str:
        """``weight=W;reference=R;positions=P;margin=M;shrink=S[;paired=1]``: the setting as one field of a predictions
        row."""
        return (f"weight={self.weight:g};reference={self.reference:g};positions={self.positions};margin={self.margin:g};"
                f"shrink={self.shrink:g}" + (";paired=1" if self.paired else ""))

    @classmethod
    def parse(cls, text: str) -> "TemporalCue":
        """The inverse of :meth:`describe`."""
        fields = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
        return cls(weight=float(fields["weight"]), reference=float(fields["reference"]),
                   positions=int(fields["positions"]), margin=float(fields.get("margin", 0.3)),
                   shrink=float(fields.get("shrink", 0.85)), paired=fields.get("paired") == "1")

    def applies_to(self, models) -> bool:
        """Whether videos scored by ``models`` take the cue (any set when ``members`` is empty)."""
        return not self.members or sorted(set(models)) == sorted(set(self.members))

    def reading(self, frames: int) -> tuple[int, int]:
        """(frames to sample, of which pairs) for a level of ``frames`` scored frames."""
        if self.paired:
            positions = max(1, frames // 2)
            return positions, positions
        return frames, self.positions

    def adjust_logit(self, logit: float, cue: float | None, learned: float | None = None) -> float:
        """``logit`` plus the flow cue's and the learned cue's terms (each left out where it is ``None``)."""
        if cue is not None:
            logit += self.weight * (cue - self.reference)
        if learned is not None and self.networks:
            logit += self.network_weight * (learned - self.network_reference)
        return logit


def face_ellipse(box: np.ndarray, margin: float, size: int = CUE_SIZE, shrink: float = 1.0) -> np.ndarray:
    """Boolean ``size`` × ``size`` mask: the ellipse inscribed in ``box`` (frame coordinates) in its square crop,
    its axes times ``shrink``."""
    left, top, side = crop_geometry(box, margin)
    x1, y1, x2, y2 = [(float(v) - o) * size / side for v, o in zip(box, (left, top, left, top))]
    mask = np.zeros((size, size), np.uint8)
    centre = (int(round((x1 + x2) / 2)), int(round((y1 + y2) / 2)))
    axes = (max(1, int(round(shrink * (x2 - x1) / 2))), max(1, int(round(shrink * (y2 - y1) / 2))))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    return mask.astype(bool)


def flow_residual(first: np.ndarray, second: np.ndarray, mask: np.ndarray,
                  maps: tuple[np.ndarray, np.ndarray] | None = None) -> float | None:
    """Residual over change inside ``mask`` for two RGB crops of one face; ``None`` for a repeated frame or a mask
    too small to measure. ``maps``: the pair's :func:`pair_flow`, where already computed."""
    if mask.sum() < 200:
        return None
    grey0 = cv2.cvtColor(first, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey1 = cv2.cvtColor(second, cv2.COLOR_RGB2GRAY).astype(np.float32)
    change = float(np.abs(grey1 - grey0)[mask].mean())
    if change < MIN_CHANGE:
        return None
    warped = cv2.remap(grey1, *(maps if maps is not None else flow_maps(grey0, grey1)), cv2.INTER_LINEAR)
    return float(np.abs(warped - grey0)[mask].mean()) / (change + EPS)


def flow_maps(grey0: np.ndarray, grey1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps (x, y) that warp an image of frame ``i + 1`` onto frame ``i`` (Farneback flow of the two
    grey crops)."""
    flow = cv2.calcOpticalFlowFarneback(grey0, grey1, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    ys, xs = np.mgrid[0:grey0.shape[0], 0:grey0.shape[1]].astype(np.float32)
    return xs + flow[..., 0], ys + flow[..., 1]


def pair_flow(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`flow_maps` of two RGB crops, from their uint8 grey images. Both cues warp by it, so a video computes it
    once per pair (Farneback reads uint8 grey and the same levels as float32 alike: identical flows)."""
    return flow_maps(cv2.cvtColor(first, cv2.COLOR_RGB2GRAY), cv2.cvtColor(second, cv2.COLOR_RGB2GRAY))


def cue_pairs(frames: np.ndarray, next_frames: dict[int, np.ndarray], tracks: list[Track], margin: float = 0.3,
              size: int = CUE_SIZE) -> list[tuple[Face, np.ndarray, np.ndarray]]:
    """(face, crop of frame ``i``, crop of frame ``i + 1``) at the positions of the longest track whose next frame
    was decoded (``next_frames``: position in ``frames`` → the following source frame), both cut with the face's box."""
    if not tracks or not next_frames:
        return []
    track = max(tracks, key=lambda t: len(t.faces))
    pairs = []
    for face in track.faces:
        following = next_frames.get(face.frame)
        if following is None or following.shape != frames[face.frame].shape:
            continue
        pairs.append((face, square_crop(frames[face.frame], face.box, margin, size),
                      square_crop(following, face.box, margin, size)))
    return pairs


def video_cue(frames: np.ndarray, next_frames: dict[int, np.ndarray], tracks: list[Track],
              margin: float = 0.3, shrink: float = 0.85) -> float | None:
    """The log median flow residual of the longest track over the positions whose next frame was decoded
    (``next_frames``: position in ``frames`` → the following source frame); ``None`` when none can be measured."""
    return pairs_cue(cue_pairs(frames, next_frames, tracks, margin), margin, shrink)


def pairs_cue(pairs: list[tuple[Face, np.ndarray, np.ndarray]], margin: float = 0.3,
              shrink: float = 0.85, flows: list | None = None) -> float | None:
    """:func:`video_cue` of pairs already cut by :func:`cue_pairs` (the learned cue reads the same ones);
    ``flows``: their :func:`pair_flow`, where already computed."""
    values = []
    for k, (face, first, second) in enumerate(pairs):
        value = flow_residual(first, second, face_ellipse(face.box, margin, shrink=shrink),
                              flows[k] if flows is not None else None)
        if value is not None and np.isfinite(value) and value > 0:
            values.append(value)
    return float(np.log(np.median(values))) if values else None


def learned_cue(networks, pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                flows: list | None = None) -> float | None:
    """The learned temporal cue of a video: the mean FAKE logit of ``networks`` (residual-reading
    :class:`~deepfake_kernel.detectors.FaceClassifier` s) over the :func:`residual_image` of its ``pairs``
    (:func:`cue_pairs`; ``flows``: their :func:`pair_flow`, where already computed); ``None`` without pairs or
    networks."""
    if not pairs or not networks:
        return None
    import torch

    images = np.stack([residual_image(first, second, flows[k] if flows is not None else None)
                       for k, (_, first, second) in enumerate(pairs)])
    logits = []
    with torch.inference_mode():
        for network in networks:
            logits.append(float(network(network.preprocess(images)).float().mean()))
    return float(np.mean(logits))


def residual_image(first: np.ndarray, second: np.ndarray,
                   maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """What the flow leaves of a face pair, as an image: ``first − warp(second)`` (frame ``i + 1`` warped onto frame
    ``i`` by :func:`pair_flow`, or ``maps`` where already computed), per RGB channel, stored as uint8
    ``clip(round(4 · r) + 128)`` (r in grey levels: quarter-level steps, ±32 kept). Read with mean = std = 128/255,
    as ``detectors.backbones.RESIDUAL_MEAN`` / ``RESIDUAL_STD``, a network sees ``r / 32``; the learned temporal cue
    (:func:`learned_cue`) is trained and run on these images."""
    if maps is None:
        maps = pair_flow(first, second)
    warped = cv2.remap(second.astype(np.float32), *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    residual = first.astype(np.float32) - warped
    return np.clip(np.round(4.0 * residual) + 128.0, 0, 255).astype(np.uint8)
