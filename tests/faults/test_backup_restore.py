"""Backup and restore, end to end: a populated instance is backed up, restored into a fresh database and an
empty artifact store by a separate process, and the restored instance is compared and put to work.

On SQLite the fresh database is a second file; on PostgreSQL (DATABASE_URL set) a second database on
the same server. The restore runs as `manage.py migrate` + `manage.py restore`, exactly as documented.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from monitoring.models import MonitoringConfig, Report
from registry import backup as backups
from registry import comments, workflow
from registry.choices import VersionStatus
from registry.models import AuditEvent, ModelVersion, RegisteredModel, VersionFile
from scoring.batch import services
from scoring.models import BatchRun
from tests.conftest import customers
from tests.scoring.batch_support import customer_table, nightly_job, run_now, use_input_dir, write_input
from tests.support import report_over_last_hour

ROOT = Path(__file__).resolve().parents[2]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- a populated instance ---------------------------------------------------------------------------


@pytest.fixture
def populated(
    settings: Any,
    tmp_path: Path,
    churn_model: RegisteredModel,
    production: ModelVersion,
    traffic: list[str],
    consumer_token: tuple[Any, str],
    author: Any,
    reviewer: Any,
    second_reviewer: Any,
    register: Callable[..., ModelVersion],
    go_live: Callable[[ModelVersion], ModelVersion],
    django_capture_on_commit_callbacks: Any,
) -> dict[str, Any]:
    """Versions in every kind of state, audit rows, predictions with actuals, a scheduled batch job with a
    finished run (scores, a reject, a Parquet output) and a monitoring report."""
    first_live_at = timezone.now()
    v2 = go_live(register(churn_model, author))  # v1 retired, v2 in production
    v3 = register(churn_model, author)
    workflow.version_transition(actor=author, version=v3, action="submit")  # in review
    v4 = register(churn_model, author)
    workflow.version_transition(actor=author, version=v4, action="submit")
    workflow.version_transition(actor=reviewer, version=v4, action="reject", comment="Leaks the label.")
    register(churn_model, author)  # v5: a draft
    comments.comment_create(actor=reviewer, version=v3, body="Looks good so far.")
    second_live_at = timezone.now()

    inputs = use_input_dir(settings, tmp_path)
    frame = customer_table(40)
    frame.loc[3, "charges"] = -5.0  # one row for the rejects table
    write_input(inputs, frame, "nightly.csv")
    job = nightly_job(churn_model, author, input_path="nightly.csv", chunk_rows=15, write_parquet=True)
    services.job_schedule(actor=author, job=job, crontab="30 2 * * *")
    run = run_now(job, author, django_capture_on_commit_callbacks)
    assert run.status == BatchRun.Status.SUCCEEDED, run.error
    assert (run.rows_scored, run.rows_rejected) == (39, 1)

    MonitoringConfig.objects.update_or_create(model=churn_model, defaults={"slice_columns": ["contract"]})
    client = APIClient()
    client.force_authenticate(author)
    assert report_over_last_hour(client, django_capture_on_commit_callbacks).status == Report.Status.DONE

    statuses = dict(churn_model.versions.values_list("number", "status"))
    assert statuses == {
        1: VersionStatus.RETIRED,
        2: VersionStatus.PRODUCTION,
        3: VersionStatus.IN_REVIEW,
        4: VersionStatus.REJECTED,
        5: VersionStatus.DRAFT,
    }
    return {
        "v2": v2,
        "first_live_at": first_live_at,
        "second_live_at": second_live_at,
        "token": consumer_token[1],
        "prediction_id": traffic[0],
        "run": run,
    }


def source_counts() -> dict[str, int]:
    return {
        model._meta.label_lower: model._base_manager.count()
        for model in backups.backed_up_models()
        if model._meta.label_lower not in backups.SEEDED
    }


def source_files() -> dict[str, str]:
    storage = storages["default"]
    return {name: _sha256(Path(storage.path(name))) for name in backups._storage_files(storage)}


# --- a fresh instance in another process ------------------------------------------------------------


@pytest.fixture
def fresh_instance(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment of a second, empty instance: its own database and data folder (artifact store)."""
    data_dir = tmp_path / "restored"
    data_dir.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "MF_DATA_DIR": str(data_dir),
        "MF_ARTIFACT_DIR": str(data_dir / "artifacts"),
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "CELERY_BROKER_URL": "filesystem://",
    }
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{data_dir / 'db.sqlite3'}"
        yield env
        return
    import psycopg

    params = connection.settings_dict
    name = f"{params['NAME']}_restored"[:63]
    server = {"host": params["HOST"], "port": params["PORT"], "user": params["USER"], "password": params["PASSWORD"]}
    server = {key: value for key, value in server.items() if value}

    def admin(statement: str) -> None:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin_connection:
            admin_connection.execute(statement)

    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{name}"')
    password = f":{params['PASSWORD']}" if params["PASSWORD"] else ""
    env["DATABASE_URL"] = (
        f"postgres://{params['USER']}{password}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{name}"
    )
    yield env
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


