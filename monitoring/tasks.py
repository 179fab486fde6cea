from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def compute_report(report_id: int) -> None:
    """Compute a requested report; a redelivered task finds it done and returns."""
    from monitoring.reports import compute

    compute(report_id=report_id)


def queue_report(report_id: int) -> None:
    """Queue a committed report's computation (call it on commit).

    If the broker refuses (it is down), nothing would ever compute the report: it is marked failed,
    saying to ask again, instead of staying "running" forever, and the error goes on (a 503).
    """
    try:
        compute_report.delay(report_id)
    except Exception as exc:
        from django.utils import timezone

        from monitoring.models import Report

        Report.objects.filter(pk=report_id, status=Report.Status.RUNNING).update(
            status=Report.Status.FAILED,
            error=f"Could not be queued ({type(exc).__name__}: {exc}); ask for the report again.",
            finished_at=timezone.now(),
        )
        raise


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def retrain_model(
    model_id: int, alert_id: int | None = None, trigger: str = "alert", requested_by_id: int | None = None
) -> None:
    """Run the model's retraining recipe; the new version waits in review."""
    from monitoring.retraining import retrain

    retrain(model_id=model_id, alert_id=alert_id, trigger=trigger, requested_by_id=requested_by_id)


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def run_scheduled_report(model_id: int) -> None:
    """Beat's entry point: a report over the model's last `window_days`, computed by compute_report."""
    from datetime import timedelta

    from django.utils import timezone

    from monitoring import services
    from monitoring.models import MonitoringConfig

    config = MonitoringConfig.objects.select_related("model").filter(model_id=model_id).first()
    if config is None:
        return
    end = timezone.now()
    services.report_request(actor=None, model=config.model, start=end - timedelta(days=config.window_days), end=end)
