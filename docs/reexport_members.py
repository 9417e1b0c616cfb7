"""Re-store shipped face members in another storage dtype without training, keeping the manifest's fits (how the
two EfficientNet-Lite0 members went from float16 to int8 in the thirty-ninth session, docs/training.md; the fits
were kept because the same change, made to the fold members they were fitted on, was measured first:
docs/cross_family.md). Measures each member on its training run's validation videos (same group split) before and
after, stores the new file, and records the change in the member's ``training.re_exported``. From the repository
root, with ../shared/data and the face-crop cache of the training command:

    python docs/reexport_members.py --members efficientnet_lite0,efficientnet_lite0_s1 --storage-dtype int8
"""
import argparse
import dataclasses
import datetime
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from deepfake_kernel.detectors.weights import export_member, load_member, read_manifest, write_manifest
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv, split_by_group
from deepfake_kernel.training.engine import video_metrics


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="weights")
    parser.add_argument("--members", required=True, help="comma-separated member names")
    parser.add_argument("--storage-dtype", required=True, choices=("float32", "float16", "int8"))
    parser.add_argument("--videos", default="../shared/data/videos.csv,../shared/data/videos_extra.csv",
                        help="the training command's --videos (its group split is re-made from them)")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="the training command's --val-fraction")
    parser.add_argument("--cache-dir", default="cache")
    args = parser.parse_args()
    weights = Path(args.weights)
    manifest = read_manifest(weights)
    items = [item for path in args.videos.split(",") for item in read_video_csv(path)]
    cache = CropCache(args.cache_dir, CacheConfig(frames=32, crop_size=224))
    for name in args.members.split(","):
        entry = manifest.member(name)
        if entry.storage_dtype == args.storage_dtype:
            print(f"{name}: already {args.storage_dtype}")
            continue
        _, val_items = split_by_group(items, args.val_fraction, int(entry.training.get("seed", 0)))
        val = cache.load_videos(val_items)
        before = load_member(entry, weights)
        with tempfile.TemporaryDirectory() as folder:  # the file replaced once measured, beside its manifest
            new = export_member(before, folder, name=name, storage_dtype=args.storage_dtype)
            after = load_member(new, folder)
            probs = {"before": before.predict_proba(val.crops, 32), "after": after.predict_proba(val.crops, 32)}
            shutil.copyfile(Path(folder) / new.file, weights / entry.file)
        (metrics_before, _, scores_before), (metrics_after, _, scores_after) = (
            video_metrics(probs["before"], val), video_metrics(probs["after"], val))
        moved = np.abs(logit(scores_after) - logit(scores_before))
        fidelity = {"videos": len(scores_before), "from": entry.storage_dtype, "to": args.storage_dtype,
                    "mean_abs_video_logit_difference": round(float(moved.mean()), 5),
                    "max_abs_video_logit_difference": round(float(moved.max()), 5),
                    "video_logit_sd": round(float(logit(scores_before).std()), 4),
                    "max_abs_face_probability_difference": round(float(np.abs(probs["after"] - probs["before"]).max()), 5),
                    "val_video_before": metrics_before}
        print(f"{name}: {fidelity}")
        training = dict(entry.training)
        training["re_exported"] = {"command": "python docs/reexport_members.py " + shlex.join(sys.argv[1:]),
                                   "date": datetime.date.today().isoformat(),
                                   "why": "the tracked tree's size limit; the out-of-family fits kept (the same "
                                          "change to the fold members they were fitted on measured first)",
                                   "previous_sha256": entry.sha256, "storage_fidelity": fidelity}
        metrics = dict(entry.metrics, val_video=metrics_after)
        replaced = dataclasses.replace(entry, sha256=new.sha256, storage_dtype=args.storage_dtype, metrics=metrics,
                                       training=training)
        manifest.members = [replaced if m.name == name else m for m in manifest.members]
    write_manifest(manifest, weights)


if __name__ == "__main__":
    main()
