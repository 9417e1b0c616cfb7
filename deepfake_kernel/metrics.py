"""Video-level metrics (numpy only): log loss as DFDC scored it, ROC AUC, accuracy."""
from __future__ import annotations

import numpy as np


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy, the DFDC leaderboard metric (probabilities clipped to ``[eps, 1 - eps]``)."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties averaged); NaN when one class is absent."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_scores = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def within_source_auc(labels: np.ndarray, scores: np.ndarray, sources: list[str]) -> dict:
    """AUC over the (fake, real) pairs that come from the same source only, pooled over sources (each pair counts
    once, ties half): the ranking a test set drawn from one source would see, with offsets between sources left
    out. ``pairs`` and ``sources`` say how much it rests on; ``auc`` is NaN where no source holds both classes."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    names = np.asarray(sources, dtype=object)
    right, pairs, used = 0.0, 0, 0
    for source in sorted(set(names.tolist())):
        inside = names == source
        n = int((inside & y).sum()) * int((inside & ~y).sum())
        if n:  # a source's AUC is its share of correctly ordered pairs
            right += roc_auc(y[inside], s[inside]) * n
            pairs += n
            used += 1
    return {"auc": right / pairs if pairs else float("nan"), "pairs": pairs, "sources": used}


def accuracy(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> float:
    return float(np.mean((np.asarray(probs) >= threshold) == np.asarray(labels).astype(bool)))


def summarize(labels: np.ndarray, probs: np.ndarray, clip: tuple[float, float] | None = None) -> dict[str, float]:
    """AUC, log loss (raw and, with ``clip``, clipped), accuracy and count."""
    out = {"n": int(len(labels)), "auc": roc_auc(labels, probs), "log_loss": log_loss(labels, probs),
           "accuracy": accuracy(labels, probs)}
    if clip is not None:
        out["log_loss_clipped"] = log_loss(labels, np.clip(probs, *clip))
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in out.items()}


def bootstrap_intervals(labels: np.ndarray, probs: np.ndarray, resamples: int, seed: int,
                        ranks: np.ndarray | None = None) -> dict:
    """95 % percentile intervals for AUC and log loss, resampling videos; the AUC from ``ranks`` where given (scores
    before a clip that ties them), the log loss from ``probs``."""
    ranks = probs if ranks is None else ranks
    rng = np.random.default_rng(seed)
    aucs, losses = [], []
    for _ in range(resamples):
        idx = rng.integers(0, len(labels), len(labels))
        losses.append(log_loss(labels[idx], probs[idx]))
        auc = roc_auc(labels[idx], ranks[idx])
        if np.isfinite(auc):
            aucs.append(auc)
    interval = lambda v: [round(float(np.percentile(v, 2.5)), 4), round(float(np.percentile(v, 97.5)), 4)] if v else None
    return {"auc_95ci": interval(aucs), "log_loss_95ci": interval(losses)}


def classification_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict:
    predicted = probs >= threshold
    truth = labels.astype(bool)
    tp, fp = int(np.sum(predicted & truth)), int(np.sum(predicted & ~truth))
    fn, tn = int(np.sum(~predicted & truth)), int(np.sum(~predicted & ~truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}}


def group_folds(groups: list[str], folds: int, seed: int) -> np.ndarray:
    """Fold number per video; every video of a group in the same fold."""
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = {unique[i]: k % folds for k, i in enumerate(order)}
    return np.array([fold_of[g] for g in groups])


def out_of_fold(fit, apply, n: int, folds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Predictions for each fold from a model fitted on the other folds (folds with one class are skipped)."""
    out = np.full(n, np.nan)
    for fold in np.unique(folds):
        train = folds != fold
        if len(np.unique(labels[train])) < 2:
            continue
        model = fit(train)
        out[~train] = apply(model, ~train)
    return out


# ---------------------------------------------------------------------------------------------- plots
