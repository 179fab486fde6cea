"""Rolling the real-time usage counters up: minutes into hours, hours into days.

The recorder writes one ScoringStats row per version and minute, so 30 days of traffic are 43,200 rows
per version, which every usage chart read and decoded. Rolled up, a version keeps at most
MF_USAGE_MINUTES_HOURS * 60 minute rows, MF_USAGE_HOURS_DAYS * 24 hour rows and one row a day before.
Counts and latency histograms add, so a rolled-up row says exactly what its minutes said.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from scoring.models import ScoringStats
from scoring.recorder import BUCKETS

# Rows merged per transaction: bounds the locks held and the memory of one step.
ROLLUP_BATCH_ROWS = 5000
Granularity = ScoringStats.Granularity


def histogram_sum(histograms: Iterable[list[int]]) -> list[int]:
    """Latency histograms on scoring.recorder.BUCKETS added bucket by bucket."""
    total = [0] * (len(BUCKETS) + 1)
    for histogram in histograms:
        if histogram:  # a row written before histograms were kept has none
            total = [a + b for a, b in zip(total, histogram, strict=True)]
    return total


def period_start(moment: datetime, granularity: str) -> datetime:
    """The start of the minute, hour or day that holds `moment`."""
    start = moment.replace(second=0, microsecond=0)
    if granularity in (Granularity.HOUR, Granularity.DAY):
        start = start.replace(minute=0)
    if granularity == Granularity.DAY:
        start = start.replace(hour=0)
    return start


@dataclass(frozen=True)
class Rollup:
    minutes: int  # minute rows merged into hours
    hours: int  # hour rows merged into days


class _OvertakenError(Exception):
    """Another rollup merged some of this batch's rows first."""


def usage_rollup(*, now: datetime | None = None) -> Rollup:
    """Merge old minute rows into hour rows and old hour rows into day rows; running it again changes nothing.

    Safe beside the recorder, which only adds to the row of a recent minute: each batch locks the rows it
    merges, and a minute the recorder writes late (after the database was down for longer than the
    minutes are kept) is merged by the next run, as its hour's row only ever grows.
    """
    now = now or timezone.now()
    # Cut-offs on period boundaries, so that a rolled-up period receives all its rows in one run.
    minutes_before = period_start(now - timedelta(hours=settings.MF_USAGE_MINUTES_HOURS), Granularity.HOUR)
    hours_before = period_start(now - timedelta(days=settings.MF_USAGE_HOURS_DAYS), Granularity.DAY)
    return Rollup(
        minutes=_roll_up(Granularity.MINUTE, Granularity.HOUR, before=minutes_before),
        hours=_roll_up(Granularity.HOUR, Granularity.DAY, before=hours_before),
    )


def _roll_up(source: str, target: str, *, before: datetime) -> int:
    merged = 0
    while True:
        try:
            with transaction.atomic():
                done = _roll_up_batch(source, target, before=before)
        except _OvertakenError:
            return merged  # a concurrent rollup is doing the same work: leave the rest to it
        if not done:
            return merged
        merged += done


def _roll_up_batch(source: str, target: str, *, before: datetime) -> int:
    rows = list(
        ScoringStats.objects.select_for_update()
        .filter(granularity=source, start__lt=before)
        .order_by("start", "id")
        .values_list("id", "version_id", "start", "requests", "rows", "errors", "latency_histogram")[:ROLLUP_BATCH_ROWS]
    )
    if not rows:
        return 0
    # Compare-and-set: deleting exactly the rows read proves no one merged them meanwhile (SQLite has no
    # row locks: a second rollup reads the same rows, then finds them gone and rolls back).
    deleted, _ = ScoringStats.objects.filter(pk__in=[row[0] for row in rows]).delete()
    if deleted != len(rows):
        raise _OvertakenError
    totals: dict[tuple[int, datetime], list[ScoringStats]] = {}
    for _, version_id, start, requests, count, errors, histogram in rows:
        totals.setdefault((version_id, period_start(start, target)), []).append(
            ScoringStats(requests=requests, rows=count, errors=errors, latency_histogram=histogram)
        )
    for (version_id, start), parts in totals.items():
        row, _ = ScoringStats.objects.select_for_update().get_or_create(
            version_id=version_id, granularity=target, start=start
        )
        row.requests += sum(part.requests for part in parts)
        row.rows += sum(part.rows for part in parts)
        row.errors += sum(part.errors for part in parts)
        row.latency_histogram = histogram_sum([row.latency_histogram, *(part.latency_histogram for part in parts)])
        row.save()
    return len(rows)
