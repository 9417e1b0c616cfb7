"""``python -m deepfake_kernel.cross_family``: accuracy on sources a model never saw.

Leave-one-family-out: for each fold (one family, or several joined by ``+``), train with those families held out
entirely (their videos, and ``--faces`` crops of that family), then score the held-out videos with the fold's
weights through the predict pipeline's own stages — the same :class:`~deepfake_kernel.pipeline.detector.Detector`,
members, aggregation and clipper — on face crops cut once by predict's reader and cropper with predict's
settings (32 frames, the members' input size) and shared by every fold, so a fold costs training time only::

    python -m deepfake_kernel.cross_family --videos ../shared/data/videos.csv ../shared/data/videos_extra.csv \\
        --faces ../shared/data/faces_ffpp.csv --faces-family ffpp --fake-source sbi \\
        --members efficientnet_lite0 --folds ffpp talking-head dfdc+deeperforensics --out runs/xfam/sbi

Every ``train`` option applies to each fold. It writes ``predictions.csv`` (one row per held-out video),
``table.md`` and ``report.json``: per held-out family AUC and log loss with bootstrap 95 % intervals, and their
mean; per manipulation of a family, its fakes' AUC against the family's real videos and inside their own source.
``--fit-calibration`` then fits the clipper on these out-of-family predictions so that no family's log loss passes
the constant's 0.693 (minimax over families), reports each fold's log loss with the calibration fitted on the
*other* folds, and with ``--calibrate-weights DIR`` stores it in that weights folder's manifest.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import metrics
from .config import add_dataclass_args, from_args
from .pipeline import ensemble
from .training.augment import AugmentConfig
from .training.data import CacheConfig, CropCache, VideoItem

log = logging.getLogger("deepfake_kernel.cross_family")
CONSTANT_LOG_LOSS = float(np.log(2.0))


@dataclass
class CrossFamilyConfig:
    """Options of ``cross_family`` besides the ``train`` ones."""

    folds: list[str] = field(default_factory=lambda: ["ffpp", "talking-head", "dfdc+deeperforensics"], metadata={
        "help": "held-out families per fold; join families with + to hold them out together"})
    out: str = field(default="runs/cross_family", metadata={"help": "folder of the folds, predictions and table"})
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for the 95 %% intervals"})
    score_only: bool = field(default=False, metadata={"help": "score existing fold weights, train nothing"})
    fit_calibration: bool = field(default=False, metadata={
        "help": "fit the clipper on the out-of-family predictions (minimax over families), judged leave-one-fold-out"})
    calibrate_weights: str | None = field(default=None, metadata={
        "help": "store that fit in this weights folder's manifest (the shipped model trained on every family)"})
    seeds: list[int] = field(default_factory=list, metadata={
        "help": "run every fold once per seed (OUT/seed_S/...) and report each family's AUC over the seeds, mean ± "
                "sd: one run's AUC moves by about 0.06 with the seed (docs/cross_family.md), so compare recipes "
                "over seeds; --fit-calibration then fits on all seeds' predictions"})
    video_norm_blocks: int | None = field(default=None, metadata={
        "help": "score the folds with per-video normalisation of the stem and this many blocks (test-time AdaBN; "
                "-1: off; unset: as each fold's manifest says); --calibrate-weights stores it with the fit"})
    init_from: str | None = field(default=None, metadata={
        "help": "start each fold's members from the same fold of another cross_family run (its --out; with --seeds, "
                "the same seed of it): that fold's work/MEMBER/last.pt, trained without the same families, e.g. "
                "self-blends alone first, then this run's recipe on top"})


# ---------------------------------------------------------------------------------------------- scoring
def cached_tracks(cache: CropCache, item: VideoItem):
    """The cached crops of one video as the cropper's :class:`~deepfake_kernel.faces.Track` list."""
    from .pipeline.faces import Face, Track

    with np.load(cache.video_file(item)) as data:
        crops, tracks, boxes, probs = data["crops"], data["tracks"], data["boxes"], data["probs"]
        frames = data["frames"]
    out: dict[int, Track] = {}
    for i in range(len(crops)):
        track = out.setdefault(int(tracks[i]), Track(int(tracks[i])))
        track.faces.append(Face(int(frames[i]), boxes[i], float(probs[i]), None, crops[i]))
    return [out[k] for k in sorted(out)]


