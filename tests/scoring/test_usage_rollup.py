"""Usage counters rolled up from minutes to hours and days keep every total and histogram, and the readers
give the same answers before and after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from celery import current_app
from django.db.models import QuerySet

from monitoring.selectors import daily_usage
from registry.models import ModelVersion
from scoring.models import ScoringStats
from scoring.recorder import BUCKETS
from scoring.selectors import version_usage
from scoring.usage import histogram_sum, usage_rollup

NOW = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
Granularity = ScoringStats.Granularity


@pytest.fixture
def minutes(production: ModelVersion, settings: Any) -> list[ScoringStats]:
    """Three days of counters every 7 minutes, as the recorder writes them."""
    settings.MF_USAGE_MINUTES_HOURS = 24
    settings.MF_USAGE_HOURS_DAYS = 2
    rows = []
    for index in range(3 * 24 * 60 // 7):
        histogram = [0] * (len(BUCKETS) + 1)
        histogram[index % len(histogram)] = index % 5 + 1
        rows.append(
            ScoringStats(
                version=production,
                granularity=Granularity.MINUTE,
                start=(NOW - timedelta(minutes=7 * index)).replace(second=0, microsecond=0),
                requests=index % 5 + 1,
                rows=3 * (index % 5 + 1),
                errors=index % 2,
                latency_histogram=histogram,
            )
        )
    return ScoringStats.objects.bulk_create(rows)


def _totals() -> tuple[int, int, int, list[int]]:
    rows = list(ScoringStats.objects.all())
    return (
        sum(row.requests for row in rows),
        sum(row.rows for row in rows),
        sum(row.errors for row in rows),
        histogram_sum(row.latency_histogram for row in rows),
    )


def test_it_rolls_minutes_into_hours_and_hours_into_days_keeping_totals(minutes: list[ScoringStats]) -> None:
    before = _totals()

    rolled = usage_rollup(now=NOW)

    assert _totals() == before
    kept = {g: ScoringStats.objects.filter(granularity=g) for g in Granularity.values}
    minute_cut, hour_cut = datetime(2026, 11, 26, 12, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)
    assert all(row.start >= minute_cut for row in kept[Granularity.MINUTE])
    assert all(hour_cut <= row.start < minute_cut and row.start.minute == 0 for row in kept[Granularity.HOUR])
    assert all(row.start < hour_cut and row.start.hour == 0 for row in kept[Granularity.DAY])
    assert kept[Granularity.HOUR].count() == 36 and kept[Granularity.DAY].count() == 1
    assert rolled.minutes == len(minutes) - kept[Granularity.MINUTE].count() and rolled.hours > 0
    # The day before the hour cut-off holds what its minutes held.
    first_day = [m for m in minutes if m.start < hour_cut and m.start >= hour_cut - timedelta(days=1)]
    day = kept[Granularity.DAY].get(start=hour_cut - timedelta(days=1))
    assert (day.requests, day.errors) == (sum(m.requests for m in first_day), sum(m.errors for m in first_day))
    assert day.latency_histogram == histogram_sum(m.latency_histogram for m in first_day)


def test_running_it_again_changes_nothing(minutes: list[ScoringStats]) -> None:
    usage_rollup(now=NOW)
    after = sorted(ScoringStats.objects.values_list("granularity", "start", "requests", "latency_histogram"))

    assert usage_rollup(now=NOW).minutes == 0
    assert sorted(ScoringStats.objects.values_list("granularity", "start", "requests", "latency_histogram")) == after


def test_a_minute_written_late_is_added_to_its_rolled_up_hour(
    minutes: list[ScoringStats], production: ModelVersion
) -> None:
    usage_rollup(now=NOW)
    hour = datetime(2026, 11, 25, 3, tzinfo=UTC)
    rolled = ScoringStats.objects.get(granularity=Granularity.HOUR, start=hour)
    # A recorder that could not reach the database for a day flushes an old minute.
    late = [0] * (len(BUCKETS) + 1)
    late[2] = 4
    ScoringStats.objects.create(
        version=production, start=hour + timedelta(minutes=13), requests=4, rows=4, latency_histogram=late
    )

    usage_rollup(now=NOW)

    merged = ScoringStats.objects.get(granularity=Granularity.HOUR, start=hour)
    assert merged.requests == rolled.requests + 4
    assert merged.latency_histogram == histogram_sum([rolled.latency_histogram, late])
    assert not ScoringStats.objects.filter(
        granularity=Granularity.MINUTE, start__lt=datetime(2026, 11, 26, 12, tzinfo=UTC)
    )


def test_the_readers_give_the_same_answers_on_rolled_up_counters(
    minutes: list[ScoringStats], production: ModelVersion
) -> None:
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        usage, per_day = version_usage(version=production, days=7), daily_usage(model=production.model, days=7)
        usage_rollup()
        assert ScoringStats.objects.filter(granularity=Granularity.DAY).exists()

        assert version_usage(version=production, days=7) == usage
        assert daily_usage(model=production.model, days=7) == per_day


def test_a_batch_another_rollup_merged_first_is_left_to_it(minutes: list[ScoringStats]) -> None:
    before = sorted(ScoringStats.objects.values_list("granularity", "start", "requests"))
    # The rows read are no longer all there when this rollup deletes them: it changes nothing.
    with mock.patch.object(QuerySet, "delete", autospec=True, return_value=(1, {})):
        rolled = usage_rollup(now=NOW)

    assert rolled.minutes == 0
    assert sorted(ScoringStats.objects.values_list("granularity", "start", "requests")) == before


def test_beat_rolls_the_counters_up_every_hour(minutes: list[ScoringStats], settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["roll-up-usage-counters"]
    assert entry["schedule"] == 3600.0

    current_app.tasks[entry["task"]].apply()

    assert ScoringStats.objects.filter(granularity=Granularity.HOUR).exists()
