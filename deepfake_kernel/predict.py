"""``python -m deepfake_kernel.predict VIDEO_DIR`` → ``submission.csv`` with one row per video.

Examples::

    python -m deepfake_kernel.predict test_videos/
    python -m deepfake_kernel.predict test_videos/ --template sample_submission.csv --time-budget 9h \\
        --details per_video.csv
"""
from __future__ import annotations

import argparse
import collections
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .budget import TimeBudget, default_ladder, parse_duration
from .config import add_dataclass_args, from_args
from .detector import Detector, VideoPrediction
from .submission import atomic_write_text, filenames_for, find_template, render_csv, write_submission
from .weights import WeightsError

log = logging.getLogger("deepfake_kernel.predict")

DETAIL_COLUMNS = ("filename", "label", "raw_score", "reason", "frames_requested", "frames_read", "faces",
                  "tracks", "models", "member_scores", "reader", "seconds", "notes")


@dataclass
class PredictConfig:
    """Options of ``predict`` (each is also a ``--option``)."""

    video_dir: str = ""
    out: str = field(default="submission.csv", metadata={"help": "submission file to write"})
    template: str | None = field(default=None, metadata={"help": "DFDC sample_submission.csv: rows in its order"})
    weights: str = field(default="weights", metadata={"help": "folder with manifest.json and checkpoints"})
    frames: int = field(default=32, metadata={"help": "frames sampled per video"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    time_budget: str | None = field(default=None, metadata={"help": "wall-clock budget, e.g. 9h, 30m, 600"})
    models: list[str] = field(default_factory=list, metadata={"help": "members to run (default: all in manifest)"})
    batch_size: int = field(default=16, metadata={"help": "frames/faces per batch"})
    details: str | None = field(default=None, metadata={"help": "also write a per-video CSV here"})
    detect_long_side: int = field(default=1000, metadata={"help": "face detection on frames this long"})
    max_faces: int = field(default=2, metadata={"help": "faces (tracks) kept per video"})
    margin: float = field(default=0.3, metadata={"help": "crop margin around a face, fraction of its side"})
    min_face_prob: float = field(default=0.9, metadata={"help": "MTCNN probability to keep a face"})
    fallback_score: float = field(default=0.5, metadata={"help": "label for videos that cannot be scored"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: torch default)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


def _details_row(name: str, prediction: VideoPrediction | None, fallback: float, reason: str) -> list:
    if prediction is None:
        return [name, f"{fallback:.6f}", "", reason, 0, 0, 0, 0, "", "", "", 0, ""]
    p = prediction
    members = ";".join(f"{k}={v:.5f}" for k, v in p.member_scores.items())
    return [name, f"{p.score:.6f}", "" if p.raw_score is None else f"{p.raw_score:.6f}", p.reason or "",
            p.frames_requested, p.frames_read, p.faces, len(p.tracks), ";".join(p.models), members, p.reader,
            f"{p.seconds:.3f}", " | ".join(p.notes)[:500]]


class _Interrupted(Exception):
    pass


def run(config: PredictConfig) -> dict:
    """Predict every video of ``config.video_dir``; return the summary. Configuration errors raise early."""
    video_dir = Path(config.video_dir)
    if not video_dir.is_dir():
        raise FileNotFoundError(f"video folder {video_dir} does not exist")
    template = find_template(video_dir, config.template)
    if template is not None and not template.is_file():
        raise FileNotFoundError(f"template {template} does not exist")
    names = filenames_for(video_dir, template)
    if config.threads:
        import torch
        torch.set_num_threads(config.threads)
    budget_seconds = parse_duration(config.time_budget)
    started = time.monotonic()
    detector = Detector.from_weights(config.weights, device=config.device, models=config.models or None,
                                     frames=config.frames, batch_size=config.batch_size,
                                     detect_long_side=config.detect_long_side, max_faces=config.max_faces,
                                     margin=config.margin, min_prob=config.min_face_prob,
                                     fallback_score=config.fallback_score)
    # a complete submission exists from the start, so nothing that happens later can lose a row
    write_submission(config.out, names, {}, config.fallback_score)
    lightest = min(detector.members, key=lambda n: sum(p.numel() for p in detector.members[n].parameters()))
    ladder = default_ladder(config.frames, detector.member_names, lightest)
    remaining = None if budget_seconds is None else budget_seconds - (time.monotonic() - started)
    budget = TimeBudget(remaining, len(names), ladder)

    scores: dict[str, float] = {}
    details: dict[str, list] = {}
    reasons: collections.Counter = collections.Counter()
    levels: collections.Counter = collections.Counter()
    interrupted = None

    def on_sigterm(signum, frame):
        raise _Interrupted("SIGTERM")

    previous_handler = signal.signal(signal.SIGTERM, on_sigterm) if _main_thread() else None
    bar = _progress(len(names), config.progress)
    try:
        for name in names:
            level = budget.choose()
            if level is None:
                reason = "time_budget"
                details[name] = _details_row(name, None, config.fallback_score, reason)
                reasons[reason] += 1
                budget.record(None, 0.0)
            else:
                prediction = detector.predict_video(video_dir / name, frames=level.frames, models=list(level.models))
                budget.record(level, prediction.seconds)
                levels[f"{level.frames} frames x {len(level.models)} models"] += 1
                scores[name] = prediction.score
                details[name] = _details_row(name, prediction, config.fallback_score, "")
                if prediction.reason:
                    reasons[prediction.reason] += 1
                    log.info("%s: fallback %.2f (%s)", name, prediction.score, prediction.reason)
            if bar is not None:
                bar.update(1)
                if budget_seconds:
                    bar.set_postfix_str(f"budget left {max(0.0, budget.remaining()):.0f}s")
    except (KeyboardInterrupt, _Interrupted) as exc:
        interrupted = type(exc).__name__ if not isinstance(exc, _Interrupted) else "SIGTERM"
        log.warning("interrupted (%s): writing the submission with %.2f for unreached videos",
                    interrupted, config.fallback_score)
    finally:
        if bar is not None:
            bar.close()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        write_submission(config.out, names, scores, config.fallback_score)
        for name in names:
            if name not in details:
                details[name] = _details_row(name, None, config.fallback_score, "interrupted")
                reasons["interrupted"] += 1
        if config.details:
            atomic_write_text(config.details, render_csv(DETAIL_COLUMNS, [details[n] for n in names]))

    elapsed = time.monotonic() - started
    summary = {"videos": len(names), "scored": len(names) - sum(reasons.values()),
               "fallbacks": dict(reasons), "levels": dict(levels), "seconds": round(elapsed, 2),
               "seconds_per_video": round(elapsed / max(1, len(names)), 3), "out": str(config.out),
               "interrupted": interrupted}
    return summary


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="video", dynamic_ncols=True)


def format_summary(summary: dict) -> str:
    lines = [f"wrote {summary['out']}: {summary['videos']} rows, {summary['scored']} scored, "
             f"{summary['videos'] - summary['scored']} fallbacks, {summary['seconds']:.1f}s "
             f"({summary['seconds_per_video']:.2f}s/video)"]
    for reason, count in sorted(summary["fallbacks"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  fallback {reason}: {count}")
    for level, count in summary["levels"].items():
        lines.append(f"  level {level}: {count} videos")
    if summary.get("interrupted"):
        lines.append(f"  run interrupted ({summary['interrupted']}); unreached videos got the fallback score")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deepfake_kernel.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video_dir", help="folder of videos (searched recursively)")
    add_dataclass_args(parser, PredictConfig, skip=("video_dir",))
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = from_args(PredictConfig, args)
    try:
        summary = run(config)
    except (WeightsError, FileNotFoundError, ValueError, PermissionError, IsADirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 130 if summary.get("interrupted") == "KeyboardInterrupt" else 0


if __name__ == "__main__":
    sys.exit(main())
