"""Score a submission of ``../shared/data/videos`` against the labels: all 147 videos and the 48 held-out ones.

    python docs/compare_budget_levels.py runs/full_demo/submission.csv runs/budget_demo2/submission.csv

The held-out videos are those of the validation groups recorded in ``weights/manifest.json``; the others were
trained on, so their numbers are optimistic and only good for comparing two runs with each other.
"""
import csv
import json
import sys

import numpy as np

from deepfake_kernel.metrics import summarize

DATA = "../shared/data"


def main(paths: list[str]) -> None:
    with open(f"{DATA}/videos.csv", newline="") as handle:
        rows = {r["path"].removeprefix("videos/"): r for r in csv.DictReader(handle)}
    val_groups = set(json.load(open("weights/manifest.json"))["notes"]["validation"]["split"]["val_groups"])
    for path in paths:
        with open(path, newline="") as handle:
            scores = {r["filename"]: float(r["label"]) for r in csv.DictReader(handle)}
        for subset, keep in (("all", lambda r: True), ("held-out groups", lambda r: r["group"] in val_groups)):
            names = [n for n in scores if n in rows and keep(rows[n])]
            labels = np.array([rows[n]["label"] == "FAKE" for n in names], float)
            print(path, subset, json.dumps(summarize(labels, np.array([scores[n] for n in names]))))


if __name__ == "__main__":
    main(sys.argv[1:])
