"""Reads of scoring data for pages: usage counters of a version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from registry.models import ModelVersion
from scoring.models import ScoringStats
from scoring.recorder import percentile
from scoring.usage import histogram_sum


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
    holds it, so summing the rows that start in the range is exact to the hour at its start.
    """
    since = timezone.now() - timedelta(days=days)
    rows = list(
        ScoringStats.objects.filter(version=version, start__gte=since)
        .order_by("start")
        .values_list("start", "requests", "rows", "errors", "latency_histogram")
    )
    histogram = histogram_sum(row[4] for row in rows)
    return Usage(
        requests=sum(row[1] for row in rows),
        rows=sum(row[2] for row in rows),
        errors=sum(row[3] for row in rows),
        p50_ms=percentile(histogram, 0.5),
        p95_ms=percentile(histogram, 0.95),
        p99_ms=percentile(histogram, 0.99),
        last_minute=rows[-1][0] if rows else None,
    )
