"""Real-time scoring endpoints: native, pinned-version and MLflow-compatible, plus the prediction log."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.authentication import UserTokenAuthentication
from config.openapi import error_responses
from registry.artifacts import UntrustedArtifactError
from registry.loading import ArtifactIntegrityError
from registry.models import ModelVersion
from registry.permissions import may_score, may_view_models
from scoring import formats, realtime, runtime, selectors
from scoring.authentication import ConsumerPrincipal, ConsumerRateThrottle, ConsumerTokenAuthentication
from scoring.models import Prediction

EXAMPLE = OpenApiExample(
    "dataframe_split",
    value={"dataframe_split": {"columns": ["tenure_months", "contract"], "data": [[12, "month-to-month"]]}},
)


class JsonOnly(DefaultContentNegotiation):
    """Answers JSON whatever the Accept header says, as MLflow's server does; parsing Accept was ~10% of a request."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class ScoringView(APIView):
    """Shared by the scoring endpoints: consumer tokens, throttling, JSON only (no browsable API)."""

    authentication_classes = [ConsumerTokenAuthentication, UserTokenAuthentication, SessionAuthentication]
    throttle_classes = [ConsumerRateThrottle]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JsonOnly

    def _check_access(self, request: Request, model_name: str) -> Any:
        principal = request.user
        if isinstance(principal, ConsumerPrincipal):
            if principal.consumer.model.name != model_name:
                raise PermissionDenied("This consumer token is for another model.")
            return principal.consumer
        if not may_score(principal):
            raise PermissionDenied(
                "Only data scientists and reviewers score with their own account; applications use a consumer token."
            )
        return None

    def _loaded(self, request: Request, name: str, number: int | None, consumer: Any) -> runtime.LoadedModel:
        pinned = consumer.pinned_version if consumer is not None else None
        try:
            if number is not None:
                return runtime.model_cache.loaded_pinned(name, number)
            if pinned is not None:
                return runtime.model_cache.loaded_pinned(name, pinned.number)
            return runtime.model_cache.loaded_production(name)
        except ModelVersion.DoesNotExist as exc:
            raise NotFound(str(exc)) from exc
        except runtime.NoProductionVersionError as exc:
            raise NotFound(f"{name} has no version in production.") from exc

    def _score(self, request: Request, name: str, number: int | None) -> tuple[realtime.Scored | None, Response | None]:
        consumer = self._check_access(request, name)
        try:
            loaded = self._loaded(request, name, number, consumer)
        except runtime.VersionNotServableError as exc:
            code = status.HTTP_410_GONE if exc.gone else status.HTTP_409_CONFLICT
            return None, Response({"detail": str(exc), "use_version": exc.use_instead}, status=code)
        except UntrustedArtifactError as exc:  # approved, but its types await a reviewer: nothing loads it
            return None, Response({"detail": f"{exc}. It may not score until then."}, status=status.HTTP_409_CONFLICT)
        column_names = [field.name for field in loaded.fields]
        try:
            records = formats.read_records(request.data, column_names)
            formats.check_params(request.data, loaded.params_schema)
            entity_ids = request.data.get("entity_ids") if isinstance(request.data, dict) else None
            if entity_ids is not None and not isinstance(entity_ids, list):
                raise formats.RequestFormatError("entity_ids: must be a list, one per row.")
            scored = realtime.predict(
                loaded=loaded,
                records=records,
                consumer=consumer,
                user=request.user if consumer is None else None,
                entity_ids=entity_ids,
            )
        except formats.RequestFormatError as exc:
            return None, Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except realtime.InvalidInputError as exc:
            return None, Response(exc.as_json(), status=status.HTTP_400_BAD_REQUEST)
        return scored, None


class PredictOutput(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()
    predictions = serializers.ListField(child=serializers.JSONField())
    # Only classifiers give probabilities; the key is absent for the others.
    probabilities = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()), allow_null=True, required=False
    )
    prediction_ids = serializers.ListField(child=serializers.UUIDField())


# The request body, described so that clients (and the fuzzing tests) know its four shapes.
_ANY_ROWS: dict[str, Any] = {"type": "array", "items": {}}
PREDICT_REQUEST: dict[str, Any] = {
    "type": "object",
    "description": "Exactly one of dataframe_split, dataframe_records, instances or inputs (MLflow's formats).",
    "minProperties": 1,
    "properties": {
        "dataframe_split": {
            "type": "object",
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "data": {"type": "array", "items": _ANY_ROWS},
            },
            "required": ["data"],
        },
        "dataframe_records": {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
        "instances": _ANY_ROWS,
        "inputs": {"oneOf": [_ANY_ROWS, {"type": "object", "additionalProperties": _ANY_ROWS}]},
        "entity_ids": {"type": "array", "items": {"type": "string"}, "description": "One per row"},
        "params": {
            "type": "object",
            "additionalProperties": {},
            "description": "MLflow's inference params, checked against an MLflow model's params schema",
        },
    },
}