def score_held_out(weights_dir: str | Path, items: list[VideoItem], cache: CropCache, device: str = "cpu",
                   video_norm_blocks: int | None = None) -> list[dict]:
    """One row per video: the fold's raw and submitted score as ``predict`` computes them from these crops.
    A video without crops gets the fallback 0.5 with its reason, as in ``predict``. ``video_norm_blocks``
    overrides the members' per-video normalisation (-1: off; ``None``: as the manifest says)."""
    from .pipeline.detector import Detector

    detector = Detector.from_weights(weights_dir, device=device)
    if video_norm_blocks is not None:
        for member in detector.members.values():
            member.set_video_norm(video_norm_blocks)
    norm = {name: member.video_norm_blocks for name, member in detector.members.items()}
    if detector.cropper.crop_size != cache.config.crop_size:
        raise ValueError(f"predict cuts {detector.cropper.crop_size} px crops for these members, the cache holds "
                         f"{cache.config.crop_size} px ones: pass --cache-size {detector.cropper.crop_size}")
    models = detector.member_names
    skipped = cache.skipped()
    rows = []
    for item in items:
        row = {"path": item.path, "label": item.label, "family": item.family, "group": item.group,
               "method": item.method, "dataset": item.dataset}
        if cache.video_file(item).is_file():
            raw, member_scores, _ = detector.score_tracks(cached_tracks(cache, item), models)
            row.update(raw=raw, score=float(detector.clipper_for(models)(raw)), reason="",
                       members=";".join(f"{k}={v:.6f}" for k, v in member_scores.items()),
                       video_norm=";".join(f"{k}={v}" for k, v in norm.items() if v is not None))
        else:
            row.update(raw=0.5, score=detector.fallback_score, reason=skipped.get(item.key, "not_cached"),
                       members="")
        rows.append(row)
    detector.close()
    return rows


# ---------------------------------------------------------------------------------------------- the table
MIN_PER_CLASS = 5  # videos of each class a family needs for its AUC to enter the mean


def family_table(rows: list[dict], key: str = "score", resamples: int = 1000, seed: int = 0) -> dict:
    """Per-family video AUC and log loss (with bootstrap 95 % intervals) and the mean over families."""
    table = {}
    for family in sorted({r["family"] for r in rows}):
        chosen = [r for r in rows if r["family"] == family]
        labels = np.array([r["label"] for r in chosen], np.float64)
        scores = np.array([r[key] for r in chosen], np.float64)
        entry = {"videos": len(chosen), "fake": int(labels.sum()), "real": int(len(labels) - labels.sum()),
                 "fold": chosen[0].get("fold", ""), "auc": metrics.roc_auc(labels, scores),
                 "log_loss": metrics.log_loss(labels, scores),
                 "fallbacks": sum(1 for r in chosen if r.get("reason"))}
        entry.update(metrics.bootstrap_intervals(labels, scores, resamples, seed))
        within = metrics.within_source_auc(labels, scores, [r.get("dataset") or "" for r in chosen])
        entry.update({"auc_within_source": within["auc"], "within_source_pairs": within["pairs"],
                      "within_source_sources": within["sources"]})
        table[family] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in entry.items()}
    # an AUC from one real video (dfdc here) or two videos says nothing: the mean is over families that hold
    # MIN_PER_CLASS videos of each class
    both = {f: v for f, v in table.items() if min(v["fake"], v["real"]) >= MIN_PER_CLASS}
    mean = {"auc": round(float(np.mean([v["auc"] for v in both.values()])), 4) if both else None,
            "log_loss": round(float(np.mean([v["log_loss"] for v in table.values()])), 4),
            "auc_over": list(both)}
    return {"families": table, "mean": mean, "methods": method_table(rows, key)}


