"""A version's model as it serves: its predictor, its input fields and how it turns inputs into labels
and probabilities. No Django imports: the SQL functions of the Python client (registry/sql.py) load and
score a model exactly as the server does, in a notebook or on a Spark executor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from threadpoolctl import ThreadpoolController

from registry import predictors
from registry.compilation import known_categories
from registry.schema import FieldSpec

# Classifiers whose predict() is the argmax of scores that predict_proba() maps to probabilities without
# changing their order, so a label can be read off the probabilities instead of running the model again.
_PREDICT_IS_ARGMAX = (
    RandomForestClassifier.predict,
    ExtraTreesClassifier.predict,
    HistGradientBoostingClassifier.predict,
)


@dataclass(frozen=True)
class LoadedModel:
    version_id: int
    model_id: int
    model_name: str
    number: int
    predictor: predictors.Predictor
    engine: str  # "onnx" or the artifact's format
    fields: list[FieldSpec]
    is_classifier: bool
    unknown_categories: str
    input_logging: str
    max_rows: int
    # The BLAS/OpenMP libraries loaded with the model, found once: finding them costs ~5 ms a call.
    # None for onnxruntime, whose sessions already run on one thread.
    thread_pools: ThreadpoolController | None
    labels_from_probabilities: bool
    # An MLflow model's params schema (name, type, default, shape): the `params` of a request are checked against it.
    params_schema: list[dict[str, Any]] | None = None

    def single_threaded(self) -> AbstractContextManager[Any]:
        """One BLAS/OpenMP thread for a call: a process serves many requests or chunks at once, and
        the libraries' own pools oversubscribe the cores (tree models slow down 100x on 2 cores)."""
        if self.thread_pools is None:
            return nullcontext()
        return self.thread_pools.limit(limits=1)

    def score(self, inputs: Mapping[str, np.ndarray] | pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels, and class probabilities for a classifier, of validated inputs (one array per field)."""
        with self.single_threaded():
            if isinstance(self.predictor, predictors.OnnxPredictor):
                columns = {str(name): np.asarray(values) for name, values in inputs.items()}
                labels, probabilities = self.predictor.score(columns)
                return labels, probabilities if self.is_classifier else None
            frame = inputs if isinstance(inputs, pd.DataFrame) else pd.DataFrame(inputs)
            probabilities = self.predictor.predict_proba(frame) if self.is_classifier else None
            if probabilities is None or not self.labels_from_probabilities:
                return self.predictor.predict(frame), probabilities
            return _labels(self.predictor, frame, probabilities), probabilities


def _labels(predictor: predictors.Predictor, frame: pd.DataFrame, probabilities: np.ndarray) -> np.ndarray:
    """predict()'s labels from predict_proba()'s output: where the top probability is tied (e.g. a
    score that rounds to exactly 0.5), which class predict() picks depends on the score, so those rows
    ask predict()."""
    classes = np.asarray(getattr(predictor, "classes", None))
    top = np.argmax(probabilities, axis=1)
    labels = classes[top]
    ordered = np.sort(probabilities, axis=1)
    tied = np.flatnonzero(ordered[:, -1] == ordered[:, -2])
    if len(tied):
        labels[tied] = predictor.predict(frame.iloc[tied])
    return labels


def argmax_predictor(predictor: predictors.Predictor) -> bool:
    estimator = getattr(predictor, "estimator", None)
    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    classes = getattr(predictor, "classes", None)
    return classes is not None and len(classes) >= 2 and getattr(type(final), "predict", None) in _PREDICT_IS_ARGMAX


class TreeLoopForest:
    """A fitted random-forest or extra-trees classifier (alone or ending a pipeline) whose predict_proba
    sums its trees in a plain loop: scikit-learn's own trees, validation, order and arithmetic (the same
    bits), without joblib's dispatch of one task per tree, which took 3.5 of the 4.4 ms that a one-row
    call of a 100-tree forest costs; predict() is the estimator's own."""

    def __init__(self, estimator: Any, forest: Any):
        self.estimator = estimator
        self.classes_ = estimator.classes_
        steps = estimator.steps[:-1] if isinstance(estimator, Pipeline) else []
        self._transforms = [step for _, step in steps if step is not None and step != "passthrough"]
        self._forest = forest

    @classmethod
    def wrap(cls, predictor: predictors.Predictor) -> None:
        """Give a native predictor of such a forest this predict_proba; leave any other model as it is."""
        estimator: Any = getattr(predictor, "estimator", None)
        final = estimator.steps[-1][1] if type(estimator) is Pipeline else estimator
        if (
            isinstance(predictor, predictors.EstimatorPredictor)
            and type(final) in (RandomForestClassifier, ExtraTreesClassifier)
            and getattr(final, "n_outputs_", None) == 1
            and not sklearn.get_config()["enable_metadata_routing"]
        ):
            predictor.estimator = cls(estimator, final)

    def predict(self, frame: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict(frame))

    def predict_proba(self, frame: Any) -> np.ndarray:
        inputs = frame
        for transform in self._transforms:
            inputs = transform.transform(inputs)
        inputs = self._forest._validate_X_predict(inputs)
        # As ForestClassifier.predict_proba: a float64 sum in tree order, divided once by the tree count.
        probabilities = np.zeros((inputs.shape[0], self._forest.n_classes_), dtype=np.float64)
        for tree in self._forest.estimators_:
            probabilities += tree.predict_proba(inputs, check_input=False)
        probabilities /= len(self._forest.estimators_)
        return probabilities


def with_encoder_categories(fields: list[FieldSpec], graph: bytes) -> list[FieldSpec]:
    """Text fields the compiled graph's encoders accept only from a fixed list become category fields of
    that list: a value outside it is refused by row and field ("'x' is not one of [...]"), as the model's
    policy says, rather than failing the whole request with onnxruntime's words. An MLflow signature
    declares such columns as plain strings."""
    categories = known_categories(graph)
    return [
        dataclasses.replace(spec, type="category", categories=categories[spec.name])
        if spec.type == "string" and spec.name in categories
        else spec
        for spec in fields
    ]
