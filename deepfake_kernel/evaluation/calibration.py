"""Calibration that never overclaims: fitted on out-of-family predictions, minimax over families, folds or test sets.

``sigmoid(slope · logit(raw))`` clipped to ``[c, 1 − c]``, the slope and clip chosen so that the *worst*
held-out family's log loss is as low as it gets (in sample never above the constant's 0.693); each fold is then
judged with the fit made on the other folds.

With ``center`` each video's logit is first taken relative to the median logit of its test set (the fold's
held-out videos of one seed, as ``predict`` would see them in one run: :func:`~..pipeline.ensemble.test_set_shift`).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .. import metrics
from ..pipeline import ensemble
from .family_tables import MIN_PER_CLASS

LOGGER = logging.getLogger(__name__)
CONSTANT_LOG_LOSS = float(np.log(2.0))  # writing 0.5 for every video

# the smallest slope, 0.02, is all but the constant 0.5 yet keeps the videos' order (a submission that ranks), at
# a cost of at most a few thousandths of log loss over the constant
SLOPES = tuple(np.round(np.concatenate([[0.02], np.arange(0.05, 2.01, 0.05)]), 3))
# no bias: families differ in their share of fakes (FF++ 72 %, talking heads 31 %), so a bias fitted on some
# families encodes their prior and overclaims on the next (measured: leave-one-fold-out log loss 0.87 and 0.95
# with a fitted bias, 0.70 and 0.69 without, on the SBI folds; docs/cross_family.md)
BIASES = (0.0,)
CLIPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)


def family_losses(raw: np.ndarray, labels: np.ndarray, families: np.ndarray, slope: float, bias: float,
                   clip: float, shift: np.ndarray | float = 0.0) -> dict[str, float]:
    probs = np.clip(ensemble.sigmoid(slope * (ensemble.logit(raw) - shift) + bias), clip, 1 - clip)
    return {f: metrics.log_loss(labels[families == f], probs[families == f]) for f in np.unique(families)}


def test_set_keys(rows: list[dict]) -> np.ndarray:
    """Per row, its test set: ``fold/seed`` (the fold's held-out videos scored by one seed, one ``predict`` run's
    worth; ``seed`` absent: the fold is one run)."""
    return np.array([f"{r['fold']}/{r.get('seed', '')}" for r in rows])


def test_set_shifts(rows: list[dict]) -> np.ndarray:
    """Per row, the median logit of its test set: the rows of its fold and seed (``seed`` absent: one run). Taken
    over the members' scores (``network_raw``, before the temporal cue, where a row has one), as ``predict``
    centres (:func:`~deepfake_kernel.pipeline.adapt.centre_scores`)."""
    keys = test_set_keys(rows)
    raw = np.array([r["raw"] if r.get("network_raw") in (None, "") else float(r["network_raw"]) for r in rows],
                   np.float64)
    shifts = np.zeros(len(rows))
    for key in np.unique(keys):
        shifts[keys == key] = ensemble.test_set_shift(raw[keys == key])
    return shifts


def grid_losses(raw: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                shift: np.ndarray | float = 0.0) -> dict[tuple[float, float, float], tuple[float, float]]:
    """Per ``(slope, bias, clip)`` of the grid: the worst group's log loss and the mean over groups."""
    out = {}
    for slope in SLOPES:
        for bias in BIASES:
            for clip in CLIPS:
                losses = family_losses(raw, labels, groups, slope, bias, clip, shift)
                out[(float(slope), float(bias), float(clip))] = (round(max(losses.values()), 6),
                                                                 round(float(np.mean(list(losses.values()))), 6))
    return out


def fit_record(choice: tuple[float, float, float], losses: tuple[float, float]) -> dict:
    slope, bias, clip = choice
    return {"temperature": round(1.0 / slope, 4), "bias": bias, "clip": [clip, round(1 - clip, 6)],
            "worst_family_log_loss": losses[0], "mean_family_log_loss": losses[1]}


