"""Monitoring's Celery tasks, named once and queued after commit (see config/queue.py); each function is
named after the task it queues.

Services, alerts and reports queue work through these functions; monitoring/tasks.py imports the
services the other way round, so nothing in monitoring imports the tasks module.
"""

from __future__ import annotations

from django.utils import timezone

from config.queue import queue_on_commit, refusal
from monitoring.models import EvidentlyReport, Report, RetrainingRun

BUILD_EVIDENTLY_REPORT = "monitoring.tasks.build_evidently_report"
COMPUTE_REPORT = "monitoring.tasks.compute_report"
RETRAIN_MODEL = "monitoring.tasks.retrain_model"
RUN_SCHEDULED_REPORT = "monitoring.tasks.run_scheduled_report"


def compute_report(report_id: int) -> None:
    """Queue a report's computation once it commits.

    If the broker refuses (it is down), nothing would ever compute the report: it is marked failed,
    saying to ask again, instead of staying "running" forever, and the error goes on (a 503).
    """

    def refused(exc: Exception) -> None:
        Report.objects.filter(pk=report_id, status=Report.Status.RUNNING).update(
            status=Report.Status.FAILED,
            error=refusal(exc, advice="ask for the report again."),
            finished_at=timezone.now(),
        )

    queue_on_commit(COMPUTE_REPORT, report_id, on_refused=refused)


def build_evidently_report(report_id: int) -> None:
    """Queue the build of Evidently's report of a stored report once it commits; a broker that refuses
    marks it failed (the page offers to ask again) instead of "being prepared" for ever."""

    def refused(exc: Exception) -> None:
        EvidentlyReport.objects.filter(report_id=report_id, status=EvidentlyReport.Status.PREPARING).update(
            status=EvidentlyReport.Status.FAILED,
            error=refusal(exc, advice="ask for it again."),
            finished_at=timezone.now(),
        )

    queue_on_commit(BUILD_EVIDENTLY_REPORT, report_id, on_refused=refused)


def retrain_model(
    *,
    model_id: int,
    alert_id: int | None = None,
    trigger: str = RetrainingRun.Trigger.ALERT,
    requested_by_id: int | None = None,
) -> None:
    """Queue a retraining of the model once the current transaction commits."""
    queue_on_commit(RETRAIN_MODEL, model_id, alert_id, trigger, requested_by_id)
