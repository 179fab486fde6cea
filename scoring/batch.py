"""Batch scoring: jobs that score a table with a version, in chunks, exactly once per entity.

A run first snapshots its input (an uploaded file, a file under MF_BATCH_INPUT_DIR or a SQL query) to
an Arrow IPC file with one record batch per chunk, so every chunk and every resume reads the same rows
cheaply, and monitoring later reads what was scored. Each chunk is scored by its own Celery task. A
chunk's scores, its rejects, its "done" mark and the run's counters are written in one transaction: a
task that is retried, or redelivered after its worker died, either finds the chunk done or writes
everything the first attempt would have written, so nothing is lost and nothing is written twice.

Run statuses move only along RUN_TRANSITIONS, each move a compare-and-set update (0 rows updated:
another process moved it first).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlparse
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.db.models import F, JSONField, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.fields.files import FieldFile
from django.shortcuts import get_object_or_404
from django.utils import timezone

from config.api import ConflictError
from registry import schedules
from registry.audit import audit_event_create
from registry.choices import VersionStatus
from registry.models import ModelVersion, RegisteredModel
from registry.schema import parse_schema, validate_rows
from registry.selectors import production_version
from registry.tables import is_parquet, read_parquet, read_table
from scoring import runtime
from scoring.models import MAX_ENTITY_ID_LENGTH, BatchChunk, BatchJob, BatchReject, BatchRun, BatchScore

logger = logging.getLogger(__name__)

Status = BatchRun.Status
ACTIVE = (Status.PENDING, Status.RUNNING)
TERMINAL = (Status.SUCCEEDED, Status.FAILED)
# The only moves a run makes; every status update below names its "from" side from this table.
RUN_TRANSITIONS: dict[str, tuple[str, ...]] = {
    Status.PENDING: (Status.RUNNING, Status.FAILED),
    Status.RUNNING: (Status.SUCCEEDED, Status.FAILED),
    Status.FAILED: (Status.PENDING, Status.RUNNING),  # resume
    Status.SUCCEEDED: (),
}

TRIGGER_MANUAL, TRIGGER_SCHEDULE, TRIGGER_RESUME = "manual", "schedule", "resume"
MANAGE_PERMISSIONS = ("scoring.add_batchjob", "registry.add_modelversion")
DEFAULT_CHUNK_ROWS = 50_000
# pyarrow's largest default row group; a chunk is one row group of the snapshot.
MAX_CHUNK_ROWS = 1_000_000
WRITE_BATCH_SIZE = 5000
# Hidden columns of a snapshot: the entity id as text, and the row where a repeated id first appeared.
ENTITY_ID_COLUMN = "__mf_entity_id"
FIRST_ROW_COLUMN = "__mf_first_row"
_ARROW_MAGIC = b"ARROW1"
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


# --- settings and permissions -------------------------------------------------------------------


def batch_input_dir() -> Path:
    """The only folder server-side inputs may be read from."""
    return Path(settings.MF_BATCH_INPUT_DIR).resolve()


def scoring_databases() -> dict[str, str]:
    """Names a SQL job may use, each mapped to the alias of a connection in DATABASES."""
    return dict(settings.MF_SCORING_DATABASES)


def may_manage_batches(user: Any) -> bool:
    return any(user.has_perm(permission) for permission in MANAGE_PERMISSIONS)


def may_view_batches(user: Any) -> bool:
    return bool(user.has_perm("registry.view_registeredmodel"))


def _require_manage(actor: Any) -> None:
    if not may_manage_batches(actor):
        raise PermissionDenied("Only data scientists (or holders of scoring.add_batchjob) may manage batch scoring.")


# --- reading inputs -------------------------------------------------------------------------------


@contextlib.contextmanager
def _local_path(source: File) -> Iterator[Path]:
    """A path to the bytes of an uploaded or stored file: its own if it has one, else a temporary copy."""
    temporary = getattr(source, "temporary_file_path", None)
    if callable(temporary):
        yield Path(temporary())
        return
    suffix = Path(source.name or "").suffix
    with tempfile.NamedTemporaryFile(suffix=suffix) as copy:
        for piece in source.chunks():
            copy.write(piece)
        copy.flush()
        source.seek(0)
        yield Path(copy.name)


def _header_columns(path: Path) -> list[str]:
    """The columns of a CSV or Parquet file, from its header only: a server file may be large."""
    with path.open("rb") as handle:
        magic = handle.read(4)
    if not magic:
        raise ValueError("the file is empty")
    try:
        if magic == b"PAR1":
            return [name for name in pq.read_schema(path).names if not name.startswith("__index_level_")]
        return [str(column) for column in pd.read_csv(path, nrows=100, encoding="utf-8").columns]
    except UnicodeDecodeError as exc:
        raise ValueError("the file is not UTF-8 text, CSV or Parquet") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, pa.ArrowException, OSError) as exc:
        raise ValueError(f"could not be read as CSV or Parquet: {exc}") from exc


def resolve_input_path(raw: str) -> Path:
    """The file `raw` names under the batch input folder; ValueError for anything outside it."""
    root = batch_input_dir()
    text = raw.strip()
    if not text:
        raise ValueError(f"Give the path of a CSV or Parquet file under {root}.")
    candidate = Path(text)
    # resolve() follows symbolic links, so a link inside the folder pointing outside it is refused too.
    path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{text!r} is outside the batch input folder {root}.")
    if not path.is_file():
        raise ValueError(f"There is no file {text!r} in {root}.")
    return path


def _single_select(query: str) -> str:
    """The query without a trailing semicolon; ValueError unless it is exactly one SELECT."""
    text = query.strip().rstrip(";").strip()
    statements = [statement for statement in sqlparse.parse(text) if statement.token_first(skip_cm=True) is not None]
    if len(statements) != 1:
        raise ValueError("Give exactly one SELECT statement.")
    if statements[0].get_type() != "SELECT":
        raise ValueError("Only SELECT queries (or WITH … SELECT) may be used.")
    return text


@contextlib.contextmanager
def _read_only_cursor(alias: str) -> Iterator[Any]:
    """A cursor on `alias` that, as far as the database allows, cannot write: the SQL is the user's."""
    target = connections[alias]
    target.ensure_connection()
    if target.vendor == "postgresql":
        starts_transaction = not target.in_atomic_block
        with transaction.atomic(using=alias), target.cursor() as cursor:
            # Only the first statement of a transaction may set its mode; inside an outer
            # transaction (tests) the SELECT-only check above is the guard.
            if starts_transaction:
                cursor.execute("SET TRANSACTION READ ONLY")
            yield cursor
    elif target.vendor == "sqlite":
        with target.cursor() as cursor:
            cursor.execute("PRAGMA query_only = ON")
            try:
                yield cursor
            finally:
                cursor.execute("PRAGMA query_only = OFF")
    else:
        with target.cursor() as cursor:
            yield cursor