# Run inside the restored instance: what it holds, and whether it works.
INSPECT = r"""
import json, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.files.storage import storages
from django.test import Client
from django_celery_beat.models import PeriodicTask
from registry import backup
from registry.models import AuditEvent, RegisteredModel
from scoring.models import BatchRun

arguments = json.loads(sys.argv[1])
counts = {
    model._meta.label_lower: model._base_manager.count()
    for model in backup.backed_up_models()
    if model._meta.label_lower not in backup.SEEDED
}
storage = storages["default"]
files = sorted(backup._storage_files(storage))
consumer = Client(HTTP_AUTHORIZATION="Bearer " + arguments["token"])
predicted = consumer.post(
    "/api/models/churn/predict/", {"dataframe_records": arguments["rows"]}, content_type="application/json"
)
score = consumer.get("/api/models/churn/scores/c7/")
person = Client()
person.force_login(get_user_model().objects.get(username="ada"))
production_at = {
    key: person.get("/api/models/churn/production-at/", {"t": at}).json()
    for key, at in arguments["instants"].items()
}
reproduced = person.post(f"/api/predictions/{arguments['prediction_id']}/reproduce/")
run = BatchRun.objects.get(pk=arguments["run"])
print(json.dumps({
    "counts": counts,
    "files": files,
    "artifact_problems": backup.artifact_problems(),
    "predict": [predicted.status_code, predicted.json()],
    "score": [score.status_code, score.json()],
    "production_at": production_at,
    "reproduce": [reproduced.status_code, reproduced.json()],
    "schedule": list(
        PeriodicTask.objects.filter(name="batch:churn/nightly")
        .values_list("crontab__minute", "crontab__hour", "enabled")
    ),
    "output_parquet": run.output_parquet.name and storage.exists(run.output_parquet.name),
    "audit": list(AuditEvent.objects.order_by("id").values_list("id", "action", "at")),
    "groups": sorted(get_user_model().objects.get(username="rita").groups.values_list("name", flat=True)),
}, default=str))
"""


