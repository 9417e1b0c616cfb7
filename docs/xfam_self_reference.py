"""Self-referenced video scores: a fold's score of a video's faces against its score of their self-blends.

Every cached crop of the held-out family is scored as is and self-blended (``self_blend_68`` with its 68 points, one
blend per crop, seeded); the blends share the video's source (camera, compression, lighting), so comparing the two
cancels what a source adds to every face of it. Printed: video AUC of the plain score (predict's rule: mean per
track, max over tracks), of the self-blends' score alone, and of the difference of mean logits (plain minus blended;
and blended minus plain). Run from the repository root (docs/cross_family.md):
    python docs/xfam_self_reference.py runs/xfam/sbi_real_no_loose_faces/talking-head/weights --family talking-head
"""
import argparse

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from deepfake_kernel.detectors.weights import load_member, read_manifest
from deepfake_kernel.training.augment import self_blend_68
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv


def logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def track_max(values, tracks):
    return max(values[tracks == t].mean() for t in np.unique(tracks))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", help="a fold's weights folder (one member)")
    parser.add_argument("--family", required=True)
    parser.add_argument("--videos", default="../shared/data/videos.csv,../shared/data/videos_extra.csv")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    manifest = read_manifest(args.weights)
    model = load_member(manifest.members[0], args.weights).eval()
    cache = CropCache(args.cache_dir, CacheConfig(frames=32, crop_size=224))
    rows = []
    with torch.inference_mode():
        for item in (i for csv in args.videos.split(",") for i in read_video_csv(csv)):
            if item.family != args.family or not cache.video_file(item).is_file():
                continue
            with np.load(cache.video_file(item)) as data:
                crops, tracks = data["crops"], data["tracks"]
            marks = cache.video_landmarks68(item)
            usable = ~np.isnan(marks).any(axis=(1, 2))
            plain = model.predict_proba(crops)
            blended = plain.copy()
            if usable.any():
                rng = np.random.default_rng([args.seed, len(rows)])
                fakes = np.stack([self_blend_68(crops[i], marks[i], rng) for i in np.flatnonzero(usable)])
                blended[usable] = model.predict_proba(fakes)
            rows.append((item.label, track_max(plain, tracks), track_max(blended, tracks),
                         track_max(logit(plain) - logit(blended), tracks), item.method, item.dataset))
    labels = np.array([r[0] for r in rows])
    columns = {"plain (predict's rule)": 1, "self-blends alone": 2, "logit plain - logit blended": 3}
    print(f"{args.weights} on {len(rows)} {args.family} videos ({labels.sum()} fake): video AUC")
    for name, column in columns.items():
        print(f"  {name:32s} {roc_auc_score(labels, [r[column] for r in rows]):.3f}")
    print(f"  {'logit blended - logit plain':32s} {roc_auc_score(labels, [-r[3] for r in rows]):.3f}")


if __name__ == "__main__":
    main()
