"""The reference detectors beside the ensemble, on the ensemble's val videos (in-domain: a secondary measure), and
whether each would help the stacked ensemble; ``python -m deepfake_kernel.zoo_compare`` is its command line,
whose help says how it is measured."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics
from ..metrics import bootstrap_intervals, out_of_fold
from ..pipeline import ensemble
from ..training.data import CacheConfig, CropCache, read_video_csv, split_by_group
from ..training.recipes import DEFAULT_MEMBERS

CLIP = (0.01, 0.99)
log = logging.getLogger("deepfake_kernel.zoo_compare")


@dataclass
class ZooCompareConfig:
    """Options of ``zoo_compare`` (its command line's, one for one)."""

    runs: list[str] = field(default_factory=list, metadata={"help": "work dirs of the reference entries' train runs"})
    videos: str = "../shared/data/videos.csv"
    cache_dir: str = "cache"
    ensemble_work: str = field(default="runs/train", metadata={"help": "work dir of the ensemble's train run"})
    ensemble_members: list[str] | None = None
    ensemble_weights: str = field(default="weights", metadata={"help": "manifest with the members' ensemble weights"})
    val_fraction: float = 0.3
    seed: int = 0
    folds: int = field(default=4, metadata={"help": "group folds of the stacking comparison"})
    repeats: int = field(default=20, metadata={"help": "fold assignments averaged over"})
    out: str = "runs/zoo/comparison.json"


def summary(labels: np.ndarray, scores: np.ndarray) -> dict:
    """``metrics.summarize`` (raw and clipped log loss) with 95 % bootstrap intervals over videos."""
    return {**metrics.summarize(labels, scores, clip=CLIP), **bootstrap_intervals(labels, scores, 1000, 0)}


def video_scores(face_probs: np.ndarray, val) -> np.ndarray:
    scored = val.scored_by_predict()  # predict's rule: bystanders' faces left out
    scores = ensemble.aggregate_videos(np.asarray(face_probs, dtype=np.float64)[scored], val.video[scored],
                                       val.track[scored])
    return np.array([scores[i] for i in range(len(val.videos))])


def stacked_oof(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, names: list[str]) -> np.ndarray:
    return out_of_fold(lambda rows: ensemble.Stacker.fit(features[rows], labels[rows], names),
                       lambda model, rows: np.array([model(x) for x in features[rows]]), len(labels), folds, labels)


def stratified_group_folds(labels: np.ndarray, groups: list[str], folds: int, seed: int) -> np.ndarray:
    """Fold per video, whole groups per fold, folds with similar REAL/FAKE mixes (scikit-learn's
    StratifiedGroupKFold): with plain group folds, the held-out share of fakes swings the stacker's intercept the
    other way and the out-of-fold scores come out anti-correlated with the labels."""
    from sklearn.model_selection import StratifiedGroupKFold

    out = np.zeros(len(labels), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        out[test] = fold
    return out


def clipped_losses(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, *CLIP)
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


def stacking_gain(base: np.ndarray, extra: np.ndarray, labels: np.ndarray, groups: list[str], names: list[str],
                  folds: int = 4, repeats: int = 20, resamples: int = 2000, seed: int = 0) -> dict:
    """Out-of-fold stacker over ``base`` logits, without and with the ``extra`` logit column: stratified group k-fold, repeated
    with ``repeats`` fold assignments; per-video clipped log losses are averaged over the repeats, and a paired
    bootstrap over videos gives the share of resamples in which the entry lowers the mean."""
    losses_a, losses_b, aucs_a, aucs_b = [], [], [], []
    for repeat in range(repeats):
        assignment = stratified_group_folds(labels, groups, folds, seed + repeat)
        without = stacked_oof(base, labels, assignment, names)
        with_entry = stacked_oof(np.hstack([base, extra[:, None]]), labels, assignment, names + ["entry"])
        if not (np.isfinite(without).all() and np.isfinite(with_entry).all()):
            continue  # a fold assignment leaving one class out of a training part
        losses_a.append(clipped_losses(labels, without))
        losses_b.append(clipped_losses(labels, with_entry))
        aucs_a.append(metrics.roc_auc(labels, without))
        aucs_b.append(metrics.roc_auc(labels, with_entry))
    a, b = np.mean(losses_a, axis=0), np.mean(losses_b, axis=0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(labels), (resamples, len(labels)))
    share = float(np.mean(b[draws].mean(1) < a[draws].mean(1)))
    delta = float(b.mean() - a.mean())
    return {"videos": len(labels), "fold_assignments": len(losses_a), "log_loss_without": round(float(a.mean()), 4),
            "log_loss_with": round(float(b.mean()), 4), "delta_log_loss": round(delta, 4),
            "auc_without": round(float(np.mean(aucs_a)), 4), "auc_with": round(float(np.mean(aucs_b)), 4),
            "bootstrap_share_better": round(share, 3), "helps": bool(delta < 0 and share >= 0.9)}


def collect_runs(run_dirs: list[Path]) -> dict[str, dict]:
    """Per member: its train report (recipe, history, seconds), val face probabilities and training command."""
    out = {}
    for run in run_dirs:
        report_path = run / "report.json"
        if not report_path.is_file():
            log.warning("%s is missing (run not finished?)", report_path)
            continue
        report = json.loads(report_path.read_text())
        config = json.loads((run / "train_config.json").read_text()) if (run / "train_config.json").is_file() else {}
        for name, member in report["members"].items():
            probs = run / name / "val_face_probs.npy"
            if probs.is_file():
                out[name] = {"report": member, "probs": np.load(probs), "run": run.as_posix(), "config": config}
    return out


def count_parameters(name: str, recipe: dict) -> int:
    from ..detectors import create_model

    return int(sum(p.numel() for p in create_model(name, input_size=recipe["input_size"]).network.parameters()))


def command_of(weights_dir: str | None, name: str) -> str:
    from ..detectors.weights import read_manifest

    try:
        return read_manifest(weights_dir).member(name).training_command
    except Exception:
        return ""


def compare(args: ZooCompareConfig) -> dict:
    """The entries and the ensemble members scored on the ensemble's val videos, with the stacking comparison."""
    items = read_video_csv(args.videos)
    _, val_items = split_by_group(items, args.val_fraction, args.seed)
    val = CropCache(args.cache_dir, CacheConfig()).load_videos(val_items)
    labels = np.array([v.label for v in val.videos])
    groups = [v.group for v in val.videos]
    unique = sorted(set(groups))
    zoo = collect_runs([Path(p) for p in args.runs])
    base_names = [m for m in (args.ensemble_members or DEFAULT_MEMBERS)
                  if (Path(args.ensemble_work) / m / "val_face_probs.npy").is_file()]
    base = {m: np.load(Path(args.ensemble_work) / m / "val_face_probs.npy") for m in base_names}
    for name, probs in list(base.items()) + [(n, z["probs"]) for n, z in zoo.items()]:
        if len(probs) != len(val):
            raise ValueError(f"{name}: {len(probs)} val probabilities for {len(val)} val crops: another split or cache")
    result = {"val_videos": len(val.videos), "val_fake_videos": int(labels.sum()), "val_groups": len(unique),
              "val_crops": len(val), "ensemble_members": base_names, "ensemble": {}, "entries": {}}
    base_video = {m: video_scores(p, val) for m, p in base.items()}
    for m, scores in base_video.items():
        result["ensemble"][m] = summary(labels, scores)
    if base_video:
        weights = {m: 1.0 for m in base}
        if args.ensemble_weights and (Path(args.ensemble_weights) / "manifest.json").is_file():
            from ..detectors.weights import read_manifest
            weights.update({e.name: e.ensemble_weight for e in read_manifest(args.ensemble_weights).members
                            if e.name in base})
        result["ensemble_weights"] = weights
        mean_faces = ensemble.weighted_mean(base, weights)
        result["ensemble"]["weighted_mean_of_members"] = summary(labels, video_scores(mean_faces, val))
        base_features = np.stack([ensemble.logit(base_video[m]) for m in base_names], axis=1)
    for name, entry in zoo.items():
        scores = video_scores(entry["probs"], val)
        row = {"val_video": summary(labels, scores),
               "parameters": entry["report"].get("parameters") or count_parameters(name, entry["report"]["recipe"]),
               "recipe": entry["report"]["recipe"],
               "seconds": entry["report"].get("seconds"), "best_epoch": entry["report"].get("best_epoch"),
               "epochs_run": entry["report"].get("epochs_run"),
               "command": command_of(entry["config"].get("out"), name)}
        if base_video:  # no fitting: the shipped rule (weighted mean of face probabilities) with the entry at weight 1
            with_entry = ensemble.weighted_mean({**base, name: entry["probs"]}, {**weights, name: 1.0})
            row["mean_with_entry"] = summary(labels, video_scores(with_entry, val))
            row["stacking"] = stacking_gain(base_features, ensemble.logit(scores), labels, groups, list(base_names),
                                            folds=args.folds, repeats=args.repeats)
        result["entries"][name] = row
    return result
