"""Consumers' webhooks: the signed body and headers, one POST, and recording each attempt on its delivery.

The retrying lives in the `deliver_webhook` task (registry/tasks.py); these functions never raise for a
receiver that is down or answers with an error, they record it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

import requests
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from registry.models import WebhookDelivery

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS: Final = 5
# Enough of an error response to explain a failure, without reading an arbitrarily large body.
_RESPONSE_EXCERPT_BYTES: Final = 500


def webhook_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: serialised once, keys sorted, so a receiver can re-derive them."""
    return json.dumps(payload, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":")).encode()


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_headers(*, delivery: WebhookDelivery, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "ModelFactory-Webhook/1",
        "X-ModelFactory-Event": delivery.event,
        "X-ModelFactory-Delivery": str(delivery.pk),
        "X-ModelFactory-Signature": webhook_signature(delivery.consumer.webhook_secret, body),
    }


@dataclass(frozen=True)
class WebhookAttempt:
    status_code: int | None
    error: str
    duration_ms: float
    # Retrying cannot help, e.g. the consumer was deactivated after the event was queued.
    permanent: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def as_record(self) -> dict[str, Any]:
        return {
            "at": timezone.now().isoformat(),
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 1),
        }


def webhook_post(*, delivery: WebhookDelivery) -> WebhookAttempt:
    """POST the delivery's signed payload once; never raises for network or HTTP errors."""
    consumer = delivery.consumer
    if not consumer.active or not consumer.webhook_url:
        return WebhookAttempt(
            status_code=None, error="The consumer is inactive or has no webhook URL.", duration_ms=0, permanent=True
        )
    body = webhook_body(delivery.payload)
    started = time.monotonic()
    try:
        # No redirects: following one would send the signed body somewhere the owner did not register.
        with requests.post(
            consumer.webhook_url,
            data=body,
            headers=webhook_headers(delivery=delivery, body=body),
            timeout=WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
            stream=True,
        ) as response:
            status_code = response.status_code
            error = ""
            if not 200 <= status_code < 300:
                excerpt = next(response.iter_content(_RESPONSE_EXCERPT_BYTES), b"")
                error = f"HTTP {status_code}: {excerpt.decode(errors='replace')}".strip()
    except requests.RequestException as exc:
        return WebhookAttempt(
            status_code=None, error=f"{type(exc).__name__}: {exc}"[:500], duration_ms=_ms_since(started)
        )
    return WebhookAttempt(status_code=status_code, error=error, duration_ms=_ms_since(started))


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000


def webhook_delivery_record_attempt(*, delivery_id: int, attempt: WebhookAttempt, final: bool) -> WebhookDelivery:
    """Append `attempt` and settle the status: delivered on success, failed when `final` or permanent.

    Under a row lock, so two workers recording at once both keep their attempt; a delivery that
    another worker already settled keeps its status.
    """
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        delivery.attempts = [*delivery.attempts, attempt.as_record()]
        fields = ["attempts"]
        if delivery.status == WebhookDelivery.Status.PENDING:
            if attempt.succeeded:
                delivery.status = WebhookDelivery.Status.DELIVERED
                delivery.delivered_at = timezone.now()
                fields += ["status", "delivered_at"]
            elif final or attempt.permanent:
                delivery.status = WebhookDelivery.Status.FAILED
                fields.append("status")
                logger.warning(
                    "Webhook delivery %s to consumer %s failed after %s attempts: %s",
                    delivery_id,
                    delivery.consumer_id,
                    len(delivery.attempts),
                    attempt.error,
                )
        delivery.save(update_fields=fields)
    return delivery
