"""One world of users, models, versions, consumers, jobs, runs and reports, with every kind of object an
endpoint can name: the permission matrix and the API fuzzing call every route against it.

Roles (the keys of `World.users` and `World.tokens`):
    ds     - Ada, data scientist, author of the versions and owner of the model and its consumers
    rev    - Rita, reviewer (rev2: Ravi, a second reviewer)
    mgr    - Maya, manager
    admin  - Alex, superuser in the Admins group
    out    - Otto, signed in but in no role
    cons   - the "call-centre" consumer token of the churn model
    other  - the consumer token of another model (fraud)

Churn's version 1 is in production, version 2 in review with its checks passed, version 3 a draft whose
artifact names a type nobody vouched for.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import skops.io as sio
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client, override_settings
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


@dataclass
class World:
    users: dict[str, Any]
    tokens: dict[str, str]
    ids: dict[str, Any] = field(default_factory=dict)
    media: Path | None = None


ARTIFACT = sio.dumps(train_churn_pipeline()[0])
ROW = {"tenure": 12, "charges": 70.5, "contract": "monthly"}


def register_version(model: RegisteredModel, actor: Any, *, with_files: bool = False) -> ModelVersion:
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


def to_production(version: ModelVersion, author: Any, reviewer: Any, signer: Any) -> None:
    workflow.version_transition(actor=author, version=version, action="submit")
    workflow.version_transition(actor=reviewer, version=version, action="approve")
    # The real checks are tested elsewhere; here they are only state for the matrix.
    force_checks_passed(version)
    workflow.version_transition(actor=signer, version=version, action="go_live")


def predict(token: str | None, user: Any, model: str) -> str:
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


def build_world(media: Path) -> World:
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
    v1 = register_version(churn, ada, with_files=True)
    compilation_run(version_id=v1.pk)  # what the worker does after the commit: a compiled file to download
    to_production(v1, ada, users["rev"], users["rev2"])
    v2 = register_version(churn, ada)
    workflow.version_transition(actor=ada, version=v2, action="submit")
    # What the worker does after the commit: the checks started at submission finish.
    CheckRun.objects.filter(version=v2).update(status=CheckRun.Status.PASSED, finished_at=timezone.now())
    v3 = register_version(churn, ada)
    # A draft whose artifact names a type nobody vouched for yet: the accept-trust target.
    ModelVersion.objects.filter(pk=v3.pk).update(untrusted_types=["sklearn.tree._tree.Tree"])
    to_production(register_version(fraud, ada), ada, users["rev"], users["rev2"])

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
        "own_prediction": predict(tokens["cons"], None, "churn"),
        "sibling_prediction": predict(tokens["sibling"], None, "churn"),
        "user_prediction": predict(None, ada, "churn"),
        "other_model_prediction": predict(tokens["other"], None, "fraud"),
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


@contextlib.contextmanager
def module_world(django_db_blocker: Any, media: Path) -> Iterator[World]:
    """The world, built once for a test module inside a transaction rolled back at its end, its files in `media`."""
    storages = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": media}},
    }
    with override_settings(STORAGES=storages, MEDIA_ROOT=media), django_db_blocker.unblock(), transaction.atomic():
        built = build_world(media)
        yield built
        transaction.set_rollback(True)
