"""Reads of scoring data: usage counters of a version, logged predictions, which prediction ids exist."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import BigIntegerField, CharField, Max, Sum
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Substr
from django.utils import timezone

from registry.models import Consumer, ModelVersion, RegisteredModel
from scoring.archive.selectors import archived_prediction, archived_prediction_ids
from scoring.models import Prediction, ScoringStats, SqlRun
from scoring.recorder import BUCKETS, percentile


def utc_day(field: str) -> Substr:
    """The UTC day of a datetime column as "YYYY-MM-DD", to group by in the database.

    Both databases give a datetime as text starting with its date in the connection's time zone, which
    Django sets to UTC; TruncDate would call a Python function per row on SQLite (20 ms for 3,600 rows).
    """
    return Substr(Cast(field, CharField()), 1, 10)


def latency_sums() -> dict[str, Sum]:
    """Aggregates adding the counters' latency histograms bucket by bucket in the database (a digit key
    is an array index on PostgreSQL and SQLite alike), so no row is decoded in Python."""
    return {
        f"latency_{index}": Sum(Cast(KeyTextTransform(str(index), "latency_histogram"), BigIntegerField()))
        for index in range(len(BUCKETS) + 1)
    }


def latency_histogram(aggregated: Mapping[str, Any]) -> list[int]:
    """The histogram from a row aggregated with `latency_sums()`."""
    return [aggregated[f"latency_{index}"] or 0 for index in range(len(BUCKETS) + 1)]


@dataclass(frozen=True)
class Usage:
    requests: int
    rows: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    last_minute: object | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def version_usage(*, version: ModelVersion, days: int = 7) -> Usage:
    """Requests, rows, errors and latency percentiles (bucket upper bounds) over the last `days`.

    Counters are minutes, hours or days (scoring/usage.py): each period counts once, in whichever row
    holds it, so summing the rows that start in the range is exact to the period at its start. One
    aggregate query, whatever the number of rows.
    """
    since = timezone.now() - timedelta(days=days)
    totals = ScoringStats.objects.filter(version=version, start__gte=since).aggregate(
        requests=Sum("requests"), rows=Sum("rows"), errors=Sum("errors"), last=Max("start"), **latency_sums()
    )
    histogram = latency_histogram(totals)
    return Usage(
        requests=totals["requests"] or 0,
        rows=totals["rows"] or 0,
        errors=totals["errors"] or 0,
        p50_ms=percentile(histogram, 0.5),
        p95_ms=percentile(histogram, 0.95),
        p99_ms=percentile(histogram, 0.99),
        last_minute=totals["last"],
    )


def version_sql_runs(*, version: ModelVersion, limit: int = 20) -> list[SqlRun]:
    """The version's latest SQL scoring runs (registry/sql.py), each with who registered the function."""
    return list(SqlRun.objects.filter(version=version).select_related("user")[:limit])


def model_sql_runs(*, model: RegisteredModel, limit: int = 10) -> list[SqlRun]:
    """The model's latest SQL scoring runs, of any version."""
    return list(SqlRun.objects.filter(model=model).select_related("user", "version")[:limit])


def logged_prediction(*, prediction_id: uuid.UUID) -> Prediction | None:
    """A logged prediction: its hot row, else (once the hot table has let it go) its row in the archive."""
    hot = Prediction.objects.select_related("model", "version__model", "consumer").filter(pk=prediction_id).first()
    return hot if hot is not None else archived_prediction(prediction_id)


def known_prediction_ids(
    *, model: RegisteredModel, ids: Iterable[uuid.UUID], consumer: Consumer | None = None
) -> set[uuid.UUID]:
    """Which of `ids` are predictions of `model` (and made for `consumer`, when given).

    The hot table first; ids it does not hold are looked for in the archive (actuals may come weeks late).
    """
    ids = set(ids)
    predictions = Prediction.objects.filter(model=model, pk__in=_id_set(ids))
    if consumer is not None:
        predictions = predictions.filter(consumer=consumer)
    known = set(predictions.values_list("pk", flat=True))
    if ids - known:
        known |= archived_prediction_ids(
            model_id=model.pk, ids=ids - known, consumer_id=None if consumer is None else consumer.pk
        )
    return known


def _id_set(ids: Iterable[uuid.UUID]) -> RawSQL:
    """The ids as one SQL parameter the database joins as a set, not one parameter each: an IN list of
    50,000 ids passes SQLite's variable limit and costs PostgreSQL a plan over every element."""
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::uuid[])", [list(ids)])
    # SQLite stores a UUIDField as its 32 hex digits.
    return RawSQL("SELECT value FROM json_each(%s)", [json.dumps([value.hex for value in ids])])
