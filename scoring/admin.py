"""Scoring in the admin, read-only: policies and batch jobs change through the services, which validate
them and write the audit trail; runs and the archive's manifest are records. Predictions and batch scores
are left out: they number in the millions, beyond what the admin's counted lists can page."""

from django.contrib import admin

from registry.admin import ReadOnlyAdmin
from scoring.models import ArchivedHour, ArchiveState, BatchJob, BatchReject, BatchRun, ScoringPolicy


@admin.register(ScoringPolicy)
class ScoringPolicyAdmin(ReadOnlyAdmin):
    list_display = ["model", "unknown_categories", "input_logging", "max_rows_per_request"]


@admin.register(BatchJob)
class BatchJobAdmin(ReadOnlyAdmin):
    list_display = ["name", "model", "input_kind", "pinned_version", "created_by", "created_at"]
    search_fields = ["name", "model__name"]


@admin.register(BatchRun)
class BatchRunAdmin(ReadOnlyAdmin):
    list_display = ["job", "version", "status", "trigger", "rows_scored", "rows_rejected", "created_at"]
    list_filter = ["status", "trigger"]


@admin.register(BatchReject)
class BatchRejectAdmin(ReadOnlyAdmin):
    list_display = ["run", "row_number", "entity_id", "reason"]


@admin.register(ArchivedHour)
class ArchivedHourAdmin(ReadOnlyAdmin):
    list_display = ["model", "kind", "hour", "rows", "bytes", "archived_at", "pruned_at"]
    list_filter = ["kind"]
    date_hierarchy = "hour"


@admin.register(ArchiveState)
class ArchiveStateAdmin(ReadOnlyAdmin):
    list_display = ["kind", "running_since", "failing_since", "error"]
