"""The permission matrix: every page and API endpoint x every role x every method it serves.

The table below is the access policy, written down. Each route of the URL resolver (config/urls.py and
the apps' urls.py / api_urls.py) has one entry: the concrete URL(s) to call, a body per method, and the
expected answer per role. A route added without an entry fails `test_every_route_has_a_matrix_entry`,
so nobody ships an endpoint whose access nobody decided.

Roles (columns, in this order): anon, not signed in, then those of tests/world.py, which builds the
objects every route names.

Expected answers: an HTTP status, or
    login  - 302 to the login page (pages, for whoever has no session)
    done   - a page's form was accepted: 302 with no error message
    deny   - a page's form was refused: 302 back with an error message (the page explains why)

Write requests run in a savepoint rolled back after each role, so every role meets the same data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.contrib.messages import constants as message_levels
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import INPUT_SCHEMA, customers
from tests.world import ARTIFACT, ROW, World, module_world

ROLES = ["anon", "ds", "rev", "mgr", "admin", "out", "cons", "other"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

# Rows used by many endpoints, named for readability.   anon   ds   rev  mgr  admin out  cons  other
PAGE_READ = "login 200 200 200 200 403 login login"  # any role reads; no role, no page
API_READ = "401 200 200 200 200 403 401 401"  # the same for the API; consumer tokens are for scoring only
PUBLIC = "200 200 200 200 200 200 200 200"


@pytest.fixture(scope="module")
def world(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with module_world(django_db_blocker, tmp_path_factory.mktemp("matrix-artifacts")) as built:
        yield built


@pytest.fixture(autouse=True)
def _isolated_files() -> None:
    """Replaces the suite's per-test artifact folder: the module's world keeps its files for every test."""


# --- the matrix ----------------------------------------------------------------------------------


@dataclass
class Call:
    """One method of one endpoint: the body sent, and the expected answer of each role."""

    expect: str
    body: Callable[[World], dict[str, Any]] | None = None
    json: bool = True  # False: a form / multipart body


@dataclass
class Entry:
    urls: list[str]  # with {placeholders} filled from World.ids; several: each is checked
    methods: dict[str, Call]


def _json(body: dict[str, Any]) -> Callable[[World], dict[str, Any]]:
    return lambda world: body


def _version_upload(world: World) -> dict[str, Any]:
    return {
        "artifact": SimpleUploadedFile("model.skops", ARTIFACT),
        "input_schema": json.dumps(INPUT_SCHEMA),
    }


def _batch_job_upload(world: World) -> dict[str, Any]:
    csv = customers(3).assign(customer_id=["a", "b", "c"]).to_csv(index=False).encode()
    return {
        "name": "weekly",
        "input_kind": "upload",
        "entity_column": "customer_id",
        "input_file": SimpleUploadedFile("weekly.csv", csv),
        "chunk_rows": 1000,
    }


def _actuals_csv(world: World) -> dict[str, Any]:
    return {"file": SimpleUploadedFile("actuals.csv", b"entity_id,actual\nc1,1\n")}


def _monitoring_settings(world: World) -> dict[str, Any]:
    return {
        "baseline": "reference",
        "trailing_days": 28,
        "slice_columns": "contract",
        "sensitive_columns": "",
        "min_slice_rows": 100,
        "fdr_correction": "on",
        "fairness_threshold": 0.1,
        "window_days": 1,
    }


PREDICT_BODY = _json({"dataframe_records": [ROW]})
MLFLOW_IMPORT = _json({"tracking_uri": "http://mlflow.example.com", "model_name": "churn", "version": "1"})
SCHEDULE_FORM = _json({"kind": "interval", "every_minutes": 60, "enabled": "on"})
NOW = "2030-01-01T00:00:00Z"

MATRIX: dict[str, Entry] = {
    # --- config ------------------------------------------------------------------------------------
    "healthz": Entry(["/healthz"], {"GET": Call(PUBLIC)}),
    "login/": Entry(
        ["/login/"],
        {
            "GET": Call(PUBLIC),
            "POST": Call(PUBLIC, _json({"username": "nobody", "password": "x"}), json=False),
            # Django's LoginView treats PUT as POST: the same form, the same failed sign-in.
            "PUT": Call(PUBLIC),
        },
    ),
    "logout/": Entry(["/logout/"], {"POST": Call("login login login login login login login login", json=False)}),
    "api/auth/token/": Entry(["/api/auth/token/"], {"POST": Call("400 400 400 400 400 400 400 400", _json({}))}),
    "api/auth/token/revoke/": Entry(
        # Revokes the token the request is made with: a browser session has none.
        ["/api/auth/token/revoke/"],
        {"POST": Call("401 401 401 401 401 401 401 401", _json({}))},
    ),
    "api/auth/token/revoke-all/": Entry(
        ["/api/auth/token/revoke-all/"], {"POST": Call("401 200 200 200 200 200 401 401", _json({}))}
    ),
    # The schema describes endpoints, not data: any signed-in account may read it.
    "api/schema/": Entry(["/api/schema/"], {"GET": Call("401 200 200 200 200 200 401 401")}),
    "api/docs/": Entry(["/api/docs/"], {"GET": Call("401 200 200 200 200 200 401 401")}),
    # --- registry API -------------------------------------------------------------------------------
    "api/models/": Entry(
        ["/api/models/"],
        {
            "GET": Call(API_READ),
            "POST": Call("401 201 403 403 201 403 401 401", _json({"name": "new-model", "task": "classification"})),
        },
    ),
    "api/models/<slug:name>/": Entry(
        ["/api/models/churn/"],
        {"GET": Call(API_READ), "PATCH": Call("401 200 403 403 200 403 401 401", _json({"title": "Renamed"}))},
    ),
    "api/models/<slug:name>/versions/": Entry(
        ["/api/models/churn/versions/"],
        {"GET": Call(API_READ), "POST": Call("401 201 403 403 201 403 401 401", _version_upload, json=False)},
    ),
    # MF_MLFLOW_ALLOWED_HOSTS is empty here: whoever may import hears why it is refused (400); others 403.
    "api/models/<slug:name>/versions/import-mlflow/": Entry(
        ["/api/models/churn/versions/import-mlflow/"],
        {"POST": Call("401 400 403 403 400 403 401 401", MLFLOW_IMPORT)},
    ),
    "api/models/<slug:name>/versions/<int:number>/": Entry(["/api/models/churn/versions/1/"], {"GET": Call(API_READ)}),
    "api/models/<slug:name>/versions/<int:number>/accept-untrusted-types/": Entry(
        ["/api/models/churn/versions/3/accept-untrusted-types/"],
        {"POST": Call("401 403 200 403 200 403 401 401", _json({"reason": "Checked the tree type."}))},
    ),
    # Artifacts and notebooks: every role may download, nobody without one, never a consumer token.
    "api/models/<slug:name>/versions/<int:number>/files/<int:file_id>/download/": Entry(
        [
            "/api/models/churn/versions/1/files/{artifact}/download/",
            "/api/models/churn/versions/1/files/{notebook}/download/",
        ],
        {"GET": Call(API_READ)},
    ),
    # The compiled ONNX graph: read like the registered files.
    "api/models/<slug:name>/versions/<int:number>/compiled/download/": Entry(
        ["/api/models/churn/versions/1/compiled/download/"], {"GET": Call(API_READ)}
    ),
    # v2 is in review, authored by Ada: four-eyes refuses her; the reviewer and the admin approve.
    "api/models/<slug:name>/versions/<int:number>/transitions/": Entry(
        ["/api/models/churn/versions/2/transitions/"],
        {"POST": Call("401 403 200 403 200 403 401 401", _json({"action": "approve"}))},
    ),
    "api/models/<slug:name>/versions/<int:number>/checks/": Entry(
        ["/api/models/churn/versions/2/checks/"],
        {"GET": Call(API_READ), "POST": Call("401 202 202 403 202 403 401 401", _json({}))},
    ),
    "api/models/<slug:name>/versions/<int:number>/signoffs/": Entry(
        ["/api/models/churn/versions/1/signoffs/"], {"GET": Call(API_READ)}
    ),
    "api/models/<slug:name>/versions/<int:number>/comments/": Entry(
        ["/api/models/churn/versions/2/comments/"],
        {"GET": Call(API_READ), "POST": Call("401 201 201 403 201 403 401 401", _json({"body": "Why?"}))},
    ),
    "api/models/<slug:name>/production-at/": Entry(
        [f"/api/models/churn/production-at/?t={NOW}"], {"GET": Call(API_READ)}
    ),
    "api/models/<slug:name>/consumers/": Entry(
        ["/api/models/churn/consumers/"],
        {
            "GET": Call(API_READ),
            "POST": Call(
                "401 201 403 403 201 403 401 401", _json({"name": "new-app", "contact_email": "app@example.com"})
            ),
        },
    ),
    "api/models/<slug:name>/consumers/<slug:consumer>/": Entry(
        ["/api/models/churn/consumers/call-centre/"],
        {"GET": Call(API_READ), "PATCH": Call("401 200 403 403 200 403 401 401", _json({"description": "Calls"}))},
    ),
    "api/models/<slug:name>/consumers/<slug:consumer>/token/": Entry(
        ["/api/models/churn/consumers/call-centre/token/"],
        {
            "POST": Call("401 200 403 403 200 403 401 401", _json({"reason": "rotation"})),
            "DELETE": Call("401 200 403 403 200 403 401 401", _json({"reason": "leaked"})),
        },
    ),
    "api/models/<slug:name>/consumers/<slug:consumer>/deliveries/": Entry(
        ["/api/models/churn/consumers/call-centre/deliveries/"], {"GET": Call(API_READ)}
    ),
    "api/audit/": Entry(["/api/audit/"], {"GET": Call(API_READ)}),
    "api/audit/export/": Entry(["/api/audit/export/"], {"GET": Call(API_READ)}),
    # Everyone signed in has their own notifications, role or not.
    "api/notifications/": Entry(
        ["/api/notifications/"],
        {"GET": Call("401 200 200 200 200 200 401 401"), "POST": Call("401 200 200 200 200 200 401 401", _json({}))},
    ),
    # --- scoring API ----------------------------------------------------------------------------------
    # Scoring with a user's account is for trying versions: data scientists and reviewers; managers read.
    "api/models/<slug:name>/predict/": Entry(
        ["/api/models/churn/predict/"], {"POST": Call("401 200 200 403 200 403 200 403", PREDICT_BODY)}
    ),
    "api/models/<slug:name>/versions/<int:number>/predict/": Entry(
        ["/api/models/churn/versions/1/predict/"], {"POST": Call("401 200 200 403 200 403 200 403", PREDICT_BODY)}
    ),
    "api/models/<slug:name>/invocations": Entry(
        ["/api/models/churn/invocations"], {"POST": Call("401 200 200 403 200 403 200 403", PREDICT_BODY)}
    ),
    # A consumer sees its own predictions only: another consumer's (of this model or another) do not exist.
    "api/predictions/<uuid:prediction_id>/": Entry(
        ["/api/predictions/{own_prediction}/"], {"GET": Call("401 200 200 200 200 403 200 404")}
    ),
    "api/predictions/<uuid:prediction_id>/reproduce/": Entry(
        ["/api/predictions/{own_prediction}/reproduce/"],
        {"POST": Call("401 200 200 403 200 403 200 404", _json({}))},
    ),
    "api/models/<slug:name>/batch-jobs/": Entry(
        ["/api/models/churn/batch-jobs/"],
        {"GET": Call(API_READ), "POST": Call("401 201 403 403 201 403 401 401", _batch_job_upload, json=False)},
    ),
    # Scoring with SQL is scoring a table, as a batch job does; only who opened a run reports to it.
    "api/models/<slug:name>/sql-runs/": Entry(
        ["/api/models/churn/sql-runs/"],
        {
            "GET": Call(API_READ),
            "POST": Call("401 201 403 403 201 403 401 401", _json({"engine": "duckdb", "function_name": "f"})),
        },
    ),
    "api/sql-runs/<int:run_id>/usage/": Entry(
        ["/api/sql-runs/{sql_run}/usage/"],
        {
            "POST": Call(
                "401 200 403 403 403 403 401 401",
                _json({"rows_scored": 1, "rows_rejected": 0, "seconds": 0.1, "engine": "skops"}),
            )
        },
    ),
    "api/models/<slug:name>/batch-jobs/<slug:job>/": Entry(
        ["/api/models/churn/batch-jobs/{job}/"], {"GET": Call(API_READ)}
    ),
    "api/models/<slug:name>/batch-jobs/<slug:job>/schedule/": Entry(
        ["/api/models/churn/batch-jobs/{job}/schedule/"],
        {
            "PUT": Call("401 200 403 403 200 403 401 401", _json({"every_minutes": 60})),
            "DELETE": Call("401 204 403 403 204 403 401 401"),
        },
    ),
    "api/models/<slug:name>/batch-jobs/<slug:job>/runs/": Entry(
        ["/api/models/churn/batch-jobs/{job}/runs/"],
        {"GET": Call(API_READ), "POST": Call("401 202 403 403 202 403 401 401", _json({}))},
    ),
    "api/batch-runs/<int:run_id>/": Entry(["/api/batch-runs/{done_run}/"], {"GET": Call(API_READ)}),
    "api/batch-runs/<int:run_id>/resume/": Entry(
        ["/api/batch-runs/{failed_run}/resume/"], {"POST": Call("401 202 403 403 202 403 401 401", _json({}))}
    ),
    "api/batch-runs/<int:run_id>/rejects/": Entry(["/api/batch-runs/{done_run}/rejects/"], {"GET": Call(API_READ)}),
    "api/batch-runs/<int:run_id>/output/": Entry(["/api/batch-runs/{done_run}/output/"], {"GET": Call(API_READ)}),
    # Batch scores are the model's: its consumers read them, another model's consumer may not.
    "api/models/<slug:name>/scores/<str:entity_id>/": Entry(
        ["/api/models/churn/scores/c1/"], {"GET": Call("401 200 200 200 200 403 200 403")}
    ),
    # --- monitoring API -------------------------------------------------------------------------------
    "api/models/<slug:name>/actuals/": Entry(
        ["/api/models/churn/actuals/"],
        {"POST": Call("401 200 403 403 200 403 200 403", _json({"rows": [{"entity_id": "c1", "actual": 1}]}))},
    ),
    "api/models/<slug:name>/reports/": Entry(
        ["/api/models/churn/reports/"],
        {
            "GET": Call(API_READ),
            # Computing a report is for data scientists and reviewers; managers read the scheduled ones.
            "POST": Call("401 202 202 403 202 403 401 401", _json({"start": "2029-12-31T00:00:00Z", "end": NOW})),
        },
    ),
    "api/reports/<int:report_id>/": Entry(["/api/reports/{report}/"], {"GET": Call(API_READ)}),
    # Evidently's report of a window: asked for by whoever may run reports (it is built, so asking changes nothing).
    "api/reports/<int:report_id>/evidently/": Entry(
        ["/api/reports/{report}/evidently/"],
        {"GET": Call(API_READ), "POST": Call("401 202 202 403 202 403 401 401")},
    ),
    "api/reports/<int:report_id>/evidently/html/": Entry(
        ["/api/reports/{report}/evidently/html/"], {"GET": Call(API_READ)}
    ),
    "api/models/<slug:name>/alert-rules/": Entry(
        ["/api/models/churn/alert-rules/"],
        {
            "GET": Call(API_READ),
            "POST": Call(
                "401 201 403 403 201 403 401 401",
                _json({"name": "drift", "metric": "drift_share", "comparison": ">", "threshold": 0.5}),
            ),
        },
    ),
    "api/alerts/": Entry(["/api/alerts/"], {"GET": Call(API_READ)}),
    # No recipe is set: whoever may set one hears 404 (GET) or why it is refused (400); others 403.
    "api/models/<slug:name>/retraining/": Entry(
        ["/api/models/churn/retraining/"],
        {
            "GET": Call("401 404 404 404 404 403 401 401"),
            "PUT": Call("401 400 403 403 400 403 401 401", _json({"callable_path": "no.such:module"})),
        },
    ),
    "api/models/<slug:name>/retraining/run/": Entry(
        ["/api/models/churn/retraining/run/"], {"POST": Call("401 400 403 403 400 403 401 401", _json({}))}
    ),
    # --- registry pages ------------------------------------------------------------------------------
    "": Entry(["/"], {"GET": Call(PAGE_READ)}),
    "models/<slug:name>/": Entry(["/models/churn/"], {"GET": Call(PAGE_READ)}),
    "new-model/": Entry(
        ["/new-model/"],
        {
            "GET": Call("login 200 403 403 200 403 login login"),
            "POST": Call(
                "login done 403 403 done 403 login login", _json({"name": "m2", "task": "regression"}), json=False
            ),
        },
    ),
    "models/<slug:name>/edit/": Entry(
        ["/models/churn/edit/"],
        {
            "GET": Call("login 200 403 403 200 403 login login"),
            "POST": Call("login done 403 403 done 403 login login", _json({"title": "Churn"}), json=False),
        },
    ),
    "models/<slug:name>/versions/new/": Entry(
        ["/models/churn/versions/new/"],
        {"POST": Call("login done 403 403 done 403 login login", _version_upload, json=False)},
    ),
    # The answer is the page showing the new token once: 200, not a redirect.
    "models/<slug:name>/consumers/new/": Entry(
        ["/models/churn/consumers/new/"],
        {
            "POST": Call(
                "login 200 403 403 200 403 login login",
                _json({"name": "new-app", "contact_email": "a@example.com"}),
                json=False,
            )
        },
    ),
    "models/<slug:name>/import-mlflow/": Entry(
        ["/models/churn/import-mlflow/"],
        {"POST": Call("login 400 403 403 400 403 login login", MLFLOW_IMPORT, json=False)},
    ),
    "models/<slug:name>/versions/<int:number>/": Entry(["/models/churn/versions/1/"], {"GET": Call(PAGE_READ)}),
    "models/<slug:name>/versions/<int:number>/accept-untrusted-types/": Entry(
        ["/models/churn/versions/3/accept-untrusted-types/"],
        {"POST": Call("login deny done deny done 403 login login", _json({"reason": "ok"}), json=False)},
    ),
    "reviews/": Entry(["/reviews/"], {"GET": Call(PAGE_READ)}),
    "audit/": Entry(["/audit/", "/audit/?export=csv"], {"GET": Call(PAGE_READ)}),
    "notifications/": Entry(
        ["/notifications/"],
        {
            "GET": Call("login 200 200 200 200 200 login login"),
            "POST": Call("login done done done done done login login", _json({"id": "all"}), json=False),
        },
    ),
    "models/<slug:name>/production-at/": Entry([f"/models/churn/production-at/?t={NOW}"], {"GET": Call(PAGE_READ)}),
    "models/<slug:name>/versions/<int:number>/transition/": Entry(
        ["/models/churn/versions/2/transition/"],
        {"POST": Call("login deny done deny done 403 login login", _json({"action": "approve"}), json=False)},
    ),
    "models/<slug:name>/versions/<int:number>/checks/": Entry(
        ["/models/churn/versions/2/checks/"], {"POST": Call("login done done deny done 403 login login", json=False)}
    ),
    "models/<slug:name>/versions/<int:number>/comments/": Entry(
        ["/models/churn/versions/2/comments/"],
        {"POST": Call("login done done deny done 403 login login", _json({"body": "Why?"}), json=False)},
    ),
    "models/<slug:name>/versions/<int:number>/compiled/": Entry(
        ["/models/churn/versions/1/compiled/"], {"GET": Call(PAGE_READ)}
    ),
    "models/<slug:name>/versions/<int:number>/files/<int:file_id>/": Entry(
        ["/models/churn/versions/1/files/{artifact}/", "/models/churn/versions/1/files/{notebook}/"],
        {"GET": Call(PAGE_READ)},
    ),
    # --- batch pages -----------------------------------------------------------------------------------
    "models/<slug:name>/batch/": Entry(
        ["/models/churn/batch/"],
        {
            "GET": Call(PAGE_READ),
            "POST": Call("login done 403 403 done 403 login login", _batch_job_upload, json=False),
        },
    ),
    "models/<slug:name>/batch/runs/<int:run_id>/": Entry(
        [
            "/models/churn/batch/runs/{done_run}/",
            "/models/churn/batch/runs/{done_run}/?export=scores",
            "/models/churn/batch/runs/{done_run}/?export=rejects",
        ],
        {"GET": Call(PAGE_READ)},
    ),
    "models/<slug:name>/batch/runs/<int:run_id>/resume/": Entry(
        ["/models/churn/batch/runs/{failed_run}/resume/"],
        {"POST": Call("login done deny deny done 403 login login", json=False)},
    ),
    "models/<slug:name>/batch/<slug:job>/": Entry(["/models/churn/batch/{job}/"], {"GET": Call(PAGE_READ)}),
    "models/<slug:name>/batch/<slug:job>/schedule/": Entry(
        ["/models/churn/batch/{job}/schedule/"],
        {"POST": Call("login done 403 403 done 403 login login", SCHEDULE_FORM, json=False)},
    ),
    "models/<slug:name>/batch/<slug:job>/run/": Entry(
        ["/models/churn/batch/{job}/run/"], {"POST": Call("login done deny deny done 403 login login", json=False)}
    ),
    # --- monitoring pages ------------------------------------------------------------------------------
    "monitoring/": Entry(["/monitoring/"], {"GET": Call(PAGE_READ)}),
    "models/<slug:name>/monitoring/": Entry(["/models/churn/monitoring/"], {"GET": Call(PAGE_READ)}),
    "models/<slug:name>/monitoring/run/": Entry(
        ["/models/churn/monitoring/run/"], {"POST": Call("login done done deny done 403 login login", json=False)}
    ),
    "models/<slug:name>/monitoring/settings/": Entry(
        ["/models/churn/monitoring/settings/"],
        {"POST": Call("login done deny deny done 403 login login", _monitoring_settings, json=False)},
    ),
    "models/<slug:name>/monitoring/schedule/": Entry(
        ["/models/churn/monitoring/schedule/"],
        {"POST": Call("login done deny deny done 403 login login", SCHEDULE_FORM, json=False)},
    ),
    "models/<slug:name>/monitoring/actuals/": Entry(
        ["/models/churn/monitoring/actuals/"],
        {"POST": Call("login done deny deny done 403 login login", _actuals_csv, json=False)},
    ),
    "models/<slug:name>/monitoring/watch/": Entry(
        ["/models/churn/monitoring/watch/"],
        {"POST": Call("login done done done done 403 login login", _json({"watch": "1"}), json=False)},
    ),
    "models/<slug:name>/monitoring/alert-rules/": Entry(
        ["/models/churn/monitoring/alert-rules/"],
        {
            "POST": Call(
                "login done deny deny done 403 login login",
                _json({"name": "drift", "metric": "drift_share", "comparison": ">", "threshold": 0.5}),
                json=False,
            )
        },
    ),
    # Without a recipe, even its owner is told what is missing.
    "models/<slug:name>/monitoring/retraining/": Entry(
        ["/models/churn/monitoring/retraining/"],
        {
            "POST": Call(
                "login deny deny deny deny 403 login login", _json({"callable_path": "no.such:module"}), json=False
            )
        },
    ),
    "models/<slug:name>/monitoring/retraining/schedule/": Entry(
        ["/models/churn/monitoring/retraining/schedule/"],
        {"POST": Call("login deny deny deny deny 403 login login", SCHEDULE_FORM, json=False)},
    ),
    "models/<slug:name>/monitoring/retraining/run/": Entry(
        ["/models/churn/monitoring/retraining/run/"],
        {"POST": Call("login deny deny deny deny 403 login login", json=False)},
    ),
    "models/<slug:name>/monitoring/reports/<int:report_id>/evidently/": Entry(
        ["/models/churn/monitoring/reports/{report}/evidently/"], {"GET": Call(PAGE_READ)}
    ),
    "models/<slug:name>/monitoring/reports/<int:report_id>/evidently/build/": Entry(
        ["/models/churn/monitoring/reports/{report}/evidently/build/"],
        {"POST": Call("login done done deny done 403 login login", json=False)},
    ),
    "models/<slug:name>/monitoring/reports/<int:report_id>/evidently/html/": Entry(
        ["/models/churn/monitoring/reports/{report}/evidently/html/"], {"GET": Call(PAGE_READ)}
    ),
}


# --- running it -------------------------------------------------------------------------------------


def _routes(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # the Django admin: tests/security/test_four_eyes.py covers it
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def test_every_route_has_a_matrix_entry() -> None:
    routes = set(_routes(get_resolver().url_patterns))
    missing = sorted(routes - set(MATRIX))
    stale = sorted(set(MATRIX) - routes)
    assert not missing, f"Routes with no permission-matrix entry (decide who may call them): {missing}"
    assert not stale, f"Matrix entries for routes that no longer exist: {stale}"


def _client(world: World, role: str) -> Client:
    client = Client()
    if role in ("cons", "other"):
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {world.tokens[role]}"
    elif role != "anon":
        client.force_login(world.users[role])
    return client


def _send(client: Client, method: str, url: str, call: Call, world: World) -> Any:
    body = call.body(world) if call.body else {}
    if method == "GET":
        return client.get(url)
    if call.json:
        return client.generic(method, url, json.dumps(body), content_type="application/json")
    if method == "POST":
        return client.post(url, body)
    raise AssertionError(f"form bodies are POSTed, not {method}")


def _outcome(response: Any) -> str:
    status = response.status_code
    if status == 302:
        location = response["Location"]
        if location.startswith(resolve_url(settings.LOGIN_URL)):
            return "login"
        errors = [m for m in get_messages(response.wsgi_request) if m.level >= message_levels.ERROR]
        return "deny" if errors else "done"
    return str(status)


def _answers(world: World, method: str, url: str, call: Call) -> list[str]:
    answers = []
    for role in ROLES:
        with transaction.atomic():
            try:
                answers.append(_outcome(_send(_client(world, role), method, url, call, world)))
            except Exception as exc:  # a 500: shown in the row rather than stopping it
                answers.append(f"500:{type(exc).__name__}")
            transaction.set_rollback(True)
    return answers


CASES = [
    pytest.param(route, method, url, id=f"{method} {url}")
    for route, entry in MATRIX.items()
    for url in entry.urls
    for method in entry.methods
]


@pytest.mark.parametrize(("route", "method", "url"), CASES)
def test_matrix(world: World, db: None, route: str, method: str, url: str) -> None:
    call = MATRIX[route].methods[method]
    expected = call.expect.split()
    assert len(expected) == len(ROLES), f"{route} {method}: one answer per role, {ROLES}"
    got = _answers(world, method, url.format(**world.ids), call)
    if got != expected:
        header = " ".join(f"{role:>6}" for role in ROLES)
        row = lambda answers: " ".join(f"{a:>6}" for a in answers)  # noqa: E731
        pytest.fail(f"{method} {url}\n          {header}\nexpected  {row(expected)}\ngot       {row(got)}")


@pytest.mark.parametrize("route", list(MATRIX))
def test_unserved_methods_are_refused(world: World, db: None, route: str) -> None:
    """Methods an endpoint does not serve answer 405 even to the admin (nothing is reachable by accident)."""
    entry = MATRIX[route]
    url = entry.urls[0].format(**world.ids)
    client = _client(world, "admin")
    unexpected = {}
    for method in METHODS:
        if method in entry.methods:
            continue
        with transaction.atomic():
            status = client.generic(method, url).status_code
            transaction.set_rollback(True)
        # 405; or 401/403 where the endpoint refuses a browser session before it looks at the method.
        if status not in (401, 403, 405):
            unexpected[method] = status
    assert not unexpected, f"{url}: methods answered although the matrix does not list them: {unexpected}"


# --- what the rows cannot say: whose data comes back ---------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "cons", "other"),
    [
        ("own_prediction", 200, 404),
        ("sibling_prediction", 404, 404),  # another consumer of the same model
        ("user_prediction", 404, 404),  # a data scientist's own request
        ("other_model_prediction", 404, 200),
    ],
)
def test_consumers_see_only_their_own_predictions(
    world: World, db: None, prediction: str, cons: int, other: int
) -> None:
    prediction_id = world.ids[prediction]
    for role, expected in [("cons", cons), ("other", other)]:
        client = _client(world, role)
        assert client.get(f"/api/predictions/{prediction_id}/").status_code == expected, (role, prediction)
        reproduce = client.post(f"/api/predictions/{prediction_id}/reproduce/", content_type="application/json")
        assert reproduce.status_code == expected, (role, prediction)


def test_a_consumer_cannot_attach_actuals_to_another_consumers_predictions(world: World, db: None) -> None:
    rows = {"rows": [{"prediction_id": world.ids["sibling_prediction"], "actual": 1}]}
    answer = _client(world, "cons").post("/api/models/churn/actuals/", rows, content_type="application/json")
    assert answer.status_code == 400, answer.content
    assert world.ids["sibling_prediction"] in json.dumps(answer.json())
    own = {"rows": [{"prediction_id": world.ids["own_prediction"], "actual": 1}]}
    assert (
        _client(world, "cons").post("/api/models/churn/actuals/", own, content_type="application/json").status_code
        == 200
    )


def test_a_consumer_token_reads_no_other_models_scores(world: World, db: None) -> None:
    assert _client(world, "other").get("/api/models/churn/scores/c1/").status_code == 403
    assert _client(world, "cons").get("/api/models/fraud/scores/c1/").status_code == 403
    assert (
        _client(world, "cons")
        .post("/api/models/fraud/predict/", {"dataframe_records": [ROW]}, content_type="application/json")
        .status_code
        == 403
    )


# --- permission first, then validation ------------------------------------------------------------

# Invalid for every write below: each reads some of these fields.
INVALID_BODY = {
    "name": 7,
    "title": [],
    "reason": [],
    "action": [],
    "rows": "x",
    "start": "never",
    "metric": {},
    "every_minutes": "x",
    "callable_path": [],
    "pinned_version": "x",
    "expires_at": "never",
    "dataframe_records": 1,
}
WRITES = [
    ("POST", "/api/models/"),
    ("PATCH", "/api/models/churn/"),
    ("POST", "/api/models/churn/versions/"),
    ("POST", "/api/models/churn/versions/import-mlflow/"),
    ("POST", "/api/models/churn/versions/2/transitions/"),
    ("POST", "/api/models/churn/versions/2/comments/"),
    ("POST", "/api/models/churn/versions/3/accept-untrusted-types/"),
    ("POST", "/api/models/churn/consumers/"),
    ("PATCH", "/api/models/churn/consumers/call-centre/"),
    ("POST", "/api/models/churn/consumers/call-centre/token/"),
    ("DELETE", "/api/models/churn/consumers/call-centre/token/"),
    ("POST", "/api/models/churn/batch-jobs/"),
    ("PUT", "/api/models/churn/batch-jobs/nightly/schedule/"),
    ("POST", "/api/models/churn/alert-rules/"),
    ("PUT", "/api/models/churn/retraining/"),
    ("POST", "/api/models/churn/actuals/"),
    ("POST", "/api/models/churn/reports/"),
    ("POST", "/api/models/churn/predict/"),
    ("POST", "/api/models/churn/sql-runs/"),
]


@pytest.mark.parametrize(("method", "url"), WRITES, ids=[f"{m} {u}" for m, u in WRITES])
def test_a_role_that_may_not_write_is_refused_before_its_body_is_judged(
    world: World, db: None, method: str, url: str
) -> None:
    """A manager (read-only) gets 403 for an invalid body too: she learns nothing of the rules of writes
    she may not make. Every endpoint here answers 400 to a data scientist's or reviewer's invalid body."""
    answers = {}
    for role in ("mgr", "admin"):
        with transaction.atomic():
            body = json.dumps(INVALID_BODY)
            answers[role] = _client(world, role).generic(method, url, body, content_type="application/json")
            transaction.set_rollback(True)
    assert (answers["mgr"].status_code, answers["admin"].status_code) == (403, 400), answers["admin"].content
    assert answers["mgr"]["Content-Type"] == "application/json"
