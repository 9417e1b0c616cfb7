"""Exploration (twenty-fourth session): does the *network's own* reading of a face flicker between consecutive frames?

The shipped temporal cue measures, in pixels, what optical flow leaves of a face's change from frame ``i`` to
``i + 1``. This asks the same of the detector: at the positions where ``predict`` already decodes the next frame
(8 evenly spaced faces of the main track), frames ``i`` and ``i + 1`` are cut with the same box and both go through
a fold's members (its weights, the held-out family's BatchNorm statistics as ``cross_family --test-set-norm-blocks
4`` sets them). Per video and member pair:

* ``logit flicker`` = median over positions of |logit(i + 1) − logit(i)| (members' mean logit);
* ``feature flicker`` = median over positions of the cosine distance between the two frames' pooled features,
  over the median distance between neighbouring positions' features (change within a frame step against change
  over ~1/8 of the clip: motion-independent).

Printed: each feature's video AUC within each family and seed pair, and the AUC of the pair's shipped logit
(members plus the temporal cue) plus w times the feature's robust z-score scaled to that logit's interquartile range.
Run from the repository root (crops first, 3 min here; then scoring, about 1 min a fold weight set):

    python docs/xfam_network_flicker.py crops
    python docs/xfam_network_flicker.py score --out runs/xfam/flicker.csv
    python docs/xfam_network_flicker.py report --scores runs/xfam/flicker.csv --pairs runs/xfam/fit4_cue

``light`` (4 min), ``every-track`` (5 min), then ``light-report`` compare, for single seeds (the light preset's one
member), 16 of the 32 cached frames against 8 positions of the main track alone or with their next frames, and 8
frames with their next frames on every track, each with and without the cue; ``light-predictions`` writes them in
``cross_family``'s format for its calibration fit.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path

import numpy as np

from deepfake_kernel.pipeline.ensemble import logit, sigmoid
from deepfake_kernel.pipeline.temporal import TemporalCue
from deepfake_kernel.pipeline.faces import square_crop
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv
from xfam_temporal_cues import auc, robust_z, scaled_reader, track_positions  # beside this script in docs/

VIDEOS = ("../shared/data/videos.csv", "../shared/data/videos_extra.csv")
CUE_WEIGHT, CUE_REFERENCE = 2.5, -0.666  # the shipped temporal cue (weights/manifest.json): logit += w (cue - ref)
PAIRS_DIR = Path("runs/xfam/flicker_crops")
FOLD_WEIGHTS = {  # held-out fold -> seed -> fold weights (this machine's runs)
    "ffpp": {0: "runs/xfam/sbi12ftsn4_ffpp/ffpp/weights", 1: "runs/xfam/sbi12s1ftsn4_ffpp/ffpp/weights",
             2: "runs/xfam/sbi12s2ftsn4_ffpp/ffpp/weights", 3: "runs/xfam/sbi12s3ftsn4_ffpp/ffpp/weights"},
    "talking-head": {s: f"runs/xfam/sbi12{p}ftsn4_talking-head/talking-head/weights"
                     for s, p in ((0, ""), (1, "s1"), (2, "s2"), (3, "s3"))},
    "dfdc+deeperforensics": {s: f"runs/xfam/sbi12s{s}ftsn4_dfdc+deeperforensics/dfdc+deeperforensics/weights"
                             for s in (0, 1, 2)},
}


def write_csv(path: str, rows: list[dict], fields: list[str] | None = None) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def fold_of(family: str) -> str:
    return "dfdc+deeperforensics" if family in ("dfdc", "deeperforensics") else family


def items_and_cache():
    cache = CropCache("cache", CacheConfig(frames=32, crop_size=224))
    items = [i for f in VIDEOS for i in read_video_csv(f) if cache.video_file(i).is_file()]
    return items, cache


def cut_pairs(path: str, data: dict, positions: int = 8) -> tuple[np.ndarray, np.ndarray] | None:
    """Crops of frames i and i + 1 at ``positions`` evenly spaced faces of the longest cached track."""
    reader = scaled_reader(path)
    faces = track_positions(data, len(reader), positions, 1)
    if not faces:
        return None
    wanted = sorted({int(data["frames"][k]) + d for k in faces for d in (0, 1)})
    decoded = dict(zip(wanted, reader.get_batch(wanted).asnumpy()))
    first = np.stack([square_crop(decoded[int(data["frames"][k])], data["boxes"][k], 0.3, 224) for k in faces])
    second = np.stack([square_crop(decoded[int(data["frames"][k]) + 1], data["boxes"][k], 0.3, 224) for k in faces])
    return first, second


def write_pairs(items, cache, directory: Path, positions: int = 8) -> None:
    """:func:`cut_pairs` of every item not yet in ``directory`` (one ``KEY.npz`` each: ``first``, ``second``)."""
    directory.mkdir(parents=True, exist_ok=True)
    for n, item in enumerate(items):
        target = directory / f"{item.key}.npz"
        if target.is_file():
            continue
        with np.load(cache.video_file(item)) as npz:
            data = {k: npz[k] for k in ("frames", "tracks", "boxes")}
        try:
            pair = cut_pairs(str(item.path), data, positions)
        except Exception as exc:  # an unreadable tail: the video is left out
            print(f"skipped {item.path}: {exc}")
            continue
        if pair is not None:
            np.savez(target, first=pair[0], second=pair[1])
        if n % 20 == 0:
            print(f"{n + 1}/{len(items)}", flush=True)


def stored_pairs(item, directory: Path = PAIRS_DIR) -> tuple[np.ndarray, np.ndarray] | None:
    """(first, second) crops of ``item`` written by :func:`write_pairs`, or ``None``."""
    path = directory / f"{item.key}.npz"
    if not path.is_file():
        return None
    with np.load(path) as npz:
        return npz["first"], npz["second"]


def crops(args) -> None:
    write_pairs(*items_and_cache(), PAIRS_DIR)


def pooled_and_logits(member, crops_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    images = member.preprocess(crops_)
    with torch.inference_mode():
        features = member.network.forward_features(images)
        pooled = member.network.forward_head(features, pre_logits=True)
        logits = member.network.forward_head(features)
    return pooled.float().numpy(), logits.float().reshape(-1).numpy()


def score(args) -> None:
    import torch

    from deepfake_kernel.evaluation.cross_family import test_set_crops
    from deepfake_kernel.pipeline.detector import Detector

    torch.set_num_threads(args.threads)
    items, cache = items_and_cache()
    rows = []
    for fold, seeds in FOLD_WEIGHTS.items():
        held = [i for i in items if fold_of(i.family) == fold]
        for seed, weights in seeds.items():
            detector = Detector.from_weights(weights, device="cpu")
            sample = test_set_crops(cache, held)
            for member in detector.members.values():
                member.adapt_batchnorm(sample, 4)
                member.eval()
            for item in held:
                pairs = stored_pairs(item)
                if pairs is None:
                    continue
                first, second = pairs
                row = {"path": item.path, "family": item.family, "label": item.label, "seed": seed,
                       "positions": len(first)}
                for name, member in detector.members.items():
                    pooled_a, logit_a = pooled_and_logits(member, first)
                    pooled_b, logit_b = pooled_and_logits(member, second)
                    row[f"logit_a_{name}"] = ";".join(f"{v:.5f}" for v in logit_a)
                    row[f"logit_b_{name}"] = ";".join(f"{v:.5f}" for v in logit_b)
                    unit_a = pooled_a / (np.linalg.norm(pooled_a, axis=1, keepdims=True) + 1e-9)
                    unit_b = pooled_b / (np.linalg.norm(pooled_b, axis=1, keepdims=True) + 1e-9)
                    step = 1 - (unit_a * unit_b).sum(1)
                    across = 1 - (unit_a[1:] * unit_a[:-1]).sum(1) if len(unit_a) > 1 else np.array([np.nan])
                    row[f"step_{name}"] = ";".join(f"{v:.6f}" for v in step)
                    row[f"across_{name}"] = ";".join(f"{v:.6f}" for v in across)
                rows.append(row)
            detector.close()
            print(f"{fold} seed {seed}: {len(held)} videos", flush=True)
    write_csv(args.out, rows, sorted({k for r in rows for k in r},
                                     key=lambda k: (k not in ("path", "family", "label", "seed"), k)))
    print(f"{len(rows)} rows -> {args.out}")


def score_single_seeds(folds, tracks_of, out: str, threads: int) -> None:
    """Each fold's single-seed weights (the test set's statistics as in ``score``) on ``tracks_of(cache, item)`` of
    its held-out videos, predict's aggregation; one row per video and seed in ``out``."""
    import torch

    from deepfake_kernel.evaluation.cross_family import test_set_crops
    from deepfake_kernel.pipeline.detector import Detector

    torch.set_num_threads(threads)
    items, cache = items_and_cache()
    rows = []
    for fold in folds:
        held = [i for i in items if fold_of(i.family) == fold]
        for seed, weights in FOLD_WEIGHTS[fold].items():
            detector = Detector.from_weights(weights, device="cpu")
            sample = test_set_crops(cache, held)
            for member in detector.members.values():
                member.adapt_batchnorm(sample, 4)
            for item in held:
                tracks = tracks_of(cache, item)
                raw = detector.score_tracks(tracks, detector.member_names)[0] if tracks else 0.5
                rows.append({"path": item.path, "family": item.family, "label": item.label, "seed": seed, "raw": raw})
            detector.close()
            print(f"{fold} seed {seed}", flush=True)
    write_csv(out, rows)


