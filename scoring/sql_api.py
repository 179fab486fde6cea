"""SQL scoring runs: opened by the Python client when it registers a model as a SQL function (DuckDB,
Spark), then told what the function scored; each answer says whether the version may still score."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import PaginatedListApi, paginated_response
from config.authentication import UserTokenAuthentication
from registry import selectors
from registry.choices import FileKind
from registry.models import ModelVersion
from scoring import sql_runs
from scoring.models import ScoringPolicy, SqlRun
from scoring.permissions import require_score_with_sql, require_sql_run_reporter


def _served(run: SqlRun, request: Request) -> dict[str, Any]:
    """What the client needs to load the version exactly as the server does."""
    version: ModelVersion = run.version
    artifact = version.files.get(kind=FileKind.ARTIFACT)
    serving = selectors.serving_engine(version=version)
    compiled = None
    if serving.compiled and serving.compilation is not None:
        compiled = {
            "sha256": serving.compilation.sha256,
            "download_url": request.build_absolute_uri(
                f"/api/models/{version.model.name}/versions/{version.number}/compiled/download/"
            ),
        }
    policy, _ = ScoringPolicy.objects.get_or_create(model=version.model)
    return {
        "task": version.model.task,
        "format": version.format,
        "input_schema": version.input_schema,
        "trusted_types": version.untrusted_types if version.trust_accepted_at else [],
        "unknown_categories": policy.unknown_categories,
        "artifact": {
            "filename": artifact.filename,
            "sha256": artifact.sha256,
            "download_url": request.build_absolute_uri(
                f"/api/models/{version.model.name}/versions/{version.number}/files/{artifact.pk}/download/"
            ),
        },
        "compiled": compiled,
    }


class SqlRunOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.number")
    user = serializers.CharField(source="user.username")

    class Meta:
        model = SqlRun
        fields = [
            "id",
            "model",
            "version",
            "engine",
            "function_name",
            "user",
            "started_at",
            "last_reported_at",
            "rows_scored",
            "rows_rejected",
            "seconds",
            "rows_logged",
            "refused",
        ]


class SqlRunOpenedOutput(SqlRunOutput):
    served = serializers.SerializerMethodField(help_text="How to load the version: its files, schema and engine")

    class Meta(SqlRunOutput.Meta):
        fields = [*SqlRunOutput.Meta.fields, "served"]

    def get_served(self, run: SqlRun) -> dict[str, Any]:
        return _served(run, self.context["request"])


class SqlRunListApi(PaginatedListApi):
    authentication_classes = [UserTokenAuthentication, SessionAuthentication]

    class OpenInput(serializers.Serializer):
        version = serializers.IntegerField(
            required=False, allow_null=True, default=None, min_value=1, help_text="Default: the production version"
        )
        engine = serializers.ChoiceField(choices=SqlRun.Engine.choices)
        function_name = serializers.RegexField(r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)

    @extend_schema(responses=SqlRunOutput(many=True), summary="The model's SQL scoring runs, newest first")
    def get(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        runs = SqlRun.objects.filter(model=model).select_related("model", "version", "user")
        return paginated_response(request=request, view=self, queryset=runs, serializer_class=SqlRunOutput)

    @extend_schema(
        request=OpenInput,
        responses={201: SqlRunOpenedOutput},
        summary="Open a SQL scoring run: refused for a version that may not score",
    )
    def post(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        require_score_with_sql(request.user)
        payload = self.OpenInput(data=request.data)
        payload.is_valid(raise_exception=True)
        run = sql_runs.sql_run_open(
            actor=request.user,
            model=model,
            version_number=payload.validated_data["version"],
            engine=payload.validated_data["engine"],
            function_name=payload.validated_data["function_name"],
        )
        return Response(SqlRunOpenedOutput(run, context={"request": request}).data, status=status.HTTP_201_CREATED)


class SampleRow(serializers.Serializer):
    inputs = serializers.DictField()
    output = serializers.JSONField(allow_null=True)
    probabilities = serializers.ListField(child=serializers.FloatField(), required=False, allow_null=True)


class SqlRunReportApi(APIView):
    authentication_classes = [UserTokenAuthentication, SessionAuthentication]

    class ReportInput(serializers.Serializer):
        rows_scored = serializers.IntegerField(min_value=0, max_value=sql_runs.MAX_REPORTED_ROWS)
        rows_rejected = serializers.IntegerField(min_value=0, max_value=sql_runs.MAX_REPORTED_ROWS)
        seconds = serializers.FloatField(min_value=0, max_value=1e9)
        engine = serializers.CharField(max_length=20, help_text="The engine that scored: onnx or the native format")
        sample = serializers.ListField(
            child=SampleRow(), required=False, default=list, max_length=sql_runs.MAX_SAMPLE_ROWS
        )

    @extend_schema(
        request=ReportInput,
        responses=SqlRunOutput,
        summary="Add what a SQL function scored; `refused` says why its version may no longer score",
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = SqlRun.objects.select_related("model", "version", "user").filter(pk=run_id).first()
        if run is None:
            raise NotFound(f"There is no SQL scoring run {run_id}.")
        require_sql_run_reporter(request.user, run)
        payload = self.ReportInput(data=request.data)
        payload.is_valid(raise_exception=True)
        if payload.validated_data["engine"] not in ("onnx", run.version.format):
            raise serializers.ValidationError({"engine": [f"Either onnx or {run.version.format}."]})
        run = sql_runs.sql_run_report(actor=request.user, run=run, **payload.validated_data)
        return Response(SqlRunOutput(run).data)
