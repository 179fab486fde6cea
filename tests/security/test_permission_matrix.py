"""The permission matrix: every page and API endpoint x every role x every method it serves.

The table below is the access policy, written down. Each route of the URL resolver (config/urls.py and
the apps' urls.py / api_urls.py) has one entry: the concrete URL(s) to call, a body per method, and the
expected answer per role. A route added without an entry fails `test_every_route_has_a_matrix_entry`,
so nobody ships an endpoint whose access nobody decided.

Roles (columns, in this order):
    anon   - not signed in
    ds     - Ada, data scientist, author of the versions and owner of the model and its consumers
    rev    - Rita, reviewer
    mgr    - Maya, manager
    admin  - Alex, superuser in the Admins group
    out    - Otto, signed in but in no role
    cons   - the "call-centre" consumer token of the churn model
    other  - the consumer token of another model (fraud)

Expected answers: an HTTP status, or
    login  - 302 to the login page (pages, for whoever has no session)
    done   - a page's form was accepted: 302 with no error message
    deny   - a page's form was refused: 302 back with an error message (the page explains why)

Write requests run in a savepoint rolled back after each role, so every role meets the same data.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io as sio
from django.conf import settings
from django.contrib.messages import constants as message_levels
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.shortcuts import resolve_url
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from monitoring.models import Alert, AlertRule, EvidentlyReport, Report
from registry import registration, roles, services, workflow
from registry.choices import FileKind
from registry.compilation_services import compilation_run
from registry.consumers import consumer_create
from registry.models import CheckRun, ModelVersion, RegisteredModel
from scoring.batch.services import job_create
from scoring.models import BatchReject, BatchRun, BatchScore, SqlRun
from tests.conftest import INPUT_SCHEMA, customers, notebook_json, train_churn_pipeline
from tests.factories import UserFactory
from tests.support import force_checks_passed

ROLES = ["anon", "ds", "rev", "mgr", "admin", "out", "cons", "other"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

# Rows used by many endpoints, named for readability.   anon   ds   rev  mgr  admin out  cons  other
PAGE_READ = "login 200 200 200 200 403 login login"  # any role reads; no role, no page
API_READ = "401 200 200 200 200 403 401 401"  # the same for the API; consumer tokens are for scoring only
PUBLIC = "200 200 200 200 200 200 200 200"


# --- the world the matrix runs in ----------------------------------------------------------------


@dataclass
class World:
    users: dict[str, Any]
    tokens: dict[str, str]
    ids: dict[str, Any] = field(default_factory=dict)
    media: Path | None = None


ARTIFACT = sio.dumps(train_churn_pipeline()[0])
ROW = {"tenure": 12, "charges": 70.5, "contract": "monthly"}


def _register(model: RegisteredModel, actor: Any, *, with_files: bool = False) -> ModelVersion:
    extra: dict[str, Any] = {}
    if with_files:
        frame = customers(50)
        reference = io.BytesIO()
        frame.to_parquet(reference, index=False)
        extra = {
            "notebook": SimpleUploadedFile("analysis.ipynb", notebook_json()),
            "reference_data": SimpleUploadedFile("reference.parquet", reference.getvalue()),
        }
    return registration.version_register(
        actor=actor,
        model=model,
        upload=registration.VersionUpload(
            artifact=SimpleUploadedFile("model.skops", ARTIFACT), input_schema=json.dumps(INPUT_SCHEMA), **extra
        ),
    )


def _to_production(version: ModelVersion, author: Any, reviewer: Any, signer: Any) -> None:
    workflow.version_transition(actor=author, version=version, action="submit")
    workflow.version_transition(actor=reviewer, version=version, action="approve")
    # The real checks are tested elsewhere; here they are only state for the matrix.
    force_checks_passed(version)
    workflow.version_transition(actor=signer, version=version, action="go_live")


def _predict(token: str | None, user: Any, model: str) -> str:
    client = Client()
    if token:
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    else:
        client.force_login(user)
    answer = client.post(
        f"/api/models/{model}/predict/",
        {"dataframe_records": [ROW], "entity_ids": ["c1"]},
        content_type="application/json",
    )
    assert answer.status_code == 200, answer.content
    return str(answer.json()["prediction_ids"][0])


def _build_world(media: Path) -> World:
    users: dict[str, Any] = {
        "ds": UserFactory(username="ada", role=roles.DATA_SCIENTIST),
        "rev": UserFactory(username="rita", role=roles.REVIEWER),
        "rev2": UserFactory(username="ravi", role=roles.REVIEWER),
        "mgr": UserFactory(username="maya", role=roles.MANAGER),
        "admin": UserFactory(username="alex", is_staff=True, is_superuser=True, role=roles.ADMIN),
        "out": UserFactory(username="otto"),
    }
    ada = users["ds"]
    churn = services.model_create(actor=ada, name="churn", title="Churn", task="classification")
    fraud = services.model_create(actor=ada, name="fraud", title="Fraud", task="classification")
    v1 = _register(churn, ada, with_files=True)
    compilation_run(version_id=v1.pk)  # what the worker does after the commit: a compiled file to download
    _to_production(v1, ada, users["rev"], users["rev2"])
    v2 = _register(churn, ada)
    workflow.version_transition(actor=ada, version=v2, action="submit")
    # What the worker does after the commit: the checks started at submission finish.
    CheckRun.objects.filter(version=v2).update(status=CheckRun.Status.PASSED, finished_at=timezone.now())
    v3 = _register(churn, ada)
    # A draft whose artifact names a type nobody vouched for yet: the accept-trust target.
    ModelVersion.objects.filter(pk=v3.pk).update(untrusted_types=["sklearn.tree._tree.Tree"])
    _to_production(_register(fraud, ada), ada, users["rev"], users["rev2"])

    consumers = {}
    for key, model, name in [
        ("cons", churn, "call-centre"),
        ("sibling", churn, "billing"),
        ("other", fraud, "fraud-app"),
    ]:
        consumers[key] = consumer_create(actor=ada, model=model, name=name, contact_email=f"{name}@example.com")
    tokens = {key: token for key, (_consumer, token) in consumers.items()}

    ids: dict[str, Any] = {
        "artifact": v1.files.get(kind=FileKind.ARTIFACT).pk,
        "notebook": v1.files.get(kind=FileKind.NOTEBOOK).pk,
        # Predictions of the churn consumer, of another consumer of churn, of a user, and of another model.
        "own_prediction": _predict(tokens["cons"], None, "churn"),
        "sibling_prediction": _predict(tokens["sibling"], None, "churn"),
        "user_prediction": _predict(None, ada, "churn"),
        "other_model_prediction": _predict(tokens["other"], None, "fraud"),
    }

    csv = customers(5).assign(customer_id=[f"c{i}" for i in range(5)]).to_csv(index=False).encode()
    job = job_create(
        actor=ada,
        model=churn,
        name="nightly",
        input_kind="upload",
        entity_column="customer_id",
        input_file=SimpleUploadedFile("customers.csv", csv),
        write_parquet=True,
    )
    now = timezone.now()
    done = BatchRun.objects.create(
        job=job, version=v1, status=BatchRun.Status.SUCCEEDED, triggered_by=ada, started_at=now, finished_at=now
    )
    output = io.BytesIO()
    pd.DataFrame({"customer_id": ["c1"], "prediction": [1]}).to_parquet(output, index=False)
    done.output_parquet.save("nightly.parquet", ContentFile(output.getvalue()))
    BatchScore.objects.create(run=done, model=churn, version=v1, entity_id="c1", prediction=1, scored_at=now)
    BatchReject.objects.create(run=done, row_number=3, entity_id="c3", reason="charges: above 500")
    failed = BatchRun.objects.create(
        job=job, version=v1, status=BatchRun.Status.FAILED, triggered_by=ada, started_at=now, finished_at=now
    )
    report = Report.objects.create(
        model=churn,
        version=v1,
        window_start=now - timedelta(days=1),
        window_end=now,
        status=Report.Status.DONE,
        finished_at=now,
        rows_current=1,
    )
    evidently = EvidentlyReport.objects.create(report=report, status=EvidentlyReport.Status.READY, finished_at=now)
    evidently.file.save("evidently.html", ContentFile(b"<html>report</html>"))
    rule = AlertRule.objects.create(
        model=churn, name="volume", metric="prediction_volume", comparison="<", threshold=1, created_by=ada
    )
    Alert.objects.create(rule=rule, opened_by_report=report, last_value=0)
    sql_run = SqlRun.objects.create(model=churn, version=v1, engine="duckdb", function_name="score", user=ada)
    ids.update(job="nightly", done_run=done.pk, failed_run=failed.pk, report=report.pk, sql_run=sql_run.pk)
    return World(users=users, tokens=tokens, ids=ids, media=media)


@pytest.fixture(scope="module")
def world(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Built once for the module inside a transaction that is rolled back at the end."""
    media = tmp_path_factory.mktemp("matrix-artifacts")
    storages = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": media}},
    }
    with override_settings(STORAGES=storages, MEDIA_ROOT=media), django_db_blocker.unblock(), transaction.atomic():
        built = _build_world(media)
        yield built
        transaction.set_rollback(True)


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
    "api/models/<slug:name>/predict/": Entry(
        ["/api/models/churn/predict/"], {"POST": Call("401 200 200 200 200 403 200 403", PREDICT_BODY)}
    ),
    "api/models/<slug:name>/versions/<int:number>/predict/": Entry(
        ["/api/models/churn/versions/1/predict/"], {"POST": Call("401 200 200 200 200 403 200 403", PREDICT_BODY)}
    ),
    "api/models/<slug:name>/invocations": Entry(
        ["/api/models/churn/invocations"], {"POST": Call("401 200 200 200 200 403 200 403", PREDICT_BODY)}
    ),
    # A consumer sees its own predictions only: another consumer's (of this model or another) do not exist.
    "api/predictions/<uuid:prediction_id>/": Entry(
        ["/api/predictions/{own_prediction}/"], {"GET": Call("401 200 200 200 200 403 200 404")}
    ),
    "api/predictions/<uuid:prediction_id>/reproduce/": Entry(
        ["/api/predictions/{own_prediction}/reproduce/"],
        {"POST": Call("401 200 200 200 200 403 200 404", _json({}))},
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
            "POST": Call("401 202 202 202 202 403 401 401", _json({"start": "2029-12-31T00:00:00Z", "end": NOW})),
        },
    ),
    "api/reports/<int:report_id>/": Entry(["/api/reports/{report}/"], {"GET": Call(API_READ)}),
    # Evidently's report of a window: asked for by whoever may run reports (it is built, so asking changes nothing).
    "api/reports/<int:report_id>/evidently/": Entry(
        ["/api/reports/{report}/evidently/"],
        {"GET": Call(API_READ), "POST": Call("401 202 202 202 202 403 401 401")},
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
        ["/models/churn/monitoring/run/"], {"POST": Call("login done done done done 403 login login", json=False)}
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
        {"POST": Call("login done done done done 403 login login", json=False)},
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
