"""Batch scoring API: jobs, their runs and schedules, run progress and rejects, and scores by entity id."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import PaginatedListApi, paginated_response
from config.authentication import UserTokenAuthentication
from config.parsers import FormParser, JSONParser, MultiPartParser
from registry import selectors
from registry.models import RegisteredModel
from registry.uploads import rejected_upload_errors
from scoring.authentication import ConsumerPrincipal, ConsumerRateThrottle, ConsumerTokenAuthentication
from scoring.batch.runs import run_resume, run_start
from scoring.batch.selectors import (
    JobRow,
    job_get,
    job_list,
    job_row,
    latest_score,
    run_get,
    run_list,
    run_progress,
    run_rejects,
    schedule_of,
)
from scoring.batch.services import DEFAULT_CHUNK_ROWS, MAX_CHUNK_ROWS, job_create, job_schedule, job_unschedule
from scoring.models import BatchJob, BatchReject, BatchRun, BatchScore
from scoring.permissions import may_view_batches, require_batch_manager


def _visible_model(request: Request, name: str) -> RegisteredModel:
    if not may_view_batches(request.user):
        raise PermissionDenied("You may not see batch scoring.")
    return selectors.model_get(name=name)


def _visible_run(request: Request, run_id: int) -> BatchRun:
    if not may_view_batches(request.user):
        raise PermissionDenied("You may not see batch scoring.")
    return run_get(run_id=run_id)


# --- output -----------------------------------------------------------------------------------------


class BatchScheduleOutput(serializers.Serializer):
    crontab = serializers.CharField(allow_null=True, help_text="minute hour day-of-month month day-of-week")
    every_minutes = serializers.IntegerField(allow_null=True)
    enabled = serializers.BooleanField()
    description = serializers.CharField()
    next_run_at = serializers.DateTimeField(allow_null=True)


class BatchRunOutput(serializers.ModelSerializer):
    job = serializers.CharField(source="job.name")
    model = serializers.CharField(source="job.model.name")
    version = serializers.IntegerField(source="version.number", default=None, allow_null=True)
    triggered_by = serializers.CharField(source="triggered_by.username", default=None, allow_null=True)
    progress = serializers.FloatField(help_text="Chunks done / chunks total, 0 to 1")
    duration_seconds = serializers.FloatField(allow_null=True)
    rejects = serializers.IntegerField(source="rows_rejected", help_text="Rows refused by validation")
    # Plain text rather than an enum: a "status" enum here collides with other components' names.
    status = serializers.CharField(help_text="pending, running, succeeded or failed")
    output_url = serializers.SerializerMethodField()

    class Meta:
        model = BatchRun
        fields = [
            "id",
            "job",
            "model",
            "version",
            "status",
            "trigger",
            "triggered_by",
            "rows_total",
            "rows_scored",
            "rows_rejected",
            "rejects",
            "chunks_done",
            "chunks_total",
            "progress",
            "duration_seconds",
            "error",
            "output_url",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_output_url(self, run: BatchRun) -> str | None:
        return f"/api/batch-runs/{run.pk}/output/" if run.output_parquet else None


class BatchChunkErrorOutput(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    error = serializers.CharField()


class BatchRunDetailOutput(BatchRunOutput):
    chunks_failed = serializers.IntegerField()
    chunk_errors = BatchChunkErrorOutput(many=True)

    class Meta(BatchRunOutput.Meta):
        fields = [*BatchRunOutput.Meta.fields, "chunks_failed", "chunk_errors"]


def _run_detail(run: BatchRun) -> dict[str, Any]:
    progress = run_progress(run=run)
    data = dict(BatchRunOutput(run).data)
    data["chunks_failed"] = progress.chunks_failed
    data["chunk_errors"] = BatchChunkErrorOutput(progress.chunk_errors, many=True).data
    return data


class BatchJobOutput(serializers.Serializer):
    name = serializers.CharField(source="job.name")
    model = serializers.CharField(source="job.model.name")
    input_kind = serializers.CharField(source="job.input_kind")
    input_file = serializers.SerializerMethodField()
    input_path = serializers.CharField(source="job.input_path")
    sql_connection = serializers.CharField(source="job.sql_connection")
    sql_query = serializers.CharField(source="job.sql_query")
    entity_column = serializers.CharField(source="job.entity_column")
    pinned_version = serializers.IntegerField(source="job.pinned_version.number", default=None, allow_null=True)
    write_parquet = serializers.BooleanField(source="job.write_parquet")
    chunk_rows = serializers.IntegerField(source="job.chunk_rows")
    schedule = BatchScheduleOutput(allow_null=True)
    last_run = BatchRunOutput(allow_null=True)
    created_at = serializers.DateTimeField(source="job.created_at")

    def get_input_file(self, row: JobRow) -> str | None:
        return (row.job.input_file.name or "").rsplit("/", 1)[-1] or None


class BatchRejectOutput(serializers.ModelSerializer):
    class Meta:
        model = BatchReject
        fields = ["row_number", "entity_id", "reason"]
        extra_kwargs = {"row_number": {"help_text": "1 is the input's first data row"}}


class BatchScoreOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.number")

    class Meta:
        model = BatchScore
        fields = ["model", "entity_id", "prediction", "probability", "version", "run_id", "scored_at"]


# --- jobs -------------------------------------------------------------------------------------------


class BatchJobListApi(PaginatedListApi):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    class BatchJobCreateInput(serializers.Serializer):
        name = serializers.SlugField(max_length=100)
        input_kind = serializers.ChoiceField(choices=BatchJob.InputKind.choices)
        entity_column = serializers.CharField(max_length=200, help_text="The column that identifies each row")
        input_file = serializers.FileField(required=False, help_text="CSV or Parquet, for input_kind=upload")
        input_path = serializers.CharField(
            required=False, default="", allow_blank=True, help_text="Under MF_BATCH_INPUT_DIR, for input_kind=path"
        )
        sql_connection = serializers.CharField(
            required=False, default="", allow_blank=True, help_text="A name from MF_SCORING_DATABASES"
        )
        sql_query = serializers.CharField(
            required=False, default="", allow_blank=True, help_text="One SELECT, for input_kind=sql"
        )
        pinned_version = serializers.IntegerField(
            required=False, allow_null=True, default=None, min_value=1, help_text="Empty: the production version"
        )
        write_parquet = serializers.BooleanField(required=False, default=False)
        chunk_rows = serializers.IntegerField(
            required=False, default=DEFAULT_CHUNK_ROWS, min_value=1, max_value=MAX_CHUNK_ROWS
        )

    @extend_schema(responses=BatchJobOutput(many=True), summary="List a model's batch scoring jobs")
    def get(self, request: Request, name: str) -> Response:
        model = _visible_model(request, name)
        return paginated_response(
            request=request, view=self, queryset=job_list(model=model), serializer_class=BatchJobOutput
        )

    @extend_schema(
        # JSON is accepted too (for input_kind path or sql); one encoding documented keeps generated clients simple.
        request={"multipart/form-data": BatchJobCreateInput},
        responses={201: BatchJobOutput},
        summary="Create a batch scoring job",
    )
    def post(self, request: Request, name: str) -> Response:
        model = _visible_model(request, name)
        require_batch_manager(request.user)
        data = request.data
        # Read while parsing the body: the file was dropped, and "no file" would be the wrong reason.
        too_large = rejected_upload_errors(request._request)
        if too_large:
            raise serializers.ValidationError(too_large)
        payload = self.BatchJobCreateInput(data=data)
        payload.is_valid(raise_exception=True)
        job = job_create(actor=request.user, model=model, **payload.validated_data)
        return Response(BatchJobOutput(job_row(job)).data, status=status.HTTP_201_CREATED)


class BatchJobDetailApi(APIView):
    @extend_schema(responses=BatchJobOutput, summary="A batch scoring job, its schedule and last run")
    def get(self, request: Request, name: str, job: str) -> Response:
        model = _visible_model(request, name)
        found = job_get(model=model, name=job)
        return Response(BatchJobOutput(job_row(found)).data)


class BatchJobScheduleApi(APIView):
    class BatchScheduleInput(serializers.Serializer):
        crontab = serializers.CharField(
            required=False, allow_null=True, default=None, help_text="Five fields, e.g. '0 2 * * *' (UTC)"
        )
        every_minutes = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
        enabled = serializers.BooleanField(required=False, default=True)

    @extend_schema(
        request=BatchScheduleInput,
        responses={200: BatchScheduleOutput, 400: OpenApiResponse(description="Bad cron expression or interval")},
        summary="Set a job's schedule: a cron expression or every N minutes",
    )
    def put(self, request: Request, name: str, job: str) -> Response:
        model = _visible_model(request, name)
        require_batch_manager(request.user)
        found = job_get(model=model, name=job)
        payload = self.BatchScheduleInput(data=request.data)
        payload.is_valid(raise_exception=True)
        found = job_schedule(actor=request.user, job=found, **payload.validated_data)
        return Response(BatchScheduleOutput(schedule_of(found)).data)

    @extend_schema(request=None, responses={204: None}, summary="Remove a job's schedule")
    def delete(self, request: Request, name: str, job: str) -> Response:
        model = _visible_model(request, name)
        job_unschedule(actor=request.user, job=job_get(model=model, name=job))
        return Response(status=status.HTTP_204_NO_CONTENT)


class BatchJobRunListApi(PaginatedListApi):
    @extend_schema(responses=BatchRunOutput(many=True), summary="The runs of a job, newest first")
    def get(self, request: Request, name: str, job: str) -> Response:
        model = _visible_model(request, name)
        runs = run_list(job=job_get(model=model, name=job))
        return paginated_response(request=request, view=self, queryset=runs, serializer_class=BatchRunOutput)

    @extend_schema(
        request=None,
        responses={
            202: BatchRunOutput,
            400: OpenApiResponse(description="No version in production, or the pinned version may not score"),
            409: OpenApiResponse(description="A run of this job is already in progress"),
        },
        summary="Run a job now",
    )
    def post(self, request: Request, name: str, job: str) -> Response:
        model = _visible_model(request, name)
        run = run_start(job=job_get(model=model, name=job), actor=request.user)
        return Response(BatchRunOutput(run_get(run_id=run.pk)).data, status=status.HTTP_202_ACCEPTED)


# --- runs -------------------------------------------------------------------------------------------


class BatchRunDetailApi(APIView):
    @extend_schema(responses=BatchRunDetailOutput, summary="A run's status and progress (poll this)")
    def get(self, request: Request, run_id: int) -> Response:
        return Response(_run_detail(_visible_run(request, run_id)))


class BatchRunResumeApi(APIView):
    @extend_schema(
        request=None,
        responses={202: BatchRunDetailOutput, 409: OpenApiResponse(description="The run has not failed")},
        summary="Resume a failed run: failed chunks are tried again, done ones kept",
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = run_resume(actor=request.user, run=_visible_run(request, run_id))
        return Response(_run_detail(run_get(run_id=run.pk)), status=status.HTTP_202_ACCEPTED)


class BatchRunRejectListApi(PaginatedListApi):
    @extend_schema(responses=BatchRejectOutput(many=True), summary="Rows a run refused, with the reasons")
    def get(self, request: Request, run_id: int) -> Response:
        rejects = run_rejects(run=_visible_run(request, run_id))
        return paginated_response(request=request, view=self, queryset=rejects, serializer_class=BatchRejectOutput)


class BatchRunOutputApi(APIView):
    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="The job does not write Parquet, or the run has not succeeded"),
        },
        summary="Download a run's scores as Parquet",
    )
    def get(self, request: Request, run_id: int) -> FileResponse:
        run = _visible_run(request, run_id)
        if not run.output_parquet:
            raise NotFound("This run has no Parquet output.")
        return FileResponse(
            run.output_parquet.open("rb"), as_attachment=True, filename=f"{run.job.name}-run-{run.pk}.parquet"
        )


# --- scores -----------------------------------------------------------------------------------------


class EntityScoreApi(APIView):
    """Applications read their entities' latest batch score with their consumer token."""

    authentication_classes = [ConsumerTokenAuthentication, UserTokenAuthentication, SessionAuthentication]
    throttle_classes = [ConsumerRateThrottle]

    @extend_schema(
        responses={
            200: BatchScoreOutput,
            403: OpenApiResponse(description="This consumer token is for another model"),
            404: OpenApiResponse(description="No batch score for this entity"),
        },
        summary="The latest batch score of an entity",
    )
    def get(self, request: Request, name: str, entity_id: str) -> Response:
        principal = request.user
        if isinstance(principal, ConsumerPrincipal):
            model = selectors.model_get(name=name)
            if principal.consumer.model_id != model.pk:
                raise PermissionDenied("This consumer token is for another model.")
        else:
            model = _visible_model(request, name)
        score = latest_score(model=model, entity_id=entity_id)
        if score is None:
            raise NotFound(f"{name} has no batch score for {entity_id!r}.")
        return Response(BatchScoreOutput(score).data)
