"""Exploration (twenty-first session): training-free *temporal* cues from consecutive frames, judged per family.

A face generated or re-rendered frame by frame (face swaps, re-enactment, lip-sync) should flicker inside the face
more than the footage around it, and more than smooth motion explains. For up to ``--positions`` cached faces of
each video (the cross-family face-crop cache: frame index, MTCNN box, 68-point landmarks), frames i, i + 1 and
i + 2 are decoded with decord and cut with predict's own ``square_crop`` (margin 0.3, 224 px), and per position:

* ``jitter`` = mean |C2 - 2 C1 + C0| / mean |C1 - C0| inside the face (acceleration over velocity: about 0.5 for
  smooth motion, higher for frame-to-frame noise), and ``jitter ratio`` = that over the same in the ring around it;
* ``texture flicker`` = temporal change of the high-pass image (C - Gaussian(C, 1.5)) inside / in the ring;
* ``motion ratio`` = mean |C1 - C0| inside / in the ring;
* ``colour flicker`` = |change of the inner face's mean Lab (a, b)| minus the ring's;
* ``flow residual`` = what is left of |C1 - C0| inside the face once C1 is warped onto C0 by Farneback optical flow,
  over the uncompensated change, and ``flow residual ratio`` / ``flow high-pass ratio`` = the compensated residual
  (of the image / of its high-pass) inside over in the ring.

* ``flow residual (box)``, ``box 0.85``, ``box 0.7`` (twenty-second session): the flow residual inside an ellipse
  inscribed in the MTCNN box, its axes times 1, 0.85, 0.7 (no landmark model: what ``predict`` can compute;
  ``deepfake_kernel/pipeline/temporal.py`` ships 0.85).

Per video the median over positions. Nothing is fitted: printed is each cue's video AUC within each family (0.5 =
chance, below 0.5 = fakes lower), and within FF++'s c23 and c40 videos. Run from the repository root:

    python docs/xfam_temporal_cues.py [--positions 8] [--limit N]

``--combine RUN_A[,RUN_B]`` (cross_family ``--out`` folders holding ``FAMILY/predictions.csv``, ``{family}`` in the
name standing for the held-out family; several runs are averaged in logit) adds, per family, the AUC of the
network's logit plus w times the log flow residual, both as robust z-scores over the family's videos (median,
interquartile range: label-free), for a few w; ``--from-csv`` reads the cues written by an earlier run instead of
decoding again.
"""
from __future__ import annotations

import argparse
import csv

import cv2
import numpy as np

from deepfake_kernel.pipeline.faces import square_crop
from deepfake_kernel.pipeline.temporal import face_ellipse, flow_residual
from deepfake_kernel.pipeline.video import _scaled_size
from deepfake_kernel.training.augment import hull_mask
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv

VIDEOS = ("../shared/data/videos.csv", "../shared/data/videos_extra.csv")
EPS = 1e-3
CUES = ("jitter", "jitter ratio", "texture flicker", "motion ratio", "colour flicker", "flow residual",
        "flow residual ratio", "flow high-pass ratio", "flow residual (box)", "box 0.85", "box 0.7")


