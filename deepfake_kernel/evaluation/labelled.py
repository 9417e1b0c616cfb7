"""Scoring a labelled set of videos through ``predict``: metrics with intervals, plots, the worst mistakes, and
calibration and stacking fitted on those videos (judged out-of-fold over groups). In-domain: the number that
matters is the cross-family one (:mod:`.cross_family`). The command line is ``python -m deepfake_kernel.evaluate``.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics
from ..detectors.weights import read_manifest, write_manifest
from ..pipeline import ensemble
from ..pipeline.adapt import AdaptConfig
from ..pipeline.submission import read_submission, render_csv
from ..training.data import VideoItem, read_dfdc_folder, read_video_csv

log = logging.getLogger("deepfake_kernel.evaluate")


@dataclass
class EvaluateConfig:
    """Options of ``evaluate`` (each is also a ``--option``)."""

    labels: str = ""
    split: str = field(default="all", metadata={"help": "all, val or train (groups recorded in the manifest)"})
    weights: str = field(default="weights", metadata={"help": "weights folder (also where fits are stored)"})
    submission: str | None = field(default=None, metadata={"help": "score an existing submission.csv instead"})
    details: str | None = field(default=None, metadata={"help": "reuse a predict --details CSV"})
    out_dir: str = field(default="reports/eval", metadata={"help": "report folder"})
    frames: int = field(default=32, metadata={"help": "frames per video when predict runs"})
    preset: str = field(default="full", metadata={"help": "predict preset: full, or light to measure the light "
                                                          "preset (no fitting then: fits are for the full run)"})
    device: str = "auto"
    batch_size: int = 16
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for the 95 %% intervals"})
    folds: int = field(default=5, metadata={"help": "group folds for out-of-fold calibration/stacking"})
    fit_calibration: bool = field(default=False, metadata={"help": "fit temperature and clip; store in manifest"})
    replace_out_of_family_calibration: bool = field(default=False, metadata={
        "help": "let --fit-calibration replace a calibration fitted out of family (cross_family --calibrate-weights) "
                "with one fitted on these videos"})
    fit_stacking: bool = field(default=False, metadata={"help": "fit the stacker; store it if it beats the mean"})
    thumbnails: int = field(default=8, metadata={"help": "worst mistakes shown as face thumbnails"})
    strict: bool = field(default=False, metadata={"help": "predict stops at the first exception inside a stage, "
                                                          "with its traceback, instead of scoring the video 0.5"})
    seed: int = 0


@dataclass
class Scored:
    """One labelled video with its scores from predict (or a submission)."""

    item: VideoItem
    name: str
    label: float                      # as submitted (calibrated and clipped)
    raw: float                        # before calibration and clipping (0.5 for a fallback)
    members: dict[str, float]
    faces: int = 0
    tracks: int = 0
    detection_prob: float = 0.0
    reason: str = ""
    network: float | None = None      # the members' raw score before the temporal cue (None: no cue was added)


def load_labels(source: str | Path) -> tuple[list[VideoItem], Path]:
    """Labelled videos and the folder their names are relative to."""
    source = Path(source)
    if source.is_dir():
        source = source / "metadata.json"
    if source.suffix == ".json":
        return read_dfdc_folder(source.parent), source.parent
    return read_video_csv(source), source.parent


def select_split(items: list[VideoItem], split: str, weights: str | Path) -> list[VideoItem]:
    if split == "all":
        return items
    validation = read_manifest(weights).notes.get("validation", {})
    groups = set(validation.get("split", {}).get("val_groups", []))
    if not groups:
        raise ValueError(f"{weights}/manifest.json records no validation groups (train writes them); "
                         f"use --split all")
    chosen = [i for i in items if (i.group in groups) == (split == "val")]
    if not chosen:
        raise ValueError(f"no video of the labels falls in the {split} split")
    return chosen


def _parse_members(text: str) -> dict[str, float]:
    out = {}
    for part in filter(None, (text or "").split(";")):
        name, value = part.split("=")
        out[name] = float(value)
    return out


def score_videos(config: EvaluateConfig, items: list[VideoItem], root: Path, out_dir: Path) -> list[Scored]:
    """Scores for ``items``: from a submission, a details CSV, or a fresh predict run (details kept)."""
    names = {i.path: Path(i.path).relative_to(root).as_posix() if Path(i.path).is_relative_to(root)
             else i.path for i in items}
    if config.submission:
        submitted = read_submission(config.submission)
        by_base = {Path(k).name: v for k, v in submitted.items()}
        out = []
        for item in items:
            value = submitted.get(names[item.path], by_base.get(Path(item.path).name))
            if value is None:
                raise ValueError(f"{config.submission} has no row for {names[item.path]}")
            out.append(Scored(item, names[item.path], value, value, {}))
        return out
    if config.details:
        return _scored_from_details(Path(config.details), items, names)
    from ..pipeline.runner import PredictConfig, run

    template = out_dir / "videos_template.csv"
    template.write_text(render_csv(("filename", "label"), [(names[i.path], 0.5) for i in items]))
    predictions = {}
    summary = run(PredictConfig(video_dir=str(root), template=str(template), out=str(out_dir / "submission.csv"),
                                details=str(out_dir / "details.csv"), weights=config.weights, frames=config.frames,
                                device=config.device, batch_size=config.batch_size, preset=config.preset,
                                strict=config.strict), predictions=predictions)
    log.warning("predict: %s", json.dumps({k: summary[k] for k in ("videos", "scored", "fallbacks", "seconds")}))
    unscored = [i for i in items if names[i.path] not in predictions]  # the budget skipped them, or an error
    by_name = {s.name: s for s in _scored_from_details(out_dir / "details.csv", unscored, names)}
    out = []
    for item in items:
        name = names[item.path]
        p = predictions.get(name)
        if p is None:
            out.append(by_name[name])
            continue
        out.append(Scored(item, name, p.score, 0.5 if p.raw_score is None else p.raw_score, dict(p.member_scores),
                          p.faces, len(p.tracks), p.detection_prob, p.reason or "", p.network_score))
    return out


def _scored_from_details(details_path: Path, items: list[VideoItem], names: dict[str, str]) -> list[Scored]:
    """Scores from the per-video CSV of an earlier ``predict --details`` run."""
    with open(details_path, newline="", encoding="utf-8") as handle:
        rows = {r["filename"]: r for r in csv.DictReader(handle)}
    out = []
    for item in items:
        row = rows.get(names[item.path])
        if row is None:
            raise ValueError(f"{details_path} has no row for {names[item.path]}")
        label = float(row["label"])
        out.append(Scored(item, names[item.path], label, float(row["raw_score"]) if row["raw_score"] else 0.5,
                          _parse_members(row.get("member_scores", "")), int(row.get("faces") or 0),
                          int(row.get("tracks") or 0), float(row.get("detection_prob") or 0.0), row["reason"],
                          float(row["network_score"]) if row.get("network_score") else None))
    return out


# ---------------------------------------------------------------------------------------------- metrics
def make_plots(labels: np.ndarray, probs: np.ndarray, out_dir: Path, title: str) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    order = np.argsort(-probs)
    tpr = np.concatenate([[0], np.cumsum(labels[order]) / max(1, labels.sum())])
    fpr = np.concatenate([[0], np.cumsum(1 - labels[order]) / max(1, (1 - labels).sum())])
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, lw=2, label=f"AUC {metrics.roc_auc(labels, probs):.3f}")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC — {title}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "roc.png", dpi=110)
    files["roc"] = "roc.png"
    plt.close(fig)

    bins = np.linspace(0, 1, 11)
    which = np.clip(np.digitize(probs, bins) - 1, 0, 9)
    centres, observed, counts = [], [], []
    for b in range(10):
        mask = which == b
        if mask.any():
            centres.append(probs[mask].mean())
            observed.append(labels[mask].mean())
            counts.append(int(mask.sum()))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.plot(centres, observed, "o-", lw=2, label="this model")
    for x, y, c in zip(centres, observed, counts):
        ax.annotate(str(c), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xlabel="predicted P(FAKE)", ylabel="observed fake fraction", title=f"Reliability — {title}",
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out_dir / "reliability.png", dpi=110)
    files["reliability"] = "reliability.png"
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(probs[labels == 0], bins=bins, alpha=0.6, label="REAL", color="tab:blue")
    ax.hist(probs[labels == 1], bins=bins, alpha=0.6, label="FAKE", color="tab:red")
    ax.set(xlabel="P(FAKE)", ylabel="videos", title=f"Scores by class — {title}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "histogram.png", dpi=110)
    files["histogram"] = "histogram.png"
    plt.close(fig)
    return files


def mistake_strip(worst: list[Scored], out_dir: Path, size: int = 128) -> str | None:
    """One face per badly scored video, side by side, labelled; written as ``mistakes.png``."""
    if not worst:
        return None
    import cv2

    from ..pipeline.faces import FaceCropper
    from ..pipeline.video import FrameReader, VideoReadError

    reader, cropper = FrameReader(), FaceCropper(crop_size=size, max_faces=1)
    tiles = []
    for scored in worst:
        tile = np.zeros((size + 30, size, 3), np.uint8)
        try:
            tracks = cropper(reader.read(scored.item.path, 4).frames)
            if tracks:
                tile[:size] = tracks[0].faces[0].crop
        except VideoReadError:
            pass
        truth = "FAKE" if scored.item.label else "REAL"
        cv2.putText(tile, f"{truth} p={scored.label:.2f}", (4, size + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    cv2.imwrite(str(out_dir / "mistakes.png"), cv2.cvtColor(np.concatenate(tiles, 1), cv2.COLOR_RGB2BGR))
    return "mistakes.png"


# ---------------------------------------------------------------------------------------------- run
def check_calibration_replaceable(calibration: dict, allowed: bool) -> None:
    """An out-of-family calibration is what keeps scores honest on new sources; an in-domain fit over it would
    overclaim (the previous weights' in-domain temperature of 0.29 turned chance ranking into log loss 1.33)."""
    if "out-of-family" in str(calibration.get("fitted_on", "")) and not allowed:
        raise ValueError(f"the weights carry a calibration fitted on {calibration['fitted_on']}; --fit-calibration "
                         f"would replace it with a fit on these videos, which overclaims on sources they do not "
                         f"cover. Pass --replace-out-of-family-calibration if that is what you want, or refit with "
                         f"python -m deepfake_kernel.cross_family --from-predictions --fit-calibration")


def evaluate(config: EvaluateConfig) -> dict:
    if config.preset != "full" and (config.fit_calibration or config.fit_stacking):
        raise ValueError("--fit-calibration and --fit-stacking fit the full run's scores: use them with --preset "
                         "full (the light preset's member gets its own calibration from that run)")
    if config.fit_calibration and not config.submission:
        check_calibration_replaceable(read_manifest(config.weights).calibration,
                                      config.replace_out_of_family_calibration)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items, root = load_labels(config.labels)
    items = select_split(items, config.split, config.weights)
    scored = score_videos(config, items, root, out_dir)
    labels = np.array([s.item.label for s in scored], dtype=np.float64)
    submitted = np.array([s.label for s in scored])
    raw = np.array([s.raw for s in scored])
    manifest = read_manifest(config.weights) if not config.submission else None
    report: dict = {"labels": str(config.labels), "split": config.split, "videos": len(scored),
                    "fake": int(labels.sum()), "fallbacks": sum(1 for s in scored if s.reason)}
    report["as_submitted"] = {**metrics.summarize(labels, submitted), **metrics.classification_metrics(labels, submitted),
                              **metrics.bootstrap_intervals(labels, submitted, config.bootstrap, config.seed)}
    report["unclipped"] = metrics.summarize(labels, raw)
    members = sorted({m for s in scored for m in s.members})
    report["members"] = {m: metrics.summarize(labels, np.array([s.members.get(m, 0.5) for s in scored]))
                         for m in members}
    breakdown = {}
    for column in ("dataset", "method"):
        values = [getattr(s.item, column) or "-" for s in scored]
        for value in sorted(set(values)):
            mask = np.array([v == value for v in values])
            breakdown.setdefault(column, {})[value] = {
                "n": int(mask.sum()), "fake": int(labels[mask].sum()),
                "log_loss": round(metrics.log_loss(labels[mask], submitted[mask]), 4),
                "auc": round(metrics.roc_auc(labels[mask], submitted[mask]), 4),
                "accuracy": round(metrics.accuracy(labels[mask], submitted[mask]), 4)}
    report["breakdown"] = breakdown
    folds = metrics.group_folds([s.item.group for s in scored], config.folds, config.seed)
    if config.fit_stacking and manifest is not None and members:
        report["stacking"], raw_next = fit_stacking(scored, labels, raw, folds, members, manifest, config.weights)
    else:
        raw_next = raw
    if config.fit_calibration and manifest is not None:
        # calibrate the score predict will produce from now on (the stacker's when it was kept)
        member_raw = {m: np.array([s.members.get(m, 0.5) for s in scored]) for m in members}
        network = np.array([s.raw if s.network is None else s.network for s in scored])
        report["calibration"] = fit_calibration(raw_next, labels, folds, manifest, config.weights, member_raw,
                                                network=network)
    losses = -(labels * np.log(np.clip(submitted, 1e-15, 1)) + (1 - labels) * np.log(np.clip(1 - submitted, 1e-15, 1)))
    order = np.argsort(-losses)
    table = [(scored[i].name, int(labels[i]), f"{submitted[i]:.4f}", f"{raw[i]:.4f}", f"{losses[i]:.4f}",
              scored[i].item.dataset, scored[i].item.method, scored[i].reason) for i in order]
    (out_dir / "per_video.csv").write_text(render_csv(
        ("filename", "fake", "label", "raw_score", "log_loss", "dataset", "method", "reason"), table))
    report["plots"] = make_plots(labels, submitted, out_dir, f"{config.split} ({len(scored)} videos)")
    worst = [scored[i] for i in order[:config.thumbnails]]
    strip = mistake_strip(worst, out_dir) if config.thumbnails else None
    if strip:
        report["plots"]["mistakes"] = strip
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report, table[:15]))
    return report


