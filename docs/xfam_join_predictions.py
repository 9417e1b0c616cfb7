"""Join the predictions of several cross_family runs into one ``predictions.csv`` with a ``seed`` column, for
``cross_family --from-predictions --fit-calibration`` over them (each seed's folds are their own test sets);
``--no-cue`` puts the members' own score (``network_raw``) back as ``raw`` (and its clipped value as ``score``), the
same rows without the temporal cue.
From the repository root (twenty-second session):

    python docs/xfam_join_predictions.py --out runs/xfam/fitall_cue 0=runs/xfam/cue3pairs/seed_0 \\
        1=runs/xfam/cue3pairs/seed_1 2=runs/xfam/cue3pairs/seed_2 0=runs/xfam/cuedd/seed_0
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-cue", action="store_true")
    parser.add_argument("parts", nargs="+", help="SEED=FOLDER, FOLDER holding a cross_family predictions.csv")
    args = parser.parse_args()
    rows, columns = [], []
    for part in args.parts:
        seed, folder = part.split("=", 1)
        with open(Path(folder) / "predictions.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                row["seed"] = seed
                if args.no_cue and row.get("network_raw"):
                    # the fold weights carry no calibration: their score is the raw score clipped to [0.01, 0.99]
                    score = min(max(float(row["network_raw"]), 0.01), 0.99)
                    row.update(raw=row["network_raw"], score=score, network_raw="", temporal_cue="", cue="")
                rows.append(row)
                columns += [c for c in row if c not in columns]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with open(Path(args.out) / "predictions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} rows -> {args.out}/predictions.csv")


if __name__ == "__main__":
    main()
