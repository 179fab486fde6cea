"""The workflow over REST and in the pages: statuses, refusals, checks, comments, audit, production-at."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from registry.choices import VersionStatus as S
from registry.models import AuditEvent, ModelVersion, RegisteredModel

URL = "/api/models/churn/versions/1/"


@pytest.fixture
def version(churn_model: RegisteredModel, author: Any, register: Callable[..., ModelVersion]) -> ModelVersion:
    return register(churn_model, author)


def transition(api: Any, user: Any, action: str, comment: str = "") -> Any:
    return api(user).post(f"{URL}transitions/", {"action": action, "comment": comment}, format="json")


def test_the_whole_workflow_over_the_api(
    api: Any,
    version: ModelVersion,
    author: Any,
    reviewer: Any,
    second_reviewer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    response = transition(api, author, "submit")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "in_review"
    assert response.json()["approvals_needed"] == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = transition(api, reviewer, "approve", "LGTM")
    assert response.json()["status"] == "approved"

    checks = api(reviewer).get(f"{URL}checks/").json()
    assert checks["results"][0]["status"] == "passed"
    assert {r["name"] for r in checks["results"][0]["results"]} >= {"golden_set", "robustness"}

    response = transition(api, second_reviewer, "go_live", "Ship it")
    assert response.status_code == 200
    assert response.json()["status"] == "production"
    assert response.json()["allowed_actions"] == ["deprecate"]

    signoffs = api(reviewer).get(f"{URL}signoffs/").json()
    assert [s["kind"] for s in signoffs] == ["approval", "go_live"]
    assert all(s["evidence"] for s in signoffs)

    answer = api(reviewer).get("/api/models/churn/production-at/", {"t": timezone.now().isoformat()}).json()
    assert answer["version"] == 1
    assert answer["changed_by"] == "ravi"
    assert [s["user"] for s in answer["signoffs"]] == ["rita", "ravi"]
    assert answer["checks"]["status"] == "passed"


def test_refusals_have_the_right_status_codes(
    api: Any, version: ModelVersion, author: Any, reviewer: Any, manager: Any
) -> None:
    response = transition(api, reviewer, "go_live")
    assert response.status_code == 409
    assert "is draft" in response.json()["detail"]
    assert "Allowed actions now: submit" in response.json()["detail"]

    transition(api, author, "submit")
    assert transition(api, author, "approve").status_code == 403
    assert "Four-eyes" in transition(api, author, "approve").json()["detail"]
    assert transition(api, manager, "approve").status_code == 403
    response = transition(api, reviewer, "reject")
    assert response.status_code == 400
    assert "comment" in response.json()
    response = transition(api, reviewer, "publish")
    assert response.status_code == 400
    assert "action" in response.json()
    assert api(None).post(f"{URL}transitions/", {"action": "submit"}).status_code == 401
    assert api(reviewer).post("/api/models/churn/versions/9/transitions/", {"action": "submit"}).status_code == 404


def test_checks_run_on_demand(
    api: Any, version: ModelVersion, author: Any, manager: Any, django_capture_on_commit_callbacks: Any
) -> None:
    assert api(manager).post(f"{URL}checks/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = api(author).post(f"{URL}checks/")
    assert response.status_code == 202
    assert response.json()["status"] == "running"  # queued on commit; the worker finished it after
    assert api(author).get(f"{URL}checks/").json()["results"][0]["status"] == "passed"
    version.refresh_from_db()
    assert version.status == S.DRAFT  # checks on a draft report, they do not move it


def test_threaded_comments(api: Any, version: ModelVersion, author: Any, reviewer: Any, manager: Any) -> None:
    first = api(reviewer).post(f"{URL}comments/", {"body": "Why **0.5**?"}, format="json")
    assert first.status_code == 201
    reply = api(author).post(f"{URL}comments/", {"body": "Calibrated.", "parent": first.json()["id"]}, format="json")
    assert reply.json()["parent"] == first.json()["id"]
    assert api(manager).post(f"{URL}comments/", {"body": "hi"}, format="json").status_code == 403
    assert api(author).post(f"{URL}comments/", {"body": "x", "parent": 999}, format="json").status_code == 400
    assert api(author).post(f"{URL}comments/", {"body": "   "}, format="json").status_code == 400
    assert [c["body"] for c in api(manager).get(f"{URL}comments/").json()] == ["Why **0.5**?", "Calibrated."]


def test_the_audit_log_filters_and_exports_safe_csv(
    api: Any, version: ModelVersion, author: Any, reviewer: Any
) -> None:
    transition(api, author, "submit")
    transition(api, reviewer, "reject", '=HYPERLINK("http://evil")')

    body = api(reviewer).get("/api/audit/", {"model": "churn", "action": "version."}).json()
    assert [e["action"] for e in body["results"]] == ["version.reject", "version.submit", "version.registered"]
    assert api(reviewer).get("/api/audit/", {"actor": "rita"}).json()["count"] == 1
    assert api(reviewer).get("/api/audit/", {"since": "not a date"}).status_code == 400

    response = api(reviewer).get("/api/audit/export/", {"model": "churn"})
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["id", "at", "actor", "action"]
    reject = next(row for row in rows if row[3] == "version.reject")
    assert reject[8] == '\'=HYPERLINK("http://evil")'


def test_production_at_needs_a_valid_time(api: Any, version: ModelVersion, reviewer: Any) -> None:
    response = api(reviewer).get("/api/models/churn/production-at/", {"t": "yesterday"})
    assert response.status_code == 400
    assert "t" in response.json()
    answer = api(reviewer).get("/api/models/churn/production-at/", {"t": "2020-01-01T00:00:00Z"}).json()
    assert answer["version"] is None


def test_review_page_shows_only_the_buttons_a_user_may_press(
    client: Any, version: ModelVersion, author: Any, reviewer: Any, manager: Any, api: Any
) -> None:
    client.force_login(author)
    page = client.get("/models/churn/versions/1/").content.decode()
    assert 'value="submit"' in page
    assert 'value="approve"' not in page
    transition(api, author, "submit")

    page = client.get("/models/churn/versions/1/").content.decode()
    assert 'value="approve"' not in page  # four-eyes: not for the author
    client.force_login(manager)
    assert 'value="approve"' not in client.get("/models/churn/versions/1/").content.decode()
    client.force_login(reviewer)
    page = client.get("/models/churn/versions/1/").content.decode()
    assert 'value="approve"' in page
    assert 'value="reject"' in page
    inbox = client.get("/reviews/").content.decode()
    assert "churn v1" in inbox


def test_review_forms_act_and_explain_refusals(client: Any, version: ModelVersion, author: Any, reviewer: Any) -> None:
    client.force_login(author)
    response = client.post("/models/churn/versions/1/transition/", {"action": "submit"}, follow=True)
    assert "is now in review" in response.content.decode()
    response = client.post("/models/churn/versions/1/transition/", {"action": "approve"}, follow=True)
    assert "Four-eyes" in response.content.decode()
    client.force_login(reviewer)
    response = client.post("/models/churn/versions/1/transition/", {"action": "reject"}, follow=True)
    assert "comment is required" in response.content.decode()
    response = client.post(
        "/models/churn/versions/1/comments/", {"body": "<script>alert(1)</script> **Why?**"}, follow=True
    )
    page = response.content.decode()
    assert "<strong>Why?</strong>" in page
    assert "<script>alert(1)</script>" not in page
    assert AuditEvent.objects.filter(action="comment.created").count() == 1


def test_audit_and_production_pages(client: Any, version: ModelVersion, manager: Any) -> None:
    client.force_login(manager)
    page = client.get("/audit/", {"model": "churn"}).content.decode()
    assert "version.registered" in page
    response = client.get("/audit/", {"export": "csv"})
    assert response["Content-Type"] == "text/csv"
    page = client.get("/models/churn/production-at/", {"t": "2026-01-01T00:00"}).content.decode()
    assert "No version of churn was in production then." in page
    assert "Give a date" in client.get("/models/churn/production-at/", {"t": "nope"}).content.decode()
