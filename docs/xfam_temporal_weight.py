"""Exploration (twenty-second session): the temporal cue's weight, on out-of-family predictions of several networks.

``predict``'s temporal cue (``deepfake_kernel/pipeline/temporal.py``) enters a video's logit as
``weight * (cue - reference)``. This reads the cue values that ``cross_family --temporal-cue-weight`` wrote
(``temporal_cue`` column of the ``--cues`` runs' ``predictions.csv``; they depend on the video alone) and, for each
network (a cross_family ``--out`` folder holding ``FAMILY/predictions.csv``, ``{family}`` in the name standing for the
held-out family; ``+`` joins runs whose video logits are averaged), prints each family's video AUC and their mean for
several weights. From the repository root:

    python docs/xfam_temporal_weight.py --cues 'runs/xfam/cue3pairs/seed_0/{family}' \\
        --networks 'runs/xfam/sbi12ftsn4_{family}' 'runs/xfam/sbi12s1ftsn4_{family}' ...
"""
from __future__ import annotations

import argparse
import csv

import numpy as np
from sklearn.metrics import roc_auc_score

FAMILIES = ("ffpp", "talking-head")


def logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


def read(run: str, family: str) -> list[dict]:
    with open(f"{run.format(family=family)}/{family}/predictions.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cues", required=True, help="a run scored with --temporal-cue-weight")
    parser.add_argument("--networks", nargs="+", required=True)
    parser.add_argument("--weights", default="0,1,1.5,2,2.5,3,4")
    parser.add_argument("--reference", type=float, default=-0.666)
    parser.add_argument("--clip", type=float, default=0.0, help="clip P(FAKE) to [c, 1 - c] first, as the "
                        "protocol's table does with the folds' clipper (0.01): ties at the bounds")
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    cues = {f: {r["path"]: float(r["temporal_cue"]) for r in read(args.cues, f) if r.get("temporal_cue")}
            for f in FAMILIES}
    print("network " + " ".join(f"{'w ' + format(w, 'g'):>19s}" for w in weights))
    gains = []
    for network in args.networks:
        means = []
        cells = []
        for w in weights:
            aucs = []
            for family in FAMILIES:
                logits, labels = {}, {}
                for run in network.split("+"):
                    for row in read(run, family):
                        if row["reason"]:
                            continue
                        raw = float(row.get("network_raw") or row["raw"])
                        logits.setdefault(row["path"], []).append(logit(raw))
                        labels[row["path"]] = int(row["label"])
                paths = sorted(logits)
                score = [np.mean(logits[p]) + (w * (cues[family][p] - args.reference) if p in cues[family] else 0.0)
                         for p in paths]
                if args.clip:  # the same ranking as the probabilities clipped to [c, 1 - c]
                    bound = logit(1 - args.clip)
                    score = np.clip(score, -bound, bound)
                aucs.append(roc_auc_score([labels[p] for p in paths], score))
            means.append(float(np.mean(aucs)))
            cells.append(f"{aucs[0]:.3f}/{aucs[1]:.3f}={means[-1]:.3f}")
        gains.append(np.array(means) - means[0])
        print(f"{network}\n        " + " ".join(f"{c:>19s}" for c in cells))
    average = np.mean(gains, axis=0)
    print("mean gain over the networks: " + " ".join(f"w {w:g}: {g:+.4f}" for w, g in zip(weights, average)))
    print("networks gaining:            " + " ".join(f"w {w:g}: {int((np.array(gains)[:, k] > 0).sum())}/"
                                                     f"{len(gains)}" for k, w in enumerate(weights)))


if __name__ == "__main__":
    main()