def method_name(method: str) -> str:
    """A manipulation's name without its qualifiers — ``Deepfakes/c23``, ``EDTalk (…) + face SR`` and
    ``Wav2Lip + GFPGAN lip-sync`` become ``Deepfakes``, ``EDTalk``, ``Wav2Lip`` — so its variants share a row."""
    name = str(method or "")
    for cut in (" (", " +", "/"):
        name = name.split(cut)[0]
    return name.strip() or "(no method given)"


def method_table(rows: list[dict], key: str = "score") -> dict:
    """Per family with at least ``MIN_PER_CLASS`` real videos, per manipulation
    (:func:`method_name` of the fakes' ``method``): its fakes against all the family's real videos (AUC), and
    against the real videos of their own source only (AUC within a source, with its pairs): which manipulations
    a model finds on a family it never saw."""
    table: dict[str, dict] = {}
    for family in sorted({r["family"] for r in rows}):
        chosen = [r for r in rows if r["family"] == family]
        reals = [r for r in chosen if int(r["label"]) == 0]
        fakes = [r for r in chosen if int(r["label"]) == 1]
        if len(reals) < MIN_PER_CLASS or not fakes:
            continue
        entry = {}
        for method in sorted({method_name(r.get("method", "")) for r in fakes}):
            mine = [r for r in fakes if method_name(r.get("method", "")) == method]
            labels = np.array([1] * len(mine) + [0] * len(reals), np.float64)
            scores = np.array([r[key] for r in mine + reals], np.float64)
            within = metrics.within_source_auc(labels, scores, [r.get("dataset") or "" for r in mine + reals])
            entry[method] = {"fakes": len(mine), "auc": round(metrics.roc_auc(labels, scores), 4),
                             "auc_within_source": round(within["auc"], 4), "within_source_pairs": within["pairs"]}
        table[family] = entry
    return table


def within_source(entry: dict) -> str:
    """The within-source AUC cell: value with its pairs and sources, or why there is none."""
    if not entry.get("within_source_pairs"):
        return "n/a (no source holds both classes)"
    return (f"{entry['auc_within_source']:.3f} ({entry['within_source_pairs']} pairs, "
            f"{entry['within_source_sources']} sources)")


def render_table(report: dict) -> str:
    lines = ["| held-out family | fold | videos (fake/real) | video AUC (95 % CI) | AUC within a source (pairs) | "
             "log loss (95 % CI) |" + (" calibrated log loss, fit on the other folds |" if "calibration" in report else ""),
             "|---|---|---|---|---|---|" + ("---|" if "calibration" in report else "")]
    calibrated = report.get("calibration", {}).get("leave_one_fold_out", {}).get("families", {})
    for family, v in report["table"]["families"].items():
        auc = "n/a (one class)" if not (v["fake"] and v["real"]) else f"{v['auc']:.3f} {v['auc_95ci']}"
        if v["fake"] and v["real"] and min(v["fake"], v["real"]) < MIN_PER_CLASS:
            auc += f" (only {min(v['fake'], v['real'])} of one class: not in the mean)"
        line = (f"| {family} | {v['fold']} | {v['videos']} ({v['fake']}/{v['real']}) | {auc} | {within_source(v)} | "
                f"{v['log_loss']:.3f} {v['log_loss_95ci']} |")
        if "calibration" in report:
            line += f" {calibrated.get(family, {}).get('log_loss', 'n/a')} |"
        lines.append(line)
    mean = report["table"]["mean"]
    lines.append(f"| **mean** | | | **{mean['auc']}** (over {', '.join(mean['auc_over'])}) | | {mean['log_loss']} |"
                 + (f" {report['calibration']['leave_one_fold_out']['mean_log_loss']} |"
                    if "calibration" in report else ""))
    methods = report["table"].get("methods")
    if methods:
        lines += ["", "| held-out family | manipulation | fakes | AUC against the family's real videos | "
                  "AUC within a source (pairs) |", "|---|---|---|---|---|"]
        for family, entry in methods.items():
            for method, v in entry.items():
                within = (f"{v['auc_within_source']:.3f} ({v['within_source_pairs']})" if v["within_source_pairs"]
                          else "n/a (no real video of its source)")
                lines.append(f"| {family} | {method} | {v['fakes']} | {v['auc']:.3f} | {within} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- calibration
# the smallest slope, 0.02, is all but the constant 0.5 yet keeps the videos' order (a submission that ranks), at
# a cost of at most a few thousandths of log loss over the constant
SLOPES = tuple(np.round(np.concatenate([[0.02], np.arange(0.05, 2.01, 0.05)]), 3))
# no bias: families differ in their share of fakes (FF++ 72 %, talking heads 31 %), so a bias fitted on some
# families encodes their prior and overclaims on the next (measured: leave-one-fold-out log loss 0.87 and 0.95
# with a fitted bias, 0.70 and 0.69 without, on the SBI folds; docs/cross_family.md)
BIASES = (0.0,)
CLIPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)


