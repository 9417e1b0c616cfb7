"""Out-of-family learning curve: every epoch of a fold's member scored on the family the fold held out.

Checkpoints are the ``epoch_NNN.pt`` files that ``train --keep-epochs`` (or ``cross_family --keep-epochs``) leaves
in the member's work folder, or copies of its ``last.pt`` taken after each epoch. Scores use predict's rule (mean over
a track's faces, max over tracks) on the face-crop cache; AUC and log loss (clip 0.01) per epoch. This is a
diagnostic of how long to train, not a way to pick a fold's epoch on its own held-out family. Run from the
repository root, e.g.:
    python docs/xfam_learning_curve.py --family ffpp \
        runs/xfam/long/ffpp/work/efficientnet_lite0/epoch_*.pt
"""
import argparse
import json

import numpy as np
import torch
from sklearn.metrics import log_loss, roc_auc_score

from deepfake_kernel.detectors.factory import create_model
from deepfake_kernel.pipeline import ensemble
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--family", required=True, help="the family the fold held out (e.g. ffpp, talking-head)")
    parser.add_argument("--member", default="efficientnet_lite0")
    parser.add_argument("--videos", default="../shared/data/videos.csv,../shared/data/videos_extra.csv")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cache = CropCache(args.cache_dir, CacheConfig(frames=32, crop_size=224))
    videos = []
    for item in (i for csv in args.videos.split(",") for i in read_video_csv(csv)):
        if item.family == args.family and cache.video_file(item).is_file():
            with np.load(cache.video_file(item)) as data:
                videos.append((item.label, data["crops"], data["tracks"]))
    model = create_model(args.member).eval()
    for path in args.checkpoints:
        saved = torch.load(path, map_location="cpu", weights_only=False)
        state = saved["model"] if "model" in saved else saved
        if any(k.startswith("classifier.network.") for k in state):  # trained with --boundary-loss: no map head
            state = {k[len("classifier."):]: v for k, v in state.items() if k.startswith("classifier.")}
        # the engine trains (and saves) the classifier's network; a whole FaceClassifier's keys start "network."
        (model if next(iter(state)).startswith("network.") else model.network).load_state_dict(state)
        with torch.inference_mode():
            scores = [ensemble.video_score([ensemble.track_score(p[tracks == t]) for t in np.unique(tracks)])
                      for p, tracks in ((model.predict_proba(crops), tracks) for _, crops, tracks in videos)]
        labels = [label for label, _, _ in videos]
        row = {"checkpoint": path, "videos": len(labels), "auc": round(roc_auc_score(labels, scores), 4),
               "log_loss": round(log_loss(labels, np.clip(scores, 0.01, 0.99)), 4)}
        if "state" in saved:
            row.update(epoch=saved["state"]["epoch"], train_loss=saved["state"]["history"][-1]["train_loss"])
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
