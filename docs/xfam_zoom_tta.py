"""Exploration (fifteenth session): zoomed crops as test-time augmentation, after the test-set statistics.

Each cached face is centre-cropped to a fraction of its side and resized back (zoom 0.85, 0.7), scored, and the
video AUC printed for each zoom and for the mean of the plain and 0.85 scores. Run from the repository root:
    python docs/xfam_zoom_tta.py runs/xfam/sbi12ft_ffpp/seed_0/ffpp/weights ffpp
"""
import sys, numpy as np, torch
from sklearn.metrics import roc_auc_score
from deepfake_kernel.detectors.weights import load_member, read_manifest
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv
import torch.nn.functional as F
torch.set_num_threads(1)
weights, family = sys.argv[1], sys.argv[2]
cache = CropCache("cache", CacheConfig(frames=32, crop_size=224))
items = [i for c in "../shared/data/videos.csv,../shared/data/videos_extra.csv".split(",") for i in read_video_csv(c) if i.family == family and cache.video_file(i).is_file()]
videos = []
for it in items:
    with np.load(cache.video_file(it)) as d: videos.append((it.label, d["crops"], d["tracks"]))
rng = np.random.default_rng(0)
pool = np.concatenate([c[rng.choice(len(c), min(8, len(c)), replace=False)] for _, c, _ in videos])
labels = np.array([v[0] for v in videos])
m = load_member(read_manifest(weights).members[0], weights).eval(); m.adapt_batchnorm(pool, 4)
def zoom(crops, f):
    n = crops.shape[1]; k = int(round(n * f)); o = (n - k) // 2
    t = torch.as_tensor(crops[:, o:o + k, o:o + k]).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=(n, n), mode="bilinear", align_corners=False, antialias=True)
    return t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
def tm(v, tr): return max(v[tr == t].mean() for t in np.unique(tr))
res = {}
with torch.inference_mode():
    for f in (1.0, 0.85, 0.7):
        res[f] = [m.predict_proba(zoom(c, f) if f < 1 else c) for _, c, _ in videos]
out = {f"zoom {f}": roc_auc_score(labels, [tm(p, tr) for p, (_, _, tr) in zip(res[f], videos)]) for f in res}
out["mean 1+0.85"] = roc_auc_score(labels, [tm((a + b) / 2, tr) for a, b, (_, _, tr) in zip(res[1.0], res[0.85], videos)])
print(weights, {k: round(v, 3) for k, v in out.items()}, flush=True)
