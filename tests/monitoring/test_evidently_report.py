"""Evidently's own HTML report of a window: built by a worker from a bounded sample, kept, never computed
by a web request; asked for on the page or through the API, its progress and failures shown."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerOperationalError
from rest_framework.test import APIClient

from monitoring import evidently_report, services
from monitoring import tasks as monitoring_tasks
from monitoring.evidently_report import evidently_report_build, evidently_sample
from monitoring.models import EvidentlyReport, Report
from registry.models import ModelVersion


@pytest.fixture
def report(
    traffic: list[str], production: ModelVersion, author: Any, django_capture_on_commit_callbacks: Any
) -> Report:
    """A computed report over the 300 predictions of the last hour (the reference data has 200 rows)."""
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        requested = services.report_request(
            actor=author, model=production.model, start=now - timedelta(hours=1), end=now + timedelta(minutes=1)
        )
    requested.refresh_from_db()
    assert requested.status == Report.Status.DONE, requested.error
    return requested


@pytest.fixture
def small_sample(settings: Any) -> int:
    settings.MF_EVIDENTLY_SAMPLE_ROWS = 120
    return 120


def page_url(report: Report) -> str:
    return f"/models/churn/monitoring/reports/{report.pk}/evidently/"


def test_it_is_built_by_a_worker_from_a_bounded_sample_and_shown_with_its_size(
    report: Report, small_sample: int, author: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(author)
    offered = client.get(page_url(report)).content.decode()
    assert "Not prepared yet" in offered and 'id="prepare-evidently"' in offered
    assert not EvidentlyReport.objects.exists()  # opening the page computes nothing

    with django_capture_on_commit_callbacks(execute=True) as queued:
        asked = client.post(f"{page_url(report)}build/")
    assert asked.status_code == 302 and len(queued) == 1
    built = EvidentlyReport.objects.get(report=report)
    assert built.status == EvidentlyReport.Status.READY, built.error
    assert (built.sample_rows, built.total_rows, built.reference_sample_rows) == (120, 300, 120)

    page = client.get(page_url(report)).content.decode()
    assert "Computed by Evidently on a sample of <strong>120</strong> of 300 predictions" in page
    assert "a sample of 120 of the 200 baseline rows" in page
    assert 'sandbox="allow-scripts"' in page and 'http-equiv="refresh"' not in page
    html = client.get(f"{page_url(report)}html/")
    assert html.status_code == 200
    assert html["Content-Security-Policy"] == "sandbox allow-scripts; frame-ancestors 'self'"
    assert html["X-Frame-Options"] == "SAMEORIGIN"
    assert b"charges" in b"".join(html.streaming_content)
    monitoring = client.get(f"/models/churn/monitoring/?report={report.pk}").content.decode()
    assert "on a sample of 120 of 300 predictions" in monitoring


def test_while_it_is_prepared_the_page_says_so_and_refreshes(report: Report, author: Any, client: Any) -> None:
    client.force_login(author)
    client.post(f"{page_url(report)}build/")  # inside the test's transaction: never queued
    page = client.get(page_url(report)).content.decode()
    assert "Being prepared" in page and 'http-equiv="refresh"' in page
    assert 'id="prepare-evidently"' not in page
    assert client.get(f"{page_url(report)}html/").status_code == 404
    assert "being prepared" in client.get(f"/models/churn/monitoring/?report={report.pk}").content.decode()


def test_building_is_idempotent_and_asking_again_queues_nothing(
    report: Report, small_sample: int, author: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = services.evidently_report_request(actor=author, report=report)
    first.refresh_from_db()
    assert first.status == EvidentlyReport.Status.READY, first.error
    again = evidently_report_build(report_id=report.pk)  # a redelivered task
    assert again is not None and again.file.name == first.file.name
    with django_capture_on_commit_callbacks(execute=True) as queued:
        asked = services.evidently_report_request(actor=author, report=report)
    assert queued == [] and asked.file.name == first.file.name
    folders, _ = default_storage.listdir(f"monitoring/churn/reports/{report.pk}")
    assert len(folders) == 1  # one build, one file


def test_the_sample_is_uniform_seeded_and_bounded_and_counts_the_window(report: Report) -> None:
    current, reference, total = evidently_sample(report, 50)
    assert total == 300 and len(current) == 50 and len(reference) == 50
    assert list(current.columns) == ["tenure", "charges", "contract"]
    again, _, _ = evidently_sample(report, 50)
    assert current.equals(again)  # the same rows each time
    everything, whole_reference, _ = evidently_sample(report, 1_000)
    assert len(everything) == 300 and len(whole_reference) == 200
    # Drawn from the whole window, not its first rows: a third of the rows carry the raised price.
    assert 0.15 < (current["charges"] == 420.0).mean() < 0.55


def test_a_failure_is_shown_on_the_page_and_it_can_be_asked_again(
    report: Report, author: Any, client: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    def broken(current: Any, reference: Any) -> str:
        raise RuntimeError("Evidently ran out of memory")

    monkeypatch.setattr(evidently_report, "evidently_html", broken)
    client.force_login(author)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"{page_url(report)}build/")
    failed = EvidentlyReport.objects.get(report=report)
    assert failed.status == EvidentlyReport.Status.FAILED
    page = client.get(page_url(report)).content.decode()
    assert "RuntimeError: Evidently ran out of memory" in page and 'id="prepare-evidently"' in page

    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"{page_url(report)}build/")
    failed.refresh_from_db()
    assert failed.status == EvidentlyReport.Status.READY and failed.error == ""


def test_a_broker_that_refuses_the_task_marks_it_failed(
    report: Report, author: Any, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise BrokerOperationalError("Connection refused.")

    monkeypatch.setattr(monitoring_tasks.build_evidently_report, "apply_async", broker_down)
    with pytest.raises(BrokerOperationalError), django_capture_on_commit_callbacks(execute=True):
        services.evidently_report_request(actor=author, report=report)
    row = EvidentlyReport.objects.get(report=report)
    assert row.status == EvidentlyReport.Status.FAILED
    assert row.error.startswith("Could not be queued") and "ask for it again" in row.error


def test_a_window_without_rows_offers_nothing_and_is_refused(
    production: ModelVersion, author: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    past = timezone.now() - timedelta(days=30)
    with django_capture_on_commit_callbacks(execute=True):
        empty = services.report_request(actor=author, model=production.model, start=past, end=past + timedelta(days=1))
    client.force_login(author)
    page = client.get(page_url(empty)).content.decode()
    assert "no production rows" in page and 'id="prepare-evidently"' not in page
    refused = client.post(f"{page_url(empty)}build/", follow=True).content.decode()
    assert "report: This report&#x27;s window has no production rows to show." in refused
    assert not EvidentlyReport.objects.exists()
    assert 'id="evidently-link"' not in client.get("/models/churn/monitoring/").content.decode()


def test_the_api_asks_for_it_reads_its_state_and_downloads_it(
    report: Report, small_sample: int, author: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = APIClient()
    client.force_authenticate(author)
    url = f"/api/reports/{report.pk}/evidently/"
    assert client.get(url).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        asked = client.post(url)
    assert asked.status_code == 202
    state = client.get(url).json()
    assert state["status"] == "ready" and state["sample_rows"] == 120 and state["total_rows"] == 300
    download = client.get(state["html_url"])
    assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
    assert download["Content-Security-Policy"] == "sandbox allow-scripts"
    Report.objects.filter(pk=report.pk).update(status=Report.Status.RUNNING)
    assert client.post(url).status_code == 404