def regions(points: np.ndarray, size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """Inner face (landmark hull, eroded) and the ring around it (between two dilations of the hull)."""
    face = hull_mask((size, size), points[:27], 0)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    inner = cv2.erode(face, kernel, iterations=2) > 0
    ring = (cv2.dilate(face, kernel, iterations=6) > 0) & ~(cv2.dilate(face, kernel, iterations=2) > 0)
    return inner, ring


def position_cues(crops: list[np.ndarray], points: np.ndarray) -> dict[str, float] | None:
    inner, ring = regions(points)
    if inner.sum() < 200 or ring.sum() < 200:
        return None
    grey = [cv2.cvtColor(c, cv2.COLOR_RGB2GRAY).astype(np.float32) for c in crops]
    velocity = np.abs(grey[1] - grey[0])
    acceleration = np.abs(grey[2] - 2 * grey[1] + grey[0])
    high = [g - cv2.GaussianBlur(g, (0, 0), 1.5) for g in grey]
    flicker = np.abs(high[1] - high[0])
    lab = [cv2.cvtColor(c, cv2.COLOR_RGB2LAB).astype(np.float32) for c in crops]

    def colour_change(mask: np.ndarray) -> float:
        return float(np.linalg.norm(lab[1][mask][:, 1:].mean(0) - lab[0][mask][:, 1:].mean(0)))

    if velocity[inner].mean() < 0.2:  # a repeated frame: nothing to see
        return None
    flow = cv2.calcOpticalFlowFarneback(grey[0], grey[1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
    ys, xs = np.mgrid[0:grey[0].shape[0], 0:grey[0].shape[1]].astype(np.float32)
    warped = cv2.remap(grey[1], xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR)
    residual = np.abs(warped - grey[0])
    warped_high = warped - cv2.GaussianBlur(warped, (0, 0), 1.5)
    residual_high = np.abs(warped_high - high[0])
    jitter_in = acceleration[inner].mean() / (velocity[inner].mean() + EPS)
    jitter_ring = acceleration[ring].mean() / (velocity[ring].mean() + EPS)
    return {"jitter": jitter_in,
            "jitter ratio": jitter_in / (jitter_ring + EPS),
            "texture flicker": flicker[inner].mean() / (flicker[ring].mean() + EPS),
            "motion ratio": velocity[inner].mean() / (velocity[ring].mean() + EPS),
            "colour flicker": colour_change(inner) - colour_change(ring),
            "flow residual": residual[inner].mean() / (velocity[inner].mean() + EPS),
            "flow residual ratio": residual[inner].mean() / (residual[ring].mean() + EPS),
            "flow high-pass ratio": residual_high[inner].mean() / (residual_high[ring].mean() + EPS)}


def scaled_reader(path: str):
    """A decord reader at predict's decoded size (long side at most 1920), where the cached boxes were found."""
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0))
    height, width = reader[0].shape[:2]
    out_w, out_h, scale = _scaled_size(width, height, 1920)
    if scale != 1.0:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), width=out_w, height=out_h)
    return reader


def track_positions(data: dict, frame_count: int, positions: int, following: int) -> list[int]:
    """``positions`` evenly spaced cached faces of the longest track whose ``following`` next frames exist."""
    longest = np.bincount(data["tracks"]).argmax()
    faces = [k for k in np.flatnonzero(data["tracks"] == longest) if data["frames"][k] + following < frame_count]
    return [faces[int(j)] for j in np.unique(np.linspace(0, len(faces) - 1, positions).round())] if faces else []


def video_cues(path: str, data: dict, marks68: np.ndarray, positions: int) -> dict[str, float] | None:
    reader = scaled_reader(path)
    faces = track_positions(data, len(reader), positions, 2)
    rows = []
    for k in faces:
        first = int(data["frames"][k])
        frames = reader.get_batch([first, first + 1, first + 2]).asnumpy()
        crops = [square_crop(f, data["boxes"][k], 0.3, 224) for f in frames]
        cues = position_cues(crops, marks68[k])
        if cues is not None:
            for name, shrink in (("flow residual (box)", 1.0), ("box 0.85", 0.85), ("box 0.7", 0.7)):
                box_cue = flow_residual(crops[0], crops[1], face_ellipse(data["boxes"][k], 0.3, shrink=shrink))
                cues[name] = np.nan if box_cue is None else box_cue
            rows.append(cues)
    if not rows:
        return None
    return {name: float(np.nanmedian([r[name] for r in rows])) for name in CUES}


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    ok = np.isfinite(scores)
    labels, scores = labels[ok], scores[ok]
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--out", default="runs/temporal_cues.csv")
    parser.add_argument("--from-csv", default=None)
    parser.add_argument("--combine", default=None)
    parser.add_argument("--cue", default="flow residual", help="the cue --combine adds")
    args = parser.parse_args()
    rows = read_cues(args.from_csv) if args.from_csv else measure(args)
    print_table(rows)
    if args.combine:
        print_combination(rows, args.combine.split(","), args.cue)


