"""A batch run's lifecycle: requested, prepared (its input snapshotted and cut into chunks), then
succeeded once every chunk is done, or failed, from where it may resume.

Run statuses move only along RUN_TRANSITIONS, each move a compare-and-set update through `_move`
(0 rows updated: another process moved it first).
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from config.api import ConflictError
from config.queue import refusal
from registry.audit import audit_event_create
from registry.choices import AuditAction, VersionStatus
from registry.models import ModelVersion
from registry.selectors import production_version
from scoring import queue
from scoring.batch.snapshots import MovableFile, snapshot_write
from scoring.batch.writes import output_write
from scoring.models import BatchChunk, BatchJob, BatchRun
from scoring.permissions import require_batch_manager

logger = logging.getLogger(__name__)

Status = BatchRun.Status
# The only moves a run makes; `_move` refuses any other.
RUN_TRANSITIONS: dict[str, tuple[str, ...]] = {
    Status.PENDING: (Status.RUNNING, Status.FAILED),
    Status.RUNNING: (Status.SUCCEEDED, Status.FAILED),
    Status.FAILED: (Status.PENDING, Status.RUNNING),  # resume
    Status.SUCCEEDED: (),
}

TRIGGER_MANUAL, TRIGGER_SCHEDULE, TRIGGER_RESUME = "manual", "schedule", "resume"


def _move(run_id: int, *, sources: Collection[str], target: str, **fields: Any) -> bool:
    """Move a run from one of `sources` to `target`, setting `fields` too, in one compare-and-set update.

    False if the run was in none of `sources` any more: another process moved it first. A move that
    RUN_TRANSITIONS does not allow is a bug in the caller: ValueError, and nothing changes.
    """
    refused = sorted(source for source in sources if target not in RUN_TRANSITIONS[source])
    if refused:
        raise ValueError(f"A batch run does not move from {', '.join(refused)} to {target}.")
    return bool(BatchRun.objects.filter(pk=run_id, status__in=sources).update(status=target, **fields))


def _queue_start(run_id: int) -> None:
    """Queue a run's start after commit; a broker that refuses fails the run, so it can resume.

    Left pending with no task queued, the run would never start and would block every later run
    of its job as "already running".
    """
    queue.start_batch_run(
        run_id, on_refused=lambda exc: run_fail(run_id=run_id, error=refusal(exc, advice="resume it."))
    )


def _run_version(job: BatchJob) -> ModelVersion:
    if job.pinned_version is not None:
        if job.pinned_version.status not in VersionStatus.SERVABLE:
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
        require_batch_manager(actor)
    with transaction.atomic():
        # The job row is the lock: two clicks on "Run now" (or a click and beat) cannot both start.
        locked = (
            BatchJob.objects.select_for_update(of=("self",)).select_related("model", "pinned_version").get(pk=job.pk)
        )
        active = locked.runs.filter(status__in=Status.ACTIVE).order_by("created_at").first()
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
            action=AuditAction.BATCH_RUN_REQUESTED,
            model=locked.model,
            version=version,
            new={"job": locked.name, "run": run.pk, "trigger": trigger},
        )
        _queue_start(run.pk)
    return run


def run_resume(*, actor: Any, run: BatchRun) -> BatchRun:
    """Continue a failed run where it stopped: failed chunks are tried again, done ones are kept."""
    require_batch_manager(actor)
    with transaction.atomic():
        BatchJob.objects.select_for_update(of=("self",)).get(pk=run.job_id)  # the same lock as run_start
        locked = BatchRun.objects.select_for_update(of=("self",)).select_related("job__model", "version").get(pk=run.pk)
        if locked.status != Status.FAILED:
            raise ConflictError(f"Run {locked.pk} is {locked.get_status_display().lower()}: only failed runs resume.")
        other = locked.job.runs.filter(status__in=Status.ACTIVE).exclude(pk=locked.pk).first()
        if other is not None:
            raise ConflictError(f"Run {other.pk} of {locked.job} is in progress; resume this one after it.")
        if locked.version is not None and locked.version.status == VersionStatus.DEPRECATED:
            raise ConflictError(f"Version {locked.version.number} is marked do not use: start a new run instead.")
        # A run that failed before its snapshot starts again from the input; one with chunks continues.
        prepared = locked.started_at is not None
        target = Status.RUNNING if prepared else Status.PENDING
        old_error = locked.error
        locked.chunks.filter(status=BatchChunk.Status.FAILED).update(status=BatchChunk.Status.PENDING, error="")
        _move(locked.pk, sources=[Status.FAILED], target=target, error="", finished_at=None, trigger=TRIGGER_RESUME)
        audit_event_create(
            actor=actor,
            action=AuditAction.BATCH_RUN_RESUMED,
            model=locked.job.model,
            version=locked.version,
            old={"run": locked.pk, "status": Status.FAILED, "error": old_error},
            new={"run": locked.pk, "status": target},
        )
        _queue_start(locked.pk)
    locked.refresh_from_db()
    return locked


def run_fail(*, run_id: int, error: str) -> bool:
    """Mark a pending or running run failed; False if it had already finished."""
    with transaction.atomic():
        updated = _move(
            run_id, sources=Status.ACTIVE, target=Status.FAILED, error=error[:10_000], finished_at=timezone.now()
        )
        if updated:
            run = BatchRun.objects.select_related("job__model", "version").get(pk=run_id)
            audit_event_create(
                actor=None,
                action=AuditAction.BATCH_RUN_FAILED,
                model=run.job.model,
                version=run.version,
                new={"run": run_id, "status": Status.FAILED},
                reason=error[:2000],
            )
    return updated


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
        path, rows = snapshot_write(run, Path(directory))
        chunk_rows = run.job.chunk_rows
        with transaction.atomic():
            locked = BatchRun.objects.select_for_update(of=("self",)).get(pk=run_id)
            if locked.status != Status.PENDING:
                return []  # a duplicate delivery prepared it while this one was reading the input
            with path.open("rb") as handle:
                locked.snapshot.save(path.name, MovableFile(handle, name=str(path)), save=False)
            try:
                BatchChunk.objects.bulk_create(
                    BatchChunk(run=locked, index=index, first_row=first, last_row=min(first + chunk_rows, rows))
                    for index, first in enumerate(range(0, rows, chunk_rows))
                )
                _move(
                    run_id,
                    sources=[Status.PENDING],
                    target=Status.RUNNING,
                    snapshot=locked.snapshot.name,
                    rows_total=rows,
                    chunks_total=math.ceil(rows / chunk_rows),
                    started_at=timezone.now(),
                )
            except Exception:
                locked.snapshot.delete(save=False)
                raise
    return list(range(math.ceil(rows / chunk_rows)))


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
            path = output_write(run, Path(directory))
            with path.open("rb") as handle:
                output_name = run.output_parquet.storage.save(
                    run.output_parquet.field.generate_filename(run, path.name), File(handle)
                )
    with transaction.atomic():
        updated = _move(
            run_id,
            sources=[Status.RUNNING],
            target=Status.SUCCEEDED,
            finished_at=timezone.now(),
            output_parquet=output_name,
            error="",
        )
        if updated:
            audit_event_create(
                actor=None,
                action=AuditAction.BATCH_RUN_SUCCEEDED,
                model=run.job.model,
                version=run.version,
                new={"run": run_id, "rows_scored": run.rows_scored, "rows_rejected": run.rows_rejected},
            )
    if not updated and output_name:
        run.output_parquet.storage.delete(output_name)  # another call finalized first, with its own file
    return updated
