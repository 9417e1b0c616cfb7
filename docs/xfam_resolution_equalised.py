"""Exploration (twenty-fourth session): every test face rendered at one effective resolution before scoring.

Held out, FF++'s network logits fall with face size inside each class (stage one, self-blends only: r ≈ −0.5 for
reals and fakes alike; the shipped two stages −0.2 to −0.4): small faces, upsampled or barely downsampled into the
224 px crop, look smooth, and smoothness is what the self-blends' blurred insides taught. Fakes there have slightly
larger faces than reals, so the bias works against the label. This scores every cached crop after a round trip
through ``--sides`` pixels (area downscale, bilinear back to 224), the test set's BatchNorm statistics estimated on
the same treated crops, with each fold's own weights (this machine's seeds 0–3 of ``ffpp`` and ``talking-head``);
seed pairs averaged in logit as shipped. No labels are used. Run from the repository root:

    python docs/xfam_resolution_equalised.py --sides 0,160,112 --out runs/xfam/resolution.csv

``--size-check PREDICTIONS`` (a ``cross_family`` predictions.csv, several comma-separated) prints instead, per family
and seed, the within-class correlation of the members' logit with the log median face-box side, and the AUC after
regressing the test set's logits on that side (and on the crops' median Laplacian sharpness): label-free, like the
centring.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses

import cv2
import numpy as np

from deepfake_kernel.evaluation.cross_family import cached_tracks, test_set_crops
from deepfake_kernel.pipeline.ensemble import logit
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv
from xfam_network_flicker import write_csv  # beside this script in docs/

VIDEOS = ("../shared/data/videos.csv", "../shared/data/videos_extra.csv")
WEIGHTS = {"ffpp": {s: f"runs/xfam/sbi12{p}ftsn4_ffpp/ffpp/weights" for s, p in ((0, ""), (1, "s1"), (2, "s2"), (3, "s3"))},
           "talking-head": {s: f"runs/xfam/sbi12{p}ftsn4_talking-head/talking-head/weights"
                            for s, p in ((0, ""), (1, "s1"), (2, "s2"), (3, "s3"))}}
PAIRS = ((0, 1), (1, 2), (2, 3), (3, 0))


def round_trip(crops: np.ndarray, side: int) -> np.ndarray:
    if not side or not len(crops):
        return crops
    size = crops.shape[1]
    return np.stack([cv2.resize(cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA), (size, size),
                                interpolation=cv2.INTER_LINEAR) for c in crops])


def score(args) -> list[dict]:
    import torch

    from deepfake_kernel.pipeline.detector import Detector

    torch.set_num_threads(args.threads)
    cache = CropCache("cache", CacheConfig(frames=32, crop_size=224))
    items = [i for f in VIDEOS for i in read_video_csv(f) if cache.video_file(i).is_file()]
    rows = []
    for family, seeds in WEIGHTS.items():
        held = [i for i in items if i.family == family]
        for side in args.sides:
            for seed, weights in seeds.items():
                detector = Detector.from_weights(weights, device="cpu")
                sample = round_trip(test_set_crops(cache, held), side)
                for member in detector.members.values():
                    member.adapt_batchnorm(sample, 4)
                for item in held:
                    tracks = [dataclasses.replace(t, faces=[dataclasses.replace(f, crop=round_trip(f.crop[None], side)[0])
                                                            for f in t.faces]) for t in cached_tracks(cache, item)]
                    raw, _, _ = detector.score_tracks(tracks, detector.member_names)
                    rows.append({"family": family, "path": item.path, "label": item.label, "side": side,
                                 "seed": seed, "raw": raw})
                detector.close()
                print(f"{family} side {side} seed {seed}", flush=True)
    write_csv(args.out, rows)
    return rows


def report(rows: list[dict]) -> None:
    from sklearn.metrics import roc_auc_score

    table: dict[tuple, dict] = {}
    for r in rows:
        key = (r["family"], int(r["side"]), int(r["seed"]))
        table.setdefault(key, {})[r["path"]] = (int(r["label"]), float(logit(float(r["raw"]))))
    for family in WEIGHTS:
        for side in sorted({k[1] for k in table if k[0] == family}):
            aucs = []
            for a, b in PAIRS:
                first, second = table[(family, side, a)], table[(family, side, b)]
                paths = sorted(first)
                y = [first[p][0] for p in paths]
                aucs.append(roc_auc_score(y, [first[p][1] + second[p][1] for p in paths]))
            singles = [roc_auc_score(*zip(*[v for v in table[(family, side, s)].values()])) for s in range(4)]
            print(f"{family:13s} side {side or 'as cut':>6}: pairs {np.mean(aucs):.3f} ({' '.join(f'{v:.3f}' for v in aucs)})"
                  f"  single seeds {np.mean(singles):.3f}")


def size_check(paths: list[str]) -> None:
    from sklearn.metrics import roc_auc_score

    cache = CropCache("cache", CacheConfig(frames=32, crop_size=224))
    items = {str(i.path): i for f in VIDEOS for i in read_video_csv(f)}
    nuisance: dict[str, tuple[float, float]] = {}

    def of(path: str) -> tuple[float, float]:
        if path not in nuisance:
            with np.load(cache.video_file(items[path])) as data:
                boxes, crops = data["boxes"], data["crops"]
            side = np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))
            grey = [cv2.cvtColor(c, cv2.COLOR_RGB2GRAY).astype(np.float32) for c in crops[::4]]
            sharp = np.median([np.abs(cv2.Laplacian(g, cv2.CV_32F)).mean() for g in grey])
            nuisance[path] = (float(np.log(side)), float(np.log(sharp)))
        return nuisance[path]

    for path in paths:
        with open(path) as handle:
            rows = [r for r in csv.DictReader(handle) if r["family"] in WEIGHTS and not r.get("reason")]
        for family in WEIGHTS:
            for seed in sorted({r.get("seed", "") for r in rows if r["family"] == family}):
                chosen = [r for r in rows if r["family"] == family and r.get("seed", "") == seed]
                y = np.array([int(r["label"]) for r in chosen])
                z = logit([float(r.get("network_raw") or r["raw"]) for r in chosen])
                x = np.array([of(r["path"]) for r in chosen])
                design = np.c_[np.ones(len(x)), x]
                line = [f"{path} {family} seed {seed or '-'}: AUC {roc_auc_score(y, z):.3f}",
                        f"r(logit, size) real {np.corrcoef(x[y == 0, 0], z[y == 0])[0, 1]:+.2f}"
                        f" fake {np.corrcoef(x[y == 1, 0], z[y == 1])[0, 1]:+.2f}"]
                for name, cols in (("size", [0, 1]), ("sharpness", [0, 2]), ("both", [0, 1, 2])):
                    beta = np.linalg.lstsq(design[:, cols], z, rcond=None)[0]
                    line.append(f"without {name} {roc_auc_score(y, z - design[:, cols] @ beta):.3f}")
                print("; ".join(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="0,160,112", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--out", default="runs/xfam/resolution.csv")
    parser.add_argument("--from-csv", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size-check", default=None)
    args = parser.parse_args()
    if args.size_check:
        size_check(args.size_check.split(","))
        return
    if args.from_csv:
        with open(args.from_csv) as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = score(args)
    report(rows)


if __name__ == "__main__":
    main()