def light(args) -> None:
    """The light preset's view for ``light-report``: each single seed's member on 16 of the 32 cached frames (every
    other sampled frame, every track, predict's aggregation)."""
    from deepfake_kernel.evaluation.cross_family import cached_tracks

    def half_of_the_frames(cache, item):
        tracks = cached_tracks(cache, item)
        kept = set(sorted({f.frame for t in tracks for f in t.faces})[::2])
        tracks = [dataclasses.replace(t, faces=[f for f in t.faces if f.frame in kept]) for t in tracks]
        return [t for t in tracks if t.faces]

    score_single_seeds(FOLD_WEIGHTS, half_of_the_frames, args.out, args.threads)


def every_track(args) -> None:
    """The paired reading on every track, as a build would score it: 8 evenly spaced frames of the 32 cached (every
    4th), frames f and f + 1 decoded, every cached face on f cut from both with its box; the members score all of them
    (test set's statistics as in ``score``); mean per track, max over tracks. Writes ``--out`` for ``light-report``."""
    from deepfake_kernel.evaluation.cross_family import cached_tracks

    items, cache = items_and_cache()
    paired: dict[str, list] = {}
    for item in items:
        if fold_of(item.family) not in ("ffpp", "talking-head"):
            continue
        tracks = cached_tracks(cache, item)
        frames = sorted({f.frame for t in tracks for f in t.faces})
        chosen = set(frames[::4][:8])
        try:
            reader = scaled_reader(str(item.path))
            wanted = sorted({f + d for f in chosen for d in (0, 1) if f + d < len(reader)})
            decoded = dict(zip(wanted, reader.get_batch(wanted).asnumpy()))
        except Exception as exc:  # an unreadable tail: left out
            print(f"skipped {item.path}: {exc}")
            continue
        out = []
        for track in tracks:
            faces = []
            for face in track.faces:
                if face.frame in chosen and face.frame + 1 in decoded:
                    for frame in (face.frame, face.frame + 1):
                        faces.append(dataclasses.replace(face, crop=square_crop(decoded[frame], face.box, 0.3, 224)))
            if faces:
                out.append(dataclasses.replace(track, faces=faces))
        paired[item.path] = out
    score_single_seeds(("ffpp", "talking-head"), lambda cache, item: paired.get(item.path) or [], args.out,
                       args.threads)


