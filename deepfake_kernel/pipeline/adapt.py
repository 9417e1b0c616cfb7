"""Test-set BatchNorm statistics: before scoring, the members' early BatchNorm layers take their statistics from
faces of the videos about to be scored (AdaBN, Li et al. 2016), so what a new source's videos share (camera,
compression, light) is taken out while the differences between its videos stay.

A member adapts when its manifest entry says ``test_set_norm_blocks`` (stored with the out-of-family calibration
that was fitted on scores made this way, ``cross_family --test-set-norm-blocks``) or ``predict
--test-set-norm-blocks`` asks for it. The faces come from up to ``max_videos`` evenly spaced videos of the run,
``per_video`` evenly spaced faces each, read and cropped by the detector's own stages; a video that fails or
has no face is skipped. With fewer than ``min_videos`` usable videos the members keep their training
statistics (a handful of videos would stand for one source's look, not the test set's).

After scoring, :func:`centre_scores` takes each video's logit relative to the median of the members' logits over
the run's scored videos (a temporal cue's term stays on top) before calibrating it, when the manifest's calibration
was fitted that way (``cross_family --test-set-center``) or ``predict --test-set-center`` asks; again not under
``min_videos`` scored videos.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, TypeVar

import numpy as np

from . import ensemble

log = logging.getLogger("deepfake_kernel.predict")

T = TypeVar("T")


@dataclass
class AdaptConfig:
    """How many faces of which videos the test-set statistics are estimated from."""

    max_videos: int = field(default=128, metadata={"help": "videos read for the test-set BatchNorm statistics"})
    per_video: int = field(default=8, metadata={"help": "faces taken from each of them"})
    min_videos: int = field(default=16, metadata={
        "help": "fewer usable videos than this: keep the training statistics"})


def evenly_spaced(items: Sequence[T], count: int) -> Sequence[T]:
    """``count`` items spread evenly over ``items`` (first and last included); all of them when there are fewer."""
    if len(items) <= count:
        return items
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return items[picks] if isinstance(items, np.ndarray) else [items[i] for i in picks]


def adapt_to_videos(detector, paths: Sequence[str | Path], blocks: dict[str, int],
                    config: AdaptConfig | None = None, deadline: float | None = None) -> dict:
    """Re-estimate the early BatchNorm statistics of ``detector``'s members named in ``blocks`` (member → blocks)
    on faces of ``paths`` (see the module). ``deadline`` (a ``time.monotonic()`` value) stops reading further
    videos. Never raises for a bad video; returns a summary: videos read and usable, faces, members adapted,
    seconds, and ``reason`` when the members kept their training statistics."""
    config = config or AdaptConfig()
    started = time.monotonic()
    chosen = evenly_spaced(list(paths), config.max_videos)
    crops, failures = [], 0
    if len(chosen) < config.min_videos:  # cannot reach the minimum: read nothing
        chosen = []
    for path in chosen:
        if deadline is not None and time.monotonic() > deadline:
            break
        try:
            faces = detector.face_crops(path)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a bad video only leaves the sample
            failures += 1
            log.info("test-set statistics: %s skipped (%s: %s)", Path(path).name, type(exc).__name__, exc)
            continue
        if len(faces):
            crops.append(evenly_spaced(faces, config.per_video))
    summary = {"videos_tried": len(chosen), "videos_used": len(crops), "failed": failures,
               "faces": int(sum(len(c) for c in crops)), "members": {}}
    if len(crops) < config.min_videos:
        summary["reason"] = (f"only {len(crops) if chosen else len(paths)} {'usable ' if chosen else ''}videos "
                             f"(fewer than {config.min_videos}): training statistics kept")
        log.warning("test-set BatchNorm statistics not estimated: %s", summary["reason"])
    else:
        sample = np.concatenate(crops)
        for name, count in blocks.items():
            summary["members"][name] = detector.members[name].adapt_batchnorm(sample, count)
        log.info("test-set BatchNorm statistics from %d faces of %d videos: %s", len(sample), len(crops),
                 summary["members"])
    summary["seconds"] = round(time.monotonic() - started, 2)
    return summary


def _network_score(prediction) -> float:
    """The members' raw score of a video: before the temporal cue where it was added."""
    return prediction.raw_score if prediction.network_score is None else prediction.network_score


def centre_scores(detector, scored: dict, min_videos: int = AdaptConfig.min_videos) -> tuple[dict[str, float], dict]:
    """Calibrated scores of ``scored`` (name → :class:`~.detector.VideoPrediction` with a raw score) with each
    logit taken relative to the median of the members' logits (:func:`~.ensemble.test_set_shift`; a video's
    ``network_score``, its score before the temporal cue, where it has one: the cue's term stays on top of the
    centred logit, its level measured against its fixed reference), each through the clipper of the members that
    scored it; with fewer than ``min_videos`` of them, nothing changes (empty dict). Videos scored by
    a different member set (the budget dropped to the light preset) are centred on their own set's median where
    that set holds ``min_videos`` videos, else on the median of all. Returns the scores and a summary (videos,
    median logit, per member set where more than one, or ``reason``)."""
    if len(scored) < min_videos:
        return {}, {"videos": len(scored), "reason": f"only {len(scored)} scored videos (fewer than {min_videos}): "
                                                     f"scores not centred"}
    shift = ensemble.test_set_shift([_network_score(p) for p in scored.values()])
    by_set: dict[str, list[float]] = {}
    for p in scored.values():
        by_set.setdefault(ensemble.member_set_key(p.models), []).append(_network_score(p))
    shifts = {key: ensemble.test_set_shift(raw) if len(by_set) > 1 and len(raw) >= min_videos else shift
              for key, raw in by_set.items()}  # one set: its median is the median of all
    scores = {name: float(dataclasses.replace(detector.clipper_for(list(p.models)),
                                              shift=shifts[ensemble.member_set_key(p.models)])(p.raw_score))
              for name, p in scored.items()}
    summary = {"videos": len(scored), "median_logit": round(shift, 4)}
    if len(by_set) > 1:
        summary["median_logit_by_members"] = {key: round(value, 4) for key, value in shifts.items()}
    return scores, summary