def read_cues(path: str) -> list[dict]:
    with open(path) as handle:
        return [{k: (v if k in ("path", "family", "dataset") else int(v) if k == "label" else float(v))
                 for k, v in row.items()} for row in csv.DictReader(handle)]


def measure(args: argparse.Namespace) -> list[dict]:
    cache = CropCache(args.cache_dir, CacheConfig(frames=32, crop_size=224))
    items = [i for f in VIDEOS for i in read_video_csv(f)][:args.limit]
    rows = []
    for n, item in enumerate(items):
        if not cache.video_file(item).is_file():
            continue
        with np.load(cache.video_file(item)) as npz:
            data = {k: npz[k] for k in ("frames", "tracks", "boxes")}
        try:
            cues = video_cues(str(item.path), data, cache.video_landmarks68(item), args.positions)
        except Exception as exc:  # an unreadable tail, say: the video is left out of the table
            print(f"skipped {item.path}: {exc}")
            continue
        if cues:
            rows.append({"path": str(item.path), "family": item.family, "label": item.label,
                         "dataset": item.dataset, **cues})
        if n % 20 == 0:
            print(f"{n + 1}/{len(items)}", flush=True)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} videos -> {args.out}")
    return rows


def print_table(rows: list[dict]) -> None:
    families = ("ffpp", "talking-head", "dfdc")
    print(f"{'cue':18s}" + "".join(f"{f:>14s}" for f in families) + f"{'ffpp c23':>10s}{'ffpp c40':>10s}")
    for name in CUES:
        line = f"{name:18s}"
        for family in families:
            sel = [r for r in rows if r["family"] == family]
            line += f"{auc(np.array([r['label'] for r in sel]), np.array([r[name] for r in sel])):14.3f}"
        for tag in ("c23", "c40"):
            sel = [r for r in rows if r["family"] == "ffpp" and tag in r["path"]]
            line += f"{auc(np.array([r['label'] for r in sel]), np.array([r[name] for r in sel])):10.3f}"
        print(line)


def robust_z(values: np.ndarray) -> np.ndarray:
    q1, median, q3 = np.nanpercentile(values, [25, 50, 75])
    return (values - median) / (q3 - q1 + 1e-9)


def print_combination(rows: list[dict], runs: list[str], cue_name: str = "flow residual") -> None:
    cues = {r["path"]: np.log(r[cue_name]) for r in rows if np.isfinite(r[cue_name])}
    print(f"network logit + w * log {cue_name} (robust z-scores over the family's videos)")
    for family in ("ffpp", "talking-head"):
        logits, labels, flow = {}, {}, {}
        for run in runs:
            with open(f"{run.format(family=family)}/{family}/predictions.csv") as handle:
                for row in csv.DictReader(handle):
                    if row["path"] in cues:
                        p = min(max(float(row["raw"]), 1e-6), 1 - 1e-6)
                        logits.setdefault(row["path"], []).append(np.log(p / (1 - p)))
                        labels[row["path"]], flow[row["path"]] = int(row["label"]), cues[row["path"]]
        paths = sorted(logits)
        y = np.array([labels[p] for p in paths])
        net = robust_z(np.array([np.mean(logits[p]) for p in paths]))
        cue = robust_z(np.array([flow[p] for p in paths]))
        print(f"{family:14s} {len(paths)} videos  " + "  ".join(f"w {w}: {auc(y, net + w * cue):.3f}"
                                                              for w in (0, 0.25, 0.5, 1.0)))


if __name__ == "__main__":
    main()
