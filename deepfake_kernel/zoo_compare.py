"""``python -m deepfake_kernel.zoo_compare``: the reference detectors beside the ensemble, on the ensemble's val videos.

Reads what ``train`` left behind: each run's ``report.json`` (recipe, wall time) and each member's
``val_face_probs.npy`` (P(FAKE) per val crop, in the order of ``CropCache.load_videos(val_items)``), for the
reference entries (``--runs``: work dirs of their ``train`` commands) and for the ensemble members
(``--ensemble-work``). Video scores follow ``predict``'s rule (``ensemble.aggregate_videos``: mean per track,
max over tracks) and metrics are ``metrics.summarize``'s.

"Does it help the stacked ensemble?": on the val videos, a logistic stacker (``ensemble.Stacker``) over the
ensemble members' video logits is compared with the same stacker given the entry's video logit too, both
out-of-fold over group folds (no video is scored by a stacker that saw its group), repeated over several fold
assignments. The difference in out-of-fold log loss (clipped to [0.01, 0.99], as ``evaluate --fit-stacking`` scores
it) comes with a paired bootstrap over videos: the share of resamples in which the entry lowers the log loss.
"Helps" means a lower log loss in at least 90 % of the resamples. Also reported, with nothing fitted: the
members' weighted mean of face probabilities (the shipped rule) with the entry added at weight 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import add_dataclass_args, from_args
from .evaluation.zoo import ZooCompareConfig, compare


def build_parser() -> argparse.ArgumentParser:
    """One option per field of :class:`ZooCompareConfig`; an option not given keeps the dataclass default."""
    parser = argparse.ArgumentParser(prog="python -m deepfake_kernel.zoo_compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, ZooCompareConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    config = from_args(ZooCompareConfig, parser.parse_args(argv))
    if not config.runs:
        parser.error("--runs is required: the reference entries' train work dirs, comma-separated")
    result = compare(config)
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    Path(config.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
