"""The monitoring and version pages read summaries and rolled-up counters in a number of queries that does
not grow with the hours of traffic behind them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from monitoring import selectors
from monitoring.models import HourlySummary, Report, SummaryBins
from registry.models import ModelVersion
from scoring.models import ScoringStats
from scoring.recorder import BUCKETS
from scoring.usage import period_start

PAGES = ["/models/churn/monitoring/", "/models/churn/versions/1/", "/monitoring/"]
Granularity = ScoringStats.Granularity


def simulate(version: ModelVersion, days: int) -> None:
    """`days` of hourly summaries for all traffic and two slices, and counters as the rollup leaves them:
    minutes for the last two days, hours for the month before, days before that."""
    now = period_start(timezone.now(), Granularity.HOUR)
    histogram = [10] * (len(BUCKETS) + 1)
    SummaryBins.objects.update_or_create(
        version=version, defaults={"source": SummaryBins.Source.REFERENCE, "labels": ["0", "1"]}
    )
    HourlySummary.objects.bulk_create(
        HourlySummary(
            model=version.model,
            version=version,
            slice=slice_name,
            hour=now - timedelta(hours=hour),
            rows=3600,
            rows_with_actuals=1800,
            latency_histogram=histogram,
            predictions={"0": 2000, "1": 1600},
            score_sum=1500.0,
            score_count=3600,
            features={"tenure": {"counts": [100] * 21, "missing": 3}},
        )
        for hour in range(days * 24)
        for slice_name in ("", "contract=monthly", "contract=yearly")
    )
    starts = [(Granularity.MINUTE, now - timedelta(minutes=m)) for m in range(min(days, 2) * 24 * 60)]
    starts += [(Granularity.HOUR, now - timedelta(hours=h)) for h in range(48, min(days, 30) * 24)]
    starts += [(Granularity.DAY, period_start(now, Granularity.DAY) - timedelta(days=d)) for d in range(30, days)]
    ScoringStats.objects.bulk_create(
        ScoringStats(version=version, granularity=g, start=s, requests=60, rows=60, latency_histogram=histogram)
        for g, s in starts
    )


def _queries(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url)
    assert page.status_code == 200, url
    return len(queries)


@pytest.mark.parametrize("url", PAGES)
def test_pages_read_a_bounded_number_of_queries_whatever_the_traffic(
    production: ModelVersion, author: Any, client: Any, django_assert_max_num_queries: Any, url: str
) -> None:
    client.force_login(author)
    simulate(production, days=3)
    client.get(url)  # warm: sessions, caches
    few = _queries(client, url)

    HourlySummary.objects.all().delete()
    ScoringStats.objects.all().delete()
    simulate(production, days=90)

    with django_assert_max_num_queries(40):
        page = client.get(url)
    assert page.status_code == 200
    assert _queries(client, url) == few


def test_the_pages_draw_traffic_from_the_summaries(production: ModelVersion, author: Any, client: Any) -> None:
    simulate(production, days=3)
    client.force_login(author)

    page = client.get("/models/churn/monitoring/")

    assert b'id="chart-traffic"' in page.content and b"predicted 1" in page.content
    version_page = client.get("/models/churn/versions/1/").content.decode()
    assert "Requests</dt><dd>" in version_page  # the counters
    assert "<dt>Predictions</dt><dd>259200 in 72 hours</dd>" in version_page  # the summaries (all traffic)


def test_trend_reports_carry_only_what_the_trend_charts_read(production: ModelVersion) -> None:
    verdict = {"test": "K-S p_value", "statistic": 0.01, "threshold": 0.05, "drifted": True, "kind": "numerical"}
    results = {
        "columns": ["tenure", "charges"],
        "dataset": {"drift_share": 0.5, "columns": {"charges": verdict}},
        "slices": {
            "contract=monthly": {"rows": 500, "performance": {"roc_auc": 0.7}, "histograms": {"charges": [1, 2]}},
            "contract=yearly": {"rows": 3, "too_small": True},
        },
    }
    now = timezone.now()
    Report.objects.create(
        model=production.model,
        window_start=now - timedelta(days=1),
        window_end=now,
        status=Report.Status.DONE,
        results=results,
    )

    (report,) = selectors.model_reports(model=production.model, slices=["contract=monthly", "contract=yearly", "x"])

    assert report.results == {
        "columns": ["tenure", "charges"],
        "dataset": {"columns": {"charges": verdict}},
        "slices": {"contract=monthly": {"performance": {"roc_auc": 0.7}}},
    }
