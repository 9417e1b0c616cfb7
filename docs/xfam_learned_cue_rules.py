"""How a video's learned temporal cue is taken from its pairs: the folds' networks (``train_temporal_cue
--hold-out-family F --work-dir DIR``, whose ``DIR/last.pt`` keeps the network) score every stored face pair of the
held-out videos once; the per-pair logits are then reduced by several rules (the shipped mean, the median, a trimmed
mean, the maximum, the mean of the top half, the mean of every other pair) and each rule's video cue is judged alone (AUC) and added to a run's
out-of-family predictions (AUC, per seed pair). From the repository root (twenty-ninth session):

    python docs/xfam_learned_cue_rules.py --work runs/tcue/work_ffpp_s0,runs/tcue/work_ffpp_s1 --family ffpp \\
        --predictions runs/xfam/pairs_ffpp/seed_0/ffpp/predictions.csv --weight 0.35
"""
from __future__ import annotations

import argparse
import csv

import numpy as np
import torch

from deepfake_kernel.metrics import roc_auc
from deepfake_kernel.pipeline.ensemble import logit, sigmoid
from deepfake_kernel.pipeline.temporal import residual_image
from deepfake_kernel.training.temporal import TemporalCueConfig, build_network, load_videos

RULES = {
    "mean": np.mean,
    "median": np.median,
    "trimmed": lambda v: float(np.mean(np.sort(v)[len(v) // 4: len(v) - len(v) // 4])) if len(v) >= 4 else np.mean(v),
    "max": np.max,
    "top_half": lambda v: float(np.mean(np.sort(v)[len(v) // 2:])),
    "even_pairs": lambda v: float(np.mean(v[0::2])),  # half the pairs: how the AUC grows with the pairs read
    "odd_pairs": lambda v: float(np.mean(v[1::2])) if len(v) > 1 else float(np.mean(v)),
}


def pair_logits(work_dirs: list[str], videos: list[dict]) -> dict[str, np.ndarray]:
    """path → (networks, pairs) logits."""
    networks = []
    for folder in work_dirs:
        state = torch.load(f"{folder}/last.pt", map_location="cpu", weights_only=False)
        model = build_network(TemporalCueConfig())
        model.network.load_state_dict(state["network"])
        networks.append(model.eval())
    out = {}
    with torch.inference_mode():
        for video in videos:
            images = np.stack([residual_image(a, b) for a, b in zip(video["first"], video["second"])])
            out[video["path"]] = np.stack([n(n.preprocess(images)).float().numpy() for n in networks])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="comma-separated work dirs of one fold's networks")
    parser.add_argument("--family", required=True)
    parser.add_argument("--predictions", default="", help="a cross_family predictions.csv of that fold")
    parser.add_argument("--weight", type=float, default=0.35)
    parser.add_argument("--videos", default="../shared/data/videos.csv,../shared/data/videos_extra.csv")
    args = parser.parse_args()
    torch.set_num_threads(1)
    videos = [v for v in load_videos(TemporalCueConfig(videos=args.videos.split(","))) if v["family"] == args.family]
    logits = pair_logits(args.work.split(","), videos)
    labels = {v["path"]: v["label"] for v in videos}
    rows = []
    if args.predictions:
        with open(args.predictions, newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.DictReader(handle) if r.get("members")]
    print(f"{args.family}: {len(videos)} videos with pairs; networks {args.work}")
    for name, rule in RULES.items():
        cue = {p: float(np.mean([rule(n) for n in v])) for p, v in logits.items()}
        paths = sorted(cue)
        alone = roc_auc(np.array([labels[p] for p in paths]), np.array([cue[p] for p in paths]))
        line = f"  {name:9s} alone {alone:.3f}"
        if rows:
            reference = float(np.median(list(cue.values())))
            scores = [float(sigmoid(logit(np.float64(r["raw"])) + args.weight * (cue[r["path"]] - reference)))
                      if r["path"] in cue else float(r["raw"]) for r in rows]
            base = roc_auc(np.array([int(r["label"]) for r in rows]), np.array([float(r["raw"]) for r in rows]))
            added = roc_auc(np.array([int(r["label"]) for r in rows]), np.array(scores))
            line += f"   added at {args.weight:g}: {added:.3f} (without {base:.3f})"
        print(line)


if __name__ == "__main__":
    main()
