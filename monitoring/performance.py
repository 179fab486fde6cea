"""Performance of predictions against actuals, with scikit-learn's metrics (pure, no Django)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "brier")
REGRESSION_METRICS = ("mae", "rmse", "r2")
FAIRNESS_MEASURES = ("positive_rate", "true_positive_rate", "false_positive_rate")
CALIBRATION_BINS = 10


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def classification(y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray | None) -> dict[str, Any]:
    """Binary or multi-class; `score` is the probability of the positive class (binary only)."""
    labels = np.unique(np.concatenate([y_true, y_pred]))
    binary = len(labels) <= 2
    average = "binary" if binary else "macro"
    positive = labels[-1] if binary and len(labels) else None  # np.unique sorts: "1" over "0", "yes" over "no"
    kwargs: dict[str, Any] = {"average": average, "zero_division": 0}
    if binary:
        kwargs["pos_label"] = positive
    result: dict[str, Any] = {
        "rows": len(y_true),
        "accuracy": _finite(metrics.accuracy_score(y_true, y_pred)),
        "precision": _finite(metrics.precision_score(y_true, y_pred, **kwargs)),
        "recall": _finite(metrics.recall_score(y_true, y_pred, **kwargs)),
        "f1": _finite(metrics.f1_score(y_true, y_pred, **kwargs)),
        "positive_rate": _finite(float(np.mean(y_pred == positive))) if binary else None,
    }
    if binary and score is not None and len(np.unique(y_true)) == 2:
        truth = (y_true == positive).astype(int)
        result["roc_auc"] = _finite(metrics.roc_auc_score(truth, score))
        result["average_precision"] = _finite(metrics.average_precision_score(truth, score))
        result["brier"] = _finite(metrics.brier_score_loss(truth, score))
        edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
        bins = np.clip(np.digitize(score, edges[1:-1]), 0, CALIBRATION_BINS - 1)
        result["calibration"] = [
            {
                "bin": i,
                "mean_predicted": _finite(float(score[bins == i].mean())),
                "observed_rate": _finite(float(truth[bins == i].mean())),
                "rows": int((bins == i).sum()),
            }
            for i in range(CALIBRATION_BINS)
            if (bins == i).any()
        ]
    return result


def regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    return {
        "rows": len(y_true),
        "mae": _finite(metrics.mean_absolute_error(y_true, y_pred)),
        "rmse": _finite(math.sqrt(metrics.mean_squared_error(y_true, y_pred))),
        "r2": _finite(metrics.r2_score(y_true, y_pred)) if len(y_true) > 1 else None,
    }


def fairness(counts: list[tuple[str, bool, bool | None, int]], with_truth: bool, min_rows: int) -> dict[str, Any]:
    """Positive rate, TPR and FPR per group, and the largest gap between groups for each, from the rows
    counted by (group, predicted positive, actually positive or None without actuals)."""
    per_group: dict[str, dict[str, Any]] = {}
    for group in sorted({group for group, _, _, _ in counts}):
        mine = [(predicted, actual, rows) for g, predicted, actual, rows in counts if g == group]
        total = sum(rows for _, _, rows in mine)
        if total < min_rows:
            per_group[group] = {"rows": total, "too_small": True}
            continue
        row: dict[str, Any] = {"rows": total, "positive_rate": sum(r for p, _, r in mine if p) / total}
        if with_truth:
            actual_positive = sum(r for _, a, r in mine if a)
            actual_negative = total - actual_positive
            row["true_positive_rate"] = (
                sum(r for p, a, r in mine if p and a) / actual_positive if actual_positive else None
            )
            row["false_positive_rate"] = (
                sum(r for p, a, r in mine if p and not a) / actual_negative if actual_negative else None
            )
        per_group[group] = row
    gaps = {}
    for measure in FAIRNESS_MEASURES:
        values = [g[measure] for g in per_group.values() if g.get(measure) is not None]
        gaps[measure] = float(max(values) - min(values)) if len(values) >= 2 else None
    return {"groups": per_group, "gaps": gaps}


def fairness_extremes(found: dict[str, Any], measure: str) -> tuple[str, float, str, float] | None:
    """The groups with the highest and the lowest `measure` of one sensitive column, and their values."""
    values = [
        (float(group[measure]), name)
        for name, group in found.get("groups", {}).items()
        if isinstance(group.get(measure), int | float)
    ]
    if len(values) < 2:
        return None
    (low, low_name), (high, high_name) = min(values), max(values)
    return high_name, high, low_name, low


def classification_from_counts(confusion: dict[tuple[str, str], int], scores: np.ndarray | None) -> dict[str, Any]:
    """`classification` from the counts of (actual, predicted) label pairs and, for binary models, a score
    histogram: rows of (bin, calibration bin, is positive, rows, sum of scores, sum of squared scores),
    bins ordered as the scores. Counts give the label metrics exactly; the ranking metrics (ROC AUC,
    average precision) are those of the scores rounded to their bin, Brier and calibration are exact."""
    labels = np.unique([label for pair in confusion for label in pair])
    binary = len(labels) <= 2
    positive = labels[-1] if binary and len(labels) else None
    total = sum(confusion.values())
    true_positive = {label: confusion.get((label, label), 0) for label in labels}
    predicted = {label: sum(n for (_, p), n in confusion.items() if p == label) for label in labels}
    actual = {label: sum(n for (a, _), n in confusion.items() if a == label) for label in labels}

    def ratio(numerator: float, denominator: float) -> float:
        return numerator / denominator if denominator else 0.0

    def per_label(label: str) -> tuple[float, float, float]:
        precision, recall = ratio(true_positive[label], predicted[label]), ratio(true_positive[label], actual[label])
        return precision, recall, ratio(2 * precision * recall, precision + recall)

    measured = [per_label(label) for label in ([positive] if binary and positive is not None else labels)]
    result: dict[str, Any] = {
        "rows": total,
        "accuracy": _finite(ratio(sum(true_positive.values()), total)),
        "precision": _finite(float(np.mean([m[0] for m in measured]))) if measured else 0.0,
        "recall": _finite(float(np.mean([m[1] for m in measured]))) if measured else 0.0,
        "f1": _finite(float(np.mean([m[2] for m in measured]))) if measured else 0.0,
        "positive_rate": _finite(ratio(predicted[positive], total)) if binary and positive is not None else None,
    }
    if binary and scores is not None and len(scores) and len({a for a, _ in confusion}) == 2:
        result.update(_ranking_from_histogram(scores))
    return result


def _ranking_from_histogram(scores: np.ndarray) -> dict[str, Any]:
    bins, calibration, is_positive, rows, score_sum, square_sum = (scores[:, i] for i in range(6))
    order = np.argsort(bins, kind="stable")
    positives = np.bincount(np.unique(bins[order], return_inverse=True)[1], weights=(rows * is_positive)[order])
    negatives = np.bincount(np.unique(bins[order], return_inverse=True)[1], weights=(rows * (1 - is_positive))[order])
    total_positive, total_negative = positives.sum(), negatives.sum()
    negatives_below = np.cumsum(negatives) - negatives
    auc = float(np.sum(positives * (negatives_below + 0.5 * negatives)) / (total_positive * total_negative))
    # Thresholds from the highest bin down: precision at each, weighted by the recall it adds.
    true_above, false_above = np.cumsum(positives[::-1]), np.cumsum(negatives[::-1])
    precision = true_above / np.maximum(true_above + false_above, 1)
    average_precision = float(np.sum(precision * positives[::-1]) / total_positive)
    brier = float((square_sum.sum() - 2 * (score_sum * is_positive).sum() + (rows * is_positive).sum()) / rows.sum())
    curve = []
    for index in range(CALIBRATION_BINS):
        mine = calibration == index
        if rows[mine].sum():
            curve.append(
                {
                    "bin": index,
                    "mean_predicted": _finite(float(score_sum[mine].sum() / rows[mine].sum())),
                    "observed_rate": _finite(float((rows * is_positive)[mine].sum() / rows[mine].sum())),
                    "rows": int(rows[mine].sum()),
                }
            )
    return {
        "roc_auc": _finite(auc),
        "average_precision": _finite(average_precision),
        "brier": _finite(brier),
        "calibration": curve,
    }


def regression_from_sums(rows: int, absolute: float, squared: float, actual_variance_sum: float) -> dict[str, Any]:
    """`regression` from the sums of absolute and squared errors and the actuals' sum of squared deviations."""
    return {
        "rows": rows,
        "mae": _finite(absolute / rows),
        "rmse": _finite(math.sqrt(squared / rows)),
        "r2": _finite(1 - squared / actual_variance_sum) if rows > 1 and actual_variance_sum > 0 else None,
    }
