"""Exploration (twenty-fifth session): video-score rules and mirrored crops (flip test-time augmentation) on the
shipped scoring — seed pairs, the test set's BatchNorm statistics, bystanders dropped, the temporal cue on top.

``faces``: each single-seed fold's weights score every cached face of the family it held out (the faces predict
would score: ``cross_family.cached_tracks``), as is and mirrored, after re-estimating BatchNorm statistics on that
family's crops as ``cross_family --test-set-norm-blocks 4`` does; written to ``OUT/faces_<family>_s<seed>.npz``.
``report``: a pair's face probability is the mean of its two seeds' (predict's ensemble), each rule turns a track's
faces into a track score (then the maximum over tracks), the pair's temporal-cue term (from its predictions.csv) is
added to the video's logit, and the video AUC is printed per rule and pair; the plain mean reproduces the pair's
``network_raw`` (checked). ``frames``: predict's rule on every 2nd / 4th of the 32 cached frames (16 / 8 frames a
video), what fewer decoded frames would give; ``subsets``: how much *which* 16 or 8 frames are kept moves it (every
offset, random sets). From the repository root:

    python docs/xfam_face_rules.py faces --out runs/xfam/face_rules
    python docs/xfam_face_rules.py report --out runs/xfam/face_rules
    python docs/xfam_face_rules.py frames --out runs/xfam/face_rules
    python docs/xfam_face_rules.py subsets --out runs/xfam/face_rules
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from deepfake_kernel import metrics
from deepfake_kernel.evaluation.cross_family import cached_tracks, test_set_crops
from deepfake_kernel.pipeline.detector import Detector
from deepfake_kernel.pipeline.ensemble import logit, sigmoid
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv

VIDEOS = ("../shared/data/videos.csv", "../shared/data/videos_extra.csv")
FAMILIES = ("ffpp", "talking-head")
SEED_RUNS = {0: "sbi12ftsn4", 1: "sbi12s1ftsn4", 2: "sbi12s2ftsn4", 3: "sbi12s3ftsn4"}
PAIRS = {0: (0, 1, "runs/xfam/byst4/seed_0/ffpp", "runs/xfam/cue3pairs/seed_0/talking-head"),
         1: (1, 2, "runs/xfam/byst4/seed_1/ffpp", "runs/xfam/cue3pairs/seed_1/talking-head"),
         2: (2, 3, "runs/xfam/byst4/seed_2/ffpp", "runs/xfam/cue4pairs/seed_2/talking-head"),
         3: (3, 0, "runs/xfam/byst4/seed_3/ffpp", "runs/xfam/cue4pairs/seed_3/talking-head")}


def trimmed(p: np.ndarray, share: float = 0.2) -> float:
    cut = int(len(p) * share)
    return float(np.sort(p)[cut:len(p) - cut].mean()) if len(p) > 2 * cut else float(p.mean())


RULES = {
    "mean probability (predict)": np.mean,
    "mean logit": lambda p: float(sigmoid(logit(p).mean())),
    "median": np.median,
    "trimmed mean (20 % each end)": trimmed,
    "top half mean": lambda p: float(np.sort(p)[len(p) // 2:].mean()),
}


def faces(out: Path, cache: CropCache) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for family in FAMILIES:
        items = [i for f in VIDEOS for i in read_video_csv(f) if i.family == family]
        items = [i for i in items if cache.video_file(i).is_file()]
        for seed, run in SEED_RUNS.items():
            target = out / f"faces_{family}_s{seed}.npz"
            if target.is_file():
                continue
            detector = Detector.from_weights(f"runs/xfam/{run}_{family}/{family}/weights", device="cpu")
            member = detector.members[detector.member_names[0]]
            member.adapt_batchnorm(test_set_crops(cache, items), 4)
            paths, video, track, plain, mirrored = [], [], [], [], []
            for index, item in enumerate(items):
                for t in cached_tracks(cache, item):
                    crops = t.crops()
                    plain.append(member.predict_proba(crops))
                    mirrored.append(member.predict_proba(np.ascontiguousarray(crops[:, :, ::-1])))
                    video += [index] * len(crops)
                    track += [t.track_id] * len(crops)
                paths.append(str(item.path))
            np.savez(target, paths=np.array(paths), video=np.array(video), track=np.array(track),
                     plain=np.concatenate(plain), mirrored=np.concatenate(mirrored))
            print(f"{target}: {len(video)} faces of {len(paths)} videos")


def video_scores(probs: np.ndarray, video: np.ndarray, track: np.ndarray, rule) -> np.ndarray:
    out = np.zeros(video.max() + 1)
    for v in np.unique(video):
        inside = video == v
        out[v] = max(rule(probs[inside & (track == t)]) for t in np.unique(track[inside]))
    return out


def pair_view(out: Path, family: str, a: int, b: int, run: str):
    """The pair's face arrays (seeds ``a``, ``b``), and per video its label, ``network_raw`` and cue term."""
    first, second = (np.load(out / f"faces_{family}_s{s}.npz") for s in (a, b))
    assert (first["video"] == second["video"]).all()
    rows = {r["path"]: r for r in csv.DictReader(open(Path(run) / "predictions.csv"))}
    order = [rows[p] for p in first["paths"]]
    labels = np.array([int(r["label"]) for r in order])
    network = np.array([float(r["network_raw"]) for r in order])
    cue_term = logit(np.array([float(r["raw"]) for r in order])) - logit(network)
    return first, second, labels, network, cue_term


