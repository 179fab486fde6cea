"""Consumers of a model and how they hear about changes: email, signed webhooks, in-app notifications.

Writes follow the registry's services: keyword-only, one transaction, an audit event, and anything
that leaves the process (emails, webhook tasks) only after commit, so a rolled-back change never
notifies anyone.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import requests
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator, validate_email, validate_slug
from django.db import IntegrityError, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from registry import selectors
from registry.audit import audit_event_create
from registry.choices import VersionStatus
from registry.models import Consumer, ModelVersion, Notification, RegisteredModel, WebhookDelivery

logger = logging.getLogger(__name__)

# Not a secret: it makes a leaked token recognisable to secret scanners and to consumer_for_token.
TOKEN_PREFIX: Final = "mfc_"  # noqa: S105
TOKEN_PREFIX_LENGTH: Final = 12
WEBHOOK_TIMEOUT_SECONDS: Final = 5
# Enough of an error response to explain a failure, without reading an arbitrarily large body.
_RESPONSE_EXCERPT_BYTES: Final = 500
_NOTIFICATION_MESSAGE_LENGTH: Final = Notification._meta.get_field("message").max_length or 500

_http_url = URLValidator(schemes=["http", "https"])


class _Unchanged(enum.Enum):
    UNCHANGED = enum.auto()


# "Leave the pinned version as it is", distinct from None, which unpins.
UNCHANGED: Final = _Unchanged.UNCHANGED


# --- tokens and signatures --------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str, str]:
    """A fresh token, its prefix (shown in lists to tell tokens apart) and its sha256."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token[:TOKEN_PREFIX_LENGTH], _token_hash(token)


