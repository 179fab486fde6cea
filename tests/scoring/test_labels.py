"""Labels read off class probabilities (one model run instead of two) must be exactly predict()'s."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from registry import serving
from registry.predictors import EstimatorPredictor


def _loaded(estimator: Any) -> serving.LoadedModel:
    predictor = EstimatorPredictor(estimator)
    return serving.LoadedModel(
        version_id=1,
        model_id=1,
        model_name="m",
        number=1,
        predictor=predictor,
        engine="skops",
        fields=[],
        is_classifier=True,
        unknown_categories="reject",
        input_logging="full",
        max_rows=1000,
        thread_pools=None,
        labels_from_probabilities=serving.argmax_predictor(predictor),
    )


def _data(classes: int = 2) -> pd.DataFrame:
    features, target = make_classification(
        n_samples=3000, n_features=8, n_informative=4, n_classes=classes, flip_y=0.2, random_state=0
    )
    frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(8)])
    frame["target"] = np.array(["no", "yes", "maybe"])[target]
    return frame


@pytest.mark.parametrize(
    "estimator",
    [
        make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=30, random_state=0)),
        # Four trees vote 2-2 on some rows: ties that predict() breaks its own way.
        RandomForestClassifier(n_estimators=4, random_state=0),
    ],
)
@pytest.mark.parametrize("classes", [2, 3])
def test_it_reads_labels_off_the_probabilities_exactly_as_predict(estimator: Any, classes: int) -> None:
    data = _data(classes)
    features = data.drop(columns="target")
    loaded = _loaded(estimator.fit(features, data["target"]))
    assert loaded.labels_from_probabilities

    labels, probabilities = loaded.score(features)

    assert labels.tolist() == estimator.predict(features).tolist()
    assert probabilities is not None
    assert np.array_equal(probabilities, estimator.predict_proba(features))


def test_a_forest_tie_is_resolved_by_predict() -> None:
    data = _data()
    features = data.drop(columns="target")
    forest = RandomForestClassifier(n_estimators=4, random_state=0).fit(features, data["target"])
    probabilities = forest.predict_proba(features)
    assert (probabilities[:, 0] == probabilities[:, 1]).any()  # the case under test occurs

    labels, _ = _loaded(forest).score(features)

    assert labels.tolist() == forest.predict(features).tolist()


def test_other_classifiers_still_run_predict() -> None:
    data = _data().iloc[:400]
    features = data.drop(columns="target")
    # SVC's labels come from its decision function, not from its (Platt-scaled) probabilities.
    svc = SVC(probability=True, random_state=0).fit(features, data["target"])
    loaded = _loaded(svc)
    assert not loaded.labels_from_probabilities

    labels, _ = loaded.score(features)

    assert labels.tolist() == svc.predict(features).tolist()
