"""Reads of scoring data for pages: usage counters of a version, logged predictions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from registry.models import ModelVersion
from scoring.archive.selectors import archived_prediction
from scoring.models import Prediction, ScoringStats
from scoring.recorder import BUCKETS, percentile


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
    """Requests, rows, errors and latency percentiles (bucket upper bounds) over the last `days`."""
    histogram = [0] * (len(BUCKETS) + 1)
    requests = rows = errors = 0
    last = None
    since = timezone.now() - timedelta(days=days)
    for stats in ScoringStats.objects.filter(version=version, minute__gte=since).order_by("minute"):
        requests += stats.requests
        rows += stats.rows
        errors += stats.errors
        histogram = [a + b for a, b in zip(histogram, stats.latency_histogram, strict=True)]
        last = stats.minute
    return Usage(
        requests=requests,
        rows=rows,
        errors=errors,
        p50_ms=percentile(histogram, 0.5),
        p95_ms=percentile(histogram, 0.95),
        p99_ms=percentile(histogram, 0.99),
        last_minute=last,
    )


def logged_prediction(*, prediction_id: uuid.UUID) -> Prediction | None:
    """A logged prediction: its hot row, else (once the hot table has let it go) its row in the archive."""
    hot = Prediction.objects.select_related("model", "version__model", "consumer").filter(pk=prediction_id).first()
    return hot if hot is not None else archived_prediction(prediction_id)
