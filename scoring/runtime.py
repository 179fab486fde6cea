"""Models loaded once per process, and which version is in production, looked up at most once a second.

A go-live in any process reaches every web process within MF_PRODUCTION_REFRESH_SECONDS: the first
request that sees the new version id loads it while the others keep serving the previous one, so
no request fails during the swap and no process needs a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from django.conf import settings
from threadpoolctl import ThreadpoolController

from registry import predictors, selectors
from registry.choices import ModelTask, VersionStatus
from registry.loading import ArtifactIntegrityError, load_compiled_model, load_version_model, verified_compiled_path
from registry.models import ModelVersion
from registry.schema import parse_schema
from registry.serving import LoadedModel, TreeLoopForest, argmax_predictor, with_encoder_categories
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
        fields = with_encoder_categories(fields, verified_compiled_path(serving.compilation).read_bytes())
    labels_from_probabilities = argmax_predictor(predictor)
    TreeLoopForest.wrap(predictor)
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


def not_servable(model_name: str, number: int, status: str) -> VersionNotServableError | None:
    """Why a version of this status may not score, naming the version to use instead; None if it may."""
    if status in VersionStatus.SERVABLE:
        return None
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
    return VersionNotServableError(message, gone=status == VersionStatus.DEPRECATED, use_instead=production)


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
        refusal = not_servable(model_name, number, status)
        if refusal is not None:
            raise refusal
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
