"""Applications authenticate as their consumer: `Authorization: Bearer mfc_...` (or `Token mfc_...`).

A token is refused with 401 and the reason (unknown, revoked, expired, consumer deactivated). The
consumer behind a token is cached per process for MF_CONSUMER_TOKEN_CACHE_SECONDS, so a revocation
takes up to that long to reach every web process; expiry is checked against the clock on every request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from registry import tokens
from registry.models import Consumer


class ConsumerPrincipal:
    """request.user for a consumer token: authenticated, but with no user permissions."""

    is_authenticated = True
    is_consumer = True  # how config.access, which imports no app, tells a consumer token from a user
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, consumer: Consumer):
        self.consumer = consumer
        self.username = f"consumer:{consumer.name}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def __str__(self) -> str:
        return self.username


_cache: dict[str, tuple[Consumer | None, float]] = {}
_cache_lock = threading.Lock()


def _consumer(token: str) -> Consumer | None:
    """The consumer holding `token` in any state (the caller asks whether it may be used)."""
    key = hashlib.sha256(token.encode()).hexdigest()
    now = time.monotonic()
    cached = _cache.get(key)
    if cached is not None and cached[1] > now:
        return cached[0]
    consumer = tokens.consumer_token_holder(token)
    with _cache_lock:
        _cache[key] = (consumer, now + settings.MF_CONSUMER_TOKEN_CACHE_SECONDS)
    return consumer


class ConsumerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ConsumerPrincipal, str] | None:
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() not in (b"bearer", b"token"):
            return None
        token = parts[1].decode(errors="replace")
        if not token.startswith(tokens.TOKEN_PREFIX):
            return None  # a user's token: TokenAuthentication takes it
        consumer = _consumer(token)
        if consumer is None:
            raise exceptions.AuthenticationFailed("Unknown consumer token (it may have been replaced by a new one).")
        refusal = consumer.token_refusal()
        if refusal:
            raise exceptions.AuthenticationFailed(refusal)
        return ConsumerPrincipal(consumer), token

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class ConsumerTokenScheme(OpenApiAuthenticationExtension):
    """Documents consumer tokens in the OpenAPI schema (drf-spectacular finds it on import)."""

    target_class = ConsumerTokenAuthentication
    name = "consumerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": f"A consumer token ({tokens.TOKEN_PREFIX}…), issued on the model's page.",
        }


class ConsumerRateThrottle(SimpleRateThrottle):
    """Per consumer, at the consumer's own rate or MF_CONSUMER_RATE_LIMIT; users are not limited here."""

    scope = "consumer"
    cache = caches["throttle"]

    def allow_request(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, ConsumerPrincipal):
            return True
        if principal.consumer.rate_limit:
            self.rate = principal.consumer.rate_limit
            self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        principal = request.user
        if not isinstance(principal, ConsumerPrincipal):
            return None
        return f"throttle:consumer:{principal.consumer.pk}"
