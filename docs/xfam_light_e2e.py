"""The light preset end to end, out of family, as a user runs it: each fold's seed-0 member (trained without the
family) is put in a copy of the shipped manifest, so the light preset's own calibration and paired cue apply (the
learned cue's shipped networks ride along: only the full preset reads them), then ``predict --preset light`` runs on a
folder of links to the held-out family's videos (its own detection at 640 px every 4th frame, test-set statistics,
centring and clip). Prints each family's AUC (raw score) and log loss (the submitted label). From the repository
root, after the fold commands of the README ("Accuracy on sources it never saw"), e.g.:
    python docs/xfam_light_e2e.py "runs/xfam/sbi12ft_{fold}" runs/light_e2e ffpp,talking-head
(docs/cross_family.md, thirty-sixth session).
"""
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


def fold_weights(run: str, fold: str) -> Path:
    found = [Path(p).parent for p in glob.glob(f"{run}/**/{fold}/weights/manifest.json", recursive=True)]
    if len(found) != 1:
        raise SystemExit(f"{run}: expected one {fold}/weights, found {found}")
    return found[0]


def light_weights(fold_dir: Path, out: Path) -> Path:
    shipped = json.loads(Path("weights/manifest.json").read_text())
    fold = json.loads((fold_dir / "manifest.json").read_text())
    member = next(m for m in fold["members"] if m["name"] == "efficientnet_lite0")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(fold_dir / member["file"], out / member["file"])
    keep = dict(next(m for m in shipped["members"] if m["name"] == "efficientnet_lite0"))
    keep.update(file=member["file"], sha256=member["sha256"], storage_dtype=member.get("storage_dtype", keep["storage_dtype"]))
    cue_networks = [m for m in shipped["members"] if m["name"].startswith("temporal_residual")]  # full preset's only
    for m in cue_networks:
        shutil.copy(Path("weights") / m["file"], out / m["file"])
    manifest = dict(shipped, members=[keep] + cue_networks)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def main(run_pattern: str, out_root: str, folds: list[str]) -> None:
    items = [i for f in VIDEOS for i in read_video_csv(f)]
    for fold in folds:
        run = run_pattern.format(fold=fold)
        work = Path(out_root) / fold
        weights = light_weights(fold_weights(run, fold), work / "weights")
        videos = work / "videos"
        shutil.rmtree(videos, ignore_errors=True)
        videos.mkdir(parents=True)
        labels = {}
        for n, item in enumerate(i for i in items if i.family in FAMILIES[fold]):
            name = f"{n:03d}_{Path(item.path).name}"
            os.symlink(Path(item.path).resolve(), videos / name)
            labels[name] = (int(item.label), item.family)  # read_video_csv: 1 = FAKE
        subprocess.run([sys.executable, "-m", "deepfake_kernel.predict", str(videos), "--weights", str(weights),
                        "--preset", "light", "--out", str(work / "submission.csv"), "--details",
                        str(work / "details.csv"), "--no-progress"], check=True)
        sub = {r["filename"]: float(r["label"]) for r in csv.DictReader(open(work / "submission.csv"))}
        det = {r["filename"]: r for r in csv.DictReader(open(work / "details.csv"))}
        for family in FAMILIES[fold]:
            names = [n for n in labels if labels[n][1] == family]
            y = np.array([labels[n][0] for n in names])
            raw = np.array([float(det[n]["raw_score"] or 0.5) for n in names])
            p = np.array([sub[n] for n in names])
            a = roc_auc(y, raw) if 0 < y.sum() < len(y) else float("nan")
            print(f"{fold} / {family}: {len(names)} videos ({int(y.sum())} fake): AUC {a:.3f}, log loss {log_loss(y, p):.3f}, "
                  f"fallbacks {sum(1 for n in names if det[n]['reason'])}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3].split(","))