def fit_calibration(raw: np.ndarray, labels: np.ndarray, folds: np.ndarray, manifest, weights: str,
                    member_raw: dict[str, np.ndarray] | None = None, network: np.ndarray | None = None) -> dict:
    """Temperature/bias and clip bounds fitted on all given videos, judged out-of-fold over groups, stored in the
    manifest; with ``member_raw`` also one fit per single member (``calibration_by_members``), used when a video
    runs with that member alone (the light preset, ``--models``). The new fit is made on uncentred scores, so it
    replaces a manifest's test-set centring (``"center"``) too; the "before" figure applies it as predict did
    (centred on the median of ``network``, the members' scores before the temporal cue, where given). The scores
    include the manifest's temporal cue where it applied, so its entry stays with the new fit."""
    clipper = ensemble.ProbabilityClipper.from_manifest(manifest.clip, manifest.calibration)
    if manifest.calibration.get("center") == "test_set_median" and len(raw) >= AdaptConfig.min_videos:
        clipper = dataclasses.replace(clipper, shift=ensemble.test_set_shift(raw if network is None else network))
    before = clipper(raw)
    result, stored = _calibration(raw, labels, folds)
    result["log_loss_before (manifest as it was)"] = round(metrics.log_loss(labels, before), 4)
    cue = manifest.calibration.get("temporal_cue")
    manifest.calibration = {k: v for k, v in stored.items() if k != "clip"}
    if cue:
        manifest.calibration["temporal_cue"] = cue
    manifest.clip = {"lo": stored["clip"][0], "hi": stored["clip"][1]}
    if member_raw and len(member_raw) > 1:
        result["by_members"] = {}
        for name, scores in member_raw.items():
            fitted, entry = _calibration(scores, labels, folds)
            # a member that barely ranks (near-constant scores) gets a degenerate fit: keep a fit only when it
            # beats plain clipping out-of-fold, else store no calibration for it
            fitted["kept"] = fitted["log_loss_after_out_of_fold"] < fitted["log_loss_default_clip_same_videos"]
            if not fitted["kept"]:
                entry = {"temperature": 1.0, "bias": 0.0, "clip": [0.01, 0.99], "fitted_on": entry["fitted_on"],
                         "note": "a fit lost to plain clipping out-of-fold "
                                 f"({fitted['log_loss_after_out_of_fold']} vs "
                                 f"{fitted['log_loss_default_clip_same_videos']})"}
            result["by_members"][name] = fitted
            manifest.calibration_by_members[ensemble.member_set_key([name])] = entry
    write_manifest(manifest, weights)
    return result


