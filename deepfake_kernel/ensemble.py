"""Ensemble and video score, then the probability clipper.

The rule, face → video:

1. each member gives P(FAKE) for every face crop;
2. a face's ensemble probability is the ensemble-weighted mean of the members' probabilities;
3. a track's score is the mean over its faces (per member, and for the ensemble);
4. the video's score is the maximum over its tracks: one fake face makes the video fake;
5. calibration (temperature and bias on the logit, fitted by ``evaluate``) and then clipping to ``[lo, hi]``,
   which caps the log-loss penalty of a confident mistake.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-7


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def weighted_mean(member_probs: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Per-face ensemble probability: weighted mean of the members' probabilities."""
    names = list(member_probs)
    w = np.array([max(0.0, float(weights.get(n, 1.0))) for n in names])
    if w.sum() <= 0:
        w = np.ones(len(names))
    stacked = np.stack([np.asarray(member_probs[n], dtype=np.float64) for n in names])
    return (w[:, None] * stacked).sum(0) / w.sum()


def track_score(face_probs: np.ndarray) -> float:
    """A track's score: mean P(FAKE) over its faces."""
    return float(np.mean(face_probs))


def video_score(track_scores: list[float]) -> float:
    """A video's score: the most fake-looking track."""
    return float(max(track_scores))


@dataclass
class ProbabilityClipper:
    """Calibrate (``sigmoid(logit(p) / temperature + bias)``) and clip to ``[lo, hi]``."""

    lo: float = 0.01
    hi: float = 0.99
    temperature: float = 1.0
    bias: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.lo < self.hi <= 1.0:
            raise ValueError(f"clip range must satisfy 0 <= lo < hi <= 1, got [{self.lo}, {self.hi}]")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")

    @classmethod
    def from_manifest(cls, clip: dict, calibration: dict | None = None) -> "ProbabilityClipper":
        calibration = calibration or {}
        return cls(lo=float(clip.get("lo", 0.01)), hi=float(clip.get("hi", 0.99)),
                   temperature=float(calibration.get("temperature", 1.0)),
                   bias=float(calibration.get("bias", 0.0)))

    def calibrate(self, p: np.ndarray | float) -> np.ndarray:
        if self.temperature == 1.0 and self.bias == 0.0:
            return np.asarray(p, dtype=np.float64)
        return sigmoid(logit(p) / self.temperature + self.bias)

    def __call__(self, p: np.ndarray | float) -> np.ndarray | float:
        out = np.clip(self.calibrate(p), self.lo, self.hi)
        return float(out) if np.ndim(out) == 0 else out


def aggregate_videos(face_probs: np.ndarray, video_ids: np.ndarray, track_ids: np.ndarray) -> dict[int, float]:
    """Per video id: the same face → track → video rule as ``predict`` (mean per track, max over tracks)."""
    out = {}
    for video in np.unique(video_ids):
        in_video = video_ids == video
        tracks = track_ids[in_video]
        probs = face_probs[in_video]
        out[int(video)] = video_score([track_score(probs[tracks == t]) for t in np.unique(tracks)])
    return out
