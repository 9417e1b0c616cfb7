"""Exploration (fifteenth session): does taking each video's logit relative to its test set's logits help the
out-of-family calibration? Reads a multi-seed ``cross_family`` run (OUT/seed_S/predictions.csv) and prints, for
each rule, the calibration fitted on all folds and each family's log loss with the fit made without its fold
(the product's minimax fit, ``evaluation/calibration.py``). A test set is one fold's held-out videos of one seed.

    python docs/xfam_set_centring.py runs/xfam/sbi12ftsn4_all --seeds 0,2,3

Rules: none; centre (minus the median logit: what ``--test-set-center`` does); scale (divided by the scaled median
absolute deviation); both; half (minus half the median); mean (minus the mean logit); and ``fitted``, where the
fraction of the median taken off (0, 0.25, ..., 1) is chosen with the slope and clip, out of fold.
"""
from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path

import numpy as np

from deepfake_kernel import metrics
from deepfake_kernel.evaluation.calibration import CLIPS, SLOPES
from deepfake_kernel.pipeline import ensemble


def load(out: Path, seeds: list[int]):
    rows = [dict(r, seed=s) for s in seeds for r in csv.DictReader(open(out / f"seed_{s}" / "predictions.csv"))]
    logits = ensemble.logit(np.array([float(r["raw"]) for r in rows]))
    labels = np.array([int(r["label"]) for r in rows], np.float64)
    families = np.array([r["family"] for r in rows])
    folds = np.array([r["fold"] for r in rows])
    sets = np.array([f"{r['seed']}/{r['fold']}" for r in rows])
    return logits, labels, families, folds, sets


def transformed(logits: np.ndarray, sets: np.ndarray, rule: str) -> np.ndarray:
    out = logits.copy()
    for key in np.unique(sets):
        x = logits[sets == key]
        median = np.median(x)
        spread = 1.4826 * np.median(np.abs(x - median))
        out[sets == key] = {"none": x, "centre": x - median, "scale": x / spread, "both": (x - median) / spread,
                            "half": x - 0.5 * median, "mean": x - x.mean()}[rule]
    return out


def losses(z, labels, families, slope, clip):
    p = np.clip(ensemble.sigmoid(slope * z), clip, 1 - clip)
    return {f: metrics.log_loss(labels[families == f], p[families == f]) for f in np.unique(families)}


def fit(candidates: dict[float, np.ndarray], labels, families, chosen):
    """(fraction, slope, clip) with the lowest worst-family loss on ``chosen`` rows (ties: the mean)."""
    best = None
    for (fraction, z), slope, clip in itertools.product(candidates.items(), SLOPES, CLIPS):
        loss = losses(z[chosen], labels[chosen], families[chosen], slope, clip)
        key = (round(max(loss.values()), 6), round(float(np.mean(list(loss.values()))), 6))
        if best is None or key < best[0]:
            best = (key, (fraction, slope, clip))
    return best[1]


def report(name, candidates, labels, families, folds):
    everything = fit(candidates, labels, families, np.ones(len(labels), bool))
    held = {}
    for fold in np.unique(folds):
        fraction, slope, clip = fit(candidates, labels, families, folds != fold)
        inside = folds == fold
        held.update(losses(candidates[fraction][inside], labels[inside], families[inside], slope, clip))
    text = " ".join(f"{f} {v:.3f}" for f, v in sorted(held.items()))
    print(f"{name:7s} fit (fraction, slope, clip) {everything}  leave one fold out: {text}  "
          f"mean {np.mean(list(held.values())):.3f} worst {max(held.values()):.3f}")


def load_from_command_line(description: str, default_seeds: str):
    """``load`` of the run and seeds named on the command line (``OUT [--seeds S,...]``)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", default=default_seeds)
    args = parser.parse_args()
    return load(args.out, [int(s) for s in args.seeds.split(",")])


def main() -> None:
    logits, labels, families, folds, sets = load_from_command_line(__doc__, "0,2,3")
    for rule in ("none", "centre", "scale", "both", "half", "mean"):
        report(rule, {1.0: transformed(logits, sets, rule)}, labels, families, folds)
    medians = logits - transformed(logits, sets, "centre")
    report("fitted", {a: logits - a * medians for a in (0.0, 0.25, 0.5, 0.75, 1.0)}, labels, families, folds)


if __name__ == "__main__":
    main()
