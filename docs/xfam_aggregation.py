"""Video-score rules and flip test-time augmentation, on a fold's held-out family (docs/cross_family.md).

The fold's weights score every cached crop of the family it held out, as is and mirrored; each rule turns a track's
face probabilities into a track score (then max over tracks, as predict does); printed: video AUC per rule, for the
plain crops, the mean of plain and mirrored (flip TTA) and the mirrored crops alone. Run from the repository root:
    python docs/xfam_aggregation.py runs/xfam/sbi_real/talking-head/weights --family talking-head
"""
import argparse

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from deepfake_kernel.detectors.weights import load_member, read_manifest
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv


def logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


RULES = {
    "mean (predict's rule)": np.mean,
    "mean logit": lambda p: 1 / (1 + np.exp(-logit(p).mean())),
    "median": np.median,
    "top quarter mean": lambda p: np.sort(p)[-max(1, len(p) // 4):].mean(),
    "bottom quarter mean": lambda p: np.sort(p)[:max(1, len(p) // 4)].mean(),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", help="a fold's weights folder (one member)")
    parser.add_argument("--family", required=True)
    parser.add_argument("--videos", default="../shared/data/videos.csv,../shared/data/videos_extra.csv")
    parser.add_argument("--cache-dir", default="cache")
    args = parser.parse_args()
    manifest = read_manifest(args.weights)
    model = load_member(manifest.members[0], args.weights).eval()
    cache = CropCache(args.cache_dir, CacheConfig(frames=32, crop_size=224))
    videos = []
    with torch.inference_mode():
        for item in (i for csv in args.videos.split(",") for i in read_video_csv(csv)):
            if item.family != args.family or not cache.video_file(item).is_file():
                continue
            with np.load(cache.video_file(item)) as data:
                crops, tracks = data["crops"], data["tracks"]
            videos.append((item.label, tracks, model.predict_proba(crops),
                           model.predict_proba(np.ascontiguousarray(crops[:, :, ::-1]))))
    labels = [v[0] for v in videos]
    print(f"{args.weights} on {len(videos)} {args.family} videos: video AUC")
    print(f"{'rule':24s} plain  flip TTA  mirrored only")
    for name, rule in RULES.items():
        aucs = []
        for pick in (lambda a, b: a, lambda a, b: (a + b) / 2, lambda a, b: b):
            scores = [max(rule(pick(p, q)[tracks == t]) for t in np.unique(tracks)) for _, tracks, p, q in videos]
            aucs.append(roc_auc_score(labels, scores))
        print(f"{name:24s} " + "  ".join(f"{a:.3f}" for a in aucs))


if __name__ == "__main__":
    main()