def consumer_token_holder(token: str) -> Consumer | None:
    """The consumer whose current token this is, whether or not it may be used now (see
    Consumer.token_refusal), or None. Only the token's sha256 is stored."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    digest = _token_hash(token)
    consumer = Consumer.objects.select_related("model").filter(token_hash=digest).first()
    # The lookup is by a hash of the token, so its timing tells an attacker nothing about the token;
    # the constant-time compare keeps it that way should the lookup ever change.
    if consumer is None or not hmac.compare_digest(consumer.token_hash, digest):
        return None
    return consumer


def consumer_for_token(token: str) -> Consumer | None:
    """The consumer holding this API token if the token may be used now (active consumer, token
    neither revoked nor expired), else None."""
    consumer = consumer_token_holder(token)
    if consumer is None or consumer.token_refusal():
        return None
    return consumer


def default_token_expiry() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(days=settings.MF_CONSUMER_TOKEN_DAYS)


def _check_token_expiry(expires_at: datetime.datetime) -> None:
    if expires_at <= timezone.now():
        raise ValidationError({"token_expires_at": ["Must be in the future."]})


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


# --- access ---------------------------------------------------------------------------------


def consumer_may_create(*, actor: Any, model: RegisteredModel) -> bool:
    return bool(actor.pk == model.owner_id or actor.has_perm("registry.add_consumer"))


def consumer_may_manage(*, actor: Any, consumer: Consumer) -> bool:
    """The model's owner, the consumer's owner (who holds its token) or whoever may change consumers."""
    return bool(actor.pk in (consumer.model.owner_id, consumer.owner_id) or actor.has_perm("registry.change_consumer"))


def consumer_may_view(*, actor: Any, model: RegisteredModel) -> bool:
    # Contacts and webhook URLs are internal details: readers of the registry see them, outsiders do not.
    return bool(
        actor.pk == model.owner_id
        or actor.has_perm("registry.view_consumer")
        or actor.has_perm("registry.view_registeredmodel")
    )


# --- consumers ------------------------------------------------------------------------------


def _consumer_snapshot(consumer: Consumer) -> dict[str, Any]:
    # Never the token hash or the webhook secret: audit rows are readable by every reviewer.
    return {
        "name": consumer.name,
        "owner": consumer.owner.get_username(),
        "description": consumer.description,
        "contact_email": consumer.contact_email,
        "webhook_url": consumer.webhook_url,
        "pinned_version": consumer.pinned_version.number if consumer.pinned_version else None,
        "active": consumer.active,
    }


def _check_consumer(consumer: Consumer, errors: dict[str, list[str]], *, check_pin: bool = True) -> None:
    """The rules shared by creation and update; adds to `errors` by field."""
    if not consumer.contact_email and not consumer.webhook_url:
        errors.setdefault("contact_email", []).append(
            "Give a contact email or a webhook URL, so the consumer can be notified."
        )
    if consumer.contact_email:
        try:
            validate_email(consumer.contact_email)
        except ValidationError:
            errors.setdefault("contact_email", []).append("Enter a valid email address.")
    if consumer.webhook_url:
        try:
            _http_url(consumer.webhook_url)
        except ValidationError:
            errors.setdefault("webhook_url", []).append("Enter a valid http:// or https:// URL.")
    version = consumer.pinned_version
    if version is not None and check_pin:
        if version.model_id != consumer.model_id:
            errors.setdefault("pinned_version", []).append(f"{version} is not a version of {consumer.model.name}.")
        elif version.status == VersionStatus.DEPRECATED:
            production = selectors.production_version(model=consumer.model)
            advice = (
                f"Pin version {production.number}, the version in production."
                if production
                else "No version is in production yet to pin instead."
            )
            errors.setdefault("pinned_version", []).append(
                f"Version {version.number} is deprecated and must not be used. {advice}"
            )


def _save_consumer(consumer: Consumer, errors: dict[str, list[str]]) -> None:
    if errors:
        raise ValidationError(errors)
    # Field lengths and formats the explicit checks above do not cover; uniqueness was checked already.
    consumer.full_clean(validate_unique=False, validate_constraints=False)
    try:
        # A savepoint, so losing a race for the name leaves the caller's transaction usable.
        with transaction.atomic():
            consumer.save()
    except IntegrityError as exc:
        raise ValidationError(
            {"name": [f"{consumer.model.name} already has a consumer named {consumer.name!r}."]}
        ) from exc


@transaction.atomic
def consumer_create(
    *,
    actor: Any,
    model: RegisteredModel,
    name: str,
    owner: Any = None,
    description: str = "",
    contact_email: str = "",
    webhook_url: str = "",
    pinned_version: ModelVersion | None = None,
    token_expires_at: datetime.datetime | None = None,
) -> tuple[Consumer, str]:
    """Register a consumer of `model`; returns it with its API token, which is never shown again.

    The token expires at `token_expires_at` (default: MF_CONSUMER_TOKEN_DAYS from now). The
    consumer's webhook secret (when it has a webhook) is readable once, on the returned object.
    """
    if not consumer_may_create(actor=actor, model=model):
        raise PermissionDenied("Only the model's owner or a registry admin may register consumers.")
    if token_expires_at is not None:
        _check_token_expiry(token_expires_at)
    token, prefix, digest = _new_token()
    consumer = Consumer(
        model=model,
        name=name,
        owner=owner or actor,
        description=description,
        contact_email=contact_email,
        webhook_url=webhook_url,
        webhook_secret=secrets.token_hex(32) if webhook_url else "",
        pinned_version=pinned_version,
        token_prefix=prefix,
        token_hash=digest,
        token_expires_at=token_expires_at or default_token_expiry(),
    )
    errors: dict[str, list[str]] = {}
    try:
        validate_slug(name)
    except ValidationError:
        errors.setdefault("name", []).append("Use letters, numbers, hyphens and underscores only.")
    else:
        if Consumer.objects.filter(model=model, name=name).exists():
            errors.setdefault("name", []).append(f"{model.name} already has a consumer named {name!r}.")
    _check_consumer(consumer, errors)
    _save_consumer(consumer, errors)
    audit_event_create(
        actor=actor,
        action="consumer.created",
        model=model,
        version=pinned_version,
        new=_consumer_snapshot(consumer),
    )
    return consumer, token


@transaction.atomic
def consumer_update(
    *,
    actor: Any,
    consumer: Consumer,
    description: str | None = None,
    contact_email: str | None = None,
    webhook_url: str | None = None,
    pinned_version: ModelVersion | Literal[_Unchanged.UNCHANGED] | None = UNCHANGED,
    active: bool | None = None,
    reason: str = "",
) -> Consumer:
    """Change what is given (None leaves a field as it is; `pinned_version=None` unpins).

    Setting a webhook URL on a consumer without a secret creates one; the caller shows it once.
    """
    if not consumer_may_manage(actor=actor, consumer=consumer):
        raise PermissionDenied("Only the owner of the model or of the consumer may change it.")
    old = _consumer_snapshot(consumer)
    if description is not None:
        consumer.description = description
    if contact_email is not None:
        consumer.contact_email = contact_email
    if webhook_url is not None:
        consumer.webhook_url = webhook_url
        if webhook_url and not consumer.webhook_secret:
            consumer.webhook_secret = secrets.token_hex(32)
    # A pin made before its version was deprecated stays valid for other changes: the consumer
    # must still be able to fix its contact details. Only a new pin is checked.
    new_pin = pinned_version is not UNCHANGED and pinned_version != consumer.pinned_version
    if pinned_version is not UNCHANGED:
        consumer.pinned_version = pinned_version
    if active is not None:
        consumer.active = active
    errors: dict[str, list[str]] = {}
    _check_consumer(consumer, errors, check_pin=new_pin)
    _save_consumer(consumer, errors)
    new = _consumer_snapshot(consumer)
    changed = sorted(key for key in new if new[key] != old[key])
    if changed:
        audit_event_create(
            actor=actor,
            action="consumer.updated",
            model=consumer.model,
            old={key: old[key] for key in changed},
            new={key: new[key] for key in changed},
            reason=reason,
        )
    return consumer


def consumer_deactivate(*, actor: Any, consumer: Consumer, reason: str = "") -> Consumer:
    return consumer_update(actor=actor, consumer=consumer, active=False, reason=reason)


def _token_snapshot(consumer: Consumer) -> dict[str, Any]:
    # The prefix tells tokens apart; the hash never goes into the audit log.
    return {
        "name": consumer.name,
        "token_prefix": consumer.token_prefix,
        "token_expires_at": consumer.token_expires_at.isoformat() if consumer.token_expires_at else None,
        "token_revoked_at": consumer.token_revoked_at.isoformat() if consumer.token_revoked_at else None,
    }


@transaction.atomic
def consumer_rotate_token(
    *, actor: Any, consumer: Consumer, reason: str = "", expires_at: datetime.datetime | None = None
) -> str:
    """Replace the consumer's API token; the old one stops working at once (revoked or not, the new
    one works). It expires at `expires_at`, default MF_CONSUMER_TOKEN_DAYS from now. Returns it."""
    if not consumer_may_manage(actor=actor, consumer=consumer):
        raise PermissionDenied("Only the owner of the model or of the consumer may rotate its token.")
    if expires_at is not None:
        _check_token_expiry(expires_at)
    old = _token_snapshot(consumer)
    token, consumer.token_prefix, consumer.token_hash = _new_token()
    consumer.token_expires_at = expires_at or default_token_expiry()
    consumer.token_revoked_at = None
    consumer.save(update_fields=["token_prefix", "token_hash", "token_expires_at", "token_revoked_at"])
    audit_event_create(
        actor=actor,
        action="consumer.token_rotated",
        model=consumer.model,
        old=old,
        new=_token_snapshot(consumer),
        reason=reason,
    )
    return token


@transaction.atomic
def consumer_revoke_token(*, actor: Any, consumer: Consumer, reason: str = "") -> Consumer:
    """Revoke the consumer's token: it stops working (within MF_CONSUMER_TOKEN_CACHE_SECONDS in
    every web process) until its owner rotates it. The consumer itself stays registered."""
    if not consumer_may_manage(actor=actor, consumer=consumer):
        raise PermissionDenied("Only the owner of the model or of the consumer may revoke its token.")
    # Compare-and-set, so that two revocations at once write one audit row, not two.
    revoked_at = timezone.now()
    if not Consumer.objects.filter(pk=consumer.pk, token_revoked_at=None).update(token_revoked_at=revoked_at):
        consumer.refresh_from_db()
        return consumer
    old = _token_snapshot(consumer)
    consumer.token_revoked_at = revoked_at
    audit_event_create(
        actor=actor,
        action="consumer.token_revoked",
        model=consumer.model,
        old=old,
        new=_token_snapshot(consumer),
        reason=reason,
    )
    return consumer


@transaction.atomic
def consumer_set_token_expiry(
    *, actor: Any, consumer: Consumer, expires_at: datetime.datetime, reason: str = ""
) -> Consumer:
    """Move the current token's expiry (earlier, to phase it out; later, to extend it)."""
    if not consumer_may_manage(actor=actor, consumer=consumer):
        raise PermissionDenied("Only the owner of the model or of the consumer may change its token's expiry.")
    _check_token_expiry(expires_at)
    old = _token_snapshot(consumer)
    consumer.token_expires_at = expires_at
    consumer.save(update_fields=["token_expires_at"])
    audit_event_create(
        actor=actor,
        action="consumer.token_expiry_changed",
        model=consumer.model,
        old=old,
        new=_token_snapshot(consumer),
        reason=reason,
    )
    return consumer