def _query_columns(alias: str, query: str) -> list[str]:
    with _read_only_cursor(alias) as cursor:
        # The query is the job's own SQL by design; it was checked to be one SELECT.
        cursor.execute(f"SELECT * FROM ({query}) AS batch_input LIMIT 0")  # noqa: S608
        return [str(column[0]) for column in cursor.description]


def _query_frame(alias: str, query: str) -> pd.DataFrame:
    # A plain cursor rather than pandas.read_sql_query: pandas supports only SQLAlchemy and sqlite3
    # connections and warns on a psycopg one.
    with _read_only_cursor(alias) as cursor:
        cursor.execute(query)
        columns = [str(column[0]) for column in cursor.description]
        return pd.DataFrame.from_records(cursor.fetchall(), columns=columns)


def _database_alias(database: str) -> str:
    alias = scoring_databases().get(database)
    if alias is None:
        known = ", ".join(sorted(scoring_databases())) or "none are configured (MF_SCORING_DATABASES)"
        raise ValueError(f"{database!r} is not a scoring database; choose one of: {known}.")
    return alias


def sql_input_columns(database: str, query: str) -> list[str]:
    """The columns one SELECT on a configured scoring database returns; ValueError saying what is wrong."""
    alias = _database_alias(database)
    try:
        return _query_columns(alias, _single_select(query))
    except DatabaseError as exc:
        raise ValueError(f"The database refused the query: {exc}".strip()) from exc


def sql_input_frame(database: str, query: str) -> pd.DataFrame:
    """The rows of one SELECT on a configured scoring database, read on a read-only connection."""
    return _query_frame(_database_alias(database), _single_select(query))


def _read_file(path: Path) -> pa.Table:
    """Parquet straight into Arrow (a million rows: 0.6 s, against 1 s through pandas); CSV through pandas."""
    if not is_parquet(path):
        return _arrow_table(read_table(path))
    table = read_parquet(path)
    index_columns = [name for name in table.column_names if name.startswith("__index_level_")]
    if index_columns:
        # pandas' metadata would name the dropped index columns; without it the types are Arrow's own.
        table = table.drop_columns(index_columns).replace_schema_metadata(None)
    return table


def _read_input(job: BatchJob) -> pa.Table:
    if job.input_kind == BatchJob.InputKind.UPLOAD:
        with contextlib.suppress(NotImplementedError):  # storages without local files have no path
            return _read_file(Path(job.input_file.path))
        with job.input_file.open("rb") as stored, _local_path(stored) as path:
            return _read_file(path)
    if job.input_kind == BatchJob.InputKind.PATH:
        return _read_file(resolve_input_path(job.input_path))
    alias = scoring_databases().get(job.sql_connection)
    if alias is None:
        raise ValueError(f"The database {job.sql_connection!r} is no longer in MF_SCORING_DATABASES.")
    return _arrow_table(_query_frame(alias, _single_select(job.sql_query)))


# --- jobs -------------------------------------------------------------------------------------------


def _version_of(model: RegisteredModel, pinned: ModelVersion | int | None) -> ModelVersion | None:
    if pinned is None or isinstance(pinned, ModelVersion):
        return pinned
    return model.versions.filter(number=pinned).first()


def _job_snapshot(job: BatchJob) -> dict[str, Any]:
    return {
        "name": job.name,
        "input_kind": job.input_kind,
        "input": job.input_file.name or job.input_path or job.sql_connection,
        "sql_query": job.sql_query,
        "entity_column": job.entity_column,
        "pinned_version": job.pinned_version.number if job.pinned_version else None,
        "write_parquet": job.write_parquet,
        "chunk_rows": job.chunk_rows,
    }


