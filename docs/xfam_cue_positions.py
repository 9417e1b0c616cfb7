"""The temporal cues read on more face pairs a video (thirty-fourth session): a shortcut to what
``cross_family --score-only --temporal-cue-positions P`` would score, from the crop cache, without re-scoring the members.

``flow``: every cached pool video read once as ``predict`` reads it with a next frame for each of its 32 sampled
frames (the cached faces placed on them, as ``train_temporal_cue``'s stored pairs), the flow cue
(:func:`~deepfake_kernel.pipeline.temporal.pairs_cue`) over the pairs of 8, 16 and 32 positions; at 8 it reproduces
the kept predictions' ``temporal_cue`` exactly. ``predictions``: a joined ``predictions.csv`` (``xfam_join_predictions``)
with that flow cue at P positions in place of the stored one: each row's logit rebuilt from its members' score
(``network_raw``) plus ``weight * (cue - reference)`` (the row's own weight; the reference the pool's median at P), its
``cue`` column saying ``positions=P``, so that ``cross_family --from-predictions --fit-calibration`` writes P into the
manifest. ``pairs``: each held-out family's AUC per pair (seed column) with the learned cue's fold scores added at
several weights, as ``--learned-cue-scores`` adds them. From the repository root:

    python docs/xfam_cue_positions.py flow --out runs/xfam/flow_cue_positions.csv
    python docs/xfam_cue_positions.py predictions --flow runs/xfam/flow_cue_positions.csv --positions 16 \\
        --joined runs/xfam/b4/predictions.csv --out runs/xfam/b4f16
    python docs/xfam_cue_positions.py pairs --predictions runs/xfam/b4f16/predictions.csv --weights 0.35,1,2 \\
        --scores runs/tcue/p16_ffpp_s0.csv,runs/tcue/p16_ffpp_s1.csv,...
"""
from __future__ import annotations

import argparse
import csv
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np

VIDEOS = ["../shared/data/videos.csv", "../shared/data/videos_extra.csv"]
POSITIONS = (8, 16, 32)


def flow(args) -> None:
    from deepfake_kernel.pipeline.faces import Track
    from deepfake_kernel.pipeline.temporal import cue_pairs, pairs_cue
    from deepfake_kernel.pipeline.video import VideoReadError, pair_positions
    from deepfake_kernel.training.data import CacheConfig, CropCache, cached_tracks, read_video_csv

    cache = CropCache(args.cache_dir, CacheConfig(frames=32, crop_size=224))
    reader = cache.config.reader.build("cpu")
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", *[f"p{p}" for p in POSITIONS]])
        for item in (i for v in VIDEOS for i in read_video_csv(v)):
            if not cache.video_file(item).is_file():
                continue
            try:
                batch = reader.read(item.path, 32, 32)
            except VideoReadError:
                writer.writerow([str(item.path), *[""] * len(POSITIONS)])
                continue
            where = {index: position for position, index in enumerate(batch.indices)}
            tracks = [Track(t.track_id, [replace(f, frame=where[f.frame]) for f in t.faces if f.frame in where])
                      for t in cached_tracks(cache, item)]
            tracks = [t for t in tracks if t.faces]
            values = []
            for positions in POSITIONS:
                kept = set(pair_positions(len(batch.frames), positions))
                following = {k: v for k, v in batch.next_frames.items() if k in kept}
                cue = pairs_cue(cue_pairs(batch.frames, following, tracks, 0.3), 0.3, 0.85)
                values.append("" if cue is None else f"{cue:.6f}")
            writer.writerow([str(item.path), *values])
    print(f"-> {args.out}")


def predictions(args) -> None:
    from deepfake_kernel.pipeline.ensemble import logit, sigmoid

    with open(args.flow, newline="") as handle:
        cue = {r["path"]: r[f"p{args.positions}"] for r in csv.DictReader(handle)}
    reference = statistics.median(float(v) for v in cue.values() if v)
    with open(args.joined, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if not row["cue"] or not row["network_raw"]:
            continue
        fields = dict(part.split("=", 1) for part in row["cue"].split(";"))
        value = cue.get(row["path"], "")
        score = logit(np.float64(row["network_raw"]))
        if value:
            score += float(fields["weight"]) * (float(value) - reference)
        raw = float(sigmoid(score))
        fields.update(positions=str(args.positions), reference=f"{reference:.4g}")
        row.update(raw=raw, score=float(np.clip(raw, 0.01, 0.99)), temporal_cue=value,
                   cue=";".join(f"{k}={v}" for k, v in fields.items()))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with open(Path(args.out) / "predictions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} rows, flow cue at {args.positions} positions (reference {reference:.4g}) -> {args.out}")


def pairs(args) -> None:
    from deepfake_kernel.evaluation.cross_family import add_learned_cue, read_predictions
    from deepfake_kernel.metrics import roc_auc

    base = read_predictions(Path(args.predictions))
    for weight in [float(w) for w in args.weights.split(",")]:
        rows, _ = add_learned_cue([dict(r) for r in base], args.scores.split(","), weight) if weight else (base, 0)
        line, means = [f"weight {weight:g}:"], []
        for family in ("ffpp", "talking-head", "dfdc"):
            aucs = []
            for seed in sorted({r["seed"] for r in rows if r["family"] == family}):
                chosen = [r for r in rows if r["family"] == family and r["seed"] == seed]
                aucs.append(roc_auc(np.array([r["label"] for r in chosen]), np.array([r["raw"] for r in chosen])))
            if family != "dfdc":
                means.append(np.mean(aucs))
            line.append(f"{family} " + " / ".join(f"{a:.3f}" for a in aucs) + f" = {np.mean(aucs):.3f}")
        print("  ".join(line) + f"  mean (ffpp, talking-head) {np.mean(means):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, run, options in (
            ("flow", flow, [("--out", {"required": True}), ("--cache-dir", {"default": "cache"})]),
            ("predictions", predictions, [("--flow", {"required": True}), ("--joined", {"required": True}),
                                          ("--positions", {"type": int, "choices": POSITIONS, "required": True}),
                                          ("--out", {"required": True})]),
            ("pairs", pairs, [("--predictions", {"required": True}),
                              ("--scores", {"required": True, "help": "the learned cue's fold scores, comma-separated"}),
                              ("--weights", {"default": "0,0.35,1,2"})])):
        command = commands.add_parser(name)
        command.set_defaults(run=run)
        for flag, settings in options:
            command.add_argument(flag, **settings)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