def fit_minimax_calibration(raw: np.ndarray, labels: np.ndarray, families: np.ndarray,
                            shift: np.ndarray | float = 0.0) -> dict:
    """``sigmoid(slope · logit(raw))`` clipped to ``[c, 1 − c]``, chosen on a grid to minimise the *worst*
    family's log loss (ties: the mean). The smallest slope is nearly the constant 0.5 (raw scores in [0.01, 0.99]
    land within 0.5 ± 0.03), so the worst family does no worse than about 0.693 on the videos it is fitted on: a
    model unsure on a new source is made to say ~0.5, in the order its scores give."""
    grid = grid_losses(raw, labels, families, shift)
    choice = min(grid, key=lambda k: grid[k])
    return fit_record(choice, grid[choice])


def fit_least_confident_calibration(raw: np.ndarray, labels: np.ndarray, groups: np.ndarray, target: float,
                                    shift: np.ndarray | float = 0.0) -> dict:
    """The least confident fit that still meets ``target``: the smallest slope of the grid at which every group's
    log loss is at most ``target`` (its clip the one that lowers the worst group most at that slope, then the
    narrowest); where no slope meets it, the minimax fit. The minimax fit is the sharpest the fitted groups bear,
    and a source none of them is bears less (docs/cross_family.md, thirty-fifth session): this one is as sure as the
    target needs and no surer. ``target_met`` records which case it was."""
    grid = grid_losses(raw, labels, groups, shift)
    meeting = sorted({k[0] for k, v in grid.items() if v[0] <= target})
    if not meeting:  # the minimax choice, as fit_minimax_calibration makes it
        choice = min(grid, key=lambda k: grid[k])
        return dict(fit_record(choice, grid[choice]), target=target, target_met=False)
    at_slope = [k for k in grid if k[0] == meeting[0]]
    choice = min(at_slope, key=lambda k: (grid[k], k[2]))
    return dict(fit_record(choice, grid[choice]), target=target, target_met=True)


def apply_calibration(fit: dict, raw: np.ndarray, shift: np.ndarray | float = 0.0) -> np.ndarray:
    clipper = ensemble.ProbabilityClipper(fit["clip"][0], fit["clip"][1], fit["temperature"], fit["bias"])
    return clipper(ensemble.sigmoid(ensemble.logit(raw) - shift))


RULE_NAMES = {"family": "minimax over held-out families", "fold": "minimax over held-out folds",
              "test-set": "minimax over held-out test sets (fold x seed)"}
MINIMAX_OVER = tuple(RULE_NAMES)
GROUP_NAMES = {"family": "family", "fold": "fold", "test-set": "test set (fold x seed)"}


def small_families(labels: np.ndarray, families: np.ndarray) -> dict[str, tuple[int, int]]:
    """Families holding fewer fakes or reals than a family's AUC needs to enter the table's mean
    (:data:`~.family_tables.MIN_PER_CLASS`): ``{family: (fakes, reals)}``."""
    counts = {f: (int((labels[families == f] == 1).sum()), int((labels[families == f] == 0).sum()))
              for f in np.unique(families)}
    return {f: c for f, c in counts.items() if min(c) < MIN_PER_CLASS}


