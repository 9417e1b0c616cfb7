"""Ensemble and video score, then the probability clipper.

The rule, face → video:

1. each member gives P(FAKE) for every face crop;
2. a face's ensemble probability is the ensemble-weighted mean of the members' probabilities;
3. a track's score is the mean over its faces (per member, and for the ensemble);
4. the video's score is the maximum over its tracks: one fake face makes the video fake;
5. calibration (temperature and bias on the logit, fitted by ``evaluate``) and then clipping to ``[lo, hi]``,
   which caps the log-loss penalty of a confident mistake. Where the manifest says so, the logit is first
   centred on the run's median logit (:func:`test_set_shift`; ``predict`` applies it once the videos are scored).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-7


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Logistic function without overflow for large ``|x|`` (a degenerate fit can give logits of ±1e5)."""
    x = np.asarray(x, dtype=np.float64)
    z = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


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


def test_set_shift(raw_scores) -> float:
    """The median logit of a run's raw video scores: what test-set centring subtracts from each video's logit, so
    that a source's general look (every video of a new source scored fakish, or realish) does not become
    confidence. It assumes about half the videos are fake (DFDC's test sets are); docs/cross_family.md measures it
    on held-out families with 31 % to 91 % fakes."""
    values = logit(np.asarray(list(raw_scores), dtype=np.float64))
    values = values[np.isfinite(values)]  # a NaN score takes no part (it would make every video's NaN)
    if not len(values):
        raise ValueError("test_set_shift needs at least one finite raw score")
    return float(np.median(values))


@dataclass
class ProbabilityClipper:
    """Calibrate (``sigmoid((logit(p) − shift) / temperature + bias)``) and clip to ``[lo, hi]``; ``shift`` is the
    test-set centring (:func:`test_set_shift`), 0 without it."""

    lo: float = 0.01
    hi: float = 0.99
    temperature: float = 1.0
    bias: float = 0.0
    shift: float = 0.0

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

    @classmethod
    def from_fit(cls, fit: dict, default_clip: dict) -> "ProbabilityClipper":
        """A ``calibration_by_members`` entry (temperature, bias and its own ``clip``, else ``default_clip``)."""
        lo, hi = fit.get("clip", [default_clip.get("lo", 0.01), default_clip.get("hi", 0.99)])
        return cls.from_manifest({"lo": lo, "hi": hi}, fit)

    def calibrate(self, p: np.ndarray | float) -> np.ndarray:
        if self.temperature == 1.0 and self.bias == 0.0 and self.shift == 0.0:
            return np.asarray(p, dtype=np.float64)
        return sigmoid((logit(p) - self.shift) / self.temperature + self.bias)

    def __call__(self, p: np.ndarray | float) -> np.ndarray | float:
        out = np.clip(self.calibrate(p), self.lo, self.hi)
        return float(out) if np.ndim(out) == 0 else out


def member_set_key(members) -> str:
    """``"a+b"``: the key of a set of member names in ``calibration_by_members``."""
    return "+".join(sorted(set(members)))


def aggregate_videos(face_probs: np.ndarray, video_ids: np.ndarray, track_ids: np.ndarray) -> dict[int, float]:
    """Per video id: the same face → track → video rule as ``predict`` (mean per track, max over tracks)."""
    out = {}
    for video in np.unique(video_ids):
        in_video = video_ids == video
        tracks = track_ids[in_video]
        probs = face_probs[in_video]
        out[int(video)] = video_score([track_score(probs[tracks == t]) for t in np.unique(tracks)])
    return out


# ---------------------------------------------------------------------------------------------- fitting
def fit_logistic(design: np.ndarray, labels: np.ndarray, l2: np.ndarray | float = 0.0,
                 iterations: int = 100) -> np.ndarray:
    """Weights ``w`` minimising the log loss of ``sigmoid(design @ w)`` plus ``l2 * w²/2``: Newton steps,
    halved until the loss goes down (plain Newton diverges on separable or saturated data)."""
    y = np.asarray(labels, dtype=np.float64)
    penalty = np.broadcast_to(np.asarray(l2, dtype=np.float64), (design.shape[1],))

    def loss(w):
        z = design @ w
        return float(np.sum(np.logaddexp(0, z) - y * z) + 0.5 * np.sum(penalty * w * w))

    w = np.zeros(design.shape[1])
    current = loss(w)
    for _ in range(iterations):
        p = sigmoid(design @ w)
        grad = design.T @ (p - y) + penalty * w
        hess = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        size = 1.0
        while size > 1e-6 and loss(w - size * step) > current:
            size /= 2
        w = w - size * step
        new = loss(w)
        if current - new < 1e-10:
            break
        current = new
    return w


def fit_temperature(raw_scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt-style fit of ``sigmoid(logit(p) / T + b)`` on the log loss; returns ``(T, b)``."""
    x = logit(raw_scores)
    slope, bias = fit_logistic(np.stack([x, np.ones_like(x)], 1), labels)
    slope = max(slope, 1e-3)  # a non-positive slope would invert the ranking: keep the order the models give
    return float(1.0 / slope), float(bias)


def choose_clip(probs: np.ndarray, labels: np.ndarray, candidates: tuple[float, ...] = (
        0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.25, 0.3)) -> tuple[float, float]:
    """Symmetric-or-not clip bounds ``(lo, hi)`` from a grid that minimise the log loss of ``probs``."""
    y = np.asarray(labels, dtype=np.float64)
    best, best_loss = (0.01, 0.99), float("inf")
    for lo in candidates:
        for hi in (1 - c for c in candidates):
            p = np.clip(probs, lo, hi)
            loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
            if loss < best_loss - 1e-12:
                best, best_loss = (float(lo), float(round(hi, 6))), loss
    return best


def stacking_features(member_scores: dict[str, float], members: list[str], faces: int, tracks: int,
                      detection_prob: float) -> np.ndarray:
    """Per-video inputs of the stacker: each member's video logit, then face count, tracks, detector confidence."""
    logits = [float(logit(member_scores.get(m, 0.5))) for m in members]
    return np.array(logits + [np.log1p(faces), float(tracks), float(detection_prob)], dtype=np.float64)


@dataclass
class Stacker:
    """Logistic regression over :func:`stacking_features` (learned member trust instead of a plain mean)."""

    members: list[str]
    coef: list[float]
    intercept: float
    mean: list[float]
    scale: list[float]

    def __call__(self, features: np.ndarray) -> float:
        z = (np.asarray(features) - np.asarray(self.mean)) / np.asarray(self.scale)
        return float(sigmoid(np.dot(z, self.coef) + self.intercept))

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, members: list[str], l2: float = 1.0) -> "Stacker":
        """L2-regularised logistic regression by Newton's method on standardised features."""
        mean = features.mean(0)
        scale = features.std(0) + 1e-6
        design = np.hstack([(features - mean) / scale, np.ones((len(features), 1))])
        penalty = np.full(design.shape[1], l2)
        penalty[-1] = 0.0
        w = fit_logistic(design, labels, penalty)
        return cls(list(members), w[:-1].tolist(), float(w[-1]), mean.tolist(), scale.tolist())

    def to_dict(self) -> dict:
        return {"members": self.members, "coef": self.coef, "intercept": self.intercept, "mean": self.mean,
                "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict) -> "Stacker":
        return cls(data["members"], data["coef"], data["intercept"], data["mean"], data["scale"])
