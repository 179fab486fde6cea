"""How long the monitoring, version and dashboard pages take with 90 days of traffic at 600 predictions/s.

The traffic is simulated in what the pages read, inserted directly: hourly summaries (all traffic and
20 slices, 25 features on 21 bins each) and the usage counters as the hourly rollup leaves them
(minutes for 48 hours, hours for 30 days, days before), plus a daily report per day. Then times GET of
each page through Django's test client (the whole view: queries, charts, template) and counts queries.

    .venv/bin/python benchmarks/summaries.py --database-url postgres://postgres@127.0.0.1:5432/bench_summaries
    .venv/bin/python benchmarks/summaries.py   # a throwaway SQLite database
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from mf_setup import configure

FEATURES = 25
SLICES = 20
BINS = 21


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rate", type=int, default=600, help="predictions per second")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="mf-summaries-"))
    configure(
        {
            "DATABASE_URL": args.database_url or f"sqlite:///{directory / 'db.sqlite3'}",
            "MF_DATA_DIR": str(directory),
            "CELERY_BROKER_URL": "memory://",
            "MF_CELERY_EAGER": "true",
        }
    )
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from monitoring.models import MonitoringConfig, RegisteredModel
    from registry.choices import VersionStatus
    from registry.models import ModelVersion

    call_command("collectstatic", "--noinput", verbosity=0)  # pages name static files by their hashed names
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
    started = time.perf_counter()
    RegisteredModel.objects.filter(name="traffic").delete()
    model = RegisteredModel.objects.create(name="traffic", title="Traffic", owner=user, task="classification")
    schema = [{"name": f"f{i}", "type": "float"} for i in range(FEATURES)] + [{"name": "region", "type": "string"}]
    version = ModelVersion.objects.create(
        model=model, number=1, status=VersionStatus.PRODUCTION, author=user, input_schema=schema, metrics={}
    )
    MonitoringConfig.objects.create(model=model, slice_columns=["region"])
    counts = simulate(version, days=args.days, rate=args.rate)
    print(f"{args.days} days at {args.rate}/s simulated in {time.perf_counter() - started:.1f} s: {counts}")

    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    for url in ("/models/traffic/monitoring/", "/models/traffic/versions/1/", "/monitoring/"):
        client.get(url)  # warm: templates compiled, caches filled
        timings = []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                began = time.perf_counter()
                response = client.get(url)
                timings.append(time.perf_counter() - began)
            assert response.status_code == 200, url
        print(
            f"GET {url}: median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms; "
            f"{len(queries)} queries; {len(response.content) / 1024:.0f} KiB"
        )


def simulate(version: Any, *, days: int, rate: int) -> dict[str, int]:
    """Insert what `days` of traffic at `rate` predictions/s leave behind; returns rows per table."""
    import numpy as np
    from django.utils import timezone

    from monitoring.models import HourlySummary, Report, SummaryBins
    from scoring.models import ScoringStats
    from scoring.recorder import BUCKETS
    from scoring.usage import period_start

    rng = np.random.default_rng(0)
    now = period_start(timezone.now(), ScoringStats.Granularity.HOUR)
    per_hour = rate * 3600
    edges = {f"f{i}": sorted(rng.normal(size=BINS - 1).tolist()) for i in range(FEATURES)}
    SummaryBins.objects.create(
        version=version,
        source=SummaryBins.Source.REFERENCE,
        labels=["0", "1"],
        features={name: {"kind": "numerical", "edges": values} for name, values in edges.items()},
    )
    latency = [0, 0, 10, 40, 30, 15, 4, 1, 0, 0, 0, 0, 0, 0]

    def summary(hour: Any, slice_name: str, rows: int) -> HourlySummary:
        share = rows / sum(latency)
        features = {
            name: {"counts": rng.multinomial(rows, [1 / BINS] * BINS).tolist(), "missing": int(rows * 0.01)}
            for name in edges
        }
        return HourlySummary(
            model=version.model,
            version=version,
            slice=slice_name,
            hour=hour,
            rows=rows,
            errors=0 if not slice_name else None,
            latency_sum_ms=rows * 3.2,
            latency_histogram=[int(count * share) for count in latency],
            rows_with_actuals=rows // 2,
            predictions={"0": rows * 7 // 10, "1": rows - rows * 7 // 10},
            score_sum=rows * 0.31,
            score_count=rows,
            features=features,
        )

    summaries = 0
    for day in range(days):
        batch = []
        for hour_of_day in range(24):
            hour = now - timedelta(hours=day * 24 + hour_of_day)
            batch.append(summary(hour, "", per_hour))
            batch += [summary(hour, f"region=r{s:02d}", per_hour // SLICES) for s in range(SLICES)]
        HourlySummary.objects.bulk_create(batch, batch_size=1000)
        summaries += len(batch)
    minute = [int(c * rate * 60 / sum(latency)) for c in latency] + [0] * (len(BUCKETS) + 1 - len(latency))
    starts = [("minute", now - timedelta(minutes=m), 1) for m in range(min(days, 2) * 24 * 60)]
    starts += [("hour", now - timedelta(hours=h), 60) for h in range(48, min(days, 30) * 24)]
    day_start = period_start(now, ScoringStats.Granularity.DAY)
    starts += [("day", day_start - timedelta(days=d), 1440) for d in range(30, days)]
    ScoringStats.objects.bulk_create(
        (
            ScoringStats(
                version=version,
                granularity=granularity,
                start=start,
                requests=rate * 60 * minutes,
                rows=rate * 60 * minutes,
                latency_histogram=[count * minutes for count in minute],
            )
            for granularity, start, minutes in starts
        ),
        batch_size=2000,
    )
    verdict = {"test": "K-S p_value", "statistic": 0.3, "threshold": 0.05, "drifted": False}
    columns = {f"f{i}": verdict for i in range(FEATURES)}
    Report.objects.bulk_create(
        Report(
            model=version.model,
            version=version,
            window_start=now - timedelta(days=day + 1),
            window_end=now - timedelta(days=day),
            status=Report.Status.DONE,
            rows_current=per_hour * 24,
            drift_share=0.0,
            dataset_drift=False,
            performance={"roc_auc": 0.8, "accuracy": 0.75, "f1": 0.6},
            results={
                "columns": list(columns),
                "dataset": {"drift_share": 0.0, "drifted": False, "columns": columns},
                "slices": {
                    f"region=r{s:02d}": {"rows": per_hour * 24 // SLICES, "drift_share": 0.0, "columns": columns}
                    for s in range(SLICES)
                },
            },
        )
        for day in range(days)
    )
    return {"hourly summaries": summaries, "usage counters": len(starts), "reports": days}


if __name__ == "__main__":
    main()
