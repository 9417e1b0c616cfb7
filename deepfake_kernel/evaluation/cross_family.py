"""Leave-one-family-out: train each fold without its families, score them through predict's own stages.

The face crops are cut once (predict's reader and cropper, predict's settings) and shared by every fold, so a
fold costs training time only. The command line is ``python -m deepfake_kernel.cross_family``.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..training.augment import AugmentConfig
from ..training.data import CacheConfig, CropCache, VideoItem, cached_tracks
from .calibration import calibration_report, store_calibration
from .family_tables import family_table, render_seed_table, render_table, seed_summary

log = logging.getLogger("deepfake_kernel.cross_family")


@dataclass
class CrossFamilyConfig:
    """Options of ``cross_family`` besides the ``train`` ones."""

    folds: list[str] = field(default_factory=lambda: ["ffpp", "talking-head", "dfdc+deeperforensics"], metadata={
        "help": "held-out families per fold; join families with + to hold them out together"})
    out: str = field(default="runs/cross_family", metadata={"help": "folder of the folds, predictions and table"})
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples for the 95 %% intervals"})
    score_only: bool = field(default=False, metadata={"help": "score existing fold weights, train nothing"})
    fit_calibration: bool = field(default=False, metadata={
        "help": "fit the clipper on the out-of-family predictions (minimax over families, folds or test sets: "
                "--calibration-minimax-over), judged leave-one-fold-out"})
    calibration_minimax_over: str = field(default="family", metadata={
        "help": "with --fit-calibration: minimise the worst held-out 'family', the worst 'fold' (families held "
                "out together pooled; steadier where a family holds only a couple of videos) or the worst 'test-set' "
                "(a fold's videos per seed, as one predict run sees them; the shipped fit)"})
    calibration_target: float | None = field(default=None, metadata={
        "help": "with --fit-calibration: the least confident fit whose worst held-out group (as "
                "--calibration-minimax-over) still has log loss <= this (the minimax fit where none does), each fold "
                "judged with such a fit made on the others; unset: the minimax fit, the sharpest they bear"})
    test_set_center: bool = field(default=False, metadata={
        "help": "with --fit-calibration: fit on each video's logit minus the median logit of its test set (the fold's "
                "held-out videos, per seed), as predict then applies it over a run's videos; stored with the fit"})
    calibrate_weights: str | None = field(default=None, metadata={
        "help": "store that fit in this weights folder's manifest (the shipped model trained on every family)"})
    calibrate_member_set: bool = field(default=False, metadata={
        "help": "with --calibrate-weights: store the fit as the calibration of exactly the scored members, for "
                "videos those members score alone (e.g. the light preset's lightest member), leaving the main "
                "calibration as it is"})
    seeds: list[int] = field(default_factory=list, metadata={
        "help": "run every fold once per seed (OUT/seed_S/...) and report each family's AUC over the seeds, mean ± "
                "sd: one run's AUC moves by about 0.06 with the seed (docs/cross_family.md), so compare recipes "
                "over seeds; --fit-calibration then fits on all seeds' predictions"})
    video_norm_blocks: int | None = field(default=None, metadata={
        "help": "score the folds with per-video normalisation of the stem and this many blocks (test-time AdaBN; "
                "-1: off; unset: as each fold's manifest says); --calibrate-weights stores it with the fit"})
    test_set_norm_blocks: int | None = field(default=None, metadata={
        "help": "score each held-out family with the BatchNorm statistics of the stem and this many blocks "
                "re-estimated on that family's own crops, all its videos together (test-set AdaBN, as a kernel could "
                "take them from its unlabelled test videos); unset: the fold's training statistics"})
    temporal_cue_weight: float | None = field(default=None, metadata={
        "help": "add predict's temporal cue (log optical-flow residual between consecutive frames, docs/predict.md) "
                "to each held-out video's logit with this weight: logit + W * (cue - --temporal-cue-reference); the "
                "frames are read again at the cached faces; --calibrate-weights stores it with the fit"})
    temporal_cue_reference: float = field(default=-0.666, metadata={
        "help": "the cue value that adds nothing (the median over ../shared/data's videos)"})
    temporal_cue_positions: int = field(default=8, metadata={"help": "frame pairs per video for the temporal cue"})
    learned_cue_scores: list[str] = field(default_factory=list, metadata={
        "help": "with --from-predictions: CSVs of the learned temporal cue of held-out videos (train_temporal_cue "
                "--hold-out-family F --scores, one per fold and seed; a video's seeds are averaged), added to each row's "
                "logit as --learned-cue-weight * (cue - their median) before the table and the fit"})
    learned_cue_weight: float = field(default=0.5, metadata={"help": "weight of --learned-cue-scores"})
    learned_cue_networks: list[str] = field(default_factory=list, metadata={
        "help": "with --learned-cue-scores and --calibrate-weights: the manifest names of the networks (trained on every "
                "family, as the folds' were without theirs) whose mean logit predict adds with that fit"})
    init_from: str | None = field(default=None, metadata={
        "help": "start each fold's members from the same fold of another cross_family run (its --out; with --seeds, "
                "the same seed of it): that fold's work/MEMBER/last.pt, trained without the same families, e.g. "
                "self-blends alone first, then this run's recipe on top"})


def test_set_crops(cache: CropCache, items: list[VideoItem]) -> np.ndarray:
    """The faces a test-set BatchNorm adaptation averages over, chosen as ``predict`` chooses them
    (:mod:`~deepfake_kernel.pipeline.adapt`: evenly spaced videos, evenly spaced faces of each), from the cache."""
    from ..pipeline.adapt import AdaptConfig, evenly_spaced

    config = AdaptConfig()
    chosen = []
    for item in evenly_spaced(items, config.max_videos):
        tracks = cached_tracks(cache, item) if cache.video_file(item).is_file() else []
        if tracks:
            chosen.append(evenly_spaced(np.concatenate([t.crops() for t in tracks]), config.per_video))
    chosen = [c for c in chosen if len(c)]
    return np.concatenate(chosen) if chosen else np.zeros((0, 1, 1, 3), dtype=np.uint8)


def held_out_cue(reader, cache: CropCache, item: VideoItem, cue) -> float | None:
    """``predict``'s temporal cue (:func:`~deepfake_kernel.pipeline.temporal.video_cue`) for a cached video: its
    frames read again with ``cue.positions`` pairs, the cached faces placed on them; ``None`` when it cannot be
    read or measured. The value is kept beside the cached crops (it depends on the video alone), so every other
    fold, seed or weight reads no frame again."""
    from ..files import atomic_write_text
    from ..pipeline.faces import Track
    from ..pipeline.temporal import video_cue
    from ..pipeline.video import VideoReadError

    stored = cache.video_file(item).with_suffix(f".cue_p{cue.positions}_m{cue.margin:g}_s{cue.shrink:g}.json")
    if stored.is_file():
        return json.loads(stored.read_text())["cue"]
    try:
        batch = reader.read(item.path, cache.config.frames, cue.positions)
    except VideoReadError as exc:
        log.warning("temporal cue of %s not measured: %s", item.path, exc)
        return None
    where = {index: position for position, index in enumerate(batch.indices)}
    tracks = [Track(t.track_id, [dataclasses.replace(f, frame=where[f.frame]) for f in t.faces if f.frame in where])
              for t in cached_tracks(cache, item)]
    value = video_cue(batch.frames, batch.next_frames, [t for t in tracks if t.faces], cue.margin, cue.shrink)
    atomic_write_text(stored, json.dumps({"cue": value}) + "\n")
    return value


def score_held_out(weights_dir: str | Path, items: list[VideoItem], cache: CropCache, device: str = "cpu",
                   video_norm_blocks: int | None = None, test_set_norm_blocks: int | None = None,
                   temporal_cue=None) -> list[dict]:
    """One row per video: the fold's raw and submitted score as ``predict`` computes them from these crops.
    A video without crops gets the fallback 0.5 with its reason, as in ``predict``. ``video_norm_blocks``
    overrides the members' per-video normalisation (-1: off; ``None``: as the manifest says);
    ``test_set_norm_blocks`` first re-estimates the members' early BatchNorm statistics on ``items``' crops
    (:meth:`~deepfake_kernel.detectors.classifier.FaceClassifier.adapt_batchnorm`). ``temporal_cue``
    (a :class:`~deepfake_kernel.pipeline.temporal.TemporalCue`, else the fold manifest's) adds the temporal cue
    to each video's logit, as ``predict`` does; the rows keep the cue and the members' score without it."""
    from ..pipeline.detector import Detector
    from ..pipeline.ensemble import logit, sigmoid

    detector = Detector.from_weights(weights_dir, device=device)
    cue = temporal_cue or detector.temporal_cue
    if video_norm_blocks is not None:
        for member in detector.members.values():
            member.set_video_norm(video_norm_blocks)
    norm = {name: member.video_norm_blocks for name, member in detector.members.items()}
    if detector.cropper.crop_size != cache.config.crop_size:
        raise ValueError(f"predict cuts {detector.cropper.crop_size} px crops for these members, the cache holds "
                         f"{cache.config.crop_size} px ones: pass --cache-size {detector.cropper.crop_size}")
    if test_set_norm_blocks is not None:
        sample = test_set_crops(cache, items)
        for member in detector.members.values():
            member.adapt_batchnorm(sample, test_set_norm_blocks)
    models = detector.member_names
    skipped = cache.skipped()
    rows = []
    for item in items:
        row = {"path": item.path, "label": item.label, "family": item.family, "group": item.group,
               "method": item.method, "dataset": item.dataset,
               "set_norm": "" if test_set_norm_blocks is None else str(test_set_norm_blocks)}
        if cache.video_file(item).is_file():
            raw, member_scores, _ = detector.score_tracks(cached_tracks(cache, item), models)
            if cue is not None:
                value = held_out_cue(detector.reader, cache, item, cue)
                row.update(network_raw=raw, temporal_cue="" if value is None else value, cue=cue.describe())
                raw = float(sigmoid(cue.adjust_logit(float(logit(raw)), value)))
            row.update(raw=raw, score=float(detector.clipper_for(models)(raw)), reason="",
                       members=";".join(f"{k}={v:.6f}" for k, v in member_scores.items()),
                       video_norm=";".join(f"{k}={v}" for k, v in norm.items() if v is not None))
        else:
            row.update(raw=0.5, score=detector.fallback_score, reason=skipped.get(item.key, "not_cached"),
                       members="")
        rows.append(row)
    detector.close()
    return rows


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
    from ..device import resolve_device
    from ..training import run as training

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
            if {str(r.get("set_norm") or "") for r in scored} != {"" if config.test_set_norm_blocks is None
                                                                   else str(config.test_set_norm_blocks)}:
                raise ValueError(f"fold {fold} was scored with other test-set BatchNorm statistics than "
                                 f"--test-set-norm-blocks {config.test_set_norm_blocks}: rerun without --resume "
                                 f"(with --score-only to keep its weights)")
        else:
            if not config.score_only:
                fold_config = dataclasses.replace(train_config, hold_out_family=families, out=str(weights),
                                                  work_dir=str(fold_dir / "work"),
                                                  init=list(train_config.init) + starts.get(fold, []))
                training.run(fold_config, augment, command=(command or "") + f"  # fold {fold}")
            held_out = [i for i in items if i.family in families]
            scored = score_held_out(weights, held_out, cache, device=device,
                                    video_norm_blocks=config.video_norm_blocks,
                                    test_set_norm_blocks=config.test_set_norm_blocks,
                                    temporal_cue=temporal_cue_of(config))
            for row in scored:
                row["fold"] = fold
            write_predictions(fold_dir / "predictions.csv", scored)
        rows += scored
        log.warning("fold %s: %s", fold,
                    json.dumps(family_table(scored, resamples=0, rank_key="raw")["families"]))
    write_predictions(out / "predictions.csv", rows)
    report = {"command": command, "folds": config.folds,
              "table": family_table(rows, "score", config.bootstrap, rank_key="raw")}
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
        rows += [dict(r, seed=seed) for r in read_predictions(Path(seed_config.out) / "predictions.csv")]
    report = {"command": command, "folds": config.folds, "seeds": list(config.seeds),
              "over_seeds": seed_summary(tables)}
    return finish_report(config, report, rows, render_seed_table)


PREDICTION_COLUMNS = ("fold", "family", "path", "label", "raw", "score", "members", "reason", "group", "method",
                      "dataset", "video_norm", "set_norm", "network_raw", "temporal_cue", "cue")


def temporal_cue_of(config: CrossFamilyConfig):
    """The :class:`~deepfake_kernel.pipeline.temporal.TemporalCue` that ``--temporal-cue-weight`` asks for, or
    ``None``."""
    from ..pipeline.temporal import TemporalCue

    if not config.temporal_cue_weight:
        return None
    return TemporalCue(weight=config.temporal_cue_weight, reference=config.temporal_cue_reference,
                       positions=config.temporal_cue_positions)


def write_predictions(path: Path, rows: list[dict]) -> None:
    from ..pipeline.submission import atomic_write_text, render_csv

    atomic_write_text(path, render_csv(PREDICTION_COLUMNS, [[r.get(c, "") for c in PREDICTION_COLUMNS]
                                                            for r in rows]))


def read_predictions(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [dict(r, label=int(r["label"]), raw=float(r["raw"]), score=float(r["score"]))
                for r in csv.DictReader(handle)]


def add_learned_cue(rows: list[dict], score_files: list[str], weight: float) -> tuple[list[dict], float]:
    """``rows`` with the learned temporal cue of ``score_files`` (train_temporal_cue's held-out scores; per video
    the mean over files) added to each logit: ``raw``, and ``score`` as the folds' default clip keeps it, move by
    ``weight * (cue - reference)``; ``reference`` (returned) is the median cue over the scored videos, the level
    that adds nothing. A row whose video no file scored (no face pair) keeps its scores; a row that scored nothing
    (a fallback) stays as it is."""
    from ..pipeline.ensemble import logit, sigmoid

    values: dict[str, list[float]] = {}
    for name in score_files:
        with open(name, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("learned_cue") not in (None, "", "None"):
                    values.setdefault(row["path"], []).append(float(row["learned_cue"]))
    if not values:
        raise ValueError(f"--learned-cue-scores {score_files}: no learned cue in them")
    cue = {path: float(np.mean(v)) for path, v in values.items()}
    reference = float(np.median(list(cue.values())))
    out = []
    for row in rows:
        if row["path"] in cue and row.get("members"):
            raw = float(sigmoid(logit(np.float64(row["raw"])) + weight * (cue[row["path"]] - reference)))
            row = dict(row, raw=raw, score=float(np.clip(raw, 0.01, 0.99)), learned_cue=cue[row["path"]])
        out.append(row)
    return out, reference


def report_from_predictions(config: CrossFamilyConfig) -> dict:
    """Rebuild the table (and fit) from an earlier run's ``predictions.csv``, training and scoring nothing; with
    ``--learned-cue-scores``, after :func:`add_learned_cue`."""
    rows = read_predictions(Path(config.out) / "predictions.csv")
    learned = None
    if config.learned_cue_scores:
        rows, reference = add_learned_cue(rows, config.learned_cue_scores, config.learned_cue_weight)
        learned = {"weight": config.learned_cue_weight, "reference": round(reference, 4),
                   "videos": sum("learned_cue" in r for r in rows), "scores": list(config.learned_cue_scores)}
    report = {"folds": sorted({r["fold"] for r in rows}),
              "table": family_table(rows, "score", config.bootstrap, rank_key="raw")}
    if learned:
        report["learned_cue"] = learned
    return finish_report(config, report, rows, render_table)


def finish_report(config: CrossFamilyConfig, report: dict, rows: list[dict], render) -> dict:
    """Add the out-of-family calibration when asked (stored in ``--calibrate-weights`` with the members' per-video
    normalisation), then write ``report.json`` and ``table.md`` under ``config.out``."""
    out = Path(config.out)
    if config.fit_calibration:
        report["calibration"] = calibration_report(rows, center=config.test_set_center,
                                                   minimax_over=config.calibration_minimax_over,
                                                   target=config.calibration_target)
        if config.calibrate_weights:
            store_calibration(config.calibrate_weights, report["calibration"], str(out), evaluated_members(rows),
                              video_norm_of(rows), set_norm_of(rows), as_member_set=config.calibrate_member_set,
                              temporal_cue=learned_cue_entry(config, cue_of(rows), report.get("learned_cue")))
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "table.md").write_text(render(report))
    return report


def learned_cue_entry(config: CrossFamilyConfig, cue: dict | None, learned: dict | None) -> dict | None:
    """The manifest's temporal cue entry, naming the learned cue's networks where the rows carry it (``learned``:
    the report's weight and reference)."""
    if not learned:
        return cue
    if not config.learned_cue_networks:
        raise ValueError("--learned-cue-scores with --calibrate-weights: name the shipped networks the fit is for "
                         "(--learned-cue-networks, as train_temporal_cue --name exported them)")
    if cue is None:
        raise ValueError("the learned cue rides on the flow cue's entry: score the folds with --temporal-cue-weight")
    from ..detectors.weights import read_manifest

    manifest = read_manifest(config.calibrate_weights)
    for name in config.learned_cue_networks:
        try:
            entry = manifest.member(name)
        except KeyError as exc:
            raise ValueError(f"--learned-cue-networks {name}: not in {config.calibrate_weights}/manifest.json "
                             f"(train it with train_temporal_cue --out {config.calibrate_weights} --name {name})") from exc
        if entry.input != "residual":
            raise ValueError(f"--learned-cue-networks {name}: a face member, not a learned temporal cue network")
    return dict(cue, networks=list(config.learned_cue_networks), network_weight=learned["weight"],
                network_reference=learned["reference"])


def evaluated_members(rows: list[dict]) -> list[str]:
    """The members whose scores the predictions hold."""
    return sorted({part.split("=")[0] for r in rows for part in str(r.get("members", "")).split(";") if "=" in part})


def cue_of(rows: list[dict]) -> dict | None:
    """The temporal cue the rows were scored with (:meth:`TemporalCue.describe`) as a manifest entry; the folds must
    agree (the fit holds for one)."""
    from ..pipeline.temporal import TemporalCue

    settings = {str(r.get("cue") or "") for r in rows if r.get("members")}
    if len(settings) > 1:
        raise ValueError(f"the folds were scored with different temporal cues ({sorted(settings)}): rescore them with "
                         f"one --temporal-cue-weight before fitting")
    value = settings.pop() if settings else ""
    return TemporalCue.parse(value).entry() if value else None


def set_norm_of(rows: list[dict]) -> int | None:
    """The test-set BatchNorm setting the rows were scored with; the folds must agree (the fit holds for one)."""
    settings = {str(r.get("set_norm") or "") for r in rows}
    if len(settings) > 1:
        raise ValueError(f"the folds were scored with different test-set BatchNorm statistics ({sorted(settings)}): "
                         f"rescore them with one --test-set-norm-blocks before fitting")
    value = settings.pop() if settings else ""
    return int(value) if value else None


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
