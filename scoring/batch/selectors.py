"""Reads of batch scoring: jobs with their last run and schedule, runs, their progress and rejects,
the latest score of an entity, and the chunks of runs that stopped moving."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Max, OuterRef, Q, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from django.utils import timezone

from registry import schedules
from registry.models import RegisteredModel
from scoring.models import BatchChunk, BatchJob, BatchReject, BatchRun, BatchScore


def schedule_of(job: BatchJob) -> dict[str, Any] | None:
    """The job's schedule as shown: cron text or minutes, enabled, next run."""
    return schedules.describe(job.periodic_task)


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


def run_scores(*, run: BatchRun) -> QuerySet[BatchScore, tuple[Any, ...]]:
    """(entity id, prediction, positive-class probability, scored at) of every entity the run scored."""
    return (
        BatchScore.objects.filter(run=run)
        .order_by("entity_id")
        .values_list("entity_id", "prediction", "probability", "scored_at")
    )


def stalled_chunks(*, quiet_for: timedelta) -> dict[int, list[int]]:
    """Chunks still to score of running runs where nothing has finished for `quiet_for`, by run.

    A chunk task lost by the broker (a Redis restart without persistence) would otherwise leave its run
    running for ever; scoring a chunk is a compare-and-set, so queueing one that is merely slow is harmless.
    """
    cutoff = timezone.now() - quiet_for
    runs = (
        BatchRun.objects.filter(status=BatchRun.Status.RUNNING, started_at__lt=cutoff)
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