def light_report(args) -> None:
    """Single seeds (one member, the light preset's set): 16 frames of every track (``light``), 32 frames (the
    fold's predictions), 8 positions of the main track with and without their next frames, each with the cue."""
    flicker = list(csv.DictReader(open(args.scores)))
    cues = {r["path"]: float(r["temporal_cue"]) for r in csv.DictReader(open(f"{args.pairs}/predictions.csv"))
            if r["temporal_cue"]}
    sixteen = {(r["path"], int(r["seed"])): float(r["raw"]) for r in csv.DictReader(open(args.light))}
    every = ({(r["path"], int(r["seed"])): float(r["raw"]) for r in csv.DictReader(open(args.every_track))}
             if Path(args.every_track).is_file() else {})
    runs = {"ffpp": "runs/xfam/sbi12{}ftsn4_ffpp/ffpp", "talking-head": "runs/xfam/sbi12{}ftsn4_talking-head/talking-head"}
    for family, pattern in runs.items():
        table: dict[str, list[float]] = {}
        for seed, tag in ((0, ""), (1, "s1"), (2, "s2"), (3, "s3")):
            full = {r["path"]: float(r["raw"]) for r in csv.DictReader(open(f"{pattern.format(tag)}/predictions.csv"))
                    if not r.get("reason")}
            rows = [r for r in flicker if r["family"] == family and int(r["seed"]) == seed and r["path"] in full]
            y = np.array([int(r["label"]) for r in rows])
            term = CUE_WEIGHT * (np.array([cues.get(r["path"], CUE_REFERENCE) for r in rows]) - CUE_REFERENCE)
            first = [sigmoid(floats(r["logit_a_efficientnet_lite0"])) for r in rows]
            second = [sigmoid(floats(r["logit_b_efficientnet_lite0"])) for r in rows]
            views = {"16 frames, every track (light now)": logit([sixteen[(r["path"], seed)] for r in rows]),
                     "32 frames, every track": logit([full[r["path"]] for r in rows]),
                     "8 positions of the main track": logit([a.mean() for a in first]),
                     "8 positions x 2 consecutive frames": logit([np.r_[a, b].mean() for a, b in zip(first, second)])}
            if every:
                views["8 frames x 2, every track"] = logit([every[(r["path"], seed)] for r in rows])
            for name, z in views.items():
                table.setdefault(name, []).append(auc(y, z))
                table.setdefault(name + " + cue", []).append(auc(y, z + term))
        for name, values in table.items():
            print(f"{family:13s} {name:46s} {np.mean(values):.3f}  ({' '.join(f'{v:.3f}' for v in values)})")