# --- notifying consumers --------------------------------------------------------------------


def _send_consumer_email(*, address: str, subject: str, message: str) -> None:
    send_mail(subject, message, settings.DEFAULT_FROM_EMAIL, [address])


def _after_commit(callback: Callable[..., object], /, **kwargs: Any) -> None:
    """Run `callback(**kwargs)` after commit; a failure there is logged and never undoes the change."""

    def run() -> None:
        callback(**kwargs)

    # Django names the callback when logging its failure; a closure (or a partial) would read as noise.
    run.__qualname__ = getattr(callback, "__qualname__", repr(callback))
    transaction.on_commit(run, robust=True)


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
    # Imported here because the task module imports this one to do its work.
    from registry.notification_tasks import deliver_webhook

    sent_at = timezone.now()
    # Round-trip through the exact serialisation so the stored payload is what gets signed and sent.
    # The envelope's keys come last: a payload cannot disguise which event or model this is.
    envelope = json.loads(webhook_body({**payload, "event": event, "model": model.name, "sent_at": sent_at}))
    deliveries = []
    for consumer in model.consumers.filter(active=True).order_by("name"):
        if consumer.contact_email:
            footer = f"\n\n--\nYou receive this as the contact of {consumer.name}, a consumer of {model.name}."
            _after_commit(
                _send_consumer_email, address=consumer.contact_email, subject=subject, message=message + footer
            )
        if consumer.webhook_url:
            delivery = WebhookDelivery.objects.create(consumer=consumer, event=event, payload=envelope)
            _after_commit(deliver_webhook.delay, delivery_id=delivery.pk)
            deliveries.append(delivery)
    return deliveries


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


