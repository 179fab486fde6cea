"""Telling people about changes: every active consumer of a model (email and signed webhook), and users
in the app.

Emails and webhook tasks leave only after commit, so a rolled-back change never notifies anyone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from registry import queue
from registry.models import Notification, RegisteredModel, WebhookDelivery
from registry.webhooks import webhook_body

_NOTIFICATION_MESSAGE_LENGTH: Final = Notification._meta.get_field("message").max_length or 500


def _email_after_commit(*, address: str, subject: str, message: str) -> None:
    """Send the email after commit; a failure there is logged and never undoes the change."""

    def send_consumer_email() -> None:
        send_mail(subject, message, settings.DEFAULT_FROM_EMAIL, [address])

    transaction.on_commit(send_consumer_email, robust=True)


@transaction.atomic
def notify_consumers(
    *,
    model: RegisteredModel,
    event: str,
    subject: str,
    message: str,
    payload: dict[str, Any],
) -> list[WebhookDelivery]:
    """Tell every active consumer of `model` about `event`: an email and, with a webhook, a delivery.

    Emails and webhook tasks leave after commit. Webhooks are delivered at least once; receivers
    de-duplicate on the X-ModelFactory-Delivery header.
    """
    sent_at = timezone.now()
    # Round-trip through the exact serialisation so the stored payload is what gets signed and sent.
    # The envelope's keys come last: a payload cannot disguise which event or model this is.
    envelope = json.loads(webhook_body({**payload, "event": event, "model": model.name, "sent_at": sent_at}))
    deliveries = []
    for consumer in model.consumers.filter(active=True).order_by("name"):
        if consumer.contact_email:
            footer = f"\n\n--\nYou receive this as the contact of {consumer.name}, a consumer of {model.name}."
            _email_after_commit(address=consumer.contact_email, subject=subject, message=message + footer)
        if consumer.webhook_url:
            delivery = WebhookDelivery.objects.create(consumer=consumer, event=event, payload=envelope)
            queue.webhook_delivery(delivery.pk)
            deliveries.append(delivery)
    return deliveries


def notify_users(*, users: Iterable[Any], message: str, url: str = "", topic: str = "") -> None:
    """One unread in-app notification per distinct user; `topic` names what it asks (see `notification_close`)."""
    if len(message) > _NOTIFICATION_MESSAGE_LENGTH:
        # A notification is a pointer to the page with the details; a shortened one still does its job.
        message = message[: _NOTIFICATION_MESSAGE_LENGTH - 1] + "…"
    user_ids = list(dict.fromkeys(user.pk for user in users if user is not None and user.pk))
    now = timezone.now()
    Notification.objects.bulk_create(
        Notification(user_id=user_id, message=message, url=url, topic=topic, created_at=now) for user_id in user_ids
    )


def notification_close(*, topic: str, user: Any = None) -> int:
    """Mark read the unread notifications asking for `topic` (of one user, or everyone's): it is done."""
    unread = Notification.objects.filter(topic=topic, read_at__isnull=True)
    if user is not None:
        unread = unread.filter(user_id=user.pk)
    return unread.update(read_at=timezone.now())


def notification_mark_read(*, user: Any, notification_ids: Iterable[int] | None = None) -> int:
    """Mark the user's unread notifications (all, or those given) read; returns how many changed."""
    unread = Notification.objects.filter(user_id=user.pk, read_at__isnull=True)
    if notification_ids is not None:
        unread = unread.filter(pk__in=list(notification_ids))
    return unread.update(read_at=timezone.now())
