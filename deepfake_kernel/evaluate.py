"""``python -m deepfake_kernel.evaluate LABELS``: metrics, plots and a report; fits calibration and stacking.

LABELS is a ``videos.csv`` (``path,label[,group,dataset,method]``), a DFDC ``metadata.json`` or a folder holding
one. Scores come from running ``predict`` on those videos (its ``--details`` output is kept and reused with
``--details``), or from an existing ``--submission``. Examples::

    python -m deepfake_kernel.evaluate ../shared/data/videos.csv --split val --out-dir reports/val
    python -m deepfake_kernel.evaluate ../shared/data/videos.csv --split val --fit-calibration --fit-stacking

``--split val`` keeps the groups the shipped weights were validated on (recorded in the manifest by ``train``).
Calibration and stacking are fitted on those videos and judged by cross-validation over groups, so the
numbers reported for them are out-of-fold.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import add_dataclass_args, from_args
from .evaluation.labelled import EvaluateConfig, evaluate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deepfake_kernel.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", help="videos.csv, DFDC metadata.json, or a folder holding metadata.json")
    add_dataclass_args(parser, EvaluateConfig, skip=("labels",))
    parser.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = from_args(EvaluateConfig, args)
    try:
        report = evaluate(config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = report["as_submitted"]
    print(f"{report['videos']} videos: log loss {s['log_loss']:.4f} {s['log_loss_95ci']}, AUC {s['auc']:.4f} "
          f"{s['auc_95ci']}, accuracy {s['accuracy']:.3f}; report in {config.out_dir}/report.md")
    for key in ("calibration", "stacking"):
        if key in report:
            print(f"{key}: {json.dumps(report[key])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