@transaction.atomic
def job_create(
    *,
    actor: Any,
    model: RegisteredModel,
    name: str,
    input_kind: str,
    entity_column: str,
    input_file: File | None = None,
    input_path: str = "",
    sql_connection: str = "",
    sql_query: str = "",
    pinned_version: ModelVersion | int | None = None,
    write_parquet: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> BatchJob:
    """Check every field (ValidationError naming each bad one) and create the job.

    `pinned_version` is a version of `model` or its number; empty: each run uses the version in
    production when it starts.
    """
    _require_manage(actor)
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    name = name.strip()
    if not name or not _SLUG.match(name) or len(name) > 100:
        refuse("name", "Use up to 100 letters, digits, hyphens and underscores.")
    elif BatchJob.objects.filter(model=model, name=name).exists():
        refuse("name", f"{model.name} already has a batch job named {name!r}.")
    entity_column = entity_column.strip()
    if not entity_column:
        refuse("entity_column", "Name the column that identifies each row (e.g. customer_id).")
    if not 1 <= chunk_rows <= MAX_CHUNK_ROWS:
        refuse("chunk_rows", f"Must be between 1 and {MAX_CHUNK_ROWS:,}.")
    version = _version_of(model, pinned_version)
    if pinned_version is not None and (version is None or version.model_id != model.pk):
        refuse("pinned_version", f"{model.name} has no version {pinned_version}.")
    elif version is not None and version.status not in runtime.SERVABLE:
        refuse(
            "pinned_version",
            f"Version {version.number} is {version.get_status_display().lower()}: only approved versions may score.",
        )

    columns: list[str] | None = None
    stored_path = ""
    if input_kind == BatchJob.InputKind.UPLOAD:
        if input_file is None:
            refuse("input_file", "Upload a CSV or Parquet file.")
        else:
            # An upload never changes, so it is read whole now: a bad file is refused before any run.
            try:
                with _local_path(input_file) as path:
                    table = read_table(path)
                if table.empty:
                    raise ValueError("the file has no rows")
                columns = [str(column) for column in table.columns]
            except ValueError as exc:
                refuse("input_file", f"{input_file.name}: {exc}.")
    elif input_kind == BatchJob.InputKind.PATH:
        try:
            path = resolve_input_path(input_path)
            stored_path = str(path.relative_to(batch_input_dir()))
            columns = _header_columns(path)
        except ValueError as exc:
            refuse("input_path", str(exc))
    elif input_kind == BatchJob.InputKind.SQL:
        databases = scoring_databases()
        alias = databases.get(sql_connection)
        if alias is None:
            known = ", ".join(sorted(databases)) or "none are configured (MF_SCORING_DATABASES)"
            refuse("sql_connection", f"Choose one of the scoring databases: {known}.")
        try:
            sql_query = _single_select(sql_query)
        except ValueError as exc:
            refuse("sql_query", str(exc))
        else:
            if alias is not None:
                try:
                    columns = _query_columns(alias, sql_query)
                except DatabaseError as exc:
                    refuse("sql_query", f"The database refused the query: {exc}".strip())
    else:
        refuse("input_kind", f"Choose one of {', '.join(BatchJob.InputKind.values)}.")
    if columns is not None and entity_column and entity_column not in columns:
        shown = ", ".join(columns[:20]) + (" …" if len(columns) > 20 else "")
        refuse("entity_column", f"{entity_column!r} is not a column of the input (it has: {shown}).")
    if errors:
        raise ValidationError(errors)

    job = BatchJob(
        model=model,
        name=name,
        pinned_version=version,
        input_kind=input_kind,
        input_path=stored_path,
        sql_connection=sql_connection if input_kind == BatchJob.InputKind.SQL else "",
        sql_query=sql_query if input_kind == BatchJob.InputKind.SQL else "",
        entity_column=entity_column,
        write_parquet=write_parquet,
        chunk_rows=chunk_rows,
        created_by=actor,
    )
    if input_file is not None and input_kind == BatchJob.InputKind.UPLOAD:
        job.input_file.save(Path(input_file.name or "input").name, input_file, save=False)
    try:
        with transaction.atomic():
            job.save()
    except IntegrityError as exc:  # the same name, created by someone else since the check above
        if job.input_file:
            job.input_file.delete(save=False)
        raise ValidationError({"name": [f"{model.name} already has a batch job named {name!r}."]}) from exc
    audit_event_create(actor=actor, action="batch_job.created", model=model, new=_job_snapshot(job))
    return job


# --- schedules --------------------------------------------------------------------------------------


def schedule_of(job: BatchJob) -> dict[str, Any] | None:
    """The job's schedule as shown: cron text or minutes, enabled, next run."""
    return schedules.describe(job.periodic_task)


@transaction.atomic
def job_schedule(
    *,
    actor: Any,
    job: BatchJob,
    crontab: str | None = None,
    every_minutes: int | None = None,
    enabled: bool = True,
) -> BatchJob:
    """Run the job on a cron schedule ("m h dom mon dow", in CELERY_TIMEZONE) or every N minutes."""
    _require_manage(actor)
    old = schedules.audited(job.periodic_task)
    job.periodic_task = schedules.save(
        task=job.periodic_task,
        name=f"batch:{job.model.name}/{job.name}",
        task_name="scoring.tasks.run_batch_job",
        args=[job.pk],
        description=f"Batch scoring job {job} (managed on its page in Model Factory)",
        crontab=crontab,
        every_minutes=every_minutes,
        enabled=enabled,
    )
    job.save(update_fields=["periodic_task"])
    audit_event_create(
        actor=actor,
        action="batch_job.scheduled",
        model=job.model,
        old=old,
        new=schedules.audited(job.periodic_task),
    )
    return job


@transaction.atomic
def job_unschedule(*, actor: Any, job: BatchJob) -> BatchJob:
    _require_manage(actor)
    old = schedules.audited(job.periodic_task)
    if job.periodic_task is not None:
        job.periodic_task.delete()  # the job's link is cleared by on_delete=SET_NULL
        job.periodic_task = None
        audit_event_create(actor=actor, action="batch_job.unscheduled", model=job.model, old=old)
    return job


# --- runs -------------------------------------------------------------------------------------------


def _queue_start(run_id: int) -> None:
    """Queue a committed run's start (on commit); a broker that refuses fails the run, so it can resume.

    Left pending with no task queued, the run would never start and would block every later run
    of its job as "already running".
    """
    from scoring.tasks import start_batch_run

    try:
        start_batch_run.delay(run_id)
    except Exception as exc:
        run_fail(run_id=run_id, error=f"Could not be queued ({type(exc).__name__}: {exc}); resume it.")
        raise


def _run_version(job: BatchJob) -> ModelVersion:
    if job.pinned_version is not None:
        if job.pinned_version.status not in runtime.SERVABLE:
            label = job.pinned_version.get_status_display().lower()
            raise ValidationError(
                {"pinned_version": [f"The pinned version {job.pinned_version.number} is {label}: pin another one."]}
            )
        return job.pinned_version
    version = production_version(model=job.model)
    if version is None:
        raise ValidationError(f"{job.model.name} has no production version: put one in production or pin a version.")
    return version


def run_start(*, job: BatchJob, actor: Any = None, trigger: str = TRIGGER_MANUAL) -> BatchRun:
    """Create a pending run and queue its start after commit.

    One run per job at a time: a scheduled trigger while a run is in progress returns that run; a
    manual one is refused with ConflictError.
    """
    if actor is not None:
        _require_manage(actor)
    with transaction.atomic():
        # The job row is the lock: two clicks on "Run now" (or a click and beat) cannot both start.
        locked = (
            BatchJob.objects.select_for_update(of=("self",)).select_related("model", "pinned_version").get(pk=job.pk)
        )
        active = locked.runs.filter(status__in=ACTIVE).order_by("created_at").first()
        if active is not None:
            if trigger == TRIGGER_SCHEDULE:
                logger.info("Not starting %s on schedule: run %s is still %s", locked, active.pk, active.status)
                return active
            raise ConflictError(f"{locked} is already running (run {active.pk}); wait for it to finish.")
        version = _run_version(locked)
        run = BatchRun.objects.create(
            job=locked,
            version=version,
            trigger=trigger,
            triggered_by=actor if getattr(actor, "pk", None) else None,
        )
        audit_event_create(
            actor=actor,
            action="batch_run.requested",
            model=locked.model,
            version=version,
            new={"job": locked.name, "run": run.pk, "trigger": trigger},
        )
        transaction.on_commit(partial(_queue_start, run.pk))
    return run


def run_resume(*, actor: Any, run: BatchRun) -> BatchRun:
    """Continue a failed run where it stopped: failed chunks are tried again, done ones are kept."""
    _require_manage(actor)
    with transaction.atomic():
        BatchJob.objects.select_for_update(of=("self",)).get(pk=run.job_id)  # the same lock as run_start
        locked = BatchRun.objects.select_for_update(of=("self",)).select_related("job__model", "version").get(pk=run.pk)
        if locked.status != Status.FAILED:
            raise ConflictError(f"Run {locked.pk} is {locked.get_status_display().lower()}: only failed runs resume.")
        other = locked.job.runs.filter(status__in=ACTIVE).exclude(pk=locked.pk).first()
        if other is not None:
            raise ConflictError(f"Run {other.pk} of {locked.job} is in progress; resume this one after it.")
        if locked.version is not None and locked.version.status == VersionStatus.DEPRECATED:
            raise ConflictError(f"Version {locked.version.number} is marked do not use: start a new run instead.")
        # A run that failed before its snapshot starts again from the input; one with chunks continues.
        prepared = locked.started_at is not None
        target = Status.RUNNING if prepared else Status.PENDING
        assert target in RUN_TRANSITIONS[locked.status]  # the table and this code agree
        old_error = locked.error
        locked.chunks.filter(status=BatchChunk.Status.FAILED).update(status=BatchChunk.Status.PENDING, error="")
        BatchRun.objects.filter(pk=locked.pk, status=Status.FAILED).update(
            status=target, error="", finished_at=None, trigger=TRIGGER_RESUME
        )
        audit_event_create(
            actor=actor,
            action="batch_run.resumed",
            model=locked.job.model,
            version=locked.version,
            old={"run": locked.pk, "status": Status.FAILED, "error": old_error},
            new={"run": locked.pk, "status": target},
        )
        transaction.on_commit(partial(_queue_start, locked.pk))
    locked.refresh_from_db()
    return locked


def stalled_chunks(*, quiet_for: timedelta) -> dict[int, list[int]]:
    """Chunks still to score of running runs where nothing has finished for `quiet_for`, by run.

    A chunk task lost by the broker (a Redis restart without persistence) would otherwise leave its run
    running for ever; scoring a chunk is a compare-and-set, so queueing one that is merely slow is harmless.
    """
    cutoff = timezone.now() - quiet_for
    runs = (
        BatchRun.objects.filter(status=Status.RUNNING, started_at__lt=cutoff)
        .annotate(last_finished=Max("chunks__finished_at"))
        .filter(Q(last_finished__isnull=True) | Q(last_finished__lt=cutoff))
    )
    pending: dict[int, list[int]] = {}
    for run_id, index in (
        BatchChunk.objects.filter(run__in=runs)
        .exclude(status=BatchChunk.Status.DONE)
        .order_by("run_id", "index")
        .values_list("run_id", "index")
    ):
        pending.setdefault(run_id, []).append(index)
    return pending


def run_fail(*, run_id: int, error: str) -> bool:
    """Mark a pending or running run failed; False if it had already finished."""
    with transaction.atomic():
        updated = BatchRun.objects.filter(pk=run_id, status__in=ACTIVE).update(
            status=Status.FAILED, error=error[:10_000], finished_at=timezone.now()
        )
        if updated:
            run = BatchRun.objects.select_related("job__model", "version").get(pk=run_id)
            audit_event_create(
                actor=None,
                action="batch_run.failed",
                model=run.job.model,
                version=run.version,
                new={"run": run_id, "status": Status.FAILED},
                reason=error[:2000],
            )
    return bool(updated)


def _entity_values(values: pd.Series) -> pd.Series:
    """Entity ids as text; whole floats (an integer column with gaps, read from CSV) without '.0'."""
    present = values.notna()
    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(dtype=float)
        finite = numbers[present.to_numpy()]
        if np.isfinite(finite).all() and (np.mod(finite, 1) == 0).all():
            values = values.astype("Int64")
    text = values.astype(str).str.strip()
    return text.where(present & (text != ""), None)


def _entity_text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """An input's entity column as text, missing or blank ids null; integers and text by Arrow's kernels."""
    kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
    if pa.types.is_integer(kind):
        text = values.cast(pa.string())
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = pc.utf8_trim_whitespace(values.cast(pa.string()))
    else:
        text = pa.chunked_array([pa.array(_entity_values(values.to_pandas()), type=pa.string(), from_pandas=True)])
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _first_rows(entity: pa.ChunkedArray) -> np.ndarray:
    """Per row, the row where its entity id first appears if that is an earlier row, else -1 (and for nulls)."""
    codes = pc.fill_null(pc.dictionary_encode(entity).combine_chunks().indices, -1).to_numpy()
    first = np.full(len(entity), -1, dtype=np.int64)
    present = codes >= 0
    positions = np.flatnonzero(present)
    _, first_index = np.unique(codes[present], return_index=True)
    first_of_code = positions[first_index]
    earlier = first_of_code[codes[present]]
    first[present] = np.where(earlier != positions, earlier, -1)
    return first


def _arrow_table(frame: pd.DataFrame) -> pa.Table:
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        # A column mixing numbers and text: keep it as text and let validation judge each value.
        mixed = {
            column: frame[column].astype(str).where(frame[column].notna(), None)
            for column in frame.columns
            if frame[column].dtype == object
        }
        return pa.Table.from_pandas(frame.assign(**mixed), preserve_index=False)


def _snapshot(run: BatchRun, directory: Path) -> tuple[Path, int]:
    """Read the job's input once and write it where every chunk and every resume reads the same rows."""
    job = run.job
    assert run.version is not None  # runs are created with their version
    table = _read_input(job)
    fields = parse_schema(run.version.input_schema)
    columns = set(table.column_names)
    missing = [field.name for field in fields if field.required and field.name not in columns]
    if job.entity_column not in columns:
        raise ValueError(f"The input has no entity column {job.entity_column!r}.")
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise ValueError(f"The input has no column {names}, required by the input schema of {run.version}.")
    column = table[job.entity_column]
    entity = _entity_text(column)
    # Equal integers are equal texts, and hashing integers is the cheaper way to find repeats.
    repeats = _first_rows(column if pa.types.is_integer(column.type) else entity)
    table = table.append_column(ENTITY_ID_COLUMN, entity).append_column(FIRST_ROW_COLUMN, pa.array(repeats))
    path = directory / f"run-{run.pk}.arrow"
    # Arrow's IPC file format (Feather 2), one record batch per chunk: written at memory speed (a million
    # rows x 30 floats: 0.12 s, against 0.75 s as Parquet), and a chunk reads only its own batches.
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        for start in range(0, table.num_rows, job.chunk_rows):
            writer.write_table(table.slice(start, job.chunk_rows).combine_chunks())
    return path, table.num_rows


class _MovableFile(File):
    """A file the file-system storage moves into place (a rename on the same disk) instead of copying."""

    def temporary_file_path(self) -> str:
        return str(self.name)


def run_prepare(*, run_id: int) -> list[int]:
    """Snapshot the input and create the chunks, once; return the indexes of the chunks still to score.

    Idempotent: a run already prepared (a duplicate delivery, or a resume) only lists its chunks not
    yet done; a finished run lists none.
    """
    run = BatchRun.objects.select_related("job__model", "version").get(pk=run_id)
    if run.status == Status.RUNNING:
        return list(run.chunks.exclude(status=BatchChunk.Status.DONE).values_list("index", flat=True))
    if run.status != Status.PENDING:
        return []
    # Beside the uploads, so that the snapshot is normally on the artifact store's disk.
    with tempfile.TemporaryDirectory(dir=settings.FILE_UPLOAD_TEMP_DIR) as directory:
        path, rows = _snapshot(run, Path(directory))
        chunk_rows = run.job.chunk_rows
        with transaction.atomic():
            locked = BatchRun.objects.select_for_update(of=("self",)).get(pk=run_id)
            if locked.status != Status.PENDING:
                return []  # a duplicate delivery prepared it while this one was reading the input
            with path.open("rb") as handle:
                locked.snapshot.save(path.name, _MovableFile(handle, name=str(path)), save=False)
            try:
                BatchChunk.objects.bulk_create(
                    BatchChunk(run=locked, index=index, first_row=first, last_row=min(first + chunk_rows, rows))
                    for index, first in enumerate(range(0, rows, chunk_rows))
                )
                BatchRun.objects.filter(pk=run_id, status=Status.PENDING).update(
                    snapshot=locked.snapshot.name,
                    rows_total=rows,
                    chunks_total=math.ceil(rows / chunk_rows),
                    status=Status.RUNNING,
                    started_at=timezone.now(),
                )
            except Exception:
                locked.snapshot.delete(save=False)
                raise
    return list(range(math.ceil(rows / chunk_rows)))


@dataclass(frozen=True)
class ChunkOutcome:
    rows_scored: int
    rows_rejected: int


def _read_rows(snapshot: FieldFile, first_row: int, last_row: int, columns: list[str] | None = None) -> pa.Table:
    """Rows [first_row, last_row) of a snapshot (`columns` of it, or all), reading only the batches that hold them."""
    with _opened(snapshot) as handle:
        if handle.read(len(_ARROW_MAGIC)) != _ARROW_MAGIC:
            handle.seek(0)
            return _read_parquet_rows(handle, first_row, last_row, columns)
        handle.seek(0)
        reader = pa.ipc.open_file(handle)
        wanted = _wanted(reader.schema, columns)
        batches = [reader.get_batch(index) for index in range(reader.num_record_batches)]
        indexes, skipped = _covering([batch.num_rows for batch in batches], first_row, last_row)
        # Buffers read from a memory map keep it mapped after the file is closed, until they are freed.
        table = pa.Table.from_batches(
            [batches[index].select(wanted) for index in indexes],
            schema=pa.schema([reader.schema.field(name) for name in wanted]),
        )
    return table.slice(first_row - skipped, last_row - first_row)


def _covering(sizes: list[int], first_row: int, last_row: int) -> tuple[list[int], int]:
    """The parts (batches, row groups) of these sizes that hold rows [first_row, last_row), and the rows
    before the first of them."""
    indexes: list[int] = []
    start = skipped = 0
    for index, size in enumerate(sizes):
        if start + size <= first_row:
            skipped += size
        elif start < last_row:
            indexes.append(index)
        start += size
    return indexes, skipped


@contextlib.contextmanager
def _opened(snapshot: FieldFile) -> Iterator[Any]:
    """A snapshot memory-mapped when it is on local disk: getting the batches before a chunk's own then
    reads only their headers (through a plain file it read them whole, a tenth of a run's time)."""
    try:
        path = snapshot.path
    except NotImplementedError:  # a storage without local files
        with snapshot.open("rb") as handle:
            yield handle
        return
    with pa.memory_map(path) as source:
        yield source


def _read_parquet_rows(handle: Any, first_row: int, last_row: int, columns: list[str] | None) -> pa.Table:
    """Rows of a Parquet snapshot (runs prepared before snapshots were Arrow files)."""
    parquet = pq.ParquetFile(handle)
    wanted = _wanted(parquet.schema_arrow, columns)
    sizes = [parquet.metadata.row_group(group).num_rows for group in range(parquet.num_row_groups)]
    groups, skipped = _covering(sizes, first_row, last_row)
    table = (
        parquet.read_row_groups(groups, columns=wanted) if groups else parquet.schema_arrow.empty_table().select(wanted)
    )
    return table.slice(first_row - skipped, last_row - first_row)


def _wanted(schema: pa.Schema, columns: list[str] | None) -> list[str]:
    """`columns` that the snapshot has, once each in their order; all of its columns for None."""
    if columns is None:
        return list(schema.names)
    available = set(schema.names)
    return [column for column in dict.fromkeys(columns) if column in available]


def read_snapshot(run: BatchRun) -> pd.DataFrame:
    """A run's whole input as snapshotted (its hidden entity columns included)."""
    return _frame(_read_rows(run.snapshot, 0, run.rows_total))


def _frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(object)
    return frame


def _plain(values: np.ndarray) -> list[Any]:
    return [None if isinstance(value, float) and not math.isfinite(value) else value for value in values.tolist()]


@dataclass(frozen=True)
class ChunkScores:
    """A chunk's scores column by column; its rows share their run, model, version and time.

    On PostgreSQL the time is the database's own (the column's default), not `scored_at`.
    """

    run_id: int
    model_id: int
    version_id: int
    scored_at: datetime
    entity_ids: pa.Array  # text
    labels: np.ndarray
    probabilities: np.ndarray | None  # of the positive class (binary classifiers); NaN: none

    def __len__(self) -> int:
        return len(self.entity_ids)


def _prediction_json(labels: np.ndarray) -> np.ndarray:
    """Each label as JSON text, encoded once per distinct label; NaN and infinities as null."""
    codes, uniques = pd.factorize(labels)  # -1 for NaN
    encoded = [json.dumps(value) for value in _plain(np.asarray(uniques))]
    return np.array([*encoded, "null"], dtype=object)[codes]


def _copy_csv(scores: ChunkScores) -> bytes:
    """The scores as COPY's CSV, written by Arrow: building the text in Python was half of a chunk's own time."""
    rows = len(scores)
    probabilities = scores.probabilities
    probability = (
        pa.nulls(rows, pa.float64())
        if probabilities is None
        else pa.array(probabilities, type=pa.float64(), mask=~np.isfinite(probabilities))
    )
    table = pa.table(
        {
            "run_id": pa.array(np.full(rows, scores.run_id, dtype=np.int64)),
            "model_id": pa.array(np.full(rows, scores.model_id, dtype=np.int64)),
            "version_id": pa.array(np.full(rows, scores.version_id, dtype=np.int64)),
            "entity_id": scores.entity_ids,
            "prediction": pa.array(_prediction_json(scores.labels), type=pa.string()),
            "probability": probability,
        }
    )
    sink = pa.BufferOutputStream()
    # Strings are quoted and nulls left empty: COPY's CSV reads the first as text and the second as NULL.
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False))
    return bytes(sink.getvalue())


