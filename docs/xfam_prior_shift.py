"""Exploration (seventeenth session): after centring on the test set's median logit, estimate the test set's share
of fakes by EM (Saerens et al. 2002, "Adjusting the outputs of a classifier to new a priori probabilities") and
add gamma * logit(share) to every logit. Reads a multi-seed ``cross_family`` run (OUT/seed_S/predictions.csv), fits
(slope, gamma, clip) the product's way (lowest worst-family loss, ``evaluation/calibration.py``'s grids) and prints
each family's log loss with the fit made without its fold. A test set is one fold's held-out videos of one seed.

    python docs/xfam_prior_shift.py runs/xfam/pairsn4_all --seeds 0,1,2,3,4
"""
from __future__ import annotations

import itertools

import numpy as np
from xfam_set_centring import load_from_command_line, transformed

from deepfake_kernel import metrics
from deepfake_kernel.evaluation.calibration import CLIPS, SLOPES
from deepfake_kernel.pipeline import ensemble

GAMMAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def em_share(logits: np.ndarray, iterations: int = 100) -> float:
    """The share of fakes that makes the posteriors (logits calibrated for a balanced set) self-consistent."""
    p, share = ensemble.sigmoid(logits), 0.5
    for _ in range(iterations):
        fake = share * p
        share = float(np.clip(np.mean(fake / (fake + (1 - share) * (1 - p))), 0.02, 0.98))
    return share


def main() -> None:
    logits, labels, families, folds, sets = load_from_command_line(__doc__, "0,1,2,3,4")
    centred = transformed(logits, sets, "centre")
    keys = np.unique(sets)
    shares = {(key, slope): em_share(slope * centred[sets == key]) for key in keys for slope in SLOPES}
    for key in keys:
        inside = sets == key
        print(f"{key}: fakes {labels[inside].mean():.2f}, EM estimate at slopes 0.2 / 0.5 / 1 / 2: "
              + " / ".join(f"{shares[key, s]:.2f}" for s in SLOPES if s in (0.2, 0.5, 1.0, 2.0)))
    probabilities = {}
    for slope, gamma in itertools.product(SLOPES, GAMMAS):
        z = slope * centred
        for key in keys:
            z[sets == key] += gamma * float(ensemble.logit(np.array([shares[key, slope]]))[0])
        probabilities[slope, gamma] = ensemble.sigmoid(z)

    def losses(slope, gamma, clip, rows):
        p = np.clip(probabilities[slope, gamma], clip, 1 - clip)
        return {f: metrics.log_loss(labels[rows & (families == f)], p[rows & (families == f)])
                for f in np.unique(families[rows])}

    def fit(rows, gammas):
        best = None
        for slope, gamma, clip in itertools.product(SLOPES, gammas, CLIPS):
            loss = losses(slope, gamma, clip, rows)
            key = (round(max(loss.values()), 6), round(float(np.mean(list(loss.values()))), 6))
            if best is None or key < best[0]:
                best = (key, (slope, gamma, clip))
        return best[1]

    for gammas in ((0.0,), GAMMAS, (1.0,)):
        held = {}
        for fold in np.unique(folds):
            held.update(losses(*fit(folds != fold, gammas), folds == fold))
        slope, gamma, clip = fit(np.ones(len(labels), bool), gammas)
        print(f"gamma from {gammas}: fit on all: slope {slope:g}, gamma {gamma:g}, clip {clip:g}; leave one fold out: "
              + " ".join(f"{f} {v:.3f}" for f, v in sorted(held.items()))
              + f"  mean {np.mean(list(held.values())):.3f} worst {max(held.values()):.3f}")


if __name__ == "__main__":
    main()
