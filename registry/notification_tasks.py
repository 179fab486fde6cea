"""Background delivery of consumer webhooks.

Not named tasks.py, so Celery's autodiscovery does not find it on its own: the worker needs this
module imported (registry.tasks or the Celery app must import it).
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings

from registry import notifications
from registry.models import WebhookDelivery

MAX_RETRIES = 6


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, time_limit=60, soft_time_limit=50)
def deliver_webhook(self: Task[Any, Any], delivery_id: int) -> None:
    """POST a webhook delivery until it succeeds or the retries run out, recording every attempt.

    Idempotent: a delivery that is no longer pending returns at once. Queue it with `.delay()`;
    calling it directly cannot retry.
    """
    delivery = WebhookDelivery.objects.select_related("consumer").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return
    attempt = notifications.webhook_post(delivery=delivery)
    retries = self.request.retries
    out_of_retries = retries >= (self.max_retries if self.max_retries is not None else MAX_RETRIES)
    delivery = notifications.webhook_delivery_record_attempt(
        delivery_id=delivery_id, attempt=attempt, final=out_of_retries
    )
    if delivery.status == WebhookDelivery.Status.PENDING:
        backoff = getattr(settings, "MF_WEBHOOK_BACKOFF_SECONDS", 30)
        # Exponential backoff: with the default, the last retry comes about half an hour after the first try.
        raise self.retry(countdown=backoff * 2**retries)
