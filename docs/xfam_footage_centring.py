"""Exploration (nineteenth session): a fake and the original it was made from are the same footage with another
face. Does taking each video's logit relative to the mean logit of the test videos that share its footage help the
held-out families' AUC? (The detector's scores follow the source footage more than the manipulation.)

Footage groups, found without labels from the crop cache: two videos share footage when, over the frames both
sampled, the main track's boxes sit within ``--box-tol`` % of the box size of each other (median) and the crops'
outer ring (the crop at 16 x 16 grey, its centre half masked) differs by less than ``--ring-tol`` grey levels
(median); groups are the connected components. Oracle groups for comparison: the ``group`` column, and ``scene``
(FF++: the target id of ``T_S.mp4`` / ``T.mp4``; other families: ``group``). Prints video AUC per held-out family
for each grouping with a fraction ``alpha`` (0.5, 1) of the group's mean logit taken off (groups of one unchanged):

    python docs/xfam_footage_centring.py runs/xfam/sbi12ftsn4_ffpp runs/xfam/sbi12ftsn4_talking-head
"""
from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np

from deepfake_kernel import metrics
from deepfake_kernel.pipeline import ensemble
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv

VIDEOS = ("../shared/data/videos.csv", "../shared/data/videos_extra.csv")


def signature(path: Path, size: int = 16) -> dict:
    """Frames, boxes and outer-ring pixels of a cached video's first track."""
    with np.load(path) as data:
        first = data["tracks"] == data["tracks"].min()
        crops, frames, boxes = data["crops"][first], data["frames"][first], data["boxes"][first]
    grey = crops.astype(np.float32).mean(-1)
    n, side = grey.shape[:2]
    small = grey[:, :side - side % size, :side - side % size].reshape(n, size, side // size, size, side // size)
    small = small.mean((2, 4))
    ring = np.ones((size, size), bool)
    ring[size // 4:size - size // 4, size // 4:size - size // 4] = False
    return {"frames": frames, "boxes": boxes, "ring": small[:, ring]}


def same_footage(a: dict, b: dict, box_tol: float, ring_tol: float) -> bool:
    common, ia, ib = np.intersect1d(a["frames"], b["frames"], return_indices=True)
    if len(common) < 8:
        return False
    ba, bb = a["boxes"][ia], b["boxes"][ib]
    shift = np.linalg.norm((ba[:, :2] + ba[:, 2:]) / 2 - (bb[:, :2] + bb[:, 2:]) / 2, axis=1)
    box = 100 * np.median(shift / np.maximum(ba[:, 2] - ba[:, 0], 1))
    ring = np.median(np.abs(a["ring"][ia] - b["ring"][ib]).mean(1))
    return box < box_tol and ring < ring_tol


def footage_groups(signatures: list[dict], box_tol: float, ring_tol: float) -> list[int]:
    parent = list(range(len(signatures)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i
    for i in range(len(signatures)):
        for j in range(i + 1, len(signatures)):
            if same_footage(signatures[i], signatures[j], box_tol, ring_tol):
                parent[root(i)] = root(j)
    return [root(i) for i in range(len(signatures))]


def scene(row: dict) -> str:
    match = re.fullmatch(r"(\d+)(_\d+)?\.mp4", Path(row["path"]).name)
    return f"ffpp-{match.group(1)}" if row["family"] == "ffpp" and match else row["group"]


def relative(logits: np.ndarray, groups: list, alpha: float) -> np.ndarray:
    groups, out = np.array(groups), logits.copy()
    for g in np.unique(groups):
        inside = groups == g
        if inside.sum() > 1:
            out[inside] -= alpha * logits[inside].mean()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="cross_family --out folders (predictions.csv with 'raw')")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--box-tol", type=float, nargs="+", default=[2.5, 4.0])
    parser.add_argument("--ring-tol", type=float, default=8.0)
    args = parser.parse_args()
    cache = CropCache(args.cache_dir, CacheConfig(frames=32, crop_size=224))
    keys = {Path(item.path).resolve(): item for f in VIDEOS for item in read_video_csv(f)}
    for run in args.runs:
        rows = [r for r in csv.DictReader(open(Path(run) / "predictions.csv"))
                if r["family"] == r["fold"] and r["reason"] == ""]
        for family in sorted({r["family"] for r in rows}):
            mine = [r for r in rows if r["family"] == family]
            labels = np.array([int(r["label"]) for r in mine])
            raw = np.clip([float(r["raw"]) for r in mine], 1e-6, 1 - 1e-6)  # as the recorded figures were made
            logits = ensemble.logit(raw)
            signatures = [signature(cache.video_file(keys[Path(r["path"]).resolve()])) for r in mine]
            groupings = {"group": [r["group"] for r in mine], "scene": [scene(r) for r in mine]}
            for tol in args.box_tol:
                groupings[f"footage box<{tol} ring<{args.ring_tol}"] = footage_groups(signatures, tol, args.ring_tol)
            print(f"{run} {family}: as scored {metrics.roc_auc(labels, logits):.3f}")
            for name, groups in groupings.items():
                sizes = np.unique(groups, return_counts=True)[1]
                aucs = [metrics.roc_auc(labels, relative(logits, groups, a)) for a in (0.5, 1.0)]
                print(f"  {name:28s} groups >1: {int((sizes > 1).sum()):2d}  alpha 0.5: {aucs[0]:.3f}  "
                      f"alpha 1: {aucs[1]:.3f}")


if __name__ == "__main__":
    main()
