"""Monitoring in the admin, read-only: configuration changes go through the services, which validate them
and write the audit trail; reports, alerts and runs are records. Actuals are left out: like predictions
they number in the millions, beyond what the admin's counted lists can page."""

from django.contrib import admin

from monitoring.models import (
    Alert,
    AlertEvent,
    AlertRule,
    EvidentlyReport,
    MonitoringConfig,
    Report,
    RetrainingRecipe,
    RetrainingRun,
)
from registry.admin import ReadOnlyAdmin


@admin.register(MonitoringConfig)
class MonitoringConfigAdmin(ReadOnlyAdmin):
    list_display = ["model", "baseline", "window_days", "min_slice_rows", "fdr_correction"]


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = ["model", "version", "window_start", "window_end", "status", "rows_current", "drift_share"]
    list_filter = ["status"]
    search_fields = ["model__name"]
    date_hierarchy = "created_at"
    exclude = ["results", "performance"]  # the report's page shows them readably


@admin.register(EvidentlyReport)
class EvidentlyReportAdmin(ReadOnlyAdmin):
    list_display = ["report", "status", "sample_rows", "total_rows", "requested_at", "finished_at"]
    list_filter = ["status"]


@admin.register(AlertRule)
class AlertRuleAdmin(ReadOnlyAdmin):
    list_display = ["name", "model", "metric", "comparison", "threshold", "active"]
    list_filter = ["metric", "active"]
    search_fields = ["name", "model__name"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["rule", "status", "opened_at", "closed_at", "last_value"]
    list_filter = ["status"]


@admin.register(AlertEvent)
class AlertEventAdmin(ReadOnlyAdmin):
    list_display = ["alert", "kind", "at", "value"]
    list_filter = ["kind"]


@admin.register(RetrainingRecipe)
class RetrainingRecipeAdmin(ReadOnlyAdmin):
    list_display = ["model", "callable_path", "data_path"]


@admin.register(RetrainingRun)
class RetrainingRunAdmin(ReadOnlyAdmin):
    list_display = ["recipe", "trigger", "status", "version", "started_at", "finished_at"]
    list_filter = ["status", "trigger"]
