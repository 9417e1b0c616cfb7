"""Compare learned-cue fold scores (``train_temporal_cue --hold-out-family F --scores``) of several recipes: each
recipe's cue alone and added to a fold's shipped scoring (``cross_family --score-only ... --temporal-cue-weight 2.5``
predictions: members with the test set's statistics + the flow cue), at a few weights. AUC of the held-out family.

    python docs/xfam_learned_cue_variants.py --predictions runs/xfam/pairs_F/seed_0/F/predictions.csv --family F \\
        --recipe shipped=runs/tcue/F_s0.csv,runs/tcue/F_s1.csv --recipe mixed=runs/tcue/mixA_F_s0.csv,...

The cue is added as ``cross_family --learned-cue-scores`` adds it (:func:`add_learned_cue`: the recipe's files
averaged per video, taken relative to their median; a video without pairs keeps its score).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from deepfake_kernel.evaluation.cross_family import add_learned_cue, read_predictions
from deepfake_kernel.metrics import roc_auc
from deepfake_kernel.pipeline.ensemble import logit


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", required=True, help="a fold's predictions.csv, scored with the flow cue")
    parser.add_argument("--family", required=True)
    parser.add_argument("--recipe", action="append", required=True, help="NAME=FILE[,FILE...]")
    parser.add_argument("--weights", default="0.35,0.5,1")
    args = parser.parse_args()
    rows = [r for r in read_predictions(Path(args.predictions)) if r["members"] and r["family"] == args.family]
    labels = np.array([r["label"] for r in rows])
    weights = [float(w) for w in args.weights.split(",")]

    def auc(scored: list[dict]) -> float:
        return roc_auc(labels, np.array([float(logit(np.float64(r["raw"]))) for r in scored]))

    print(f"{args.family}: {len(rows)} videos; members + flow cue {auc(rows):.3f}")
    print("| recipe | alone | " + " | ".join(f"added × {w:g}" for w in weights) + " |")
    print("|---|---|" + "---|" * len(weights))
    for recipe in args.recipe:
        name, files = recipe.split("=", 1)
        added = [add_learned_cue(rows, files.split(","), w) for w in weights]
        reference = added[0][1]
        alone = roc_auc(labels, np.array([r.get("learned_cue", reference) for r in added[0][0]]))
        print(f"| {name} | {alone:.3f} | " + " | ".join(f"{auc(scored):.3f}" for scored, _ in added) + " |")


if __name__ == "__main__":
    main()
