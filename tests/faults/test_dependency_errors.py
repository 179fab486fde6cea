"""A database or broker that is down answers 503 with Retry-After, and queued work is never stranded.

The restart drills (tests/faults/drills.py) prove this against real servers being stopped; these tests
pin each path down in the suite, with the failure injected where the real one would surface.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import InterfaceError, OperationalError
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerOperationalError
from rest_framework.test import APIClient

from config import health
from monitoring import tasks as monitoring_tasks
from monitoring.models import Report
from registry.models import AuditEvent, ModelVersion
from scoring import runtime
from scoring import tasks as scoring_tasks
from scoring.models import BatchRun
from tests.scoring.batch_support import customer_table, nightly_job, use_input_dir, write_input

ROW = {"tenure": 3, "charges": 99.5, "contract": "monthly"}


def broker_down(*args: Any, **kwargs: Any) -> None:
    raise BrokerOperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.mark.parametrize("error", [OperationalError("connection refused"), InterfaceError("connection already closed")])
def test_it_answers_503_with_retry_after_when_the_database_is_down_while_predicting(
    production: ModelVersion, consumer_token: Any, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def database_down(name: str) -> Any:
        raise error

    monkeypatch.setattr(runtime.model_cache, "loaded_production", database_down)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {consumer_token[1]}")
    answer = client.post("/api/models/churn/predict/", {"dataframe_records": [ROW]}, format="json")
    assert answer.status_code == 503
    assert answer["Retry-After"] == "5"
    assert answer.json() == {
        "detail": "The database is unavailable; try again in a few seconds.",
        "unavailable": "database",
    }


def test_other_errors_stay_500s(production: ModelVersion, consumer_token: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(runtime.model_cache, "loaded_production", broken)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {consumer_token[1]}")
    answer = client.post("/api/models/churn/predict/", {"dataframe_records": [ROW]}, format="json")
    assert answer.status_code == 500
    assert "Retry-After" not in answer


@pytest.mark.django_db
def test_it_answers_503_when_the_database_fails_outside_a_view(author: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(author)

    def database_down(self: SessionStore) -> dict[str, Any]:
        raise OperationalError("the database system is shutting down")

    monkeypatch.setattr(SessionStore, "load", database_down)  # read by a middleware, before any view
    page = client.get("/")
    assert page.status_code == 503
    assert page["Retry-After"] == "5"
    assert b"briefly unavailable" in page.content


def test_healthz_says_what_is_down_with_retry_after(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "_broker_ok", lambda: "OperationalError: connection refused")
    answer = Client().get("/healthz")
    assert answer.status_code == 503
    assert answer["Retry-After"] == "5"
    assert answer.json()["broker"].startswith("down")


@pytest.mark.django_db(transaction=True)
def test_a_report_asked_for_while_the_broker_is_down_fails_saying_so_instead_of_running_forever(
    production: ModelVersion, author: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitoring_tasks.compute_report, "apply_async", broker_down)
    client = APIClient()
    client.force_authenticate(author)
    now = timezone.now()
    window = {"start": (now - timedelta(days=1)).isoformat(), "end": now.isoformat()}
    answer = client.post("/api/models/churn/reports/", window, format="json")
    assert answer.status_code == 503
    assert answer.json()["unavailable"] == "broker"
    report = Report.objects.get()
    assert report.status == Report.Status.FAILED
    assert report.error.startswith("Could not be queued") and "ask for the report again" in report.error


@pytest.mark.django_db(transaction=True)
def test_a_run_asked_for_while_the_broker_is_down_fails_and_resumes_later(
    production: ModelVersion, author: Any, monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Any
) -> None:
    write_input(use_input_dir(settings, tmp_path), customer_table(40))
    job = nightly_job(production.model, author)
    client = APIClient()
    client.force_authenticate(author)
    with monkeypatch.context() as patched:
        patched.setattr(scoring_tasks.start_batch_run, "apply_async", broker_down)
        answer = client.post(f"/api/models/churn/batch-jobs/{job.name}/runs/", {}, format="json")
    assert answer.status_code == 503
    run = BatchRun.objects.get()
    # Not left pending (which would block every later run of the job as "already running").
    assert run.status == BatchRun.Status.FAILED and "Could not be queued" in run.error
    actions = list(AuditEvent.objects.filter(action__startswith="batch_run.").values_list("action", flat=True))
    assert sorted(actions) == ["batch_run.failed", "batch_run.requested"]

    resumed = client.post(f"/api/batch-runs/{run.pk}/resume/", {}, format="json")  # the broker is back
    assert resumed.status_code == 202, resumed.content
    run.refresh_from_db()
    assert run.status == BatchRun.Status.SUCCEEDED
    assert run.rows_scored == 40
