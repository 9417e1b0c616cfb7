"""Compare learned-cue fold scores (``train_temporal_cue --hold-out-family F --scores``) of several recipes: each
recipe's cue alone and added to a fold's shipped scoring (``cross_family --score-only ... --temporal-cue-weight 2.5``
predictions: members with the test set's statistics + the flow cue), at a few weights. AUC of the held-out family.

    python docs/xfam_learned_cue_variants.py --predictions runs/xfam/pairs_F/seed_0/F/predictions.csv --family F \
        --recipe shipped=runs/tcue/F_s0.csv,runs/tcue/F_s1.csv --recipe mixed=runs/tcue/mixA_F_s0.csv,...

A recipe's files (fold networks of several seeds) are averaged per video; its cue is taken relative to its median over
the family (AUC does not see the shift), a video without pairs at that median.
"""
from __future__ import annotations

import argparse
import csv

import numpy as np

from deepfake_kernel.metrics import roc_auc
from deepfake_kernel.pipeline.ensemble import logit


def learned_cue(files: list[str]) -> dict[str, float]:
    """Per video path, the mean learned cue over ``files``."""
    cue: dict[str, list[float]] = {}
    for name in files:
        for row in csv.DictReader(open(name)):
            if row["learned_cue"] not in ("", "None"):
                cue.setdefault(row["path"], []).append(float(row["learned_cue"]))
    return {path: float(np.mean(values)) for path, values in cue.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", required=True, help="a fold's predictions.csv, scored with the flow cue")
    parser.add_argument("--family", required=True)
    parser.add_argument("--recipe", action="append", required=True, help="NAME=FILE[,FILE...]")
    parser.add_argument("--weights", default="0.35,0.5,1")
    args = parser.parse_args()
    rows = [r for r in csv.DictReader(open(args.predictions)) if r["members"] and r["family"] == args.family]
    labels = np.array([int(r["label"]) for r in rows])
    shipped = np.array([float(logit(np.float64(r["raw"]))) for r in rows])
    weights = [float(w) for w in args.weights.split(",")]
    print(f"{args.family}: {len(rows)} videos; members + flow cue {roc_auc(labels, shipped):.3f}")
    print("| recipe | alone | " + " | ".join(f"added × {w:g}" for w in weights) + " |")
    print("|---|---|" + "---|" * len(weights))
    for recipe in args.recipe:
        name, files = recipe.split("=", 1)
        cue = learned_cue(files.split(","))
        reference = float(np.median(list(cue.values())))
        values = np.array([cue.get(r["path"], reference) - reference for r in rows])
        added = " | ".join(f"{roc_auc(labels, shipped + w * values):.3f}" for w in weights)
        print(f"| {name} | {roc_auc(labels, values):.3f} | {added} |")


if __name__ == "__main__":
    main()