def _family_losses(raw: np.ndarray, labels: np.ndarray, families: np.ndarray, slope: float, bias: float,
                   clip: float) -> dict[str, float]:
    probs = np.clip(ensemble.sigmoid(slope * ensemble.logit(raw) + bias), clip, 1 - clip)
    return {f: metrics.log_loss(labels[families == f], probs[families == f]) for f in np.unique(families)}


def fit_minimax_calibration(raw: np.ndarray, labels: np.ndarray, families: np.ndarray) -> dict:
    """``sigmoid(slope · logit(raw))`` clipped to ``[c, 1 − c]``, chosen on a grid to minimise the *worst*
    family's log loss (ties: the mean). The smallest slope is nearly the constant 0.5 (raw scores in [0.01, 0.99]
    land within 0.5 ± 0.03), so the worst family does no worse than about 0.693 on the videos it is fitted on: a
    model unsure on a new source is made to say ~0.5, in the order its scores give."""
    best, best_key = None, (np.inf, np.inf)
    for slope in SLOPES:
        for bias in BIASES:
            for clip in CLIPS:
                losses = _family_losses(raw, labels, families, slope, bias, clip)
                key = (round(max(losses.values()), 6), round(float(np.mean(list(losses.values()))), 6))
                if key < best_key:
                    best, best_key = (float(slope), float(bias), float(clip)), key
    slope, bias, clip = best
    return {"temperature": round(1.0 / slope, 4), "bias": bias, "clip": [clip, round(1 - clip, 6)],
            "worst_family_log_loss": best_key[0], "mean_family_log_loss": best_key[1]}


def apply_calibration(fit: dict, raw: np.ndarray) -> np.ndarray:
    clipper = ensemble.ProbabilityClipper(fit["clip"][0], fit["clip"][1], fit["temperature"], fit["bias"])
    return clipper(raw)


def calibration_report(rows: list[dict]) -> dict:
    """The fit on all out-of-family predictions, and each fold scored with the fit made on the other folds."""
    raw = np.array([r["raw"] for r in rows], np.float64)
    labels = np.array([r["label"] for r in rows], np.float64)
    families = np.array([r["family"] for r in rows])
    folds = np.array([r["fold"] for r in rows])
    fit = fit_minimax_calibration(raw, labels, families)
    held = {}
    oof = np.full(len(rows), np.nan)
    for fold in np.unique(folds):
        inside = folds == fold
        others = fit_minimax_calibration(raw[~inside], labels[~inside], families[~inside])
        oof[inside] = apply_calibration(others, raw[inside])
        held[fold] = others
    per_family = {}
    for family in np.unique(families):
        chosen = families == family
        per_family[family] = {"log_loss": round(metrics.log_loss(labels[chosen], oof[chosen]), 4),
                              "in_sample_log_loss": round(metrics.log_loss(
                                  labels[chosen], apply_calibration(fit, raw[chosen])), 4)}
    return {"fit": fit, "fits_without_each_fold": held,
            "leave_one_fold_out": {"families": per_family, "mean_log_loss": round(float(np.mean(
                [v["log_loss"] for v in per_family.values()])), 4),
                "worst_log_loss": round(max(v["log_loss"] for v in per_family.values()), 4)}}


