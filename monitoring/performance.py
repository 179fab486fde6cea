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


def fairness(
    y_true: np.ndarray | None, y_pred: np.ndarray, groups: np.ndarray, positive: Any, min_rows: int
) -> dict[str, Any]:
    """Positive rate, TPR and FPR per group, and the largest gap between groups for each."""
    per_group: dict[str, dict[str, Any]] = {}
    for group in np.unique(groups.astype(str)):
        mask = groups.astype(str) == group
        if mask.sum() < min_rows:
            per_group[group] = {"rows": int(mask.sum()), "too_small": True}
            continue
        predicted = y_pred[mask] == positive
        row: dict[str, Any] = {"rows": int(mask.sum()), "positive_rate": float(predicted.mean())}
        if y_true is not None:
            actual = y_true[mask] == positive
            row["true_positive_rate"] = float(predicted[actual].mean()) if actual.any() else None
            row["false_positive_rate"] = float(predicted[~actual].mean()) if (~actual).any() else None
        per_group[group] = row
    gaps = {}
    for measure in FAIRNESS_MEASURES:
        values = [g[measure] for g in per_group.values() if g.get(measure) is not None]
        gaps[measure] = float(max(values) - min(values)) if len(values) >= 2 else None
    return {"groups": per_group, "gaps": gaps}
