"""One family's videos through the calibration, each fold judged with the fit made on the other folds: the logit
with the learned cue added, the test-set median that centring subtracts, and the submitted probability (how the
thirty-eighth session read DeeperForensics' log loss, docs/cross_family.md; the fits are
``calibration_report``'s, the shipped rule). From the repository root, e.g.:
    python docs/xfam_family_rows.py runs/xfam/b4p16_t65_ship/predictions.csv "runs/tcue/p16c_*_s[01].csv" \
        --weight 1.75 --family deeperforensics
``--test-sets family`` centres each family on its own median instead of its fold's (thirty-ninth session).
"""
import argparse
import glob
import logging

import numpy as np

from deepfake_kernel import metrics
from deepfake_kernel.evaluation.calibration import (apply_calibration, calibration_report, test_set_keys,
                                                    test_set_shifts)
from deepfake_kernel.evaluation.cross_family import add_learned_cue, read_predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", help="cross_family predictions.csv (raw without the learned cue)")
    parser.add_argument("cue_scores", help="glob of the learned cue's fold score files")
    parser.add_argument("--weight", type=float, default=1.75, help="learned-cue weight")
    parser.add_argument("--target", type=float, default=0.65, help="the calibration rule's target")
    parser.add_argument("--family", default="deeperforensics")
    parser.add_argument("--test-sets", choices=("fold", "family"), default="fold",
                        help="what one predict run sees: the fold's held-out videos (the table's rule) or each "
                             "family's alone (centred on its own median; the fits are the same)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows, _ = add_learned_cue(read_predictions(args.predictions), sorted(glob.glob(args.cue_scores)), args.weight)
    report = calibration_report(rows, center=True, minimax_over="test-set", target=args.target)  # as shipped
    raw = np.array([r["raw"] for r in rows], np.float64)
    labels = np.array([r["label"] for r in rows])
    folds = np.array([r["fold"] for r in rows])
    sets = [dict(r, fold=r["family"]) for r in rows] if args.test_sets == "family" else rows
    shifts = test_set_shifts(sets)
    keys = test_set_keys(sets)
    submitted = np.zeros(len(rows))
    for fold, fit in report["fits_without_each_fold"].items():  # each fold with the fit made on the others
        held = folds == fold
        submitted[held] = apply_calibration(fit, raw[held], shifts[held])
    clipped = np.clip(raw, 1e-6, 1 - 1e-6)
    logit = np.log(clipped / (1 - clipped))
    chosen = [i for i, r in enumerate(rows) if r["family"] == args.family]
    for i in chosen:
        r = rows[i]
        same = keys == keys[i]
        print(f"seed {r['seed']} label {r['label']} {r['path'].rsplit('/', 1)[-1]}: logit {logit[i]:+.2f}, test-set "
              f"median {shifts[i]:+.2f} ({same.sum()} videos, {labels[same].sum()} fake), submitted {submitted[i]:.3f}")
    print(f"{args.family}: log loss {metrics.log_loss(labels[chosen], submitted[chosen]):.3f}")


if __name__ == "__main__":
    main()
