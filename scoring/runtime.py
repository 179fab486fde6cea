"""Models loaded once per process, and which version is in production, looked up at most once a second.

A go-live in any process reaches every web process within MF_PRODUCTION_REFRESH_SECONDS: the first
request that sees the new version id loads it while the others keep serving the previous one, so
no request fails during the swap and no process needs a restart.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from django.conf import settings
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from threadpoolctl import ThreadpoolController

from registry import predictors, selectors
from registry.choices import ModelTask, VersionStatus
from registry.compilation import known_categories
from registry.loading import ArtifactIntegrityError, load_compiled_model, load_version_model, verified_compiled_path
from registry.models import ModelVersion
from registry.schema import FieldSpec, parse_schema
from scoring.models import ScoringPolicy

logger = logging.getLogger(__name__)


class NoProductionVersionError(Exception):
    pass


class VersionNotServableError(Exception):
    """A pinned version that may not serve: its status, and the version to use instead."""

    def __init__(self, message: str, *, gone: bool, use_instead: int | None):
        super().__init__(message)
        self.gone = gone
        self.use_instead = use_instead


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


def _argmax_predictor(predictor: predictors.Predictor) -> bool:
    estimator = getattr(predictor, "estimator", None)
    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    classes = getattr(predictor, "classes", None)
    return classes is not None and len(classes) >= 2 and getattr(type(final), "predict", None) in _PREDICT_IS_ARGMAX


class _TreeLoopForest:
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


def _with_encoder_categories(fields: list[FieldSpec], graph: bytes) -> list[FieldSpec]:
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


def load(version: ModelVersion, *, engine: str | None = None) -> LoadedModel:
    """Load a version for serving: its compiled graph where a check run verified it, else the native model.

    `engine` asks for one engine ("onnx" or the native format), as a logged prediction names the one
    that made it; the compiled graph is loaded then only if its bytes are still those compiled.
    """
    policy, _ = ScoringPolicy.objects.get_or_create(model=version.model)
    serving = selectors.serving_engine(version=version)
    onnx: predictors.OnnxPredictor | None = None
    wanted = engine or serving.engine
    if wanted == selectors.ONNX_ENGINE and serving.compilation is not None and serving.compilation.file:
        try:
            onnx = load_compiled_model(serving.compilation)
        except ArtifactIntegrityError:
            if engine is not None:
                raise
            # The verified bytes are gone or changed: the native model is always there to serve.
            logger.exception("The compiled model of %s cannot serve", version)
    if engine == selectors.ONNX_ENGINE and onnx is None:
        raise ArtifactIntegrityError(f"{version} has no compiled model any more to score with.")
    predictor = onnx if onnx is not None else load_version_model(version)
    fields = parse_schema(version.input_schema)
    if onnx is not None and serving.compilation is not None:
        fields = _with_encoder_categories(fields, verified_compiled_path(serving.compilation).read_bytes())
    labels_from_probabilities = _argmax_predictor(predictor)
    _TreeLoopForest.wrap(predictor)
    return LoadedModel(
        version_id=version.pk,
        model_id=version.model_id,
        model_name=version.model.name,
        number=version.number,
        predictor=predictor,
        engine=selectors.ONNX_ENGINE if onnx is not None else version.format,
        fields=fields,
        is_classifier=version.model.task == ModelTask.CLASSIFICATION,
        unknown_categories=policy.unknown_categories,
        input_logging=policy.input_logging,
        max_rows=policy.max_rows_per_request,
        thread_pools=None if onnx is not None else ThreadpoolController(),
        labels_from_probabilities=labels_from_probabilities,
        params_schema=((version.mlflow or {}).get("mlmodel") or {}).get("signature", {}).get("params"),
    )


class ModelCache:
    """The loaded models of this process, by version, at most `max_models` of them (the least recently
    loaded goes first), and which version of each model is in production or pinned, re-read at most
    every MF_PRODUCTION_REFRESH_SECONDS."""

    def __init__(self, max_models: int = 8):
        self.max_models = max_models
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Lock] = {}
        self._models: OrderedDict[int, LoadedModel] = OrderedDict()
        self._production: dict[str, tuple[int | None, float]] = {}
        self._pinned: dict[tuple[str, int], tuple[tuple[int, str] | None, float]] = {}

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self._production.clear()
            self._pinned.clear()

    def loaded_production(self, model_name: str) -> LoadedModel:
        cached = self._production.get(model_name)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            version_id = cached[0]
        else:
            version_id = (
                ModelVersion.objects.filter(model__name=model_name, status=VersionStatus.PRODUCTION)
                .values_list("pk", flat=True)
                .first()
            )
            self._production[model_name] = (version_id, now + settings.MF_PRODUCTION_REFRESH_SECONDS)
        if version_id is None:
            raise NoProductionVersionError(model_name)
        return self.loaded_version(version_id)

    def loaded_pinned(self, model_name: str, number: int) -> LoadedModel:
        """A named version, if its status lets it serve; the status is re-read at most once a second."""
        key = (model_name, number)
        cached = self._pinned.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            found = cached[0]
        else:
            row = ModelVersion.objects.filter(model__name=model_name, number=number).values_list("pk", "status").first()
            found = (row[0], row[1]) if row else None
            self._pinned[key] = (found, now + settings.MF_PRODUCTION_REFRESH_SECONDS)
        if found is None:
            raise ModelVersion.DoesNotExist(f"{model_name} has no version {number}.")
        version_id, status = found
        if status not in VersionStatus.SERVABLE:
            production = (
                ModelVersion.objects.filter(model__name=model_name, status=VersionStatus.PRODUCTION)
                .values_list("number", flat=True)
                .first()
            )
            instead = f" Use version {production} instead." if production else " No version is in production."
            label = VersionStatus(status).label.lower()
            if status == VersionStatus.DEPRECATED:
                message = f"{model_name} version {number} is marked do not use.{instead}"
            else:
                message = f"{model_name} version {number} is {label}: only approved versions serve.{instead}"
            raise VersionNotServableError(message, gone=status == VersionStatus.DEPRECATED, use_instead=production)
        return self.loaded_version(version_id)

    def loaded_version(self, version_id: int) -> LoadedModel:
        loaded = self._models.get(version_id)
        if loaded is not None:
            return loaded
        with self._lock:
            lock = self._loading.setdefault(version_id, threading.Lock())
        with lock:  # one load per version, however many requests arrive at once
            loaded = self._models.get(version_id)
            if loaded is None:
                started = time.perf_counter()
                version = ModelVersion.objects.select_related("model").get(pk=version_id)
                loaded = load(version)
                logger.info("Loaded %s (%s) in %.0f ms", version, loaded.engine, (time.perf_counter() - started) * 1e3)
                with self._lock:
                    self._models[version_id] = loaded
                    while len(self._models) > self.max_models:
                        self._models.popitem(last=False)
        return loaded


model_cache = ModelCache()