def store_calibration(weights: str | Path, report: dict, source: str, evaluated: list[str],
                      video_norm: dict[str, int | None] | None = None) -> None:
    """The out-of-family fit becomes the manifest's calibration and clip; members that the cross-family folds did
    not score get ensemble weight 0 (no out-of-family evidence supports them), with that reason recorded. The
    members' per-video normalisation (``video_norm``, as the folds were scored) is stored with the fit it made."""
    from .detectors.weights import read_manifest, write_manifest

    manifest = read_manifest(weights)
    reasons = {}
    for entry in manifest.members:
        entry.video_norm_blocks = (video_norm or {}).get(entry.name)
        if entry.name in evaluated:
            reasons[entry.name] = {"weight": entry.ensemble_weight,
                                   "reason": f"scored out of family in {source} (the table)"}
        else:
            entry.ensemble_weight = 0.0
            reasons[entry.name] = {"weight": 0.0, "reason": f"not among the members scored out of family in "
                                                             f"{source}: no held-out-family evidence supports it"}
    manifest.notes["ensemble_weights"] = reasons
    fit = report["fit"]
    manifest.calibration = {"temperature": fit["temperature"], "bias": fit["bias"],
                            "fitted_on": f"out-of-family predictions of {source}",
                            "rule": "minimax over held-out families",
                            "leave_one_fold_out_log_loss": report["leave_one_fold_out"]["families"]}
    manifest.clip = {"lo": fit["clip"][0], "hi": fit["clip"][1]}
    manifest.calibration_by_members = {}  # in-domain per-member fits would overclaim on new sources
    write_manifest(manifest, weights)


# ---------------------------------------------------------------------------------------------- whole run
def fold_inits(init_from: str | Path, fold: str, members: list[str], given: list[str]) -> list[str]:
    """``--init`` entries (``MEMBER=PATH``) that start ``fold``'s members from the same fold of run ``init_from``:
    its schedule's last weights (``work/MEMBER/last.pt``). A missing checkpoint, or a member also given ``--init``,
    is a configuration error."""
    named = {item.split("=", 1)[0] for item in given}
    inits = []
    for member in members:
        if member in named:
            raise ValueError(f"--init-from and --init both start {member}: give one of them")
        path = Path(init_from) / fold / "work" / member / "last.pt"
        if not path.is_file():
            raise FileNotFoundError(f"--init-from {init_from}: no {path} (was fold {fold} of that run trained with "
                                    f"member {member}? with --seeds, point --init-from at the run's --out)")
        inits.append(f"{member}={path}")
    return inits