def inspect(env: dict[str, str], arguments: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", INSPECT, json.dumps(arguments, default=str)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the tests --------------------------------------------------------------------------------------


def test_it_restores_a_populated_instance_into_a_fresh_one(
    populated: dict[str, Any], fresh_instance: dict[str, str], tmp_path: Path
) -> None:
    archive = tmp_path / "backup.tar.gz"
    call_command("backup", str(archive), stdout=open(os.devnull, "w"))  # noqa: SIM115
    counts, files = source_counts(), source_files()
    rows = customers(3, seed=11).to_dict("records")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {populated['token']}")
    expected = client.post("/api/models/churn/predict/", {"dataframe_records": rows}, format="json").json()
    audit = list(AuditEvent.objects.order_by("id").values_list("id", "action", "at"))
    assert {"batchscore", "prediction", "auditevent", "report", "periodictask"} <= {
        label.split(".")[1] for label, n in counts.items() if n
    }
    assert len(files) >= VersionFile.objects.count() + 2  # artifacts and attachments, snapshot, batch output

    migrated = manage(fresh_instance, "migrate", "--noinput", "-v0")
    assert migrated.returncode == 0, migrated.stderr[-4000:]
    restored = manage(fresh_instance, "restore", str(archive))
    assert restored.returncode == 0, restored.stdout[-2000:] + restored.stderr[-4000:]
    assert "registered files match their sha256" in restored.stdout

    state = inspect(
        fresh_instance,
        {
            "token": populated["token"],
            "rows": rows,
            "prediction_id": populated["prediction_id"],
            "run": populated["run"].pk,
            "instants": {
                "before": (populated["first_live_at"] - timedelta(hours=1)).isoformat(),
                "first": populated["first_live_at"].isoformat(),
                "second": populated["second_live_at"].isoformat(),
            },
        },
    )
    # Every table has the source's rows (counted before either instance scored the rows above).
    assert state["counts"] == counts
    # Every file is back, byte for byte, and every registered file matches the registry's sha256.
    restored_root = Path(fresh_instance["MF_ARTIFACT_DIR"])
    assert {name: _sha256(restored_root / name) for name in state["files"]} == files
    assert state["artifact_problems"] == []
    # The audit trail is the same rows, ids and instants (to the microsecond).
    assert [tuple(row) for row in state["audit"]] == [(pk, action, str(at)) for pk, action, at in audit]
    # The restored instance serves the production version with the same answers and the same tokens.
    status, answer = state["predict"]
    assert status == 200, answer
    assert answer["version"] == 2
    assert answer["probabilities"] == expected["probabilities"]
    assert state["score"][0] == 200 and state["score"][1]["entity_id"] == "c7"
    status, reproduced = state["reproduce"]
    assert status == 200 and reproduced["identical"] is True, reproduced
    # "What was in production at T" reads the restored audit trail.
    at = state["production_at"]
    assert at["before"]["version"] is None
    assert at["first"]["version"] == 1
    assert at["second"]["version"] == 2
    # Roles, the beat schedule and the batch output came back too.
    assert state["groups"] == ["Reviewers"]
    assert state["schedule"] == [["30", "2", True]]
    assert state["output_parquet"] is True

    # A second restore into the now populated instance is refused, and nothing changes …
    again = manage(fresh_instance, "restore", str(archive))
    assert again.returncode != 0 and "not empty" in again.stderr
    # … unless forced: the target is flushed (its append-only audit trail included) and restored again.
    forced = manage(fresh_instance, "restore", str(archive), "--force")
    assert forced.returncode == 0, forced.stderr[-4000:]
    assert (
        inspect(
            fresh_instance,
            {
                "token": populated["token"],
                "rows": rows,
                "prediction_id": populated["prediction_id"],
                "run": populated["run"].pk,
                "instants": {},
            },
        )["counts"]["registry.auditevent"]
        == counts["registry.auditevent"]
    )


@pytest.fixture
def registered(churn_model: RegisteredModel, author: Any, register: Callable[..., ModelVersion]) -> ModelVersion:
    """Enough of an instance for the refusals: a version with its files, and its audit rows."""
    return register(churn_model, author)


def test_a_damaged_backup_is_refused_before_anything_is_touched(registered: ModelVersion, tmp_path: Path) -> None:
    folder = tmp_path / "backup"
    call_command("backup", str(folder), stdout=open(os.devnull, "w"))  # noqa: SIM115
    manifest = json.loads((folder / "manifest.json").read_text())
    artifact = next(entry for entry in manifest["files"] if entry["path"].endswith("model.skops"))
    with (folder / "files" / artifact["path"]).open("ab") as handle:
        handle.write(b"tampered")
    before = AuditEvent.objects.count()

    with pytest.raises(backups.BackupError, match=r"damaged.*model\.skops"):
        backups.restore(folder)
    assert AuditEvent.objects.count() == before


def test_it_refuses_a_target_that_already_holds_data(registered: ModelVersion, tmp_path: Path) -> None:
    folder = tmp_path / "backup"
    call_command("backup", str(folder), stdout=open(os.devnull, "w"))  # noqa: SIM115

    with pytest.raises(backups.BackupError, match="not empty"):
        backups.restore(folder)


def test_it_refuses_to_overwrite_an_existing_backup(registered: ModelVersion, tmp_path: Path) -> None:
    folder = tmp_path / "backup"
    call_command("backup", str(folder), stdout=open(os.devnull, "w"))  # noqa: SIM115
    manifest = (folder / "manifest.json").read_bytes()

    with pytest.raises(backups.BackupError, match="already exists"):
        backups.backup(folder)
    assert (folder / "manifest.json").read_bytes() == manifest