# --- in-app notifications -------------------------------------------------------------------


def notify_users(*, users: Iterable[Any], message: str, url: str = "") -> None:
    """One unread in-app notification per distinct user."""
    if len(message) > _NOTIFICATION_MESSAGE_LENGTH:
        # A notification is a pointer to the page with the details; a shortened one still does its job.
        message = message[: _NOTIFICATION_MESSAGE_LENGTH - 1] + "…"
    user_ids = list(dict.fromkeys(user.pk for user in users if user is not None and user.pk))
    now = timezone.now()
    Notification.objects.bulk_create(
        Notification(user_id=user_id, message=message, url=url, created_at=now) for user_id in user_ids
    )


def notification_mark_read(*, user: Any, notification_ids: Iterable[int] | None = None) -> int:
    """Mark the user's unread notifications (all, or those given) read; returns how many changed."""
    unread = Notification.objects.filter(user_id=user.pk, read_at__isnull=True)
    if notification_ids is not None:
        unread = unread.filter(pk__in=list(notification_ids))
    return unread.update(read_at=timezone.now())


# --- selectors ------------------------------------------------------------------------------


def consumer_list(*, model: RegisteredModel) -> QuerySet[Consumer]:
    return model.consumers.select_related("model", "owner", "pinned_version").order_by("name")


def consumer_get(*, model: RegisteredModel, name: str) -> Consumer:
    return get_object_or_404(consumer_list(model=model), name=name)


def delivery_list(*, consumer: Consumer) -> QuerySet[WebhookDelivery]:
    return consumer.deliveries.order_by("-created_at", "-id")


def notification_list(*, user: Any, unread_only: bool = False) -> QuerySet[Notification]:
    """The user's notifications, unread first, newest first within each group."""
    notifications = Notification.objects.filter(user_id=user.pk).alias(
        unread=ExpressionWrapper(Q(read_at__isnull=True), output_field=BooleanField())
    )
    if unread_only:
        notifications = notifications.filter(read_at__isnull=True)
    return notifications.order_by("-unread", "-created_at", "-id")


def unread_notifications(user: Any) -> QuerySet[Notification]:
    return notification_list(user=user, unread_only=True)
