from collections import Counter

import numpy as np
import pytest
from sklearn import metrics

from monitoring import performance


def test_classification_metrics_are_scikit_learns():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 500)
    score = np.clip(y_true * 0.6 + rng.normal(0.2, 0.25, 500), 0, 1)
    y_pred = (score > 0.5).astype(int)
    result = performance.classification(y_true, y_pred, score)
    assert result["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    assert result["precision"] == pytest.approx(metrics.precision_score(y_true, y_pred))
    assert result["recall"] == pytest.approx(metrics.recall_score(y_true, y_pred))
    assert result["f1"] == pytest.approx(metrics.f1_score(y_true, y_pred))
    assert result["roc_auc"] == pytest.approx(metrics.roc_auc_score(y_true, score))
    assert result["average_precision"] == pytest.approx(metrics.average_precision_score(y_true, score))
    assert result["brier"] == pytest.approx(metrics.brier_score_loss(y_true, score))
    assert sum(b["rows"] for b in result["calibration"]) == 500


def test_regression_metrics_are_scikit_learns():
    rng = np.random.default_rng(1)
    y_true = rng.normal(size=300)
    y_pred = y_true + rng.normal(scale=0.3, size=300)
    result = performance.regression(y_true, y_pred)
    assert result["mae"] == pytest.approx(metrics.mean_absolute_error(y_true, y_pred))
    assert result["rmse"] == pytest.approx(metrics.root_mean_squared_error(y_true, y_pred))
    assert result["r2"] == pytest.approx(metrics.r2_score(y_true, y_pred))


def test_fairness_gaps_between_groups():
    groups = ["a"] * 4 + ["b"] * 4 + ["c"]
    y_true = [1, 1, 0, 0, 1, 1, 0, 0, 1]
    y_pred = [1, 1, 1, 0, 1, 0, 0, 0, 1]
    counted = Counter((g, p == 1, t == 1) for g, t, p in zip(groups, y_true, y_pred, strict=True))
    result = performance.fairness([(*key, rows) for key, rows in counted.items()], with_truth=True, min_rows=2)
    assert result["groups"]["a"]["positive_rate"] == 0.75
    assert result["groups"]["b"]["true_positive_rate"] == 0.5
    assert result["groups"]["c"]["too_small"] is True
    assert result["gaps"]["positive_rate"] == pytest.approx(0.5)
    assert result["gaps"]["false_positive_rate"] == pytest.approx(0.5)


def test_calibration_bins_are_scikit_learns_calibration_curve():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(2)
    score = rng.uniform(size=2000)
    y_true = (rng.uniform(size=2000) < score**1.5).astype(int)
    result = performance.classification(y_true, (score > 0.5).astype(int), score)
    observed, predicted = calibration_curve(y_true, score, n_bins=performance.CALIBRATION_BINS, strategy="uniform")
    assert [b["observed_rate"] for b in result["calibration"]] == pytest.approx(list(observed))
    assert [b["mean_predicted"] for b in result["calibration"]] == pytest.approx(list(predicted))


def test_multiclass_text_labels_use_macro_averages():
    rng = np.random.default_rng(3)
    y_true = rng.choice(["bronze", "gold", "silver"], 400)
    y_pred = np.where(rng.uniform(size=400) < 0.7, y_true, rng.choice(["bronze", "gold", "silver"], 400))
    result = performance.classification(y_true, y_pred, None)
    assert result["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    assert result["precision"] == pytest.approx(metrics.precision_score(y_true, y_pred, average="macro"))
    assert result["recall"] == pytest.approx(metrics.recall_score(y_true, y_pred, average="macro"))
    assert result["f1"] == pytest.approx(metrics.f1_score(y_true, y_pred, average="macro"))
    assert "roc_auc" not in result and result["positive_rate"] is None
