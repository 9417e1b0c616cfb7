"""``python -m deepfake_kernel.cross_family``: accuracy on sources a model never saw.

Leave-one-family-out: for each fold (one family, or several joined by ``+``), train with those families held out
entirely (their videos, and ``--faces`` crops of that family), then score the held-out videos with the fold's
weights through the predict pipeline's own stages — the same :class:`~deepfake_kernel.pipeline.detector.Detector`,
members, aggregation and clipper — on face crops cut once by predict's reader and cropper with predict's
settings (32 frames, the members' input size) and shared by every fold, so a fold costs training time only::

    python -m deepfake_kernel.cross_family --videos ../shared/data/videos.csv ../shared/data/videos_extra.csv \\
        --faces ../shared/data/faces_ffpp.csv --faces-family ffpp --fake-source sbi \\
        --members efficientnet_lite0 --folds ffpp talking-head dfdc+deeperforensics --out runs/xfam/sbi

Every ``train`` option applies to each fold. It writes ``predictions.csv`` (one row per held-out video),
``table.md`` and ``report.json``: per held-out family AUC and log loss with bootstrap 95 % intervals, and their
mean; per manipulation of a family, its fakes' AUC against the family's real videos and inside their own source.
``--fit-calibration`` then fits the clipper on these out-of-family predictions so that no family's log loss passes
the constant's 0.693 (minimax over families, folds or test sets; with ``--calibration-target L`` the least confident
fit that keeps each of them at L or below), reports each fold's log loss with the calibration fitted on the *other*
folds, and with ``--calibrate-weights DIR`` stores it in that weights folder's manifest.
``--test-set-center`` fits it on logits centred on each test set's median (predict then centres on its run).
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys

from .config import add_dataclass_args, from_args
from .evaluation.calibration import CONSTANT_LOG_LOSS, MINIMAX_OVER
from .evaluation.cross_family import CrossFamilyConfig, report_from_predictions, run, run_seeds
from .evaluation.family_tables import render_seed_table, render_table
from .training.augment import AugmentConfig


def build_parser() -> argparse.ArgumentParser:
    from .training.run import TrainConfig

    parser = argparse.ArgumentParser(prog="python -m deepfake_kernel.cross_family", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, CrossFamilyConfig)
    add_dataclass_args(parser, TrainConfig, skip=("out", "hold_out_family", "work_dir"))
    add_dataclass_args(parser, AugmentConfig, prefix="aug")
    parser.add_argument("--from-predictions", action="store_true",
                        help="rebuild the table (and --fit-calibration) from OUT/predictions.csv")
    parser.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: list[str] | None = None) -> int:
    from .training.run import TrainConfig

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = from_args(CrossFamilyConfig, args)
    train_config = from_args(TrainConfig, args)
    augment = from_args(AugmentConfig, args, prefix="aug")
    command = "python -m deepfake_kernel.cross_family " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv) if a != "--resume")
    try:
        if args.from_predictions and config.seeds:
            raise ValueError("--from-predictions rebuilds one run's table: point --out at one seed's folder "
                             "(OUT/seed_S) and leave out --seeds")
        if (config.test_set_center or config.calibrate_weights or config.calibration_minimax_over != "family"
                or config.calibration_target is not None) and not config.fit_calibration:
            raise ValueError("--test-set-center, --calibration-minimax-over, --calibration-target and "
                             "--calibrate-weights shape the calibration fit: add --fit-calibration")
        if config.calibration_target is not None and not 0 < config.calibration_target < CONSTANT_LOG_LOSS:
            raise ValueError(f"--calibration-target {config.calibration_target}: a log loss between 0 and the "
                             f"constant's {CONSTANT_LOG_LOSS:.3f} (e.g. 0.65)")
        if config.calibration_minimax_over not in MINIMAX_OVER:
            raise ValueError(f"--calibration-minimax-over {config.calibration_minimax_over}: choose one of "
                             f"{', '.join(MINIMAX_OVER)}")
        if config.learned_cue_scores and not args.from_predictions:
            raise ValueError("--learned-cue-scores adds to scored folds: use it with --from-predictions")
        if config.calibrate_member_set and not config.calibrate_weights:
            raise ValueError("--calibrate-member-set stores a fit in a weights folder: add --calibrate-weights")
        if config.seeds:
            report = run_seeds(config, train_config, augment, command)
        else:
            report = (report_from_predictions(config) if args.from_predictions
                      else run(config, train_config, augment, command))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render_seed_table(report) if config.seeds else render_table(report), end="")
    if "calibration" in report:
        print("calibration (fit on all out-of-family predictions):", json.dumps(report["calibration"]["fit"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
