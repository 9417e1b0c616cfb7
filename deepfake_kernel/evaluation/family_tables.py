"""The cross-family tables: per held-out family and per manipulation, for one run or over seeds."""
from __future__ import annotations

import numpy as np

from .. import metrics

MIN_PER_CLASS = 5  # videos of each class a family needs for its AUC to enter the mean


def family_table(rows: list[dict], key: str = "score", resamples: int = 1000, seed: int = 0,
                 rank_key: str | None = None) -> dict:
    """Per-family video AUC and log loss (with bootstrap 95 % intervals) and the mean over families: the log loss
    of ``key``, the AUCs of ``rank_key`` (default ``key``). The cross-family runs rank by ``raw``: ``score`` is
    ``raw`` clipped to [0.01, 0.99], which ties the surest videos, while ``predict`` calibrates ``raw`` before its
    clip and keeps their order."""
    rank_key = rank_key or key
    table = {}
    for family in sorted({r["family"] for r in rows}):
        chosen = [r for r in rows if r["family"] == family]
        labels = np.array([r["label"] for r in chosen], np.float64)
        scores = np.array([r[key] for r in chosen], np.float64)
        ranks = np.array([r[rank_key] for r in chosen], np.float64)
        entry = {"videos": len(chosen), "fake": int(labels.sum()), "real": int(len(labels) - labels.sum()),
                 "fold": chosen[0].get("fold", ""), "auc": metrics.roc_auc(labels, ranks),
                 "log_loss": metrics.log_loss(labels, scores),
                 "fallbacks": sum(1 for r in chosen if r.get("reason"))}
        entry.update(metrics.bootstrap_intervals(labels, scores, resamples, seed, ranks=ranks))
        within = metrics.within_source_auc(labels, ranks, [r.get("dataset") or "" for r in chosen])
        entry.update({"auc_within_source": within["auc"], "within_source_pairs": within["pairs"],
                      "within_source_sources": within["sources"]})
        table[family] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in entry.items()}
    # an AUC from one real video (dfdc here) or two videos says nothing: the mean is over families that hold
    # MIN_PER_CLASS videos of each class
    both = {f: v for f, v in table.items() if min(v["fake"], v["real"]) >= MIN_PER_CLASS}
    mean = {"auc": round(float(np.mean([v["auc"] for v in both.values()])), 4) if both else None,
            "log_loss": round(float(np.mean([v["log_loss"] for v in table.values()])), 4),
            "auc_over": list(both)}
    return {"families": table, "mean": mean, "methods": method_table(rows, rank_key)}


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
