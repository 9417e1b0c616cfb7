"""Two cross_family recipes compared seed by seed, and over resampled videos.

Each recipe is given as its runs' folders, one per fold (``cross_family --seeds ... --out DIR``, whose
``seed_S/FOLD/predictions.csv`` hold the held-out family's scores). For every seed both recipes ran, the held-out AUC
per fold and their mean; then the paired difference (candidate minus baseline) per seed, its mean ± sd, and a
bootstrap over videos (1 000 resamples of each fold's videos, stratified by label, the same resample for both
recipes) of the seed-averaged difference in mean AUC: how much of the gap the choice of videos alone could make.
Last, per seed, each recipe's leave-one-fold-out calibrated log loss over the given folds (``calibration_report``:
the minimax out-of-family calibration fitted on the other folds, applied to each; with two folds, each is scored
with the fit made on the other alone).
Run from the repository root, e.g.:
    python docs/xfam_paired.py --candidate runs/xfam/sbi12ft_ffpp,runs/xfam/sbi12ft_talking-head \
        --baseline runs/xfam/last_ffpp,runs/xfam/last_talking-head
"""
import argparse
from pathlib import Path

import numpy as np

from deepfake_kernel import metrics
from deepfake_kernel.evaluation.calibration import calibration_report
from deepfake_kernel.evaluation.cross_family import read_predictions


def read_rows(folders: str) -> dict:
    """{(seed, fold): prediction rows} from each folder's ``seed_S/FOLD/predictions.csv``."""
    rows = {}
    for folder in folders.split(","):
        for path in sorted(Path(folder).glob("seed_*/*/predictions.csv")):
            rows[(int(path.parent.parent.name.removeprefix("seed_")), path.parent.name)] = read_predictions(path)
    return rows


def read_runs(rows: dict) -> dict:
    """{(seed, fold): {path: (label, score)}}."""
    return {key: {r["path"]: (r["label"], r["score"]) for r in fold_rows} for key, fold_rows in rows.items()}


def calibrated_log_losses(rows: dict, seed: int, folds: list[str]) -> dict[str, float]:
    """Leave-one-fold-out calibrated log loss per held-out family, for one seed's folds."""
    joined = [r for fold in folds for r in rows[(seed, fold)] if r.get("raw") is not None]
    families = calibration_report(joined)["leave_one_fold_out"]["families"]
    return {str(family): value["log_loss"] for family, value in families.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidate", required=True, help="comma-separated run folders, one per fold")
    parser.add_argument("--baseline", required=True, help="comma-separated run folders, one per fold")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    candidate_rows, baseline_rows = read_rows(args.candidate), read_rows(args.baseline)
    candidate, baseline = read_runs(candidate_rows), read_runs(baseline_rows)
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
    if len(folds) > 1:
        means = []
        for seed in seeds:
            c, b = (calibrated_log_losses(rows, seed, folds) for rows in (candidate_rows, baseline_rows))
            means.append((np.mean(list(c.values())), np.mean(list(b.values()))))
            print(f"seed {seed}: calibrated log loss, leave one fold out: "
                  + "  ".join(f"{f} {c[f]:.3f} vs {b[f]:.3f}" for f in c) + f"  mean {means[-1][0]:.3f} vs {means[-1][1]:.3f}")
        print(f"calibrated log loss, mean over seeds and families: {np.mean([m[0] for m in means]):.3f} vs "
              f"{np.mean([m[1] for m in means]):.3f}")


if __name__ == "__main__":
    main()
