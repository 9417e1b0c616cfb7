"""``python -m deepfake_kernel.train_temporal_cue``: train the learned temporal cue's network.

It reads what optical flow leaves of a face pair (frames ``i`` and ``i + 1``), trained on real videos against their
frame-by-frame wavering self-blends (:mod:`deepfake_kernel.training.temporal`); the face-crop cache of ``train`` /
``cross_family`` must hold the videos. Without ``--hold-out-family`` the network is exported to ``--out`` (its
manifest entry reads ``"input": "residual"``; the manifest's temporal cue names it once a calibration is fitted
with it, docs/cross_family.md); with it, the held-out videos' cue goes to ``--scores``::

    python -m deepfake_kernel.train_temporal_cue --videos ../shared/data/videos.csv,../shared/data/videos_extra.csv \\
        --hold-out-family ffpp --scores runs/tcue/ffpp_s0.csv --seed 0
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import add_dataclass_args, from_args
from .training.temporal import TemporalCueConfig, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepfake_kernel.train_temporal_cue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, TemporalCueConfig)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = from_args(TemporalCueConfig, args)
    try:
        summary = run(config, "python -m deepfake_kernel.train_temporal_cue " + " ".join(argv or sys.argv[1:]))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
