"""Test-set BatchNorm statistics (AdaBN, Li et al. 2016) for a fold: its BatchNorm layers re-estimated on the
held-out family's own crops, all videos together, before scoring them.

Not the per-video normalisation of ``--video-norm-blocks`` (which removes what a video's faces share, label
included): here the statistics come from the whole test set, as a Kaggle kernel could take them from its 4 000
unlabelled test videos, so differences between videos survive and only the shift of the new source is taken out.
Printed per fold: video AUC (predict's rule: mean per track, max over tracks) with the fold's own statistics and
with the held-out family's, for the whole network and for the stem plus the first N blocks only. Run from the
repository root (docs/cross_family.md):
    python docs/xfam_set_adabn.py runs/xfam/sbi12ft_ffpp/seed_0/ffpp/weights --family ffpp
"""
import argparse
import copy

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from deepfake_kernel.detectors.weights import load_member, read_manifest
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv


def track_max(values, tracks):
    return max(values[tracks == t].mean() for t in np.unique(tracks))


def family_faces(family: str, videos: str, cache_dir: str, per_video: int, seed: int = 0):
    """The family's cached videos as (label, crops, track ids), their labels, and ``per_video`` random faces of
    each pooled (the faces the test-set statistics are estimated from). Also used by the other docs/xfam_set_*
    scripts and docs/xfam_zoom_tta.py."""
    cache = CropCache(cache_dir, CacheConfig(frames=32, crop_size=224))
    items = [i for csv in videos.split(",") for i in read_video_csv(csv)
             if i.family == family and cache.video_file(i).is_file()]
    loaded = []
    for item in items:
        with np.load(cache.video_file(item)) as data:
            loaded.append((item.label, data["crops"], data["tracks"]))
    rng = np.random.default_rng(seed)
    pool = np.concatenate([c[rng.choice(len(c), min(per_video, len(c)), replace=False)] for _, c, _ in loaded])
    return loaded, np.array([v[0] for v in loaded]), pool


def video_aucs(variants: dict, videos, labels) -> str:
    """``name AUC | ...``: each model's video AUC on ``videos`` by predict's rule."""
    line = []
    for name, model in variants.items():
        with torch.inference_mode():
            scores = [track_max(model.predict_proba(crops), tracks) for _, crops, tracks in videos]
        line.append(f"{name} {roc_auc_score(labels, scores):.3f}")
    return " | ".join(line)


def family_parser(doc: str) -> argparse.ArgumentParser:
    """The options these scripts share: fold weights folders, the held-out family, the data and the crop cache."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("weights", nargs="+", help="fold weights folders (one member each)")
    parser.add_argument("--family", required=True)
    parser.add_argument("--videos", default="../shared/data/videos.csv,../shared/data/videos_extra.csv")
    parser.add_argument("--cache-dir", default="cache")
    return parser


def adapted(model, crops: np.ndarray, blocks: int | None):
    """A copy of ``model`` with the test set's BatchNorm statistics (stem and ``blocks`` blocks; ``None``: all)."""
    model = copy.deepcopy(model).eval()
    model.adapt_batchnorm(crops, blocks)
    return model


def main():
    parser = family_parser(__doc__)
    parser.add_argument("--per-video", type=int, default=8, help="crops per video used for the statistics")
    parser.add_argument("--blocks", default="all,2,4", help="comma-separated: all, or the stem plus N blocks")
    args = parser.parse_args()
    torch.set_num_threads(1)
    videos, labels, pool = family_faces(args.family, args.videos, args.cache_dir, args.per_video)
    print(f"{args.family}: {len(videos)} videos ({labels.sum()} fake), statistics from {len(pool)} crops")
    for weights in args.weights:
        manifest = read_manifest(weights)
        base = load_member(manifest.members[0], weights).eval()
        variants = {"fold statistics": base}
        for blocks in args.blocks.split(","):
            variants[f"test-set statistics, {blocks}"] = adapted(base, pool, None if blocks == "all" else int(blocks))
        print(f"{weights}: " + video_aucs(variants, videos, labels), flush=True)


if __name__ == "__main__":
    main()