def face_frames(paths: np.ndarray, cache: CropCache) -> np.ndarray:
    """Each scored face's position among its video's cached frames (0 .. 31: the rank of its source frame among
    those the video's faces were cut from), in the order ``faces`` scored them."""
    items = {str(i.path): i for f in VIDEOS for i in read_video_csv(f)}
    out = []
    for p in paths:
        source = np.array([face.frame for t in cached_tracks(cache, items[str(p)]) for face in t.faces])
        out.append(np.searchsorted(np.unique(source), source))  # source frame numbers → positions
    return np.concatenate(out)


def frames(out: Path, cache: CropCache) -> None:
    results: dict[tuple[str, int, str], list[float]] = {}
    for pair, (a, b, ffpp_run, head_run) in PAIRS.items():
        for family, run in zip(FAMILIES, (ffpp_run, head_run)):
            first, second, labels, network, cue_term = pair_view(out, family, a, b, run)
            probs, position = (first["plain"] + second["plain"]) / 2, face_frames(first["paths"], cache)
            assert len(position) == len(probs)
            for step in (1, 2, 4):
                keep = position % step == 0
                score = video_scores(probs[keep], first["video"][keep], first["track"][keep], np.mean)
                for cue in ("network", "with the cue"):
                    value = logit(score) + (cue_term if cue == "with the cue" else 0)
                    results.setdefault((family, step, cue), []).append(metrics.roc_auc(labels, value))
    print("| family | frames a video | network alone, pairs 0+1 / 1+2 / 2+3 / 3+0 (mean) | with the cue (mean) |")
    print("|---|---|---|---|")
    for family in FAMILIES:
        for step in (1, 2, 4):
            alone, cued = results[(family, step, "network")], results[(family, step, "with the cue")]
            print(f"| {family} | {32 // step} | {' / '.join(f'{x:.3f}' for x in alone)} ({np.mean(alone):.3f}) "
                  f"| {' / '.join(f'{x:.3f}' for x in cued)} ({np.mean(cued):.3f}) |")


def subsets(out: Path, cache: CropCache, draws: int = 40) -> None:
    """How much the pairs' AUC (with the cue) moves with *which* frames are kept: every offset of every 2nd / 4th of
    the 32 positions, and ``draws`` random sets of 16 / 8; the mean over pairs per set, summarised."""
    rng = np.random.default_rng(0)
    for family in FAMILIES:
        results: dict[str, list[list[float]]] = {}
        for pair, (a, b, ffpp_run, head_run) in PAIRS.items():
            first, second, labels, network, cue_term = pair_view(out, family, a, b,
                                                                 ffpp_run if family == "ffpp" else head_run)
            probs, position = (first["plain"] + second["plain"]) / 2, face_frames(first["paths"], cache)

            def auc_of(kept: np.ndarray) -> float:
                keep = np.isin(position, kept)
                keep |= ~np.isin(first["video"], first["video"][keep])  # a video left without faces keeps them all
                score = video_scores(probs[keep], first["video"][keep], first["track"][keep], np.mean)
                return metrics.roc_auc(labels, logit(score) + cue_term)

            for n, step in ((16, 2), (8, 4)):
                results.setdefault(f"{n}: every {step}th, each offset", []).append(
                    [auc_of(np.arange(o, 32, step)) for o in range(step)])
                results.setdefault(f"{n}: random sets", []).append(
                    [auc_of(rng.choice(32, n, replace=False)) for _ in range(draws)])
        for name, per_pair in results.items():
            means = np.mean(per_pair, axis=0)
            print(f"{family:13s} {name:28s} min {means.min():.3f}  median {np.median(means):.3f}  max {means.max():.3f}")


def report(out: Path) -> None:
    results: dict[tuple[str, str, str], list[float]] = {}
    for pair, (a, b, ffpp_run, head_run) in PAIRS.items():
        for family, run in zip(FAMILIES, (ffpp_run, head_run)):
            first, second, labels, network, cue_term = pair_view(out, family, a, b, run)
            views = {"plain": (first["plain"] + second["plain"]) / 2,
                     "mirrored": (first["mirrored"] + second["mirrored"]) / 2}
            views["plain + mirrored"] = (views["plain"] + views["mirrored"]) / 2
            for view, probs in views.items():
                for name, rule in RULES.items():
                    score = video_scores(probs, first["video"], first["track"], rule)
                    if view == "plain" and name.endswith("(predict)"):
                        gap = np.abs(score - network).max()
                        assert gap < 1e-3, f"pair {pair} {family}: predict's rule differs from network_raw by {gap}"
                    for cue in ("network", "with the cue"):
                        value = logit(score) + (cue_term if cue == "with the cue" else 0)
                        results.setdefault((family, view, name, cue), []).append(metrics.roc_auc(labels, value))
    print("| family | crops | rule | network alone, pairs 0+1 / 1+2 / 2+3 / 3+0 (mean) | with the cue (mean) |")
    print("|---|---|---|---|---|")
    for family in FAMILIES:
        for view in ("plain", "mirrored", "plain + mirrored"):
            for name in RULES:
                alone, cued = results[(family, view, name, "network")], results[(family, view, name, "with the cue")]
                print(f"| {family} | {view} | {name} | {' / '.join(f'{x:.3f}' for x in alone)} ({np.mean(alone):.3f}) "
                      f"| {' / '.join(f'{x:.3f}' for x in cued)} ({np.mean(cued):.3f}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("faces", "report", "frames", "subsets"))
    parser.add_argument("--out", default="runs/xfam/face_rules")
    parser.add_argument("--cache-dir", default="cache")
    args = parser.parse_args()
    cache = CropCache(args.cache_dir, CacheConfig(frames=32, crop_size=224))
    if args.command == "faces":
        faces(Path(args.out), cache)
    elif args.command == "frames":
        frames(Path(args.out), cache)
    elif args.command == "subsets":
        subsets(Path(args.out), cache)
    else:
        report(Path(args.out))


if __name__ == "__main__":
    main()
