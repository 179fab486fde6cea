"""How long the managers' dashboard takes with many production models and a year of daily reports.

Fills a throwaway SQLite database with N models, each with a version in production, a year of daily
reports and some open alerts, then times GET /monitoring/ through Django's test client (the whole
view: queries, charts, template) and counts its queries.

    .venv/bin/python benchmarks/dashboard.py --models 100 --days 365
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from mf_setup import configure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="mf-dashboard-"))
    configure(
        {
            "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
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
    from django.utils import timezone

    from monitoring.models import Alert, AlertRule, Report
    from registry.choices import VersionStatus
    from registry.models import ModelVersion, RegisteredModel

    call_command("collectstatic", "--noinput", verbosity=0)  # pages name static files by their hashed names
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-password")
    now = timezone.now()
    started = time.perf_counter()
    models = RegisteredModel.objects.bulk_create(
        RegisteredModel(name=f"model-{i:03d}", title=f"Model {i}", owner=user, task="classification")
        for i in range(args.models)
    )
    ModelVersion.objects.bulk_create(
        ModelVersion(model=model, number=1, status=VersionStatus.PRODUCTION, author=user, metrics={"roc_auc": 0.9})
        for model in models
    )
    reports = []
    for model in models:
        for day in range(args.days):
            end = now - timedelta(days=day)
            reports.append(
                Report(
                    model=model,
                    window_start=end - timedelta(days=1),
                    window_end=end,
                    status=Report.Status.DONE,
                    drift_share=(day % 7) / 10,
                    dataset_drift=False,
                    performance={"roc_auc": 0.85, "accuracy": 0.8},
                    results={"columns": [f"f{c}" for c in range(25)]},
                    rows_current=10_000,
                )
            )
    Report.objects.bulk_create(reports, batch_size=5000)
    latest = {r.model_id: r for r in Report.objects.filter(window_end=now)}
    for model in models[::5]:
        rule = AlertRule.objects.create(
            model=model, name="drift", metric="drift_share", comparison=">", threshold=0.5, created_by=user
        )
        Alert.objects.create(rule=rule, opened_by_report=latest[model.pk])
    print(f"{args.models} models, {len(reports):,} reports, set up in {time.perf_counter() - started:.1f} s")

    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    client.get("/monitoring/")  # warm: templates compiled, caches filled
    timings = []
    for _ in range(args.repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get("/monitoring/")
            timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    print(f"GET /monitoring/: median {statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms")
    print(f"queries per page load: {len(queries)}; page size {len(response.content) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