def run(config: CrossFamilyConfig, train_config, augment: AugmentConfig | None = None,
        command: str | None = None) -> dict:
    """Train (unless ``score_only``) and score every fold; write predictions, table and report under ``out``."""
    from .device import resolve_device
    from .training import run as training

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    items = training.gather_items(dataclasses.replace(train_config, hold_out_family=[]))  # every family
    known = {i.family for i in items}
    folds = [fold.split("+") for fold in config.folds]
    missing = sorted({f for fold in folds for f in fold} - known)
    if missing:
        raise ValueError(f"--folds: no video of family {', '.join(missing)}; the data has {', '.join(sorted(known))}")
    starts = {fold: fold_inits(config.init_from, fold, train_config.members, train_config.init)
              for fold in config.folds} if config.init_from and not config.score_only else {}
    device = resolve_device(train_config.device)
    cache = CropCache(train_config.cache_dir, CacheConfig(frames=train_config.cache_frames,
                                                          crop_size=train_config.cache_size), device=device)
    cache.build(items, progress=train_config.progress)  # every fold's held-out videos too, once
    rows = []
    for fold, families in zip(config.folds, folds):
        fold_dir = out / fold
        weights = fold_dir / "weights"
        if train_config.resume and (fold_dir / "predictions.csv").is_file():  # a finished fold: nothing to redo
            scored = read_predictions(fold_dir / "predictions.csv")
            log.warning("fold %s: finished earlier, %d predictions reused", fold, len(scored))
            wanted = config.video_norm_blocks
            if wanted is not None and any(v != (wanted if wanted >= 0 else None)
                                          for v in video_norm_of(scored).values()):
                raise ValueError(f"fold {fold} was scored with other per-video normalisation than --video-norm-blocks "
                                 f"{config.video_norm_blocks}: rerun without --resume (with --score-only to keep its "
                                 f"weights)")
        else:
            if not config.score_only:
                fold_config = dataclasses.replace(train_config, hold_out_family=families, out=str(weights),
                                                  work_dir=str(fold_dir / "work"),
                                                  init=list(train_config.init) + starts.get(fold, []))
                training.run(fold_config, augment, command=(command or "") + f"  # fold {fold}")
            held_out = [i for i in items if i.family in families]
            scored = score_held_out(weights, held_out, cache, device=device,
                                    video_norm_blocks=config.video_norm_blocks)
            for row in scored:
                row["fold"] = fold
            write_predictions(fold_dir / "predictions.csv", scored)
        rows += scored
        log.warning("fold %s: %s", fold, json.dumps(family_table(scored, resamples=0)["families"]))
    write_predictions(out / "predictions.csv", rows)
    report = {"command": command, "folds": config.folds, "table": family_table(rows, "score", config.bootstrap)}
    return finish_report(config, report, rows, render_table)


def run_seeds(config: CrossFamilyConfig, train_config, augment: AugmentConfig | None = None,
              command: str | None = None) -> dict:
    """:func:`run` once per seed of ``config.seeds`` (each under ``OUT/seed_S``), then the table over seeds; the
    calibration, when asked, is fitted on every seed's out-of-family predictions (a fold left out with all its
    seeds)."""
    out = Path(config.out)
    if config.init_from and not config.score_only:  # every seed's starts exist before any seed trains
        for seed in config.seeds:
            for fold in config.folds:
                fold_inits(Path(config.init_from) / f"seed_{seed}", fold, train_config.members, train_config.init)
    tables, rows = {}, []
    for seed in config.seeds:
        seed_config = dataclasses.replace(config, seeds=[], out=str(out / f"seed_{seed}"), fit_calibration=False,
                                          calibrate_weights=None,
                                          init_from=config.init_from and str(Path(config.init_from) / f"seed_{seed}"))
        tables[seed] = run(seed_config, dataclasses.replace(train_config, seed=seed), augment, command)["table"]
        rows += read_predictions(Path(seed_config.out) / "predictions.csv")
    report = {"command": command, "folds": config.folds, "seeds": list(config.seeds),
              "over_seeds": seed_summary(tables)}
    return finish_report(config, report, rows, render_seed_table)


