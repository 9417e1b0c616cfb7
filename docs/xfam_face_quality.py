"""Exploration (nineteenth session): do a video's sharper, larger or surer faces carry the decision? The fold's
weights (with the test set's BatchNorm statistics, as ``cross_family --test-set-norm-blocks 4`` scores) score every
cached face of the held-out family; each rule weights or keeps faces by a quality before predict's aggregation
(mean per track, max over tracks). Prints the held-out family's video AUC per rule; ``mean`` is predict's rule and
equals the run's ``predictions.csv``:

    python docs/xfam_face_quality.py runs/xfam/sbi12ftsn4_ffpp --family ffpp
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from deepfake_kernel import metrics
from deepfake_kernel.evaluation.cross_family import test_set_crops
from deepfake_kernel.pipeline.detector import Detector
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv

VIDEOS = ("../shared/data/videos.csv", "../shared/data/videos_extra.csv")


def video_score(face: dict, weight: np.ndarray | None = None, keep: np.ndarray | None = None) -> float:
    """Predict's aggregation with per-face weights, or only the kept faces of each track (all when none is kept)."""
    scores = []
    for track in np.unique(face["track"]):
        inside = face["track"] == track
        if keep is not None and (inside & keep).any():
            inside = inside & keep
        w = np.ones(inside.sum()) if weight is None else weight[inside]
        scores.append(float(np.sum(face["p"][inside] * w) / np.sum(w)))
    return max(scores)


RULES = {
    "mean (predict)": lambda f: video_score(f),
    "weighted by box size": lambda f: video_score(f, f["size"]),
    "weighted by sharpness": lambda f: video_score(f, f["sharp"]),
    "detection prob > 0.999 only": lambda f: video_score(f, keep=f["prob"] > 0.999),
    "larger half of faces": lambda f: video_score(f, keep=f["size"] >= np.median(f["size"])),
    "sharper half of faces": lambda f: video_score(f, keep=f["sharp"] >= np.median(f["sharp"])),
    "longest track only": lambda f: float(np.mean(f["p"][f["track"] == np.bincount(f["track"]).argmax()])),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a cross_family --out folder of one fold")
    parser.add_argument("--family", required=True)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--test-set-norm-blocks", type=int, default=4)
    args = parser.parse_args()
    cache = CropCache(args.cache_dir, CacheConfig(frames=32, crop_size=224))
    items = [i for f in VIDEOS for i in read_video_csv(f) if i.family == args.family]
    detector = Detector.from_weights(f"{args.run}/{args.family}/weights")
    member = detector.members[detector.member_names[0]]
    member.adapt_batchnorm(test_set_crops(cache, items), args.test_set_norm_blocks)
    faces, labels = [], []
    for item in items:
        if not cache.video_file(item).is_file():
            continue
        with np.load(cache.video_file(item)) as data:
            crops, boxes = data["crops"], data["boxes"]
            faces.append({"p": member.predict_proba(crops), "prob": data["probs"], "track": data["tracks"],
                          "size": np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])),
                          "sharp": np.array([cv2.Laplacian(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)[56:168, 56:168],
                                                           cv2.CV_64F).var() for c in crops])})
        labels.append(item.label)
    for name, rule in RULES.items():
        print(f"{name:30s} AUC {metrics.roc_auc(np.array(labels), np.array([rule(f) for f in faces])):.3f}")


if __name__ == "__main__":
    main()