def calibration_report(rows: list[dict], center: bool = False, minimax_over: str = "family",
                       target: float | None = None) -> dict:
    """The fit on all out-of-family predictions, and each fold scored with the fit made on the other folds;
    ``center``: on logits centred per test set (:func:`test_set_shifts`), recorded in the fit as
    ``"center": "test_set_median"``. ``minimax_over``: the worst ``family`` (the default) or the worst
    ``fold`` (families held out together pooled: steadier where a family holds a couple of videos, whose order
    alone then sets the temperature) or the worst ``test-set`` (each fold's videos per seed, one ``predict`` run's
    worth: a fit must hold on every run, not only on their pool; the shipped fit since the thirty-third session);
    the leave-one-out log losses are reported per family either way, and the fit records its rule. ``target``: the
    least confident fit whose worst group meets it (:func:`fit_least_confident_calibration`) instead of the minimax
    fit, each fold's fit made on the other folds the same way."""
    if minimax_over not in MINIMAX_OVER:
        raise ValueError(f"minimax over {minimax_over!r}: choose one of {', '.join(MINIMAX_OVER)}")
    raw = np.array([r["raw"] for r in rows], np.float64)
    labels = np.array([r["label"] for r in rows], np.float64)
    families = np.array([r["family"] for r in rows])
    folds = np.array([r["fold"] for r in rows])
    groups = {"family": families, "fold": folds,
              "test-set": test_set_keys(rows)}[minimax_over]
    shift = test_set_shifts(rows) if center else np.zeros(len(rows))
    few = small_families(labels, groups)
    if few:
        hint = "; --calibration-minimax-over fold pools families held out together" if minimax_over == "family" else ""
        LOGGER.warning("calibration: %s %s fewer than %d videos of a class (fakes, reals): the order of those few "
                       "videos can decide the fit%s", ", ".join(f"{f} {c}" for f, c in few.items()),
                       "holds" if len(few) == 1 else "hold", MIN_PER_CLASS, hint)

    def fit_on(chosen: np.ndarray) -> dict:
        if target is None:
            return fit_minimax_calibration(raw[chosen], labels[chosen], groups[chosen], shift[chosen])
        return fit_least_confident_calibration(raw[chosen], labels[chosen], groups[chosen], target, shift[chosen])

    fit = fit_on(np.ones(len(rows), bool))
    held = {}
    oof = np.full(len(rows), np.nan)
    for fold in np.unique(folds):
        inside = folds == fold
        others = fit_on(~inside)
        oof[inside] = apply_calibration(others, raw[inside], shift[inside])
        held[fold] = others
    per_family = {}
    for family in np.unique(families):
        chosen = families == family
        per_family[family] = {"log_loss": round(metrics.log_loss(labels[chosen], oof[chosen]), 4),
                              "in_sample_log_loss": round(metrics.log_loss(
                                  labels[chosen], apply_calibration(fit, raw[chosen], shift[chosen])), 4)}
    fit["center"] = "test_set_median" if center else None
    fit["rule"] = RULE_NAMES[minimax_over] if target is None else (
        f"least confident with log loss <= {target} on every held-out {GROUP_NAMES[minimax_over]}, else "
        f"{RULE_NAMES[minimax_over]}")
    return {"fit": fit, "fits_without_each_fold": held,
            "leave_one_fold_out": {"families": per_family, "mean_log_loss": round(float(np.mean(
                [v["log_loss"] for v in per_family.values()])), 4),
                "worst_log_loss": round(max(v["log_loss"] for v in per_family.values()), 4)}}


OUT_OF_FAMILY = "out-of-family predictions of "  # how a fit stored from cross_family's folds begins its source


