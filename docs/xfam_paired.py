"""Two cross_family recipes compared seed by seed, and over resampled videos.

Each recipe is given as its runs' folders, one per fold (``cross_family --seeds ... --out DIR``, whose
``seed_S/FOLD/predictions.csv`` hold the held-out family's scores). For every seed both recipes ran, the held-out AUC
per fold and their mean; then the paired difference (candidate minus baseline) per seed, its mean ± sd, and a
bootstrap over videos (1 000 resamples of each fold's videos, stratified by label, the same resample for both
recipes) of the seed-averaged difference in mean AUC: how much of the gap the choice of videos alone could make.
Run from the repository root, e.g.:
    python docs/xfam_paired.py --candidate runs/xfam/sbi12ft_ffpp,runs/xfam/sbi12ft_talking-head \
        --baseline runs/xfam/last_ffpp,runs/xfam/last_talking-head
"""
import argparse
from pathlib import Path

import numpy as np

from deepfake_kernel import metrics
from deepfake_kernel.evaluation.cross_family import read_predictions


def read_runs(folders: str) -> dict:
    """{(seed, fold): {path: (label, score)}} from each folder's ``seed_S/FOLD/predictions.csv``."""
    runs = {}
    for folder in folders.split(","):
        for path in sorted(Path(folder).glob("seed_*/*/predictions.csv")):
            seed, fold = int(path.parent.parent.name.removeprefix("seed_")), path.parent.name
            runs[(seed, fold)] = {r["path"]: (r["label"], r["score"]) for r in read_predictions(path)}
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidate", required=True, help="comma-separated run folders, one per fold")
    parser.add_argument("--baseline", required=True, help="comma-separated run folders, one per fold")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    candidate, baseline = read_runs(args.candidate), read_runs(args.baseline)
    keys = sorted(set(candidate) & set(baseline))
    seeds, folds = sorted({s for s, _ in keys}), sorted({f for _, f in keys})
    seeds = [s for s in seeds if all((s, f) in candidate and (s, f) in baseline for f in folds)]
    if not seeds:
        raise SystemExit("no seed ran every fold in both recipes")
    print(f"folds: {', '.join(folds)}; seeds both recipes ran: {', '.join(map(str, seeds))}")
    diffs = []
    for seed in seeds:
        row = []
        for fold in folds:
            c, b = candidate[(seed, fold)], baseline[(seed, fold)]
            paths = sorted(set(c) & set(b))
            y = np.array([c[p][0] for p in paths])
            row.append((metrics.roc_auc(y, [c[p][1] for p in paths]), metrics.roc_auc(y, [b[p][1] for p in paths])))
        mean_c, mean_b = np.mean([r[0] for r in row]), np.mean([r[1] for r in row])
        diffs.append(mean_c - mean_b)
        folds_text = "  ".join(f"{f} {r[0]:.3f} vs {r[1]:.3f}" for f, r in zip(folds, row))
        print(f"seed {seed}: {folds_text}  mean {mean_c:.3f} vs {mean_b:.3f} ({mean_c - mean_b:+.3f})")
    diffs = np.array(diffs)
    sd = diffs.std(ddof=1) if len(diffs) > 1 else float("nan")
    print(f"paired difference in mean AUC: {diffs.mean():+.3f} ± {sd:.3f} (sd over {len(diffs)} seeds; "
          f"{int((diffs > 0).sum())} of {len(diffs)} seeds better)")
    rng = np.random.default_rng(0)
    per_fold = []
    for fold in folds:
        paths = sorted(set.intersection(*(set(candidate[(s, fold)]) & set(baseline[(s, fold)]) for s in seeds)))
        y = np.array([candidate[(seeds[0], fold)][p][0] for p in paths])
        c = np.array([[candidate[(s, fold)][p][1] for p in paths] for s in seeds])
        b = np.array([[baseline[(s, fold)][p][1] for p in paths] for s in seeds])
        per_fold.append((y, c, b))
    boot = []
    for _ in range(args.resamples):
        gap = []
        for y, c, b in per_fold:
            idx = np.concatenate([rng.choice(np.flatnonzero(y == k), int((y == k).sum())) for k in (0, 1)])
            gap.append(np.mean([metrics.roc_auc(y[idx], c[i, idx]) - metrics.roc_auc(y[idx], b[i, idx])
                                for i in range(len(seeds))]))
        boot.append(np.mean(gap))
    low, high = np.percentile(boot, [2.5, 97.5])
    print(f"bootstrap over videos, seed-averaged difference in mean AUC: 95 % interval {low:+.3f} to {high:+.3f}; "
          f"P(difference <= 0) = {np.mean(np.array(boot) <= 0):.3f}")


if __name__ == "__main__":
    main()
