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

from .evaluation.zoo import ZooCompareConfig, compare


def build_parser() -> argparse.ArgumentParser:
    """Options of :class:`ZooCompareConfig`; an option not given keeps the dataclass default (shown in --help)."""
    parser = argparse.ArgumentParser(prog="python -m deepfake_kernel.zoo_compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     argument_default=argparse.SUPPRESS)
    defaults = ZooCompareConfig()
    helps = {"runs": "work dirs of the reference entries' train runs", "ensemble_work": "work dir of the ensemble's "
             "train run", "ensemble_weights": "manifest with the members' ensemble weights",
             "folds": "group folds of the stacking comparison", "repeats": "fold assignments averaged over"}
    for name, kind in (("runs", "+"), ("videos", str), ("cache_dir", str), ("ensemble_work", str),
                       ("ensemble_members", "*"), ("ensemble_weights", str), ("val_fraction", float), ("seed", int),
                       ("folds", int), ("repeats", int), ("out", str)):
        option = "--" + name.replace("_", "-")
        text = f"{helps.get(name, '')} (default: {getattr(defaults, name)})".strip()
        if isinstance(kind, str):
            parser.add_argument(option, nargs=kind, required=name == "runs", help=text)
        else:
            parser.add_argument(option, type=kind, help=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    config = ZooCompareConfig(**vars(build_parser().parse_args(argv)))
    result = compare(config)
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    Path(config.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