def store_calibration(weights: str | Path, report: dict, source: str, evaluated: list[str],
                      video_norm: dict[str, int | None] | None = None, set_norm: int | None = None,
                      as_member_set: bool = False, temporal_cue: dict | None = None) -> None:
    """The out-of-family fit becomes the manifest's calibration and clip; members that the cross-family folds did
    not score get ensemble weight 0 (no out-of-family evidence supports them), with that reason recorded. The
    members' per-video normalisation (``video_norm``) and test-set BatchNorm statistics (``set_norm``), as the
    folds were scored, are stored with the fit they made, and so is the temporal cue they added (``temporal_cue``,
    a manifest entry of :class:`~deepfake_kernel.pipeline.temporal.TemporalCue`; ``None``: none).

    ``as_member_set``: the fit is instead stored as the calibration of exactly the ``evaluated`` members
    (``calibration_by_members``, with its own temporal cue where the folds added one), used when a video is scored
    by those members alone (the light preset); the main calibration, weights and test-time settings stay, and must
    match how the folds were scored."""
    from ..detectors.weights import read_manifest, write_manifest

    manifest = read_manifest(weights)
    if as_member_set:
        store_member_set_calibration(manifest, report, source, evaluated, video_norm, set_norm, temporal_cue)
        write_manifest(manifest, weights)
        return
    reasons = {}
    before = {entry.name: (entry.video_norm_blocks, entry.test_set_norm_blocks) for entry in manifest.members}
    for entry in manifest.members:
        if entry.input != "face":  # the learned temporal cue's network: the cue's entry names it, no weight
            reasons[entry.name] = {"weight": 0.0, "reason": "reads face pairs for the learned temporal cue "
                                                             "(calibration.temporal_cue.networks), not faces"}
            continue
        entry.video_norm_blocks = (video_norm or {}).get(entry.name)
        entry.test_set_norm_blocks = set_norm if entry.name in evaluated else None
        if entry.name in evaluated:
            reasons[entry.name] = {"weight": entry.ensemble_weight,
                                   "reason": f"scored out of family in {source} (the table)"}
        else:
            entry.ensemble_weight = 0.0
            reasons[entry.name] = {"weight": 0.0, "reason": f"not among the members scored out of family in "
                                                             f"{source}: no held-out-family evidence supports it"}
    manifest.notes["ensemble_weights"] = reasons
    manifest.calibration = out_of_family_entry(report, source)
    if temporal_cue:  # for the member set the fit calibrates (the evaluated members the manifest holds)
        manifest.calibration["temporal_cue"] = dict(
            temporal_cue, members=[entry.name for entry in manifest.members if entry.name in evaluated])
    manifest.clip = {"lo": report["fit"]["clip"][0], "hi": report["fit"]["clip"][1]}
    # in-domain per-member fits would overclaim on new sources; out-of-family ones stay while their members are
    # scored as before (same BatchNorm settings)
    unchanged = {entry.name for entry in manifest.members
                 if before[entry.name] == (entry.video_norm_blocks, entry.test_set_norm_blocks)}
    manifest.calibration_by_members = {key: fit for key, fit in manifest.calibration_by_members.items()
                                       if str(fit.get("fitted_on", "")).startswith(OUT_OF_FAMILY)
                                       and set(key.split("+")) <= unchanged}
    write_manifest(manifest, weights)


def out_of_family_entry(report: dict, source: str) -> dict:
    fit = report["fit"]
    return {"temperature": fit["temperature"], "bias": fit["bias"], "center": fit.get("center"),
            "fitted_on": f"{OUT_OF_FAMILY}{source}", "rule": fit.get("rule", "minimax over held-out families"),
            **({"target": fit["target"]} if "target" in fit else {}),
            "leave_one_fold_out_log_loss": report["leave_one_fold_out"]["families"]}


def store_member_set_calibration(manifest, report: dict, source: str, evaluated: list[str],
                                 video_norm: dict[str, int | None] | None, set_norm: int | None,
                                 temporal_cue: dict | None = None) -> None:
    """``calibration_by_members[evaluated]`` from the fit, with the temporal cue the folds added (its reading, e.g.
    ``paired``, is how ``predict`` then reads those members' videos); refused where the manifest would score those
    members otherwise than the folds were scored (test-set or per-video BatchNorm, centring)."""
    names = {entry.name for entry in manifest.members}
    if not evaluated or not set(evaluated) <= names:
        raise ValueError(f"the predictions' members {evaluated} are not all in the weights' manifest "
                         f"({sorted(names)})")
    for name in evaluated:
        entry = manifest.member(name)
        if entry.test_set_norm_blocks != set_norm or entry.video_norm_blocks != (video_norm or {}).get(name):
            raise ValueError(
                f"{name} was scored in the folds with test-set BatchNorm {set_norm} and per-video normalisation "
                f"{(video_norm or {}).get(name)}, but the manifest scores it with {entry.test_set_norm_blocks} and "
                f"{entry.video_norm_blocks}: store the main calibration first, from folds scored alike")
    if report["fit"].get("center") != manifest.calibration.get("center"):
        raise ValueError(f"the fit's centring ({report['fit'].get('center')}) differs from the main calibration's "
                         f"({manifest.calibration.get('center')}), which decides centring for every member set: "
                         f"fit both alike (--test-set-center)")
    entry = out_of_family_entry(report, source)
    entry["clip"] = list(report["fit"]["clip"])
    if temporal_cue:
        entry["temporal_cue"] = dict(temporal_cue, members=sorted(evaluated))
    manifest.calibration_by_members[ensemble.member_set_key(evaluated)] = entry