def light_predictions(args) -> None:
    """``cross_family``-style predictions of single seeds, one folder per view (16 frames, with or without the cue;
    8 positions × their next frames with the cue), rows and folds as in ``--pairs``, for
    ``cross_family --out DIR --from-predictions --fit-calibration --test-set-center``."""
    flicker = {(r["path"], int(r["seed"])): r for r in csv.DictReader(open(args.scores))}
    sixteen = {(r["path"], int(r["seed"])): float(r["raw"]) for r in csv.DictReader(open(args.light))}
    template = list(csv.DictReader(open(f"{args.pairs}/predictions.csv")))
    for view in ("16", "16cue", "8x2cue"):
        rows = []
        for row in template:
            key = (row["path"], int(row["seed"]))
            if key not in sixteen or key not in flicker or row.get("reason"):
                continue
            if view.startswith("16"):
                network = sixteen[key]
            else:
                pair = flicker[key]
                network = float(np.mean(np.r_[sigmoid(floats(pair["logit_a_efficientnet_lite0"])),
                                              sigmoid(floats(pair["logit_b_efficientnet_lite0"]))]))
            network = min(max(network, 1e-6), 1 - 1e-6)
            out = dict(row, network_raw=network, members=f"efficientnet_lite0={network:.6f}")
            if view == "8x2cue":  # the light preset's paired reading: its fit is stored with a paired cue
                out["cue"] = dataclasses.replace(TemporalCue.parse(row["cue"]), paired=True).describe()
            if view.endswith("cue") and row["temporal_cue"]:
                out["raw"] = float(sigmoid(logit(network) + CUE_WEIGHT * (float(row["temporal_cue"]) - CUE_REFERENCE)))
            else:
                out.update(raw=network, temporal_cue="", cue="" if not view.endswith("cue") else out["cue"])
            out["score"] = min(max(out["raw"], 0.01), 0.99)
            rows.append(out)
        folder = Path(f"{args.out_prefix}_{view}")
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(str(folder / "predictions.csv"), rows, list(template[0]))
        print(f"{len(rows)} rows -> {folder}/predictions.csv")


PAIR_SEEDS = {"ffpp": {0: (0, 1), 1: (1, 2), 2: (2, 3), 3: (3, 0)},
              "talking-head": {0: (0, 1), 1: (1, 2), 2: (2, 3), 3: (3, 0)},
              "dfdc+deeperforensics": {0: (0, 1), 1: (1, 2), 2: (2, 0)}}


def floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split(";")]) if text else np.zeros(0)


def pair_features(per_seed: dict[int, dict], seeds: tuple[int, int]) -> dict[str, float]:
    """A seed pair's features for one video: logits averaged over the pair's members per frame, then the flicker."""
    logits_a = np.mean([per_seed[s]["a"] for s in seeds], axis=0)
    logits_b = np.mean([per_seed[s]["b"] for s in seeds], axis=0)
    ratio = [np.median(per_seed[s]["step"]) / (np.nanmedian(per_seed[s]["across"]) + 1e-9) for s in seeds]
    return {"logit flicker": float(np.median(np.abs(logits_b - logits_a))),
            "logit flicker / spread": float(np.median(np.abs(logits_b - logits_a)) / (np.std(logits_a) + 0.05)),
            "feature flicker": float(np.mean(ratio)),
            "feature step": float(np.mean([np.median(per_seed[s]["step"]) for s in seeds]))}


