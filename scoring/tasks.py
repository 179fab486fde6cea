"""Scoring tasks: batch scoring (thin wrappers that take IDs and call the services of scoring.batch), the
prediction archive's compaction and the usage counters' rollup.

No task waits for another (there is no result backend): the start task queues one task per chunk,
and each chunk task, after committing, finalizes the run if it was the last one.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task, group, shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from config.errors import unavailable_dependency
from scoring import usage
from scoring.archive import compaction
from scoring.batch import chunks, runs, selectors
from scoring.models import BatchJob

logger = logging.getLogger(__name__)

CHUNK_MAX_RETRIES = 3
# While the database or the broker is down a task waits for it instead of failing: it is tried again
# every DEPENDENCY_RETRY_SECONDS, for up to an hour, without using up a chunk's own retries (a chunk
# that failed "for good" because PostgreSQL restarted would fail its run, or, with the database still
# down, not even record that, leaving the run running with nothing queued).
DEPENDENCY_RETRY_SECONDS = 10
DEPENDENCY_MAX_RETRIES = 360


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def run_batch_job(job_id: int) -> None:
    """Beat's entry point: start a run of a scheduled job, unless one is still in progress."""
    job = BatchJob.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning("Scheduled batch job %s no longer exists", job_id)
        return
    try:
        runs.run_start(job=job, trigger=runs.TRIGGER_SCHEDULE)
    except ValidationError as exc:
        logger.warning("Scheduled run of %s not started: %s", job, "; ".join(exc.messages))


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3540)
def archive_predictions() -> None:
    """Beat, every 15 minutes: archive complete hours of predictions, then prune the hot table and the archive.

    Idempotent, and a run that finds another one going skips (a lease in ArchiveState).
    """
    summary = compaction.archive_run()
    logger.info("Prediction archive: %s", summary)


def queue_chunks(run_id: int, chunk_indexes: list[int]) -> None:
    if chunk_indexes:
        group(score_batch_chunk.s(run_id, index) for index in chunk_indexes).apply_async()


@shared_task(time_limit=120, soft_time_limit=110)
def requeue_stalled_chunks() -> None:
    """Beat, every few minutes: queue again the chunks of runs that stopped moving (lost by the broker)."""
    stalled = selectors.stalled_chunks(quiet_for=timedelta(minutes=settings.MF_BATCH_STALL_MINUTES))
    for run_id, indexes in stalled.items():
        logger.warning("Batch run %s made no progress; queueing its %s remaining chunks again", run_id, len(indexes))
        queue_chunks(run_id, indexes)


def _wait_for_dependency(task: Task[Any, Any], exc: Exception) -> None:
    """Retry later if `exc` means the database or broker is unreachable; otherwise return."""
    if unavailable_dependency(exc) is not None:
        logger.warning(
            "%s: %s unavailable, retrying in %s s", task.name, unavailable_dependency(exc), DEPENDENCY_RETRY_SECONDS
        )
        raise task.retry(exc=exc, countdown=DEPENDENCY_RETRY_SECONDS, max_retries=DEPENDENCY_MAX_RETRIES)


@shared_task(bind=True, acks_late=True, time_limit=3600, soft_time_limit=3540)
def start_batch_run(self: Task[Any, Any], run_id: int) -> None:
    """Snapshot the input, split it into chunks and queue them; for a prepared run, requeue what is left."""
    try:
        pending = runs.run_prepare(run_id=run_id)
    except Exception as exc:  # this task owns the run's status: any failure is recorded on the run
        _wait_for_dependency(self, exc)
        logger.exception("Batch run %s could not start", run_id)
        runs.run_fail(run_id=run_id, error=f"Could not read the input: {type(exc).__name__}: {exc}")
        return
    if pending:
        transaction.on_commit(lambda: queue_chunks(run_id, pending))
    else:
        runs.run_finalize(run_id=run_id)  # an empty input, or every chunk done before a crash


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(Exception,),
    max_retries=CHUNK_MAX_RETRIES,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    time_limit=900,
    soft_time_limit=870,
)
def score_batch_chunk(self: Task[Any, Any], run_id: int, chunk_index: int) -> None:
    """Score one chunk exactly once; after the last retry a failing chunk fails its run (which may resume)."""
    try:
        chunks.chunk_score(run_id=run_id, chunk_index=chunk_index)
    except Exception as exc:
        # Retries spent waiting for the database count in request.retries too: a chunk that then
        # fails on its own has fewer attempts left (but at least one).
        _wait_for_dependency(self, exc)
        retries = self.max_retries if self.max_retries is not None else CHUNK_MAX_RETRIES
        final = self.request.retries >= retries
        chunks.chunk_record_error(
            run_id=run_id, chunk_index=chunk_index, error=f"{type(exc).__name__}: {exc}", final=final
        )
        if final:
            logger.exception("Chunk %s of batch run %s failed for good", chunk_index, run_id)
            return
        raise  # autoretry_for queues the next attempt, with exponential backoff
    # Checked after every chunk (also one found already done): the last to commit finalizes the run.
    runs.run_finalize(run_id=run_id)


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1740)
def roll_up_usage() -> None:
    """Beat, hourly: merge old per-minute usage counters into hours and days (idempotent)."""
    rolled = usage.usage_rollup()
    logger.info(
        "Usage counters rolled up: %s minute rows into hours, %s hour rows into days", rolled.minutes, rolled.hours
    )