def seed_summary(tables: dict[int, dict]) -> dict:
    """Each family's AUC and log loss per seed, with mean and sd over seeds; the mean AUC per seed likewise."""
    def spread(values):
        values = [v for v in values if v is not None and not np.isnan(v)]  # one-class families have no AUC
        return {"mean": round(float(np.mean(values)), 4) if values else None,
                "sd": round(float(np.std(values, ddof=1)), 4) if len(values) > 1 else None}

    first = next(iter(tables.values()))
    families = {}
    for family, entry in first["families"].items():
        aucs = {seed: t["families"][family]["auc"] for seed, t in tables.items()}
        losses = {seed: t["families"][family]["log_loss"] for seed, t in tables.items()}
        within = {seed: t["families"][family].get("auc_within_source") for seed, t in tables.items()}
        families[family] = {"videos": entry["videos"], "fake": entry["fake"], "real": entry["real"],
                            "fold": entry["fold"], "in_mean": family in first["mean"]["auc_over"],
                            "auc": aucs, "auc_over_seeds": spread(aucs.values()),
                            "log_loss": losses, "log_loss_over_seeds": spread(losses.values()),
                            "auc_within_source_over_seeds": spread(within.values()),
                            "within_source_pairs": entry.get("within_source_pairs", 0)}
    means = {seed: t["mean"]["auc"] for seed, t in tables.items()}
    methods: dict[str, dict] = {}
    for family, entry in first.get("methods", {}).items():
        for method, v in entry.items():
            aucs = {seed: t["methods"][family][method]["auc"] for seed, t in tables.items()}
            within = {seed: t["methods"][family][method]["auc_within_source"] for seed, t in tables.items()}
            methods.setdefault(family, {})[method] = {
                "fakes": v["fakes"], "auc": aucs, "auc_over_seeds": spread(aucs.values()),
                "auc_within_source_over_seeds": spread(within.values()),
                "within_source_pairs": v["within_source_pairs"]}
    return {"families": families, "mean_auc": means, "mean_auc_over_seeds": spread(means.values()),
            "auc_over": first["mean"]["auc_over"], "methods": methods}


def render_seed_table(report: dict) -> str:
    summary, seeds = report["over_seeds"], report["seeds"]
    def fmt(spread):
        if spread["mean"] is None:
            return "n/a"
        return f"{spread['mean']:.3f}" + (f" ± {spread['sd']:.3f}" if spread["sd"] is not None else "")

    lines = [f"| held-out family | fold | videos (fake/real) | video AUC, seeds {', '.join(map(str, seeds))} | "
             "AUC mean ± sd | AUC within a source, mean ± sd | log loss mean ± sd |", "|---|---|---|---|---|---|---|"]
    for family, v in summary["families"].items():
        note = "" if v["in_mean"] else " (not in the mean)"
        lines.append(f"| {family} | {v['fold']} | {v['videos']} ({v['fake']}/{v['real']}) | "
                     f"{' / '.join(f'{a:.3f}' for a in v['auc'].values())}{note} | {fmt(v['auc_over_seeds'])} | "
                     f"{fmt(v['auc_within_source_over_seeds']) if v['within_source_pairs'] else 'n/a'} | "
                     f"{fmt(v['log_loss_over_seeds'])} |")
    means = " / ".join("n/a" if a is None else f"{a:.3f}" for a in summary["mean_auc"].values())
    lines.append(f"| **mean** (over {', '.join(summary['auc_over'])}) | | | {means} | "
                 f"**{fmt(summary['mean_auc_over_seeds'])}** | | |")
    if summary.get("methods"):
        lines += ["", f"| held-out family | manipulation | fakes | AUC against the family's real videos, seeds "
                  f"{', '.join(map(str, seeds))} | mean ± sd | AUC within a source, mean ± sd (pairs) |",
                  "|---|---|---|---|---|---|"]
        for family, entry in summary["methods"].items():
            for method, v in entry.items():
                within = (f"{fmt(v['auc_within_source_over_seeds'])} ({v['within_source_pairs']})"
                          if v["within_source_pairs"] else "n/a")
                lines.append(f"| {family} | {method} | {v['fakes']} | "
                             f"{' / '.join(f'{a:.3f}' for a in v['auc'].values())} | {fmt(v['auc_over_seeds'])} | "
                             f"{within} |")
    return "\n".join(lines) + "\n"


PREDICTION_COLUMNS = ("fold", "family", "path", "label", "raw", "score", "members", "reason", "group", "method",
                      "dataset", "video_norm")