def report(args) -> None:
    per_video: dict[str, dict[int, dict]] = {}
    labels, families = {}, {}
    with open(args.scores) as handle:
        for row in csv.DictReader(handle):
            members = sorted(k[len("logit_a_"):] for k in row if k.startswith("logit_a_") and row[k])
            entry = {"a": np.mean([floats(row[f"logit_a_{m}"]) for m in members], axis=0),
                     "b": np.mean([floats(row[f"logit_b_{m}"]) for m in members], axis=0),
                     "step": np.concatenate([floats(row[f"step_{m}"]) for m in members]),
                     "across": np.concatenate([floats(row[f"across_{m}"]) for m in members])}
            per_video.setdefault(row["path"], {})[int(row["seed"])] = entry
            labels[row["path"]], families[row["path"]] = int(row["label"]), row["family"]
    with open(f"{args.pairs}/predictions.csv") as handle:
        scored = list(csv.DictReader(handle))
    names = ("logit flicker", "logit flicker / spread", "feature flicker", "feature step")
    print("AUC of each feature alone, per family and seed pair (mean over pairs)")
    results: dict[tuple, list] = {}
    for family in ("ffpp", "talking-head", "dfdc"):
        fold = fold_of(family)
        for pair, seeds in PAIR_SEEDS[fold].items():
            rows = [r for r in scored if r["family"] == family and int(r["seed"]) == pair and r["path"] in per_video
                    and all(s in per_video[r["path"]] for s in seeds)]
            y = np.array([int(r["label"]) for r in rows])
            feats = {n: np.array([pair_features(per_video[r["path"]], seeds)[n] for r in rows]) for n in names}
            network = logit([float(r["network_raw"]) for r in rows])
            cue = np.array([float(r["temporal_cue"]) if r["temporal_cue"] else np.nan for r in rows])
            shipped = network + CUE_WEIGHT * (np.nan_to_num(cue, nan=CUE_REFERENCE) - CUE_REFERENCE)
            results.setdefault((family, "network"), []).append(auc(y, network))
            results.setdefault((family, "shipped (network + cue)"), []).append(auc(y, shipped))
            for n in names:
                results.setdefault((family, n), []).append(auc(y, feats[n]))
                scale = np.subtract(*np.nanpercentile(shipped, [75, 25]))
                for w in (0.25, 0.5, 1.0):
                    combined = shipped + w * scale * robust_z(feats[n])
                    results.setdefault((family, f"shipped + {w} z({n})"), []).append(auc(y, combined))
    for (family, name), values in results.items():
        print(f"{family:13s} {name:42s} {np.nanmean(values):.3f}  ({' '.join(f'{v:.3f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("crops")
    for name, out in (("score", "runs/xfam/flicker.csv"), ("light", "runs/xfam/light16.csv"),
                      ("every-track", "runs/xfam/light8x2_every_track.csv")):
        scoring = sub.add_parser(name)
        scoring.add_argument("--out", default=out)
        scoring.add_argument("--threads", type=int, default=2)
    for name in ("report", "light-report"):
        reporting = sub.add_parser(name)
        reporting.add_argument("--scores", default="runs/xfam/flicker.csv")
        reporting.add_argument("--pairs", default="runs/xfam/fit4_cue")
        reporting.add_argument("--light", default="runs/xfam/light16.csv", help="light-report only")
        reporting.add_argument("--every-track", default="runs/xfam/light8x2_every_track.csv", help="light-report only")
    writing = sub.add_parser("light-predictions")
    writing.add_argument("--scores", default="runs/xfam/flicker.csv")
    writing.add_argument("--pairs", default="runs/xfam/fit4_cue")
    writing.add_argument("--light", default="runs/xfam/light16.csv")
    writing.add_argument("--out-prefix", default="runs/xfam/light")
    args = parser.parse_args()
    {"crops": crops, "score": score, "report": report, "light": light, "light-report": light_report,
     "light-predictions": light_predictions, "every-track": every_track}[args.command](args)


if __name__ == "__main__":
    main()