_REFUSED_VERSION = inline_serializer(
    "RefusedVersion", {"detail": serializers.CharField(), "use_version": serializers.IntegerField(allow_null=True)}
)
PREDICT_RESPONSES = {
    200: PredictOutput,
    **error_responses(
        400,
        403,
        404,
        e400="Bad format, or rows that do not match the input schema (by row and field)",
        e403="This token may not score with this model",
        e404="No such model or version, or nothing in production",
    ),
    409: OpenApiResponse(_REFUSED_VERSION, description="The pinned version has not passed review"),
    410: OpenApiResponse(_REFUSED_VERSION, description="The pinned version is marked do not use; names the one to use"),
}
_MLFLOW_ERROR = inline_serializer(
    "MlflowError",
    {
        "error_code": serializers.CharField(),
        "message": serializers.CharField(),
        "detail": serializers.CharField(required=False),
        "use_version": serializers.IntegerField(required=False, allow_null=True),
    },
)
INVOCATIONS_RESPONSES = {
    200: inline_serializer("MlflowPredictions", {"predictions": serializers.ListField(child=serializers.JSONField())}),
    # MLflow's error shape for the refusals of the scoring itself; parse errors answer DRF's {"detail"}.
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="Bad format or rows: MLflow's error_code and message"),
    409: OpenApiResponse(_MLFLOW_ERROR, description="The version may not score"),
    410: OpenApiResponse(_MLFLOW_ERROR, description="The version is marked do not use"),
}


def _native(scored: realtime.Scored) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": scored.model,
        "version": scored.version,
        "predictions": scored.predictions,
        "prediction_ids": scored.prediction_ids,
    }
    if scored.probabilities is not None:
        body["probabilities"] = scored.probabilities
    return body


class PredictApi(ScoringView):
    @extend_schema(request={"application/json": PREDICT_REQUEST}, responses=PREDICT_RESPONSES, examples=[EXAMPLE])
    def post(self, request: Request, name: str) -> Response:
        """Score rows with the production version (or the version this consumer pinned)."""
        scored, refusal = self._score(request, name, None)
        return refusal or Response(_native(scored))  # type: ignore[arg-type]


class VersionPredictApi(ScoringView):
    @extend_schema(request={"application/json": PREDICT_REQUEST}, responses=PREDICT_RESPONSES, examples=[EXAMPLE])
    def post(self, request: Request, name: str, number: int) -> Response:
        """Score rows with a pinned version (approved, checks passed, production or retired)."""
        scored, refusal = self._score(request, name, number)
        return refusal or Response(_native(scored))  # type: ignore[arg-type]


class InvocationsApi(ScoringView):
    @extend_schema(request={"application/json": PREDICT_REQUEST}, responses=INVOCATIONS_RESPONSES, examples=[EXAMPLE])
    def post(self, request: Request, name: str) -> Response:
        """MLflow's scoring protocol: the same request bodies, answered `{"predictions": [...]}`."""
        scored, refusal = self._score(request, name, None)
        if refusal is not None:
            # MLflow's error shape, keeping our details alongside.
            return Response(
                {
                    "error_code": "BAD_REQUEST" if refusal.status_code == 400 else "INVALID_STATE",
                    "message": refusal.data.get("detail", ""),
                    **refusal.data,
                },
                status=refusal.status_code,
            )
        return Response({"predictions": scored.predictions})  # type: ignore[union-attr]


class PredictionOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.number")
    consumer = serializers.CharField(source="consumer.name", default=None, allow_null=True)

    class Meta:
        model = Prediction
        fields = [
            "id",
            "at",
            "model",
            "version",
            "consumer",
            "entity_id",
            "input",
            "input_sha256",
            "output",
            "probabilities",
            "latency_ms",
            "engine",
        ]


def _visible_prediction(request: Request, prediction_id: uuid.UUID) -> Prediction:
    prediction = selectors.logged_prediction(prediction_id=prediction_id)
    if prediction is None:
        raise NotFound("No such prediction.")
    principal = request.user
    if isinstance(principal, ConsumerPrincipal):
        if prediction.consumer_id != principal.consumer.pk:
            raise NotFound("No such prediction.")  # other consumers' predictions do not exist for you
    elif not may_view_models(principal):
        raise PermissionDenied()
    return prediction


class PredictionDetailApi(ScoringView):
    throttle_classes = []

    @extend_schema(responses=PredictionOutput)
    def get(self, request: Request, prediction_id: uuid.UUID) -> Response:
        return Response(PredictionOutput(_visible_prediction(request, prediction_id)).data)


class ReproductionOutput(serializers.Serializer):
    prediction_id = serializers.UUIDField()
    version = serializers.IntegerField()
    engine = serializers.CharField(help_text="The engine that made the prediction and reproduced it")
    logged_output = serializers.JSONField()
    reproduced_output = serializers.JSONField()
    logged_probabilities = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    reproduced_probabilities = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    identical = serializers.BooleanField()


class PredictionReproduceApi(ScoringView):
    throttle_classes = []

    @extend_schema(
        request=None,
        responses={
            200: ReproductionOutput,
            409: OpenApiResponse(description="Only the input's hash was kept, or the engine's file is gone"),
        },
    )
    def post(self, request: Request, prediction_id: uuid.UUID) -> Response:
        prediction = _visible_prediction(request, prediction_id)
        if not isinstance(request.user, ConsumerPrincipal) and not may_score(request.user):
            raise PermissionDenied("Only data scientists and reviewers re-run predictions.")
        try:
            result = realtime.reproduce(prediction=prediction)
        except (ValueError, ArtifactIntegrityError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(
            {
                "prediction_id": str(prediction.pk),
                "version": prediction.version.number,
                "engine": result.engine,
                "logged_output": prediction.output,
                "reproduced_output": result.output,
                "logged_probabilities": prediction.probabilities,
                "reproduced_probabilities": result.probabilities,
                "identical": result.identical,
            }
        )
