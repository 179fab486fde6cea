"""Reads of scoring data for pages: usage counters of a version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import BigIntegerField, CharField, Max, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Substr
from django.utils import timezone

from registry.models import ModelVersion
from scoring.models import ScoringStats
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