# scored_at is left to the column's default, now(): parsing a timestamp per row cost PostgreSQL 1.8 µs.
_SCORE_COLUMNS = "run_id, model_id, version_id, entity_id, prediction, probability"


def _write_scores(scores: ChunkScores) -> None:
    """Insert scores, ignoring any (run, entity) already there; COPY on PostgreSQL, batched INSERTs elsewhere."""
    if not len(scores):
        return
    if connection.vendor == "postgresql":
        table = BatchScore._meta.db_table
        data = _copy_csv(scores)
        try:
            # The chunk's claim already keeps other deliveries out, so a conflict is not expected: COPY
            # straight into the table, and only on a conflict go through a temporary table that skips it.
            with (
                transaction.atomic(),
                connection.wrap_database_errors,
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY {table} ({_SCORE_COLUMNS}) FROM STDIN WITH (FORMAT csv)") as copy,
            ):
                copy.write(data)
            return
        except IntegrityError:
            pass
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE batch_score_load (run_id bigint, model_id bigint, version_id bigint, "
                "entity_id varchar(200), prediction jsonb, probability double precision) "
                "ON COMMIT DROP"
            )
            # Django's cursor wraps psycopg's; COPY is on psycopg's own cursor.
            with cursor.cursor.copy(f"COPY batch_score_load ({_SCORE_COLUMNS}) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(data)
            cursor.execute(
                f"INSERT INTO {table} ({_SCORE_COLUMNS}) SELECT {_SCORE_COLUMNS} FROM batch_score_load "  # noqa: S608
                "ON CONFLICT DO NOTHING"
            )
            cursor.execute("DROP TABLE batch_score_load")
        return
    # A missing prediction (NaN) is JSON null, as COPY stores it; a bare None would be SQL NULL, which the
    # column refuses, and ignore_conflicts would drop the row silently.
    json_null = Value(None, JSONField())
    predictions = [json_null if value is None else value for value in _plain(scores.labels)]
    probabilities = [None] * len(scores) if scores.probabilities is None else _plain(scores.probabilities)
    BatchScore.objects.bulk_create(
        (
            BatchScore(
                run_id=scores.run_id,
                model_id=scores.model_id,
                version_id=scores.version_id,
                entity_id=entity_id,
                prediction=prediction,
                probability=probability,
                scored_at=scores.scored_at,
            )
            for entity_id, prediction, probability in zip(
                scores.entity_ids.to_pylist(), predictions, probabilities, strict=True
            )
        ),
        ignore_conflicts=True,
        batch_size=WRITE_BATCH_SIZE,
    )


def chunk_score(*, run_id: int, chunk_index: int) -> ChunkOutcome | None:
    """Score one chunk and commit it with its rejects and the run's counters; None if there was nothing to do.

    Scoring happens outside the transaction; the commit claims the chunk with a compare-and-set, so
    of two deliveries of the same chunk exactly one writes.
    """
    chunk = BatchChunk.objects.select_related("run__job").get(run_id=run_id, index=chunk_index)
    run = chunk.run
    if chunk.status == BatchChunk.Status.DONE or run.status != Status.RUNNING:
        return None  # done by an earlier delivery, or the run failed: a resume requeues what is left
    BatchChunk.objects.filter(pk=chunk.pk).update(attempts=F("attempts") + 1)
    assert run.version_id is not None  # runs are created with their version
    loaded = runtime.models.version(run.version_id)
    job = run.job
    table = _read_rows(
        run.snapshot,
        chunk.first_row,
        chunk.last_row,
        [field.name for field in loaded.fields] + [job.entity_column, ENTITY_ID_COLUMN, FIRST_ROW_COLUMN],
    )
    entity = table[ENTITY_ID_COLUMN].combine_chunks()
    first_rows = table[FIRST_ROW_COLUMN].to_numpy()
    frame = _frame(table.drop_columns([ENTITY_ID_COLUMN, FIRST_ROW_COLUMN]))
    validation = validate_rows(
        frame, loaded.fields, unknown_categories=loaded.unknown_categories, extra_columns=[job.entity_column]
    )
    missing_entity = entity.is_null().to_numpy(zero_copy_only=False)
    too_long = pc.fill_null(pc.utf8_length(entity), 0).to_numpy() > MAX_ENTITY_ID_LENGTH
    repeated = first_rows >= 0
    bad = validation.bad_rows | missing_entity | too_long | repeated
    good = ~bad

    now = timezone.now()
    labels: np.ndarray = np.empty(0, dtype=object)
    positive: np.ndarray | None = None
    if good.any():
        inputs = validation.frame if good.all() else validation.frame[good]
        labels, class_probabilities = loaded.score(inputs)
        labels = np.asarray(labels)
        # Only binary classifiers have one "positive class" probability.
        if class_probabilities is not None and class_probabilities.ndim == 2 and class_probabilities.shape[1] == 2:
            positive = np.asarray(class_probabilities[:, 1], dtype=float)
    scores = ChunkScores(
        run_id=run.pk,
        model_id=loaded.model_id,
        version_id=loaded.version_id,
        scored_at=now,
        entity_ids=entity.filter(pa.array(good)),
        labels=labels,
        probabilities=positive,
    )
    reasons = _reasons(validation.problems, np.flatnonzero(bad))
    for row in np.flatnonzero(missing_entity).tolist():
        reasons[row].append(f"{job.entity_column}: the entity id is missing")
    for row in np.flatnonzero(too_long).tolist():
        reasons[row].append(f"{job.entity_column}: the entity id is longer than {MAX_ENTITY_ID_LENGTH} characters")
    for row in np.flatnonzero(repeated).tolist():
        reasons[row].append(
            f"{job.entity_column}: {entity[row].as_py()!r} already appears in row {first_rows[row] + 1}"
        )
    rejects = [
        BatchReject(
            run_id=run.pk,
            row_number=int(chunk.first_row + row + 1),
            entity_id=(entity[row].as_py() or "")[:MAX_ENTITY_ID_LENGTH],
            reason="; ".join(reasons[row]) or "rejected",
        )
        for row in reasons
    ]
    with transaction.atomic():
        claimed = (
            BatchChunk.objects.filter(pk=chunk.pk)
            .exclude(status=BatchChunk.Status.DONE)
            .update(
                status=BatchChunk.Status.DONE,
                rows_scored=len(scores),
                rows_rejected=len(rejects),
                error="",
                finished_at=now,
            )
        )
        if not claimed:
            return None  # a concurrent delivery of this chunk committed first
        BatchReject.objects.bulk_create(rejects, ignore_conflicts=True, batch_size=WRITE_BATCH_SIZE)
        _write_scores(scores)
        BatchRun.objects.filter(pk=run.pk).update(
            chunks_done=F("chunks_done") + 1,
            rows_scored=F("rows_scored") + len(scores),
            rows_rejected=F("rows_rejected") + len(rejects),
        )
    return ChunkOutcome(rows_scored=len(scores), rows_rejected=len(rejects))


def _reasons(problems: list[Any], bad_rows: np.ndarray) -> dict[int, list[str]]:
    """Why each rejected row was rejected: its own problems after those of the whole table."""
    table_wide = [f"{problem.field}: {problem.message}" for problem in problems if problem.row is None]
    reasons: dict[int, list[str]] = {int(row): list(table_wide) for row in bad_rows}
    for problem in problems:
        if problem.row is not None:
            reasons[problem.row].append(f"{problem.field}: {problem.message}")
    return reasons


def chunk_record_error(*, run_id: int, chunk_index: int, error: str, final: bool) -> None:
    """Note why a chunk attempt failed; on the final attempt, fail the chunk and its run."""
    chunk = BatchChunk.objects.filter(run_id=run_id, index=chunk_index).exclude(status=BatchChunk.Status.DONE)
    if not final:
        chunk.update(error=error[:10_000])
        return
    with transaction.atomic():
        chunk.update(status=BatchChunk.Status.FAILED, error=error[:10_000], finished_at=timezone.now())
        attempts = (
            BatchChunk.objects.filter(run_id=run_id, index=chunk_index).values_list("attempts", flat=True).first()
        )
        run_fail(run_id=run_id, error=f"Chunk {chunk_index} failed after {attempts} attempts: {error}")


def _write_output(run: BatchRun, directory: Path) -> Path:
    """The run's scores as Parquet: entity_id, prediction, probability, version, scored_at."""
    path = directory / f"run-{run.pk}-scores.parquet"
    version_number = run.version.number if run.version else None
    writer: pq.ParquetWriter | None = None
    rows = (
        BatchScore.objects.filter(run=run)
        .order_by("pk")
        .values_list("entity_id", "prediction", "probability", "scored_at")
    )
    batch: list[tuple[Any, ...]] = []
    try:
        for row in rows.iterator(chunk_size=WRITE_BATCH_SIZE):
            batch.append(row)
            if len(batch) == WRITE_BATCH_SIZE * 10:
                writer = _write_output_batch(writer, path, batch, version_number)
                batch = []
        if batch or writer is None:
            writer = _write_output_batch(writer, path, batch, version_number)
    finally:
        if writer is not None:
            writer.close()
    return path


def _write_output_batch(
    writer: pq.ParquetWriter | None, path: Path, batch: list[tuple[Any, ...]], version_number: int | None
) -> pq.ParquetWriter:
    frame = pd.DataFrame(batch, columns=["entity_id", "prediction", "probability", "scored_at"])
    frame["probability"] = frame["probability"].astype(float)
    frame.insert(3, "version", version_number)
    if writer is None:
        table = _arrow_table(frame)
        writer = pq.ParquetWriter(path, table.schema)
    else:
        table = pa.Table.from_pandas(frame, schema=writer.schema, preserve_index=False)
    writer.write_table(table)
    return writer


def run_finalize(*, run_id: int) -> bool:
    """Mark a running run succeeded once all its chunks are done (writing its Parquet output if asked).

    Safe to call after every chunk and more than once: only the call that moves running → succeeded
    keeps its output file.
    """
    run = BatchRun.objects.select_related("job__model", "version").get(pk=run_id)
    if run.status != Status.RUNNING or run.chunks.exclude(status=BatchChunk.Status.DONE).exists():
        return False
    output_name = ""
    with tempfile.TemporaryDirectory() as directory:
        if run.job.write_parquet:
            path = _write_output(run, Path(directory))
            with path.open("rb") as handle:
                output_name = run.output_parquet.storage.save(
                    run.output_parquet.field.generate_filename(run, path.name), File(handle)
                )
    with transaction.atomic():
        updated = BatchRun.objects.filter(pk=run_id, status=Status.RUNNING).update(
            status=Status.SUCCEEDED, finished_at=timezone.now(), output_parquet=output_name, error=""
        )
        if updated:
            audit_event_create(
                actor=None,
                action="batch_run.succeeded",
                model=run.job.model,
                version=run.version,
                new={"run": run_id, "rows_scored": run.rows_scored, "rows_rejected": run.rows_rejected},
            )
    if not updated and output_name:
        run.output_parquet.storage.delete(output_name)  # another call finalized first, with its own file
    return bool(updated)


# --- reads ------------------------------------------------------------------------------------------


def latest_score(*, model: RegisteredModel, entity_id: str) -> BatchScore | None:
    """The most recent batch score of an entity.

    The table's only index is its key (run, entity), so the query names the model's runs: the
    database looks the entity up once per run rather than scanning the model's scores.
    """
    runs = BatchRun.objects.filter(job__model=model).values("pk")
    return (
        BatchScore.objects.select_related("version", "model")
        .filter(run__in=runs, entity_id=entity_id)
        .order_by("-scored_at")
        .first()
    )


@dataclass(frozen=True)
class JobRow:
    job: BatchJob
    last_run: BatchRun | None
    schedule: dict[str, Any] | None


def job_list(*, model: RegisteredModel) -> list[JobRow]:
    """A model's jobs, each with its last run and its schedule (next run time included)."""
    latest = BatchRun.objects.filter(job=OuterRef("pk")).order_by("-created_at", "-id").values("pk")[:1]
    jobs = list(
        model.batch_jobs.select_related("pinned_version", "periodic_task__crontab", "periodic_task__interval")
        .annotate(last_run_id=Subquery(latest))
        .order_by("name")
    )
    runs = BatchRun.objects.select_related("version", "job__model", "triggered_by").in_bulk(
        [job.last_run_id for job in jobs if job.last_run_id]
    )
    return [JobRow(job=job, last_run=runs.get(job.last_run_id), schedule=schedule_of(job)) for job in jobs]


def job_row(job: BatchJob) -> JobRow:
    last = job.runs.select_related("version", "job__model", "triggered_by").order_by("-created_at", "-id").first()
    return JobRow(job=job, last_run=last, schedule=schedule_of(job))


def job_get(*, model: RegisteredModel, name: str) -> BatchJob:
    return get_object_or_404(
        BatchJob.objects.select_related(
            "model", "pinned_version", "created_by", "periodic_task__crontab", "periodic_task__interval"
        ),
        model=model,
        name=name,
    )


def run_list(*, job: BatchJob) -> QuerySet[BatchRun]:
    return job.runs.select_related("version", "triggered_by", "job__model").order_by("-created_at", "-id")


def run_get(*, run_id: int) -> BatchRun:
    return get_object_or_404(BatchRun.objects.select_related("job__model", "version", "triggered_by"), pk=run_id)


@dataclass(frozen=True)
class RunProgress:
    run: BatchRun
    chunks_failed: int
    chunk_errors: list[dict[str, Any]]


def run_progress(*, run: BatchRun) -> RunProgress:
    """What a progress bar and a run page show: counters plus the errors of chunks that failed or retried."""
    troubled = run.chunks.exclude(error="").order_by("index").values("index", "status", "attempts", "error")
    errors = [dict(row) for row in troubled[:50]]
    failed = run.chunks.filter(status=BatchChunk.Status.FAILED).count()
    return RunProgress(run=run, chunks_failed=failed, chunk_errors=errors)


def run_rejects(*, run: BatchRun) -> QuerySet[BatchReject]:
    return run.rejects.order_by("row_number")