def write_predictions(path: Path, rows: list[dict]) -> None:
    from .pipeline.submission import atomic_write_text, render_csv

    atomic_write_text(path, render_csv(PREDICTION_COLUMNS, [[r.get(c, "") for c in PREDICTION_COLUMNS]
                                                            for r in rows]))


def read_predictions(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [dict(r, label=int(r["label"]), raw=float(r["raw"]), score=float(r["score"]))
                for r in csv.DictReader(handle)]


def report_from_predictions(config: CrossFamilyConfig) -> dict:
    """Rebuild the table (and fit) from an earlier run's ``predictions.csv``, training and scoring nothing."""
    rows = read_predictions(Path(config.out) / "predictions.csv")
    report = {"folds": sorted({r["fold"] for r in rows}), "table": family_table(rows, "score", config.bootstrap)}
    return finish_report(config, report, rows, render_table)


def finish_report(config: CrossFamilyConfig, report: dict, rows: list[dict], render) -> dict:
    """Add the out-of-family calibration when asked (stored in ``--calibrate-weights`` with the members' per-video
    normalisation), then write ``report.json`` and ``table.md`` under ``config.out``."""
    out = Path(config.out)
    if config.fit_calibration:
        report["calibration"] = calibration_report(rows)
        if config.calibrate_weights:
            store_calibration(config.calibrate_weights, report["calibration"], str(out), evaluated_members(rows),
                              video_norm_of(rows))
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "table.md").write_text(render(report))
    return report


def evaluated_members(rows: list[dict]) -> list[str]:
    """The members whose scores the predictions hold."""
    return sorted({part.split("=")[0] for r in rows for part in str(r.get("members", "")).split(";") if "=" in part})


def video_norm_of(rows: list[dict]) -> dict[str, int | None]:
    """Each member's per-video normalisation in the scored rows; the folds must agree (the fit holds for one)."""
    settings = {}
    for r in rows:
        if not r.get("members"):
            continue  # a fallback row: no member ran
        norm = {p.split("=")[0]: int(p.split("=")[1]) for p in str(r.get("video_norm") or "").split(";") if "=" in p}
        setting = {m: norm.get(m) for m in evaluated_members([r])}
        for member, blocks in setting.items():
            if settings.setdefault(member, blocks) != blocks:
                raise ValueError(f"the folds scored {member} with different per-video normalisation "
                                 f"({settings[member]} and {blocks}): rescore them alike before fitting")
    return settings


def build_parser() -> argparse.ArgumentParser:
    from .training.run import TrainConfig

    parser = argparse.ArgumentParser(prog="python -m deepfake_kernel.cross_family", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, CrossFamilyConfig)
    add_dataclass_args(parser, TrainConfig, skip=("out", "hold_out_family", "work_dir"))
    add_dataclass_args(parser, AugmentConfig, prefix="aug")
    parser.add_argument("--from-predictions", action="store_true",
                        help="rebuild the table (and --fit-calibration) from OUT/predictions.csv")
    parser.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: list[str] | None = None) -> int:
    from .training.run import TrainConfig

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = from_args(CrossFamilyConfig, args)
    train_config = from_args(TrainConfig, args)
    augment = from_args(AugmentConfig, args, prefix="aug")
    command = "python -m deepfake_kernel.cross_family " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv) if a != "--resume")
    try:
        if args.from_predictions and config.seeds:
            raise ValueError("--from-predictions rebuilds one run's table: point --out at one seed's folder "
                             "(OUT/seed_S) and leave out --seeds")
        if config.seeds:
            report = run_seeds(config, train_config, augment, command)
        else:
            report = (report_from_predictions(config) if args.from_predictions
                      else run(config, train_config, augment, command))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render_seed_table(report) if config.seeds else render_table(report), end="")
    if "calibration" in report:
        print("calibration (fit on all out-of-family predictions):", json.dumps(report["calibration"]["fit"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
