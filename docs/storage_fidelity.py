"""What int8 storage would cost the EfficientNet-Lite0 member (shipped as float16): val crops of the training
split, scored with the float16 checkpoint as shipped and re-stored as int8 (per-channel), video rule as predict.

Run from the repository root with ../shared/data and the face-crop cache of the training command:
    python docs/storage_fidelity.py
"""
import os
import tempfile

import numpy as np

from deepfake_kernel.detectors.weights import export_member, load_member, read_manifest
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv, split_by_group
from deepfake_kernel.training.engine import video_metrics

items = read_video_csv("../shared/data/videos.csv")
_, val_items = split_by_group(items, 0.3, 0)
val = CropCache("cache", CacheConfig(frames=32, crop_size=224)).load_videos(val_items)
shipped = load_member(read_manifest("weights").member("efficientnet_lite0"), "weights")
with tempfile.TemporaryDirectory() as folder:
    entry = export_member(shipped, folder, storage_dtype="int8")
    int8 = load_member(entry, folder)
    size_int8 = os.path.getsize(os.path.join(folder, entry.file))
probs = {name: model.predict_proba(val.crops, 32) for name, model in (("float16", shipped), ("int8", int8))}
diff = np.abs(probs["float16"] - probs["int8"])
print(f"{len(val.crops)} val crops; int8 file {size_int8 / 2**20:.2f} MiB")
print(f"face P(FAKE) |float16 - int8|: mean {diff.mean():.4f}, max {diff.max():.4f}")
for name, p in probs.items():
    print(name, video_metrics(p, val)[0])
