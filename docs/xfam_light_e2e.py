"""The light preset end to end, out of family, as a user runs it: each fold's member (one seed, trained without the
family) is put in a copy of the shipped manifest, so the light preset's own calibration and paired cues apply, then
``predict --preset light`` runs on a folder of links to the held-out family's videos (its own detection at 640 px
every 4th frame, test-set statistics, centring and clip). Prints each family's AUC (raw score) and log loss (the
submitted label). From the repository root, after the fold commands of the README ("Accuracy on sources it never
saw"), e.g.:
    python docs/xfam_light_e2e.py "runs/xfam/sbi12ft_{fold}" runs/light_e2e_cue ffpp,talking-head \
        --cue-work-dir ffpp=runs/tcue/work_ep18c_ffpp_s0 --cue-work-dir talking-head=runs/tcue/work_ep18c_talking-head_s0
(docs/cross_family.md, thirty-sixth and thirty-seventh sessions). The light preset's cue reads a learned-cue network
(``temporal_residual``) since the thirty-seventh session; the shipped one was trained on every family, so each fold
needs its own, ``--cue-work-dir FOLD=DIR`` (a ``train_temporal_cue --hold-out-family`` run's ``--work-dir``): it
replaces the shipped network, and the light cue names it at weight 0 (each video's learned cue is computed on the
light preset's own pairs and recorded in ``details.csv``, its score not moved) or, with ``--as-shipped``, at the
shipped weight and reference (the submission is then the light preset as shipped, on the fold's networks; no
``--predictions`` then). ``--predictions DIR`` writes every fold's rows in ``cross_family``'s predictions format
(``DIR/predictions.csv``, ``raw`` without the learned cue's term) and the learned cue per fold as
``train_temporal_cue``'s scores (``DIR/cue_FOLD.csv``), so ``cross_family --from-predictions --fit-calibration
--calibrate-member-set --learned-cue-scores ...`` fits the light preset's calibration on them.
"""
import argparse
import csv
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from deepfake_kernel.metrics import log_loss, roc_auc
from deepfake_kernel.training.data import read_video_csv

VIDEOS = ("../shared/data/videos.csv", "../shared/data/videos_extra.csv")
FAMILIES = {"ffpp": ("ffpp",), "talking-head": ("talking-head",), "dfdc+deeperforensics": ("dfdc", "deeperforensics")}


def fold_weights(run: str, fold: str, seed: str) -> Path:
    """The fold's weights in a cross_family run; where the run holds several seeds, ``seed_SEED``'s."""
    found = [Path(p).parent for p in glob.glob(f"{run}/**/{fold}/weights/manifest.json", recursive=True)]
    if len(found) > 1:
        found = [p for p in found if f"seed_{seed}" in p.parts]
    if len(found) != 1:
        raise SystemExit(f"{run}: expected one {fold}/weights (of seed {seed}), found {found}")
    return found[0]


def light_weights(fold_dir: Path, out: Path, cue_work_dir: str | None = None, as_shipped: bool = False) -> Path:
    shipped = json.loads(Path("weights/manifest.json").read_text())
    if not cue_work_dir and shipped["calibration_by_members"]["efficientnet_lite0"]["temporal_cue"].get("networks"):
        raise SystemExit(f"{fold_dir}: the shipped light cue reads a learned-cue network trained on every family; "
                         f"give the fold's own with --cue-work-dir FOLD=DIR")
    fold = json.loads((fold_dir / "manifest.json").read_text())
    member = next(m for m in fold["members"] if m["name"] == "efficientnet_lite0")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copy(fold_dir / member["file"], out / member["file"])
    keep = dict(next(m for m in shipped["members"] if m["name"] == "efficientnet_lite0"))
    keep.update(file=member["file"], sha256=member["sha256"], storage_dtype=member.get("storage_dtype", keep["storage_dtype"]))
    cue_networks = [m for m in shipped["members"] if m["name"].startswith("temporal_residual")]
    for m in cue_networks:
        shutil.copy(Path("weights") / m["file"], out / m["file"])
    manifest = dict(shipped, members=[keep] + cue_networks)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if cue_work_dir:  # the fold's own learned-cue network, named by the light preset's cue at weight 0
        import torch

        from deepfake_kernel.detectors import create_model
        from deepfake_kernel.detectors.weights import export_member

        network = create_model("temporal_residual_lite0")
        state = torch.load(Path(cue_work_dir) / "last.pt", map_location="cpu", weights_only=False)
        network.network.load_state_dict(state["network"])
        network.eval()
        export_member(network, out, name="temporal_residual", storage_dtype="int8", ensemble_weight=0.0,
                      training_command=f"{cue_work_dir}/last.pt (a held-out-family run)", reads="residual")
        manifest = json.loads((out / "manifest.json").read_text())
        # a new member makes export_member forget the fits: the shipped ones stay (this network is only named by
        # the light preset's cue, at weight 0)
        manifest.update(calibration=shipped["calibration"], clip=shipped["clip"],
                        calibration_by_members=shipped["calibration_by_members"])
        light = manifest["calibration_by_members"]["efficientnet_lite0"]["temporal_cue"]
        if not as_shipped:  # recorded, not added
            light.update(networks=["temporal_residual"], network_weight=0.0, network_reference=0.0)
        elif light.get("networks") != ["temporal_residual"]:
            raise SystemExit("--as-shipped: the shipped light cue does not name temporal_residual alone")
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


PREDICTION_FIELDS = ("fold", "path", "raw", "score", "members", "reason", "video_norm", "set_norm", "network_raw",
                     "temporal_cue", "cue", "label", "family", "group", "method", "dataset", "seed")


