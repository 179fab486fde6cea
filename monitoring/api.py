"""Monitoring endpoints: actuals in, reports, alert rules and alerts out."""

from __future__ import annotations

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import PaginatedListApi, paginated_response
from config.authentication import UserTokenAuthentication
from config.openapi import error_responses
from monitoring import selectors as monitoring_selectors
from monitoring import services
from monitoring.models import Alert, AlertRule, EvidentlyReport, Report, RetrainingRecipe
from monitoring.permissions import require_configure_monitoring, require_record_actuals, require_request_reports
from registry import schedules, selectors
from scoring.authentication import ConsumerPrincipal, ConsumerTokenAuthentication


class ActualsApi(APIView):
    authentication_classes = [ConsumerTokenAuthentication, UserTokenAuthentication, SessionAuthentication]

    class ActualsInput(serializers.Serializer):
        rows = serializers.ListField(
            child=serializers.JSONField(),
            help_text=(
                '[{"prediction_id": "...", "actual": 1}, {"entity_id": "c-42", "actual": 0, "observed_at": "..."}]'
            ),
        )

    class ActualsOutput(serializers.Serializer):
        created = serializers.IntegerField()
        unchanged = serializers.IntegerField()

    @extend_schema(
        request=ActualsInput,
        responses={
            200: ActualsOutput,
            **error_responses(400, e400="Problems by row; nothing was stored"),
        },
    )
    def post(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        principal = request.user
        if isinstance(principal, ConsumerPrincipal) and principal.consumer.model_id != model.pk:
            return Response({"detail": "This consumer token is for another model."}, status=status.HTTP_403_FORBIDDEN)
        require_record_actuals(principal)
        payload = self.ActualsInput(data=request.data)
        payload.is_valid(raise_exception=True)
        result = services.actuals_ingest(actor=principal, model=model, rows=payload.validated_data["rows"])
        return Response({"created": result.created, "unchanged": result.unchanged})


class ReportSummaryOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.number", default=None, allow_null=True)

    class Meta:
        model = Report
        fields = [
            "id",
            "model",
            "version",
            "window_start",
            "window_end",
            "status",
            "baseline",
            "rows_current",
            "rows_reference",
            "rows_with_actuals",
            "drift_share",
            "dataset_drift",
            "performance",
            "created_at",
            "finished_at",
            "error",
        ]


class ReportOutput(ReportSummaryOutput):
    class Meta(ReportSummaryOutput.Meta):
        fields = [*ReportSummaryOutput.Meta.fields, "results"]


class ReportListApi(PaginatedListApi):
    class ReportRequestInput(serializers.Serializer):
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()

    @extend_schema(responses=ReportSummaryOutput(many=True))
    def get(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        reports = Report.objects.filter(model=model).select_related("model", "version")
        return paginated_response(request=request, view=self, queryset=reports, serializer_class=ReportSummaryOutput)

    @extend_schema(request=ReportRequestInput, responses={202: ReportSummaryOutput})
    def post(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        require_request_reports(request.user)
        payload = self.ReportRequestInput(data=request.data)
        payload.is_valid(raise_exception=True)
        report = services.report_request(actor=request.user, model=model, **payload.validated_data)
        report.refresh_from_db()
        return Response(ReportSummaryOutput(report).data, status=status.HTTP_202_ACCEPTED)


class ReportDetailApi(APIView):
    @extend_schema(responses=ReportOutput)
    def get(self, request: Request, report_id: int) -> Response:
        report = Report.objects.select_related("model", "version").filter(pk=report_id).first()
        if report is None:
            return Response({"detail": "No such report."}, status=status.HTTP_404_NOT_FOUND)
        return Response(ReportOutput(report).data)


class EvidentlyReportOutput(serializers.ModelSerializer):
    report = serializers.IntegerField(source="report_id")
    html_url = serializers.SerializerMethodField()

    class Meta:
        model = EvidentlyReport
        fields = [
            "report",
            "status",
            "sample_rows",
            "total_rows",
            "reference_sample_rows",
            "error",
            "requested_at",
            "finished_at",
            "html_url",
        ]

    def get_html_url(self, row: EvidentlyReport) -> str | None:
        return f"/api/reports/{row.report_id}/evidently/html/" if row.status == EvidentlyReport.Status.READY else None


def _done_report(report_id: int) -> Report:
    report = Report.objects.select_related("model").filter(pk=report_id, status=Report.Status.DONE).first()
    if report is None:
        raise NotFound("No such computed report.")
    return report


class EvidentlyReportApi(APIView):
    """Evidently's own HTML report of a computed report's window, built by a worker from a sample of at most
    MF_EVIDENTLY_SAMPLE_ROWS predictions and kept: ask for it (POST), then read its state until it is ready."""

    @extend_schema(
        responses={200: EvidentlyReportOutput, 404: OpenApiResponse(description="Not asked for yet, or no such report")}
    )
    def get(self, request: Request, report_id: int) -> Response:
        built = monitoring_selectors.evidently_report_of(report=_done_report(report_id))
        if built is None:
            raise NotFound("Evidently's report of this window has not been asked for: POST to prepare it.")
        return Response(EvidentlyReportOutput(built).data)

    @extend_schema(
        request=None,
        responses={202: EvidentlyReportOutput, **error_responses(400, e400="The report has no rows")},
    )
    def post(self, request: Request, report_id: int) -> Response:
        built = services.evidently_report_request(actor=request.user, report=_done_report(report_id))
        return Response(EvidentlyReportOutput(built).data, status=status.HTTP_202_ACCEPTED)


class EvidentlyReportHtmlApi(APIView):
    @extend_schema(
        responses={
            (200, "text/html"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="Not built (yet), or no such report"),
        },
        summary="Download Evidently's HTML report of a window",
    )
    def get(self, request: Request, report_id: int) -> FileResponse:
        report = _done_report(report_id)
        built = monitoring_selectors.evidently_report_of(report=report)
        if built is None or built.status != EvidentlyReport.Status.READY:
            raise NotFound("Evidently's report of this window is not built.")
        response = FileResponse(
            built.file.open("rb"), as_attachment=True, filename=f"{report.model.name}-report-{report.pk}-evidently.html"
        )
        # Its scripts never run on this origin, even if a browser shows it instead of saving it.
        response["Content-Security-Policy"] = "sandbox allow-scripts"
        return response


class AlertRuleOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    created_by = serializers.CharField(source="created_by.username")

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "model",
            "name",
            "metric",
            "parameter",
            "slice",
            "comparison",
            "threshold",
            "retrain",
            "active",
            "created_by",
            "created_at",
        ]


class AlertRuleListApi(APIView):
    class AlertRuleInput(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        metric = serializers.ChoiceField(choices=AlertRule.Metric.choices)
        parameter = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
        slice = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
        comparison = serializers.ChoiceField(choices=AlertRule.Comparison.choices)
        threshold = serializers.FloatField()
        retrain = serializers.BooleanField(required=False, default=False)

    @extend_schema(responses=AlertRuleOutput(many=True))
    def get(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        rules = AlertRule.objects.filter(model=model).select_related("model", "created_by")
        return Response(AlertRuleOutput(rules, many=True).data)

    @extend_schema(request=AlertRuleInput, responses={201: AlertRuleOutput})
    def post(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        require_configure_monitoring(request.user, model, "defines its alert rules")
        payload = self.AlertRuleInput(data=request.data)
        payload.is_valid(raise_exception=True)
        rule = services.alert_rule_create(actor=request.user, model=model, **payload.validated_data)
        return Response(AlertRuleOutput(rule).data, status=status.HTTP_201_CREATED)


class AlertOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="rule.model.name")
    rule = serializers.CharField(source="rule.name")
    metric = serializers.CharField(source="rule.metric")
    threshold = serializers.FloatField(source="rule.threshold")

    class Meta:
        model = Alert
        fields = ["id", "model", "rule", "metric", "threshold", "status", "opened_at", "closed_at", "last_value"]


class AlertListApi(PaginatedListApi):
    class AlertFilter(serializers.Serializer):
        status = serializers.ChoiceField(choices=Alert.Status.choices, required=False, allow_blank=True, default="")
        model = serializers.CharField(required=False, default="", allow_blank=True)

    @extend_schema(parameters=[AlertFilter], responses=AlertOutput(many=True))
    def get(self, request: Request) -> Response:
        filters = self.AlertFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        alerts = Alert.objects.select_related("rule__model")
        if filters.validated_data["status"]:
            alerts = alerts.filter(status=filters.validated_data["status"])
        if filters.validated_data["model"]:
            alerts = alerts.filter(rule__model__name=filters.validated_data["model"])
        return paginated_response(request=request, view=self, queryset=alerts, serializer_class=AlertOutput)


class RetrainingRecipeOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    schedule = serializers.SerializerMethodField()

    class Meta:
        model = RetrainingRecipe
        fields = ["model", "callable_path", "data_path", "data_query", "data_connection", "schedule"]

    def get_schedule(self, recipe: RetrainingRecipe) -> str:
        described = schedules.describe(recipe.periodic_task)
        return described["description"] if described else ""


class RetrainingRecipeApi(APIView):
    class RecipeInput(serializers.Serializer):
        callable_path = serializers.CharField(max_length=300, help_text='"package.module:function"')
        data_path = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)
        data_query = serializers.CharField(required=False, default="", allow_blank=True)
        data_connection = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)

    @extend_schema(responses=RetrainingRecipeOutput)
    def get(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        recipe = get_object_or_404(RetrainingRecipe.objects.select_related("model", "periodic_task"), model=model)
        return Response(RetrainingRecipeOutput(recipe).data)

    @extend_schema(request=RecipeInput, responses=RetrainingRecipeOutput)
    def put(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        require_configure_monitoring(request.user, model, "sets its retraining recipe")
        payload = self.RecipeInput(data=request.data)
        payload.is_valid(raise_exception=True)
        recipe = services.retraining_recipe_save(actor=request.user, model=model, **payload.validated_data)
        return Response(RetrainingRecipeOutput(recipe).data)


class RetrainApi(APIView):
    @extend_schema(request=None, responses={202: OpenApiResponse(description="Retraining queued")})
    def post(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        services.retraining_request(actor=request.user, model=model)
        return Response({"detail": "Retraining queued; the new version will wait in review."}, status=202)
