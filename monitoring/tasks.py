"""Monitoring's Celery tasks: thin, taking ids, each running one service (queued by monitoring/queue.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from monitoring import archiving, reports, retraining, services, summaries
from monitoring.models import MonitoringConfig, RetrainingRun

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def compute_report(report_id: int) -> None:
    """Compute a requested report; a redelivered task finds it done and returns."""
    reports.compute(report_id=report_id)


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1750)
def build_evidently_report(report_id: int) -> None:
    """Build Evidently's HTML report of a stored report from a sample; a redelivered task finds it built."""
    # Imported here, not at the top: every process imports this module at start-up (apps.py), and
    # Evidently takes seconds to import; only a worker building its report needs it.
    from monitoring.evidently_report import evidently_report_build

    evidently_report_build(report_id=report_id)


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def retrain_model(
    model_id: int,
    alert_id: int | None = None,
    trigger: str = RetrainingRun.Trigger.ALERT,
    requested_by_id: int | None = None,
) -> None:
    """Run the model's retraining recipe; the new version waits in review."""
    retraining.retrain(model_id=model_id, alert_id=alert_id, trigger=trigger, requested_by_id=requested_by_id)


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def run_scheduled_report(model_id: int) -> None:
    """Beat's entry point: a report over the model's last `window_days`, computed by compute_report."""
    config = MonitoringConfig.objects.select_related("model").filter(model_id=model_id).first()
    if config is None:
        return
    end = timezone.now()
    services.report_request(actor=None, model=config.model, start=end - timedelta(days=config.window_days), end=end)


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3540)
def archive_actuals() -> None:
    """Beat, every 15 minutes: archive complete hours of actuals, then prune them (as for predictions)."""
    summary = archiving.archive_actuals_run()
    logger.info("Actuals archive: %s", summary)


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3540)
def summarise_archived_hours() -> None:
    """Beat, every 15 minutes after compaction: hourly summaries of the hours archived since the last run."""
    logger.info("Summarised %s archived hours", summaries.summarise_archived_hours())
