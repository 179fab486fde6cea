"""The applications that consume a model: registering, changing and deactivating them.

A consumer is created with its API token (registry/tokens.py manages it afterwards). Writes follow the
registry's services: keyword-only, one transaction, an audit event with what changed.
"""

from __future__ import annotations

import datetime
import enum
import secrets
from typing import Any, Final, Literal

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email, validate_slug
from django.db import IntegrityError, transaction

from registry import permissions, selectors
from registry.audit import audit_event_create
from registry.choices import AuditAction, VersionStatus
from registry.models import Consumer, ModelVersion, RegisteredModel
from registry.tokens import check_token_expiry, default_token_expiry, new_token

_http_url = URLValidator(schemes=["http", "https"])


class _Unchanged(enum.Enum):
    UNCHANGED = enum.auto()


# "Leave the pinned version as it is", distinct from None, which unpins.
UNCHANGED: Final = _Unchanged.UNCHANGED


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
    permissions.require_create_consumer(actor, model)
    if token_expires_at is not None:
        check_token_expiry(token_expires_at)
    token, prefix, digest = new_token()
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
        action=AuditAction.CONSUMER_CREATED,
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
    permissions.require_manage_consumer(actor, consumer)
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
            action=AuditAction.CONSUMER_UPDATED,
            model=consumer.model,
            old={key: old[key] for key in changed},
            new={key: new[key] for key in changed},
            reason=reason,
        )
    return consumer


def consumer_deactivate(*, actor: Any, consumer: Consumer, reason: str = "") -> Consumer:
    return consumer_update(actor=actor, consumer=consumer, active=False, reason=reason)
