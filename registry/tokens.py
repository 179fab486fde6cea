"""Consumers' API tokens: issuing, rotating, revoking and expiring them, and finding the consumer behind one.

Only a token's sha256 is stored; the token itself is shown once, when it is issued.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import secrets
from typing import Any, Final

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from registry import permissions
from registry.audit import audit_event_create
from registry.choices import AuditAction
from registry.models import Consumer

# Not a secret: it makes a leaked token recognisable to secret scanners and to consumer_for_token.
TOKEN_PREFIX: Final = "mfc_"  # noqa: S105
TOKEN_PREFIX_LENGTH: Final = 12


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str, str]:
    """A fresh token, its prefix (shown in lists to tell tokens apart) and its sha256."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token[:TOKEN_PREFIX_LENGTH], _token_hash(token)


def default_token_expiry() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(days=settings.MF_CONSUMER_TOKEN_DAYS)


def check_token_expiry(expires_at: datetime.datetime) -> None:
    if expires_at <= timezone.now():
        raise ValidationError({"token_expires_at": ["Must be in the future."]})


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


def _token_snapshot(consumer: Consumer) -> dict[str, Any]:
    # The prefix tells tokens apart; the hash never goes into the audit log.
    return {
        "name": consumer.name,
        "token_prefix": consumer.token_prefix,
        "token_expires_at": consumer.token_expires_at.isoformat() if consumer.token_expires_at else None,
        "token_revoked_at": consumer.token_revoked_at.isoformat() if consumer.token_revoked_at else None,
    }


def _audit_token_change(
    *, actor: Any, consumer: Consumer, action: AuditAction, old: dict[str, Any], reason: str
) -> None:
    audit_event_create(
        actor=actor, action=action, model=consumer.model, old=old, new=_token_snapshot(consumer), reason=reason
    )


@transaction.atomic
def consumer_rotate_token(
    *, actor: Any, consumer: Consumer, reason: str = "", expires_at: datetime.datetime | None = None
) -> str:
    """Replace the consumer's API token; the old one stops working at once (revoked or not, the new
    one works). It expires at `expires_at`, default MF_CONSUMER_TOKEN_DAYS from now. Returns it."""
    if not permissions.may_manage_consumer(actor, consumer):
        raise PermissionDenied("Only the owner of the model or of the consumer may rotate its token.")
    if expires_at is not None:
        check_token_expiry(expires_at)
    old = _token_snapshot(consumer)
    token, consumer.token_prefix, consumer.token_hash = new_token()
    consumer.token_expires_at = expires_at or default_token_expiry()
    consumer.token_revoked_at = None
    consumer.save(update_fields=["token_prefix", "token_hash", "token_expires_at", "token_revoked_at"])
    _audit_token_change(
        actor=actor, consumer=consumer, action=AuditAction.CONSUMER_TOKEN_ROTATED, old=old, reason=reason
    )
    return token


@transaction.atomic
def consumer_revoke_token(*, actor: Any, consumer: Consumer, reason: str = "") -> Consumer:
    """Revoke the consumer's token: it stops working (within MF_CONSUMER_TOKEN_CACHE_SECONDS in
    every web process) until its owner rotates it. The consumer itself stays registered."""
    if not permissions.may_manage_consumer(actor, consumer):
        raise PermissionDenied("Only the owner of the model or of the consumer may revoke its token.")
    # Compare-and-set, so that two revocations at once write one audit row, not two.
    revoked_at = timezone.now()
    if not Consumer.objects.filter(pk=consumer.pk, token_revoked_at=None).update(token_revoked_at=revoked_at):
        consumer.refresh_from_db()
        return consumer
    old = _token_snapshot(consumer)
    consumer.token_revoked_at = revoked_at
    _audit_token_change(
        actor=actor, consumer=consumer, action=AuditAction.CONSUMER_TOKEN_REVOKED, old=old, reason=reason
    )
    return consumer


@transaction.atomic
def consumer_set_token_expiry(
    *, actor: Any, consumer: Consumer, expires_at: datetime.datetime, reason: str = ""
) -> Consumer:
    """Move the current token's expiry (earlier, to phase it out; later, to extend it)."""
    if not permissions.may_manage_consumer(actor, consumer):
        raise PermissionDenied("Only the owner of the model or of the consumer may change its token's expiry.")
    check_token_expiry(expires_at)
    old = _token_snapshot(consumer)
    consumer.token_expires_at = expires_at
    consumer.save(update_fields=["token_expires_at"])
    _audit_token_change(
        actor=actor, consumer=consumer, action=AuditAction.CONSUMER_TOKEN_EXPIRY_CHANGED, old=old, reason=reason
    )
    return consumer
