from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def compute_report(report_id: int) -> None:
    """Compute a requested report; a redelivered task finds it done and returns."""
    from monitoring.reports import compute

    compute(report_id=report_id)


@shared_task(acks_late=True, time_limit=3600, soft_time_limit=3500)
def retrain_model(model_id: int, alert_id: int | None = None) -> None:
    """Run the model's retraining recipe; the new version waits in review."""
    from monitoring.retraining import retrain

    retrain(model_id=model_id, alert_id=alert_id)
