"""Compaction of actuals, as for predictions (scoring/archive/lifecycle.py): each complete hour of a
model's actuals, by the hour they were received, becomes one Parquet file listed in the manifest (rows in
prediction id order); hot actuals older than MF_PREDICTION_HOT_DAYS are then deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import F, QuerySet

from monitoring.models import Actual
from scoring.archive import format, lifecycle, store
from scoring.models import ArchivedHour


def _model_rows(model_id: int) -> QuerySet[Actual]:
    return Actual.objects.filter(model_id=model_id)


def _write_hour(model_id: int, hour: datetime, rows: QuerySet[Actual]) -> list[dict[str, Any]]:
    # In prediction id order (UUIDv7s: prediction time), so that each row group holds a narrow range of
    # ids and a report joining one range of predictions reads only the row groups of that range.
    values = (
        rows.order_by(F("prediction_id").asc(nulls_last=True), "received_at", "id")
        .values(*format.ACTUAL_ATTRIBUTES)
        .iterator(chunk_size=lifecycle.ROWS_PER_TABLE)
    )
    tables = (format.actuals_table(chunk) for chunk in lifecycle.chunked(values, lifecycle.ROWS_PER_TABLE))
    path = store.hour_path(store.ACTUALS, model_id, hour)
    written, size = store.write_tables(path, format.ACTUAL_COLUMNS, tables)
    return [{"path": path, "version": None, "rows": written, "bytes": size}]


ACTUALS = lifecycle.Source(
    kind=ArchivedHour.Kind.ACTUALS, time_field="received_at", rows=_model_rows, write_hour=_write_hour
)


def compact_actuals(now: datetime | None = None) -> lifecycle.ArchiveSummary:
    """Archive every complete hour of actuals (by receipt) not yet listed in the manifest."""
    return lifecycle.compact(ACTUALS, now=now)


def prune_hot_actuals(now: datetime | None = None) -> int:
    """Delete hot actuals of archived hours older than MF_PREDICTION_HOT_DAYS; returns how many."""
    return lifecycle.prune_hot(ACTUALS, now=now)


def archive_actuals_run(now: datetime | None = None) -> lifecycle.ArchiveSummary:
    """Beat's work: compact actuals, then prune them and their expired files; skips if already running."""
    return lifecycle.run(ACTUALS, now=now)