def prediction_rows(fold: str, seed: str, weights: Path, items: dict, det: dict) -> list[dict]:
    """``details.csv`` rows as ``cross_family``'s predictions (``raw``: the score before calibration, with the flow
    cue but without the learned cue's term, which ``cross_family --learned-cue-scores`` adds; ``network_raw``: the
    members' alone, which the centring reads)."""
    from deepfake_kernel.pipeline.temporal import TemporalCue

    light = json.loads((weights / "manifest.json").read_text())["calibration_by_members"]["efficientnet_lite0"]
    reading = TemporalCue.from_manifest(light["temporal_cue"])
    if reading.networks and reading.network_weight:
        raise ValueError("predictions are written from runs whose learned cue is recorded, not added (no --as-shipped)")
    cue = reading.describe()
    set_norm = json.loads((weights / "manifest.json").read_text())["members"][0].get("test_set_norm_blocks")
    rows = []
    for name, item in items.items():
        r = det[name]
        scored = bool(r["member_scores"]) and not r["reason"]
        raw = float(r["raw_score"]) if scored else 0.5
        rows.append({"fold": fold, "path": item.path, "raw": raw, "score": min(max(raw, 0.01), 0.99),
                     "members": r["member_scores"].replace(",", ";") if scored else "", "reason": r["reason"],
                     "video_norm": "", "set_norm": set_norm if scored else "",
                     "network_raw": r["network_score"] if scored else "", "temporal_cue": r["temporal_cue"],
                     "cue": cue if scored else "", "label": int(item.label), "family": item.family,
                     "group": item.group, "method": item.method, "dataset": item.dataset, "seed": seed})
    return rows


def main(run_pattern: str, out_root: str, folds: list[str], cue_work_dirs: dict[str, str], predictions: str | None,
         seed: str, as_shipped: bool = False) -> None:
    items = [i for f in VIDEOS for i in read_video_csv(f)]
    rows, cue_rows = [], {}
    for fold in folds:
        run = run_pattern.format(fold=fold)
        work = Path(out_root) / fold
        weights = light_weights(fold_weights(run, fold, seed), work / "weights", cue_work_dirs.get(fold), as_shipped)
        videos = work / "videos"
        shutil.rmtree(videos, ignore_errors=True)
        videos.mkdir(parents=True)
        named = {}
        for n, item in enumerate(i for i in items if i.family in FAMILIES[fold]):
            name = f"{n:03d}_{Path(item.path).name}"
            os.symlink(Path(item.path).resolve(), videos / name)
            named[name] = item  # read_video_csv: label 1 = FAKE
        subprocess.run([sys.executable, "-m", "deepfake_kernel.predict", str(videos), "--weights", str(weights),
                        "--preset", "light", "--out", str(work / "submission.csv"), "--details",
                        str(work / "details.csv"), "--no-progress"], check=True)
        sub = {r["filename"]: float(r["label"]) for r in csv.DictReader(open(work / "submission.csv"))}
        det = {r["filename"]: r for r in csv.DictReader(open(work / "details.csv"))}
        if predictions:
            rows += prediction_rows(fold, seed, weights, named, det)
        cue_rows[fold] = [{"path": item.path, "family": item.family, "label": int(item.label),
                           "learned_cue": det[name].get("learned_cue") or ""} for name, item in named.items()]
        for family in FAMILIES[fold]:
            names = [n for n in named if named[n].family == family]
            y = np.array([int(named[n].label) for n in names])
            raw = np.array([float(det[n]["raw_score"] or 0.5) for n in names])
            p = np.array([sub[n] for n in names])
            a = roc_auc(y, raw) if 0 < y.sum() < len(y) else float("nan")
            print(f"{fold} / {family}: {len(names)} videos ({int(y.sum())} fake): AUC {a:.3f}, log loss {log_loss(y, p):.3f}, "
                  f"fallbacks {sum(1 for n in names if det[n]['reason'])}", flush=True)
    if predictions:
        out = Path(predictions)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "predictions.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=PREDICTION_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        for fold, cues in cue_rows.items():
            if any(r["learned_cue"] for r in cues):
                with open(out / f"cue_{fold}.csv", "w", newline="", encoding="utf-8") as handle:
                    writer = csv.DictWriter(handle, fieldnames=["path", "family", "label", "learned_cue"])
                    writer.writeheader()
                    writer.writerows(cues)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_pattern", help='the fold runs, "{fold}" standing for the fold: "runs/xfam/sbi12ft_{fold}"')
    parser.add_argument("out_root")
    parser.add_argument("folds", help="comma-separated: ffpp,talking-head,dfdc+deeperforensics")
    parser.add_argument("--cue-work-dir", action="append", default=[], metavar="FOLD=DIR",
                        help="the fold's learned-cue network (a held-out-family train_temporal_cue --work-dir)")
    parser.add_argument("--predictions", help="also write cross_family-format predictions (and cue scores) here")
    parser.add_argument("--seed", default="0",
                        help="the fold weights' seed (seed_SEED where a run holds several); the predictions' seed column")
    parser.add_argument("--as-shipped", action="store_true",
                        help="with --cue-work-dir: the fold's network at the shipped light cue's weight and reference "
                             "(the submission is then the light preset as shipped, on the fold's networks)")
    args = parser.parse_args()
    if args.as_shipped and args.predictions:
        parser.error("--predictions needs the learned cue recorded at weight 0: leave out --as-shipped")
    main(args.run_pattern, args.out_root, args.folds.split(","),
         dict(spec.split("=", 1) for spec in args.cue_work_dir), args.predictions, args.seed, args.as_shipped)
