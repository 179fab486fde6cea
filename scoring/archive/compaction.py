"""Compaction of logged predictions: each complete hour of a model becomes one Parquet file per version
(its columns follow that version's input schema), listed in the ArchivedHour manifest; hot rows older
than MF_PREDICTION_HOT_DAYS are then deleted (on PostgreSQL, a day's partition dropped whole). The
rules that make this safe to kill and to run twice are in scoring/archive/lifecycle.py, shared with
monitoring's actuals.

Readers treat a listed hour as "read the files" and an unlisted one as "read the hot table".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncHour

from registry.models import ModelVersion
from registry.schema import parse_schema
from scoring.archive import format, lifecycle, partitions, store
from scoring.models import ArchivedHour, Prediction


def _model_rows(model_id: int) -> QuerySet[Prediction]:
    return Prediction.objects.filter(model_id=model_id)


def _write_hour(model_id: int, hour: datetime, rows: QuerySet[Prediction]) -> list[dict[str, Any]]:
    """One file per version that predicted in the hour, written a bounded number of rows at a time."""
    files = []
    # The versions as a subquery: the hour's rows never travel to Python as a list of ids.
    versions = ModelVersion.objects.filter(pk__in=rows.values("version_id")).order_by("number")
    for version in versions:
        fields = parse_schema(version.input_schema)
        values = (
            rows.filter(version_id=version.pk)
            .order_by("at", "id")
            .values(*format.PREDICTION_ATTRIBUTES)
            .iterator(chunk_size=lifecycle.ROWS_PER_TABLE)
        )
        tables = (
            format.predictions_table([{**row, "version": version.number} for row in chunk], fields)
            for chunk in lifecycle.chunked(values, lifecycle.ROWS_PER_TABLE)
        )
        path = store.hour_path(store.PREDICTIONS, model_id, hour, version.number)
        written, size = store.write_tables(path, format.prediction_schema(fields), tables)
        files.append({"path": path, "version": version.number, "rows": written, "bytes": size})
    return files


def _day_droppable(day: date) -> bool:
    """Whether a day's partition holds only rows its archived hours' files hold: every hour listed, and
    none with more hot rows than its files (rows that came late would be lost with the partition)."""
    if not partitions.day_archived(day):
        return False
    start = datetime.combine(day, time(), tzinfo=UTC)
    listed = {
        (entry.model_id, entry.hour): entry.rows
        for entry in ArchivedHour.objects.filter(
            kind=ArchivedHour.Kind.PREDICTIONS, hour__gte=start, hour__lt=start + timedelta(days=1)
        )
    }
    hot = (
        Prediction.objects.filter(at__gte=start, at__lt=start + timedelta(days=1))
        .annotate(hour=TruncHour("at", tzinfo=UTC))
        .values("model_id", "hour")
        .annotate(rows=Count("*"))
    )
    return all(row["rows"] <= listed.get((row["model_id"], row["hour"]), -1) for row in hot)


def _drop_days(bound: datetime) -> list[date]:
    return partitions.drop_partitions(before_day=bound.astimezone(UTC).date(), archived=_day_droppable)


PREDICTIONS = lifecycle.Source(
    kind=ArchivedHour.Kind.PREDICTIONS,
    time_field="at",
    rows=_model_rows,
    write_hour=_write_hour,
    drop_days=_drop_days,
)


def compact(now: datetime | None = None) -> lifecycle.ArchiveSummary:
    """Archive every complete hour of predictions not yet listed in the manifest."""
    return lifecycle.compact(PREDICTIONS, now=now)


def prune_hot(now: datetime | None = None) -> int:
    """Delete hot predictions of archived hours older than MF_PREDICTION_HOT_DAYS; returns how many."""
    return lifecycle.prune_hot(PREDICTIONS, now=now)


def prune_archive(now: datetime | None = None) -> int:
    """Delete prediction files and manifest entries older than MF_PREDICTION_ARCHIVE_DAYS."""
    return lifecycle.prune_archive(now=now, kind=ArchivedHour.Kind.PREDICTIONS)


def archive_run(now: datetime | None = None) -> lifecycle.ArchiveSummary:
    """Beat's work: compact, then prune the hot table and the archive; skips if another run is going.

    On PostgreSQL the coming days' partitions are made first, so that new rows never wait in the DEFAULT
    partition, and whole old days are dropped rather than deleted row by row.
    """
    partitions.ensure_partitions(now=now)
    return lifecycle.run(PREDICTIONS, now=now)
