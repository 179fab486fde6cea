"""Batch scoring services: jobs, chunked runs, rejects, exactly-once chunks, resume, schedules, lookups."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from config.api import ConflictError
from config.celery import app as celery_app
from registry.choices import VersionStatus
from registry.models import AuditEvent, ModelVersion, RegisteredModel
from scoring import tasks
from scoring.batch import chunks, runs, selectors, services, snapshots
from scoring.models import BatchChunk, BatchJob, BatchReject, BatchRun, BatchScore
from tests.factories import UserFactory
from tests.scoring.batch_support import customer_table, nightly_job, run_now, use_input_dir, write_input

FEATURES = ["tenure", "charges", "contract"]


@pytest.fixture
def inputs(settings: Any, tmp_path: Path) -> Path:
    return use_input_dir(settings, tmp_path)


@pytest.fixture
def path_job(production: ModelVersion, author: Any, inputs: Path) -> Callable[..., BatchJob]:
    def create(frame: pd.DataFrame, *, chunk_rows: int = 10, name: str = "nightly", **extra: Any) -> BatchJob:
        write_input(inputs, frame, f"{name}.csv")
        return nightly_job(
            production.model, author, name=name, input_path=f"{name}.csv", chunk_rows=chunk_rows, **extra
        )

    return create


# --- runs -------------------------------------------------------------------------------------------


def test_it_splits_the_input_into_chunks_and_scores_every_row(
    path_job: Callable[..., BatchJob],
    author: Any,
    production: ModelVersion,
    trained: tuple[Any, pd.DataFrame],
    django_capture_on_commit_callbacks: Any,
) -> None:
    frame = customer_table(25)
    job = path_job(frame, chunk_rows=10)

    run = run_now(job, author, django_capture_on_commit_callbacks)

    assert run.status == BatchRun.Status.SUCCEEDED, run.error
    assert run.version == production
    assert (run.rows_total, run.rows_scored, run.rows_rejected) == (25, 25, 0)
    assert (run.chunks_done, run.chunks_total) == (3, 3)
    assert list(run.chunks.values_list("index", "first_row", "last_row", "status", "rows_scored")) == [
        (0, 0, 10, "done", 10),
        (1, 10, 20, "done", 10),
        (2, 20, 25, "done", 5),
    ]
    assert run.started_at is not None and run.finished_at is not None and run.snapshot.name
    pipeline, _ = trained
    scores = {score.entity_id: score for score in run.scores.all()}
    assert sorted(scores) == sorted(frame["customer_id"])
    expected = pipeline.predict(frame[FEATURES])
    positive = pipeline.predict_proba(frame[FEATURES])[:, 1]
    for i, customer in enumerate(frame["customer_id"]):
        assert scores[customer].prediction == expected[i]
        assert scores[customer].probability == pytest.approx(positive[i])
        assert scores[customer].version_id == production.pk
    actions = list(AuditEvent.objects.filter(action__startswith="batch_").values_list("action", flat=True))
    assert sorted(actions) == ["batch_job.created", "batch_run.requested", "batch_run.succeeded"]


def test_it_writes_rejects_with_reasons_and_scores_the_rest(
    path_job: Callable[..., BatchJob], author: Any, django_capture_on_commit_callbacks: Any
) -> None:
    frame = customer_table(12)
    frame[["tenure", "charges"]] = frame[["tenure", "charges"]].astype(object)
    frame.loc[1, "tenure"] = -3
    frame.loc[4, "contract"] = "weekly"
    frame.loc[5, "charges"] = "lots"
    frame.loc[7, "customer_id"] = "c2"  # the same customer twice
    frame.loc[9, "customer_id"] = None
    frame.loc[11, "contract"] = None
    job = path_job(frame, chunk_rows=5)

    run = run_now(job, author, django_capture_on_commit_callbacks)

    assert run.status == BatchRun.Status.SUCCEEDED
    assert (run.rows_total, run.rows_scored, run.rows_rejected) == (12, 6, 6)
    rejects = {reject.row_number: (reject.entity_id, reject.reason) for reject in BatchReject.objects.filter(run=run)}
    assert rejects == {
        2: ("c1", "tenure: -3 is below the minimum 0"),
        5: ("c4", "contract: 'weekly' is not one of ['monthly', 'yearly']"),
        6: ("c5", "charges: 'lots' is not a number"),
        8: ("c2", "customer_id: 'c2' already appears in row 3"),
        10: ("", "customer_id: the entity id is missing"),
        12: ("c11", "contract: is required but missing"),
    }
    assert sorted(run.scores.values_list("entity_id", flat=True)) == ["c0", "c10", "c2", "c3", "c6", "c8"]
    assert sum(run.chunks.values_list("rows_rejected", flat=True)) == 6


def test_a_runs_scores_and_rejects_download_as_csv_from_its_page(
    path_job: Callable[..., BatchJob], author: Any, manager: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    frame = customer_table(6)
    frame["tenure"] = frame["tenure"].astype(object)
    frame.loc[1, "tenure"] = -3
    run = run_now(path_job(frame), author, django_capture_on_commit_callbacks)
    client.force_login(manager)
    url = f"/models/churn/batch/runs/{run.pk}/"
    page = client.get(url).content.decode()
    assert 'id="scores-csv"' in page and 'id="rejects-csv"' in page

    scores = client.get(f"{url}?export=scores")
    rows = list(csv.reader(io.StringIO(b"".join(scores.streaming_content).decode())))
    assert scores["Content-Type"] == "text/csv" and "attachment" in scores["Content-Disposition"]
    assert rows[0] == ["entity_id", "prediction", "probability", "scored_at"] and len(rows) == 1 + 5
    assert {row[1] for row in rows[1:]} <= {"0", "1"} and all(0 <= float(row[2]) <= 1 for row in rows[1:])
    rejects = client.get(f"{url}?export=rejects")
    found = list(csv.reader(io.StringIO(b"".join(rejects.streaming_content).decode())))
    assert found == [["row_number", "entity_id", "reason"], ["2", "c1", "tenure: -3 is below the minimum 0"]]


def test_a_chunk_delivered_twice_is_scored_once(
    path_job: Callable[..., BatchJob], author: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job = path_job(customer_table(30), chunk_rows=10)
    run = runs.run_start(job=job, actor=author)  # queued on commit, which this test does not let happen
    assert runs.run_prepare(run_id=run.pk) == [0, 1, 2]
    assert runs.run_prepare(run_id=run.pk) == [0, 1, 2]  # a duplicate start: the same chunks, no new ones

    tasks.score_batch_chunk.delay(run.pk, 1)
    tasks.score_batch_chunk.delay(run.pk, 1)  # redelivered after its worker died before acknowledging
    assert chunks.chunk_score(run_id=run.pk, chunk_index=1) is None

    run.refresh_from_db()
    assert BatchScore.objects.filter(run=run).count() == 10
    assert (run.chunks_done, run.rows_scored, run.status) == (1, 10, BatchRun.Status.RUNNING)
    assert run.chunks.get(index=1).attempts == 1

    for index in (0, 2, 2):
        tasks.score_batch_chunk.delay(run.pk, index)
    run.refresh_from_db()
    assert (run.status, run.chunks_done, run.rows_scored) == (BatchRun.Status.SUCCEEDED, 3, 30)
    assert BatchScore.objects.filter(run=run).count() == 30
    assert AuditEvent.objects.filter(action="batch_run.succeeded").count() == 1
    assert runs.run_finalize(run_id=run.pk) is False  # finalizing again changes nothing


@pytest.fixture
def eager_retries() -> Iterator[None]:
    """Eager tasks retry in place only when they do not propagate errors (a worker never propagates)."""
    propagates = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = propagates


@pytest.mark.usefixtures("eager_retries")
def test_a_failing_chunk_is_retried_then_fails_the_run_which_resumes(
    path_job: Callable[..., BatchJob],
    author: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = path_job(customer_table(30), chunk_rows=10)
    real_read = snapshots.read_rows
    broken = {"on": True}

    def flaky_read(snapshot: Any, first_row: int, last_row: int, columns: list[str] | None = None) -> Any:
        if broken["on"] and first_row == 10:
            raise OSError("disk went away")
        return real_read(snapshot, first_row, last_row, columns)

    monkeypatch.setattr(chunks, "read_rows", flaky_read)

    run = run_now(job, author, django_capture_on_commit_callbacks)

    assert run.status == BatchRun.Status.FAILED
    assert run.error == "Chunk 1 failed after 4 attempts: OSError: disk went away"
    by_index = {chunk.index: chunk for chunk in run.chunks.all()}
    assert by_index[0].status == BatchChunk.Status.DONE
    assert (by_index[1].status, by_index[1].attempts) == (BatchChunk.Status.FAILED, 1 + tasks.CHUNK_MAX_RETRIES)
    assert by_index[1].error == "OSError: disk went away"
    assert by_index[2].status == BatchChunk.Status.PENDING  # not started once the run had failed
    assert run.rows_scored == 10

    broken["on"] = False
    with django_capture_on_commit_callbacks(execute=True):
        resumed = runs.run_resume(actor=author, run=run)
    assert resumed.trigger == runs.TRIGGER_RESUME
    run.refresh_from_db()
    assert run.status == BatchRun.Status.SUCCEEDED, run.error
    assert (run.chunks_done, run.rows_scored, run.error) == (3, 30, "")
    assert BatchScore.objects.filter(run=run).values("entity_id").distinct().count() == 30
    assert run.chunks.get(index=0).attempts == 1  # done chunks were not scored again
    resumed_event = AuditEvent.objects.get(action="batch_run.resumed")
    assert resumed_event.actor == author
    assert resumed_event.old is not None
    assert resumed_event.old["error"].startswith("Chunk 1 failed")
    with pytest.raises(ConflictError, match="only failed runs resume"):
        runs.run_resume(actor=author, run=run)


def test_a_run_whose_input_cannot_be_read_fails_and_resumes_from_the_input(
    path_job: Callable[..., BatchJob], author: Any, inputs: Path, django_capture_on_commit_callbacks: Any
) -> None:
    frame = customer_table(8)
    job = path_job(frame, chunk_rows=5)
    (inputs / "nightly.csv").unlink()

    run = run_now(job, author, django_capture_on_commit_callbacks)

    assert run.status == BatchRun.Status.FAILED
    assert run.error.startswith("Could not read the input: ValueError: There is no file 'nightly.csv'")
    assert run.chunks_total == 0 and not run.snapshot
    write_input(inputs, frame, "nightly.csv")
    with django_capture_on_commit_callbacks(execute=True):
        runs.run_resume(actor=author, run=run)
    run.refresh_from_db()
    assert (run.status, run.rows_scored, run.chunks_total) == (BatchRun.Status.SUCCEEDED, 8, 2)


def test_a_run_fails_when_the_input_lacks_a_required_column(
    path_job: Callable[..., BatchJob], author: Any, inputs: Path, django_capture_on_commit_callbacks: Any
) -> None:
    job = path_job(customer_table(8))
    write_input(inputs, customer_table(8).drop(columns=["contract"]), "nightly.csv")

    run = run_now(job, author, django_capture_on_commit_callbacks)

    assert run.status == BatchRun.Status.FAILED
    assert "The input has no column 'contract', required by the input schema of churn v1" in run.error
    assert BatchReject.objects.count() == 0


def test_an_empty_input_succeeds_with_no_chunks(
    path_job: Callable[..., BatchJob], author: Any, django_capture_on_commit_callbacks: Any
) -> None:
    job = path_job(customer_table(0))
    run = run_now(job, author, django_capture_on_commit_callbacks)
    assert (run.status, run.rows_total, run.chunks_total) == (BatchRun.Status.SUCCEEDED, 0, 0)


def test_one_run_per_job_at_a_time(path_job: Callable[..., BatchJob], author: Any) -> None:
    job = path_job(customer_table(5))
    first = runs.run_start(job=job, actor=author)  # pending: its start is queued on commit

    with pytest.raises(ConflictError, match="already running"):
        runs.run_start(job=job, actor=author)
    assert runs.run_start(job=job, trigger=runs.TRIGGER_SCHEDULE) == first
    assert BatchRun.objects.count() == 1


def test_a_run_needs_a_version_in_production(
    churn_model: RegisteredModel, author: Any, register: Callable[..., ModelVersion], inputs: Path
) -> None:
    draft = register(churn_model, author)
    write_input(inputs, customer_table(3))
    job = nightly_job(churn_model, author)
    with pytest.raises(ValidationError, match="churn has no production version"):
        runs.run_start(job=job, actor=author)
    # A pinned version must have passed review when each run starts, too.
    BatchJob.objects.filter(pk=job.pk).update(pinned_version=draft)
    job.refresh_from_db()
    with pytest.raises(ValidationError) as refused:
        runs.run_start(job=job, actor=author)
    assert "pinned_version" in refused.value.message_dict


def test_the_scheduled_task_starts_a_run(
    path_job: Callable[..., BatchJob], django_capture_on_commit_callbacks: Any
) -> None:
    job = path_job(customer_table(4))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.run_batch_job(job.pk)
    run = BatchRun.objects.get()
    assert (run.trigger, run.triggered_by, run.status) == ("schedule", None, BatchRun.Status.SUCCEEDED)
    tasks.run_batch_job(999_999)  # a deleted job: nothing happens


def test_a_pinned_version_scores_and_parquet_output_is_written(
    production: ModelVersion,
    author: Any,
    register: Callable[..., ModelVersion],
    inputs: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    write_input(inputs, customer_table(7), "customers.parquet")
    job = services.job_create(
        actor=author,
        model=production.model,
        name="pinned",
        input_kind="path",
        input_path=str(inputs / "customers.parquet"),  # absolute paths inside the folder are fine
        entity_column="customer_id",
        pinned_version=1,
        write_parquet=True,
        chunk_rows=3,
    )
    assert job.pinned_version == production and job.input_path == "customers.parquet"
    register(production.model, author)  # a newer draft: the pinned version is still used

    run = run_now(job, author, django_capture_on_commit_callbacks)

    assert run.status == BatchRun.Status.SUCCEEDED
    with run.output_parquet.open("rb") as handle:
        output = pd.read_parquet(io.BytesIO(handle.read()))
    assert list(output.columns) == ["entity_id", "prediction", "probability", "version", "scored_at"]
    assert sorted(output["entity_id"]) == [f"c{i}" for i in range(7)]
    assert set(output["version"]) == {1}


def test_an_uploaded_file_is_checked_and_scored(
    production: ModelVersion, author: Any, django_capture_on_commit_callbacks: Any
) -> None:
    frame = customer_table(6)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    job = services.job_create(
        actor=author,
        model=production.model,
        name="upload",
        input_kind="upload",
        input_file=SimpleUploadedFile("customers.parquet", buffer.getvalue()),
        entity_column="customer_id",
    )
    assert (job.input_file.name or "").endswith("customers.parquet")
    run = run_now(job, author, django_capture_on_commit_callbacks)
    assert (run.status, run.rows_scored) == (BatchRun.Status.SUCCEEDED, 6)


def test_a_sql_job_scores_the_rows_of_its_query(
    production: ModelVersion, author: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.MF_SCORING_DATABASES = {"warehouse": "default"}
    frame = customer_table(9)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE test_customers (customer_id varchar(20), tenure integer, charges float, contract varchar(20))"
        )
        for row in frame.to_dict("records"):
            cursor.execute(
                "INSERT INTO test_customers VALUES (%s, %s, %s, %s)",
                [row["customer_id"], int(row["tenure"]), float(row["charges"]), row["contract"]],
            )
    job = services.job_create(
        actor=author,
        model=production.model,
        name="warehouse",
        input_kind="sql",
        sql_connection="warehouse",
        sql_query="SELECT customer_id, tenure, charges, contract FROM test_customers WHERE tenure >= 0;",
        entity_column="customer_id",
        chunk_rows=4,
    )
    assert job.sql_query.endswith("tenure >= 0")

    run = run_now(job, author, django_capture_on_commit_callbacks)

    assert run.status == BatchRun.Status.SUCCEEDED, run.error
    assert (run.rows_scored, run.chunks_total) == (9, 3)
    with connection.cursor() as cursor:  # the query ran read-only and wrote nothing
        cursor.execute("SELECT count(*) FROM test_customers")
        assert cursor.fetchone()[0] == 9


# --- job validation and permissions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"input_path": "../outside.csv"}, "input_path", "is outside the batch input folder"),
        ({"input_path": "/etc/passwd"}, "input_path", "is outside the batch input folder"),
        ({"input_path": "missing.csv"}, "input_path", "There is no file 'missing.csv'"),
        ({"input_path": ""}, "input_path", "Give the path of a CSV or Parquet file"),
        ({"input_path": "link.csv"}, "input_path", "is outside the batch input folder"),
        ({"input_path": "notes.bin"}, "input_path", "the file is not UTF-8 text"),
        ({"entity_column": "id"}, "entity_column", "'id' is not a column of the input"),
        ({"entity_column": " "}, "entity_column", "Name the column that identifies each row"),
        ({"name": "no spaces"}, "name", "Use up to 100 letters"),
        ({"chunk_rows": 0}, "chunk_rows", "Must be between 1 and 1,000,000"),
        ({"pinned_version": 7}, "pinned_version", "churn has no version 7"),
        ({"input_kind": "ftp"}, "input_kind", "Choose one of upload, path, sql"),
        ({"input_kind": "upload"}, "input_file", "Upload a CSV or Parquet file"),
        (
            {"input_kind": "upload", "input_file": SimpleUploadedFile("x.csv", b"")},
            "input_file",
            "x.csv: the file is empty",
        ),
        ({"input_kind": "sql", "sql_connection": "crm", "sql_query": "SELECT 1"}, "sql_connection", "warehouse"),
        (
            {"input_kind": "sql", "sql_connection": "warehouse", "sql_query": "DELETE FROM registry_tag"},
            "sql_query",
            "Only SELECT queries",
        ),
        (
            {"input_kind": "sql", "sql_connection": "warehouse", "sql_query": "SELECT 1; DROP TABLE registry_tag"},
            "sql_query",
            "exactly one SELECT statement",
        ),
        (
            {"input_kind": "sql", "sql_connection": "warehouse", "sql_query": "SELECT * FROM no_such_table"},
            "sql_query",
            "The database refused the query",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_job_create_names_each_bad_field(
    production: ModelVersion,
    author: Any,
    inputs: Path,
    settings: Any,
    tmp_path: Path,
    fields: dict[str, Any],
    field: str,
    message: str,
) -> None:
    settings.MF_SCORING_DATABASES = {"warehouse": "default"}
    write_input(inputs, customer_table(3))
    (inputs / "notes.bin").write_bytes(b"\xff\xfe\x00binary")
    write_input(tmp_path, customer_table(3), "secret.csv")
    (inputs / "link.csv").symlink_to(tmp_path / "secret.csv")

    with pytest.raises(ValidationError) as refused:
        nightly_job(production.model, author, **fields)

    assert field in refused.value.message_dict, refused.value.message_dict
    assert message in " ".join(refused.value.message_dict[field])
    assert BatchJob.objects.count() == 0


def test_job_create_refuses_a_second_job_of_the_same_name_and_an_unreviewed_pin(
    production: ModelVersion, author: Any, register: Callable[..., ModelVersion], inputs: Path
) -> None:
    write_input(inputs, customer_table(3))
    nightly_job(production.model, author)
    draft = register(production.model, author)
    with pytest.raises(ValidationError) as refused:
        nightly_job(production.model, author, pinned_version=draft)
    assert "already has a batch job named 'nightly'" in refused.value.message_dict["name"][0]
    assert "Version 2 is draft: only approved versions may score" in refused.value.message_dict["pinned_version"][0]


def test_only_data_scientists_and_batch_operators_manage_jobs(
    production: ModelVersion, author: Any, reviewer: Any, outsider: Any, inputs: Path
) -> None:
    write_input(inputs, customer_table(3))
    for user in (reviewer, outsider):
        with pytest.raises(PermissionDenied):
            nightly_job(production.model, user)
    operator: Any = UserFactory(username="olga")
    operator.user_permissions.add(Permission.objects.get(codename="add_batchjob"))
    job = nightly_job(production.model, operator)
    with pytest.raises(PermissionDenied):
        runs.run_start(job=job, actor=reviewer)
    with pytest.raises(PermissionDenied):
        services.job_schedule(actor=reviewer, job=job, crontab="0 2 * * *")


# --- schedules ------------------------------------------------------------------------------------


def test_a_schedule_is_created_updated_disabled_and_removed(path_job: Callable[..., BatchJob], author: Any) -> None:
    job = path_job(customer_table(3))

    services.job_schedule(actor=author, job=job, crontab="0 2 * * *")

    task = PeriodicTask.objects.get(name="batch:churn/nightly")
    assert job.periodic_task == task
    assert (task.task, json.loads(task.args), task.enabled, task.interval) == (
        "scoring.tasks.run_batch_job",
        [job.pk],
        True,
        None,
    )
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "2", "*")
    schedule = selectors.schedule_of(job)
    assert schedule is not None and schedule["crontab"] == "0 2 * * *"
    next_run = schedule["next_run_at"]
    assert next_run is not None and (next_run.hour, next_run.minute) == (2, 0) and next_run > timezone.now()

    services.job_schedule(actor=author, job=job, every_minutes=60, enabled=False)

    task.refresh_from_db()
    assert PeriodicTask.objects.count() == 1
    assert (task.crontab, task.interval.every, task.interval.period, task.enabled) == (None, 60, "minutes", False)
    assert selectors.schedule_of(job) == {
        "crontab": None,
        "every_minutes": 60,
        "enabled": False,
        "description": "every 60 minutes",
        "next_run_at": None,
    }

    services.job_unschedule(actor=author, job=job)
    job.refresh_from_db()
    assert job.periodic_task is None and PeriodicTask.objects.count() == 0
    events = AuditEvent.objects.filter(action__startswith="batch_job.").order_by("id")
    assert [event.action for event in events] == [
        "batch_job.created",
        "batch_job.scheduled",
        "batch_job.scheduled",
        "batch_job.unscheduled",
    ]
    assert events[2].old is not None and events[2].new is not None
    assert events[2].old["crontab"] == "0 2 * * *" and events[2].new["every_minutes"] == 60


@pytest.mark.parametrize(
    ("arguments", "field", "message"),
    [
        ({"crontab": "61 2 * * *"}, "crontab", "'61 2 * * *' is not a valid schedule"),
        ({"crontab": "0 2 * *"}, "crontab", "Give five fields"),
        ({"crontab": "every night"}, "crontab", "Give five fields"),
        ({"crontab": "0 25 * * *"}, "crontab", "is not a valid schedule"),
        ({"crontab": "0 2 * * *", "every_minutes": 5}, "crontab", "Give either a cron expression or every_minutes"),
        ({}, "crontab", "Give either"),
        ({"every_minutes": 0}, "every_minutes", "from 1 to a year"),
    ],
)
def test_a_bad_schedule_is_refused_by_field(
    path_job: Callable[..., BatchJob], author: Any, arguments: dict[str, Any], field: str, message: str
) -> None:
    job = path_job(customer_table(3))
    with pytest.raises(ValidationError) as refused:
        services.job_schedule(actor=author, job=job, **arguments)
    assert message in refused.value.message_dict[field][0]
    assert PeriodicTask.objects.count() == 0


# --- reads ----------------------------------------------------------------------------------------


def test_the_latest_score_of_an_entity_comes_from_the_newest_run(
    path_job: Callable[..., BatchJob], author: Any, inputs: Path, django_capture_on_commit_callbacks: Any
) -> None:
    frame = customer_table(4)
    job = path_job(frame)
    first = run_now(job, author, django_capture_on_commit_callbacks)
    frame.loc[0, "tenure"] = 70  # c0 changed since
    write_input(inputs, frame, "nightly.csv")
    second = run_now(job, author, django_capture_on_commit_callbacks)

    latest = selectors.latest_score(model=job.model, entity_id="c0")

    assert latest is not None and latest.run == second
    assert BatchScore.objects.filter(entity_id="c0").count() == 2
    assert latest.scored_at > first.scores.get(entity_id="c0").scored_at
    assert selectors.latest_score(model=job.model, entity_id="nobody") is None


def test_the_job_list_shows_last_runs_and_schedules(
    path_job: Callable[..., BatchJob], author: Any, django_capture_on_commit_callbacks: Any
) -> None:
    nightly = path_job(customer_table(3), name="nightly")
    path_job(customer_table(3), name="adhoc")
    run = run_now(nightly, author, django_capture_on_commit_callbacks)
    services.job_schedule(actor=author, job=nightly, every_minutes=15)

    rows = selectors.job_list(model=nightly.model)

    assert [(row.job.name, row.last_run) for row in rows] == [("adhoc", None), ("nightly", run)]
    assert rows[0].schedule is None
    assert rows[1].schedule is not None and rows[1].schedule["every_minutes"] == 15
    assert selectors.run_progress(run=run).chunks_failed == 0


def test_entity_ids_are_text_and_whole_floats_lose_their_decimals() -> None:
    def text(values: list[Any], kind: Any = None) -> list[Any]:
        return snapshots._entity_text(pa.chunked_array([pa.array(values, type=kind)])).to_pylist()

    assert text([1.0, 2.0, None, 4.0]) == ["1", "2", None, "4"]
    assert text([1.5, None]) == ["1.5", None]
    assert text([7, None, -3], pa.int64()) == ["7", None, "-3"]
    assert text(["a ", "", None, " b\t", "  "]) == ["a", None, None, "b", None]
    assert text(["x", "y", None], pa.dictionary(pa.int8(), pa.string())) == ["x", "y", None]
    assert text([True, None]) == ["True", None]
    ids = pa.chunked_array([pa.array(["a", "b", "a"]), pa.array([None, "b", "a"])])
    assert snapshots._first_rows(ids).tolist() == [-1, -1, 0, -1, 1, 0]


def test_a_deprecated_version_run_cannot_resume(
    path_job: Callable[..., BatchJob], author: Any, production: ModelVersion
) -> None:
    job = path_job(customer_table(3))
    run = runs.run_start(job=job, actor=author)
    runs.run_fail(run_id=run.pk, error="worker lost")
    ModelVersion.objects.filter(pk=production.pk).update(status=VersionStatus.DEPRECATED)
    with pytest.raises(ConflictError, match="marked do not use"):
        runs.run_resume(actor=author, run=run)


def test_chunks_lost_by_the_broker_are_queued_again_once_the_run_stops_moving(
    path_job: Callable[..., BatchJob], author: Any, settings: Any
) -> None:
    job = path_job(customer_table(30), chunk_rows=10)
    run = runs.run_start(job=job, actor=author)  # its tasks are "lost": nothing runs them
    runs.run_prepare(run_id=run.pk)
    chunks.chunk_score(run_id=run.pk, chunk_index=0)
    assert selectors.stalled_chunks(quiet_for=timedelta(minutes=20)) == {}  # it moved a moment ago

    long_ago = timezone.now() - timedelta(minutes=30)
    BatchRun.objects.filter(pk=run.pk).update(started_at=long_ago)
    BatchChunk.objects.filter(run=run, index=0).update(finished_at=long_ago)
    assert selectors.stalled_chunks(quiet_for=timedelta(minutes=20)) == {run.pk: [1, 2]}

    settings.MF_BATCH_STALL_MINUTES = 20
    tasks.requeue_stalled_chunks.delay()
    run.refresh_from_db()
    assert (run.status, run.chunks_done, run.rows_scored) == (BatchRun.Status.SUCCEEDED, 3, 30)
    assert BatchScore.objects.filter(run=run).count() == 30
    assert selectors.stalled_chunks(quiet_for=timedelta(minutes=20)) == {}


def test_a_run_moves_only_along_its_transition_table(path_job: Callable[..., BatchJob], author: Any) -> None:
    run = runs.run_start(job=path_job(customer_table(3)), actor=author)  # pending

    with pytest.raises(ValueError, match="does not move from pending to succeeded"):
        runs._move(run.pk, sources=[BatchRun.Status.PENDING], target=BatchRun.Status.SUCCEEDED)
    with pytest.raises(ValueError, match="does not move from failed, succeeded to failed"):
        runs._move(run.pk, sources=BatchRun.Status.TERMINAL, target=BatchRun.Status.FAILED)
    run.refresh_from_db()
    assert run.status == BatchRun.Status.PENDING  # a refused move changes nothing

    # A legal move from a status the run has left is the lost race of a compare-and-set: nothing happens.
    assert runs._move(run.pk, sources=[BatchRun.Status.RUNNING], target=BatchRun.Status.SUCCEEDED) is False
    assert runs.run_fail(run_id=run.pk, error="worker lost") is True
    assert runs.run_fail(run_id=run.pk, error="again") is False
    run.refresh_from_db()
    assert (run.status, run.error) == (BatchRun.Status.FAILED, "worker lost")


def test_status_groups_name_real_statuses() -> None:
    assert set(BatchRun.Status.values) == BatchRun.Status.ACTIVE | BatchRun.Status.TERMINAL
    assert not BatchRun.Status.ACTIVE & BatchRun.Status.TERMINAL
    assert set(runs.RUN_TRANSITIONS) == set(BatchRun.Status.values)
    assert VersionStatus.SERVABLE.issubset(VersionStatus.values)
    assert VersionStatus.DEPRECATED not in VersionStatus.SERVABLE
