"""``python -m deepfake_kernel.predict VIDEO_DIR`` → ``submission.csv`` with one row per video.

Examples::

    python -m deepfake_kernel.predict test_videos/
    python -m deepfake_kernel.predict test_videos/ --template sample_submission.csv --time-budget 9h \\
        --details per_video.csv
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .config import add_dataclass_args, from_args
from .openmp import set_wait_policy
from .pipeline.runner import (EXIT_CONFIG, EXIT_SIGINT, EXIT_SIGTERM, ConfigError, PredictConfig, merge, run,
                              run_sharded_auto)
from .pipeline.watchdog import abandoned_alive


def format_summary(summary: dict) -> str:
    lines = [f"wrote {summary['out']}: {summary['videos']} rows, {summary['scored']} scored, "
             f"{summary['videos'] - summary['scored']} fallbacks, {summary['seconds']:.1f}s "
             f"({summary['seconds_per_video']:.2f}s/video)"]
    for reason, count in sorted(summary["fallbacks"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  fallback {reason}: {count}")
    for level, count in summary["levels"].items():
        lines.append(f"  level {level}: {count} videos")
    if summary.get("reader"):
        notes = "; ".join(summary.get("reader_notes") or [])
        lines.append(f"  decoding: {summary['reader']}" + (f" ({notes})" if notes else ""))
    adapted = summary.get("test_set_norm")
    if adapted:
        lines.append(f"  test-set BatchNorm statistics: " + (
            f"kept the training ones ({adapted['reason']})" if adapted.get("reason") else
            f"{adapted['faces']} faces of {adapted['videos_used']} videos, {adapted['seconds']:.1f}s"))
    centred = summary.get("test_set_center")
    if centred:
        lines.append("  test-set centring: " + (f"off ({centred['reason']})" if centred.get("reason") else
                                                f"{centred['videos']} videos, median logit {centred['median_logit']:+.3f}"))
    cue = summary.get("temporal_cue")
    if cue:
        sets = []
        for key, used in cue["member_sets"].items():
            count = f"{used['videos']} videos: " if len(cue["member_sets"]) > 1 else ""
            paired = ", paired frames" if used["paired"] else ""
            learned = (f", learned cue of {len(used['networks'])} network(s) at weight {used['network_weight']:g}"
                       if used.get("networks") else "")
            sets.append(f"{count}weight {used['weight']:g}, for the member set {key}{paired}{learned}")
        lines.append(f"  temporal cue: {cue['videos']} videos" + (f" ({'; '.join(sets)})" if sets else ""))
    if summary.get("interrupted"):
        lines.append(f"  run interrupted ({summary['interrupted']}); unreached videos got the fallback score")
    if summary.get("abandoned_workers"):
        lines.append(f"  {summary['abandoned_workers']} abandoned worker(s) still running; exiting without them")
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
    set_wait_policy(config.preset)  # before torch loads: how its idle threads wait (openmp.py)
    if config.merge:
        print(json.dumps(merge(config, config.merge)))
        return 0
    if config.shard == "auto" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        summary = run_sharded_auto(config)
        print(format_summary(summary))
        return 0
    try:
        summary = run(config)
    except Exception as exc:
        if not _is_config_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(format_summary(summary))
    return {"KeyboardInterrupt": EXIT_SIGINT, "SIGTERM": EXIT_SIGTERM}.get(summary.get("interrupted"), 0)


def _is_config_error(exc: Exception) -> bool:
    if isinstance(exc, (ConfigError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
                        ValueError)):
        return True
    weights = sys.modules.get(f"{__package__}.detectors.weights")  # loaded only if the run got that far
    return weights is not None and isinstance(exc, weights.WeightsError)


def _exit(code: int) -> None:
    """Leave; when abandoned workers still run, or after an interruption (a decoder thread may be mid-read, and
    tearing it down at interpreter exit can abort the process), leave at once: every output is already written
    and synced."""
    if abandoned_alive() or code in (EXIT_SIGINT, EXIT_SIGTERM):
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