def _calibration(raw: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> tuple[dict, dict]:
    """Fit on all videos; report the log loss before, in sample and out-of-fold; return (report, manifest entry)."""
    def fit(train):
        t, b = ensemble.fit_temperature(raw[train], labels[train])
        calibrated = ensemble.ProbabilityClipper(0, 1, t, b).calibrate(raw[train])
        return t, b, ensemble.choose_clip(calibrated, labels[train])

    def apply(model, test):
        t, b, (lo, hi) = model
        return np.clip(ensemble.ProbabilityClipper(0, 1, t, b).calibrate(raw[test]), lo, hi)

    oof = metrics.out_of_fold(fit, apply, len(raw), folds, labels)
    covered = np.isfinite(oof)
    default = np.clip(raw, 0.01, 0.99)
    t, b, (lo, hi) = fit(np.ones(len(raw), bool))
    result = {"temperature": round(t, 6), "bias": round(b, 6), "clip": [lo, hi],
              "log_loss_default_clip": round(metrics.log_loss(labels, default), 4),
              "log_loss_after_in_sample": round(metrics.log_loss(labels, apply((t, b, (lo, hi)), np.ones(len(raw), bool))), 4),
              "out_of_fold_videos": int(covered.sum()),
              "log_loss_default_clip_same_videos": round(metrics.log_loss(labels[covered], default[covered]), 4),
              "log_loss_after_out_of_fold": round(metrics.log_loss(labels[covered], oof[covered]), 4)}
    stored = {"temperature": round(t, 6), "bias": round(b, 6), "fitted_on": f"{len(raw)} videos",
              "out_of_fold_log_loss": result["log_loss_after_out_of_fold"], "clip": [lo, hi]}
    return result, stored


def fit_stacking(scored: list[Scored], labels: np.ndarray, raw: np.ndarray, folds: np.ndarray, members: list[str],
                 manifest, weights: str) -> tuple[dict, np.ndarray]:
    """Logistic stacking on member logits and per-video features vs the plain mean, out-of-fold over groups.
    Returns the report and the raw scores predict gives from now on (the stacker's where it is kept)."""
    ok = np.array([not s.reason for s in scored])
    features = np.stack([ensemble.stacking_features(s.members, members, s.faces, s.tracks, s.detection_prob)
                         for s in scored])
    X, y, r = features[ok], labels[ok], raw[ok]
    oof = metrics.out_of_fold(lambda train: ensemble.Stacker.fit(X[train], y[train], members),
                      lambda model, test: np.array([model(x) for x in X[test]]), len(y), folds[ok], y)
    covered = np.isfinite(oof)
    calibrated_mean = metrics.out_of_fold(lambda train: ensemble.fit_temperature(r[train], y[train]),
                                  lambda tb, test: ensemble.ProbabilityClipper(0, 1, *tb).calibrate(r[test]),
                                  len(y), folds[ok], y)
    covered &= np.isfinite(calibrated_mean)
    stack_loss = metrics.log_loss(y[covered], np.clip(oof[covered], 0.01, 0.99))
    mean_loss = metrics.log_loss(y[covered], np.clip(calibrated_mean[covered], 0.01, 0.99))
    keep = bool(stack_loss < mean_loss)
    stacker = ensemble.Stacker.fit(X, y, members)
    result = {"videos": int(covered.sum()), "features": members + ["log1p(faces)", "tracks", "detection_prob"],
              "log_loss_stacking_oof": round(stack_loss, 4), "log_loss_mean_calibrated_oof": round(mean_loss, 4),
              "auc_stacking_oof": round(metrics.roc_auc(y[covered], oof[covered]), 4),
              "auc_mean_oof": round(metrics.roc_auc(y[covered], calibrated_mean[covered]), 4), "kept": keep}
    manifest.stacking = {**stacker.to_dict(), "use": keep, "evaluation": result}
    write_manifest(manifest, weights)
    next_raw = raw.copy()
    if keep:
        next_raw[ok] = [stacker(x) for x in X]
    return result, next_raw


def render_markdown(report: dict, worst_rows: list) -> str:
    s = report["as_submitted"]
    lines = [f"# Evaluation: {report['labels']} ({report['split']})", "",
             f"{report['videos']} videos ({report['fake']} FAKE), {report['fallbacks']} fallbacks.", "",
             "| metric | value |", "|---|---|",
             f"| log loss (as submitted) | {s['log_loss']:.4f} (95% CI {s['log_loss_95ci']}) |",
             f"| log loss (unclipped, uncalibrated) | {report['unclipped']['log_loss']:.4f} |",
             f"| ROC AUC | {s['auc']:.4f} (95% CI {s['auc_95ci']}) |",
             f"| accuracy @0.5 | {s['accuracy']:.4f} |",
             f"| precision / recall / F1 | {s['precision']} / {s['recall']} / {s['f1']} |",
             f"| confusion (tp, fp, fn, tn) | {s['confusion']} |", ""]
    if report["members"]:
        lines += ["## Members (video level, uncalibrated)", "", "| member | AUC | log loss |", "|---|---|---|"]
        lines += [f"| {m} | {v['auc']} | {v['log_loss']} |" for m, v in report["members"].items()] + [""]
    for column, values in report["breakdown"].items():
        lines += [f"## By {column}", "", "| value | n | fake | log loss | AUC | accuracy |", "|---|---|---|---|---|---|"]
        lines += [f"| {k} | {v['n']} | {v['fake']} | {v['log_loss']} | {v['auc']} | {v['accuracy']} |"
                  for k, v in values.items()] + [""]
    for key in ("calibration", "stacking"):
        if key in report:
            lines += [f"## {key.title()}", "", "```json", json.dumps(report[key], indent=2), "```", ""]
    lines += ["## Plots", ""] + [f"![{k}]({v})" for k, v in report["plots"].items()] + [""]
    lines += ["## Worst mistakes", "", "| file | fake | label | raw | log loss | dataset | method | reason |",
              "|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in worst_rows]
    return "\n".join(lines) + "\n"
