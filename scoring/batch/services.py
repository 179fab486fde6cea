"""Batch jobs: created with every field checked, and run now or on a schedule kept as a beat row."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import DatabaseError, IntegrityError, transaction

from registry import schedules
from registry.audit import audit_event_create
from registry.choices import AuditAction, VersionStatus
from registry.models import ModelVersion, RegisteredModel
from registry.tables import read_table
from scoring.batch.sources import (
    batch_input_dir,
    header_columns,
    local_path,
    query_columns,
    resolve_input_path,
    scoring_databases,
    single_select,
)
from scoring.models import BatchJob
from scoring.permissions import require_batch_manager

DEFAULT_CHUNK_ROWS = 50_000
# pyarrow's largest default row group; a chunk is one row group of the snapshot.
MAX_CHUNK_ROWS = 1_000_000
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


def _version_of(model: RegisteredModel, pinned: ModelVersion | int | None) -> ModelVersion | None:
    if pinned is None or isinstance(pinned, ModelVersion):
        return pinned
    return model.versions.filter(number=pinned).first()


def _audited(job: BatchJob) -> dict[str, Any]:
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
    require_batch_manager(actor)
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
    elif version is not None and version.status not in VersionStatus.SERVABLE:
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
                with local_path(input_file) as path:
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
            columns = header_columns(path)
        except ValueError as exc:
            refuse("input_path", str(exc))
    elif input_kind == BatchJob.InputKind.SQL:
        databases = scoring_databases()
        alias = databases.get(sql_connection)
        if alias is None:
            known = ", ".join(sorted(databases)) or "none are configured (MF_SCORING_DATABASES)"
            refuse("sql_connection", f"Choose one of the scoring databases: {known}.")
        try:
            sql_query = single_select(sql_query)
        except ValueError as exc:
            refuse("sql_query", str(exc))
        else:
            if alias is not None:
                try:
                    columns = query_columns(alias, sql_query)
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
    audit_event_create(actor=actor, action=AuditAction.BATCH_JOB_CREATED, model=model, new=_audited(job))
    return job


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
    require_batch_manager(actor)
    schedules.schedule_set(
        actor=actor,
        model=job.model,
        holder=job,
        action=AuditAction.BATCH_JOB_SCHEDULED,
        name=f"batch:{job.model.name}/{job.name}",
        task_name="scoring.tasks.run_batch_job",
        args=[job.pk],
        description=f"Batch scoring job {job} (managed on its page in Model Factory)",
        crontab=crontab,
        every_minutes=every_minutes,
        enabled=enabled,
    )
    return job


@transaction.atomic
def job_unschedule(*, actor: Any, job: BatchJob) -> BatchJob:
    require_batch_manager(actor)
    schedules.schedule_clear(actor=actor, model=job.model, holder=job, action=AuditAction.BATCH_JOB_UNSCHEDULED)
    return job
