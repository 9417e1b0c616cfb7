"""Exploration (twenty-third session): how the temporal cue should meet test-set centring. Reads a joined
``cross_family`` predictions.csv scored with ``--temporal-cue-weight`` (``seed`` column, ``network_raw`` and
``temporal_cue`` per row; ``docs/xfam_join_predictions.py``) and prints each family's calibrated log loss with the
fit made without its fold (the product's minimax fit, ``evaluation/calibration.py``), for these rules:

* ``together``: the cue added to the logit, then everything centred on the test set's median (twenty-second session);
* ``on top``: the members' logits centred on their median, the cue's term ``W (cue - reference)`` added after
  (what ``predict`` does since this session);
* ``share A``: ``together``, but only a share A of the median taken off;
* ``reweighted``: the share and slope fitted over the families holding both classes reweighted to 25 / 50 / 75 %
  fakes (each reweighted set centred on its own weighted median), so the fit sees lopsided test sets;
* ``clamped``: ``together``, each held-out test set's median clamped to the range of the other folds' medians.

A test set is one fold's held-out videos of one seed (pair). ``--resampled`` adds, for ``on top``, ``together`` and
``share 0.5``, the mean log loss of the ffpp and talking-head test sets resampled (50 draws each, seed 0) to 25 / 50 /
75 % fakes, each draw centred on its own median and scored with the fit made without its fold: what each rule does
on a test set whose share of fakes is not the family's. From the repository root:

    python docs/xfam_cue_centring.py runs/xfam/fit4_cue/predictions.csv [--weight 2.5 --reference -0.666] [--resampled]
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np

from deepfake_kernel import metrics
from deepfake_kernel.evaluation.calibration import CLIPS, SLOPES, apply_calibration, fit_minimax_calibration
from deepfake_kernel.evaluation.cross_family import read_predictions
from deepfake_kernel.pipeline import ensemble

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def medians(values: np.ndarray, sets: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values))
    for key in np.unique(sets):
        out[sets == key] = np.median(values[sets == key])
    return out


def leave_one_fold_out(logits, shift, labels, families, folds, held_shift=None) -> dict[str, float]:
    raw = ensemble.sigmoid(logits)
    held_shift = shift if held_shift is None else held_shift
    losses = {}
    for fold in np.unique(folds):
        inside = folds == fold
        fit = fit_minimax_calibration(raw[~inside], labels[~inside], families[~inside], shift[~inside])
        probs = apply_calibration(fit, raw[inside], held_shift[inside])
        for family in np.unique(families[inside]):
            chosen = families[inside] == family
            losses[str(family)] = metrics.log_loss(labels[inside][chosen], probs[chosen])
    return losses


def weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x)
    cumulative = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def reweighted_fit(z, labels, families, sets, chosen, shares=(0.25, 0.5, 0.75)):
    """(share of the median, slope, clip) with the lowest worst loss over the chosen rows' families, those holding
    both classes (5 or more of each) reweighted to each share of fakes."""
    scenarios = []
    for family in np.unique(families[chosen]):
        rows = chosen & (families == family)
        both = (labels[rows] == 1).sum() >= 5 and (labels[rows] == 0).sum() >= 5
        for share in shares if both else (None,):
            parts = []
            for key in np.unique(sets[rows]):
                idx = np.where(rows & (sets == key))[0]
                fakes = labels[idx] == 1
                w = np.ones(len(idx)) if share is None else np.where(fakes, share / fakes.sum(),
                                                                      (1 - share) / (~fakes).sum())
                parts.append((idx, w))
            scenarios.append(parts)
    best = None
    for a, slope, clip in itertools.product(SHARES, SLOPES, CLIPS):
        losses = []
        for parts in scenarios:
            per_set = []
            for idx, w in parts:
                p = np.clip(ensemble.sigmoid(slope * (z[idx] - a * weighted_median(z[idx], w))), clip, 1 - clip)
                y = labels[idx]
                per_set.append(float(np.sum(w * -(y * np.log(p) + (1 - y) * np.log(1 - p))) / np.sum(w)))
            losses.append(np.mean(per_set))
        key = (round(max(losses), 6), round(float(np.mean(losses)), 6))
        if best is None or key < best[0]:
            best = (key, (a, slope, clip))
    return best[1]


def resampled(rules: dict, labels, families, folds, sets, draws: int = 50) -> None:
    """Print each rule's mean log loss over the two-class folds' test sets resampled to other shares of fakes.
    ``rules``: name → (logits, the logits whose median is taken, share of the median taken off)."""
    rng = np.random.default_rng(0)
    for share in (0.25, 0.5, 0.75):
        text = []
        for name, (z, basis, fraction) in rules.items():
            shift = fraction * medians(basis, sets)
            losses = {}
            for fold in ("ffpp", "talking-head"):
                inside = folds == fold
                fit = fit_minimax_calibration(ensemble.sigmoid(z[~inside]), labels[~inside], families[~inside],
                                              shift[~inside])
                per_draw = []
                for key in np.unique(sets[inside]):
                    idx = np.where(sets == key)[0]
                    fakes, reals = idx[labels[idx] == 1], idx[labels[idx] == 0]
                    n = min(len(fakes), len(reals)) / max(share, 1 - share)
                    for _ in range(draws):
                        pick = np.concatenate([rng.choice(fakes, int(round(n * share)), replace=False),
                                               rng.choice(reals, int(round(n * (1 - share))), replace=False)])
                        centre = fraction * np.median(basis[pick])
                        p = np.clip(ensemble.sigmoid((z[pick] - centre) / fit["temperature"]), *fit["clip"])
                        per_draw.append(metrics.log_loss(labels[pick], p))
                losses[fold] = float(np.mean(per_draw))
            text.append(f"{name} ffpp {losses['ffpp']:.3f} talking-head {losses['talking-head']:.3f}")
        print(f"resampled to {share:.0%} fakes: " + "; ".join(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions")
    parser.add_argument("--weight", type=float, default=2.5)
    parser.add_argument("--reference", type=float, default=-0.666)
    parser.add_argument("--resampled", action="store_true")
    args = parser.parse_args()
    rows = read_predictions(args.predictions)
    network = ensemble.logit(np.array([float(r["network_raw"]) for r in rows]))
    cue = np.array([float(r["temporal_cue"]) if r["temporal_cue"] not in ("", None) else args.reference
                    for r in rows])
    labels = np.array([r["label"] for r in rows], np.float64)
    families = np.array([r["family"] for r in rows])
    folds = np.array([r["fold"] for r in rows])
    sets = np.array([f"{r.get('seed', '')}/{r['fold']}" for r in rows])
    together = network + args.weight * (cue - args.reference)
    results = {"network alone": leave_one_fold_out(network, medians(network, sets), labels, families, folds),
               "together": leave_one_fold_out(together, medians(together, sets), labels, families, folds),
               "on top": leave_one_fold_out(together, medians(network, sets), labels, families, folds)}
    for share in SHARES[1:-1]:
        results[f"share {share}"] = leave_one_fold_out(together, share * medians(together, sets), labels, families,
                                                       folds)
    reweighted = {}
    for fold in np.unique(folds):
        inside = folds == fold
        a, slope, clip = reweighted_fit(together, labels, families, sets, ~inside)
        probs = np.clip(ensemble.sigmoid(slope * (together - a * medians(together, sets))), clip, 1 - clip)
        for family in np.unique(families[inside]):
            chosen = inside & (families == family)
            reweighted[str(family)] = metrics.log_loss(labels[chosen], probs[chosen])
    results["reweighted"] = reweighted
    median_of = medians(together, sets)
    clamped = {}
    for fold in np.unique(folds):
        inside = folds == fold
        bounded = np.clip(median_of, median_of[~inside].min(), median_of[~inside].max())
        clamped.update({k: v for k, v in leave_one_fold_out(together, median_of, labels, families, folds,
                                                            held_shift=bounded).items()
                        if k in set(families[inside])})
    results["clamped"] = clamped
    for name, losses in results.items():
        text = " ".join(f"{family} {loss:.3f}" for family, loss in sorted(losses.items()))
        print(f"{name:14s} {text}  mean {np.mean(list(losses.values())):.3f} worst {max(losses.values()):.3f}")
    if args.resampled:
        resampled({"on top": (together, network, 1.0), "together": (together, together, 1.0),
                   "share 0.5": (together, together, 0.5)}, labels, families, folds, sets)


if __name__ == "__main__":
    main()
