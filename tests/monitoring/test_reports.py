"""A report over real production traffic: drift per column and slice, performance, fairness, via the API."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from monitoring import services, tasks
from monitoring.models import MonitoringConfig, Report
from registry.models import ModelVersion
from tests.support import report_over_last_hour


def test_a_report_judges_drift_per_column_and_slice_with_performance_and_fairness(
    traffic: list[str], production: ModelVersion, author: Any, django_capture_on_commit_callbacks: Any
) -> None:
    MonitoringConfig.objects.update_or_create(
        model=production.model,
        defaults={"slice_columns": ["contract"], "sensitive_columns": ["contract"], "min_slice_rows": 50},
    )
    client = APIClient()
    client.force_authenticate(author)
    report = report_over_last_hour(client, django_capture_on_commit_callbacks)
    assert report.status == Report.Status.DONE, report.error

    detail = client.get(f"/api/reports/{report.pk}/").json()
    results = detail["results"]
    assert results["baseline"]["kind"] == "reference"
    assert results["correction"] in ("benjamini-hochberg", "none")
    charges = results["dataset"]["columns"]["charges"]
    assert charges["drifted"] is True and charges["test"] and charges["threshold"] > 0
    assert set(results["slices"]) == {"contract=monthly", "contract=yearly"}
    for piece in results["slices"].values():
        assert piece["too_small"] == (piece["rows"] < 50)
    assert detail["rows_current"] == 300 and detail["rows_with_actuals"] == 300
    assert 0 <= results["performance"]["accuracy"] <= 1
    assert "contract" in results["fairness"]
    assert results["prediction_drift"]["test"] and isinstance(results["prediction_drift"]["drifted"], bool)
    assert "contract" not in results["slices"]["contract=monthly"]["columns"]  # a slice's own column
    listed = client.get("/api/models/churn/reports/").json()
    assert [row["id"] for row in listed["results"]] == [report.pk]


def test_a_report_with_an_empty_window_is_stored_with_a_note(
    production: ModelVersion, author: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = APIClient()
    client.force_authenticate(author)
    past = timezone.now() - timedelta(days=30)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            "/api/models/churn/reports/",
            {"start": past.isoformat(), "end": (past + timedelta(days=1)).isoformat()},
            format="json",
        )
    report = Report.objects.get(pk=created.json()["id"])
    assert report.status == Report.Status.DONE, report.error
    assert report.rows_current == 0 and "No production traffic" in report.results["note"]


def test_a_bad_window_is_refused_by_field(production: ModelVersion, author: Any) -> None:
    client = APIClient()
    client.force_authenticate(author)
    answer = client.post("/api/models/churn/reports/", {"start": "2026-01-02", "end": "2026-01-01"}, format="json")
    assert answer.status_code == 400 and "end" in answer.json()
    assert Report.objects.count() == 0


def test_the_monitoring_page_and_evidently_report_open_for_a_stored_report(
    traffic: list[str], production: ModelVersion, author: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        report = services.report_request(
            actor=author, model=production.model, start=now - timedelta(hours=1), end=now + timedelta(minutes=1)
        )
    client.force_login(author)
    page = client.get("/models/churn/monitoring/")
    assert page.status_code == 200
    assert b'id="chart-drift"' in page.content and b"evidently" in page.content.lower()
    evidently = client.get(f"/models/churn/monitoring/reports/{report.pk}/evidently/")
    assert evidently.status_code == 200 and b"Not prepared yet" in evidently.content  # built on request only
    assert client.get("/models/churn/monitoring/reports/999/evidently/").status_code == 404


def test_the_dashboard_reads_a_fixed_number_of_queries(
    production: ModelVersion, author: Any, client: Any, django_assert_max_num_queries: Any
) -> None:
    client.force_login(author)
    with django_assert_max_num_queries(12):
        page = client.get("/monitoring/")
    assert page.status_code == 200 and b'data-model="churn"' in page.content


def test_settings_and_schedule_are_changed_in_the_page_and_checked(
    production: ModelVersion, author: Any, reviewer: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(author)  # the owner
    url = "/models/churn/monitoring/"
    bad = client.post(
        f"{url}settings/",
        {
            "baseline": "reference",
            "trailing_days": 28,
            "slice_columns": "region",
            "min_slice_rows": 100,
            "fairness_threshold": 0.1,
            "window_days": 1,
        },
        follow=True,
    )
    assert "slice_columns: Not an input of version 1: region." in bad.content.decode()
    assert not MonitoringConfig.objects.filter(slice_columns=["region"]).exists()

    good = client.post(
        f"{url}settings/",
        {
            "baseline": "reference",
            "trailing_days": 28,
            "slice_columns": "contract",
            "sensitive_columns": "contract",
            "min_slice_rows": 50,
            "fdr_correction": "on",
            "fairness_threshold": 0.2,
            "window_days": 7,
        },
        follow=True,
    )
    assert "Monitoring settings saved" in good.content.decode()
    config = MonitoringConfig.objects.get(model=production.model)
    assert (config.slice_columns, config.window_days, config.fdr_correction) == (["contract"], 7, True)

    wrong = client.post(f"{url}schedule/", {"kind": "cron", "crontab": "daily", "enabled": "on"}, follow=True)
    assert "is not a valid schedule" in wrong.content.decode() or "five fields" in wrong.content.decode()
    client.post(f"{url}schedule/", {"kind": "cron", "crontab": "0 6 * * *", "enabled": "on"})
    task = PeriodicTask.objects.get(name="monitoring:churn")
    assert task.task == "monitoring.tasks.run_scheduled_report" and json.loads(task.args) == [production.model.pk]
    assert "0 6 * * *" in client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.run_scheduled_report(production.model.pk)
    report = Report.objects.get()
    assert report.requested_by is None and report.window_end - report.window_start == timedelta(days=7)

    client.force_login(reviewer)  # not the owner: may read, not change
    denied = client.post(f"{url}schedule/", {"kind": "none"}, follow=True)
    assert "Only the model&#x27;s owner" in denied.content.decode()
    assert PeriodicTask.objects.filter(name="monitoring:churn").exists()


def test_actuals_are_uploaded_as_csv_in_the_page(traffic: list[str], author: Any, client: Any) -> None:
    client.force_login(author)
    url = "/models/churn/monitoring/actuals/"
    csv = "prediction_id,actual\n" + "".join(f"{pid},{i % 2}\n" for i, pid in enumerate(traffic[:5]))
    again = client.post(url, {"file": SimpleUploadedFile("a.csv", csv.encode())}, follow=True)
    assert "0 actuals stored, 5 already known." in again.content.decode()  # the fixture posted the same
    bad = client.post(url, {"file": SimpleUploadedFile("a.csv", b"\xff\xfe\x00bad")}, follow=True)
    assert "not UTF-8" in bad.content.decode()
    wrong = client.post(url, {"file": SimpleUploadedFile("a.csv", b"id,label\n1,2\n")}, follow=True)
    assert "Give the columns actual" in wrong.content.decode()
    conflict = client.post(
        url, {"file": SimpleUploadedFile("a.csv", f"prediction_id,actual\n{traffic[0]},7\n".encode())}, follow=True
    )
    assert "actuals are not overwritten" in conflict.content.decode()
