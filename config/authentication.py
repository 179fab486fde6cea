"""How users authenticate to the API with a token (views in config/tokens.py).

A module of its own, importing no DRF views: REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] names it,
and DRF imports it while rest_framework.views is still loading.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework import exceptions

_cache: dict[str, tuple[Any, AuthToken, float]] = {}
_CACHE_PRUNE_SIZE = 1000
_cache_lock = threading.Lock()


class UserTokenAuthentication(TokenAuthentication):
    """knox's token authentication, saying why a token is refused (expired tokens are deleted by knox,
    so a second attempt with the same token reads as unknown), and remembered per process.

    knox costs four queries a request (the token, every token of its user for clean-up, then the user's
    and groups' permissions): on a one-row prediction that was more than the model. A token and its user
    (with its permissions, once read) are remembered for MF_USER_TOKEN_CACHE_SECONDS, as consumer tokens
    are: a revoked token, a deactivated account or a removed role reaches another web process within that
    many seconds (this process forgets at once on revocation); a token's expiry is checked on every request.
    """

    def authenticate_credentials(self, token: bytes) -> tuple[Any, AuthToken]:
        key = hashlib.sha256(token).hexdigest()
        now = time.monotonic()
        cached = _cache.get(key)
        if cached is not None and cached[2] > now:
            user, auth_token, _ = cached
            if auth_token.expiry is None or auth_token.expiry >= timezone.now():
                return user, auth_token
        user, auth_token = self._authenticate_with_knox(token)
        if settings.MF_USER_TOKEN_CACHE_SECONDS > 0:
            with _cache_lock:
                if len(_cache) >= _CACHE_PRUNE_SIZE:  # tokens come and go: never keep the stale ones for ever
                    for stale in [k for k, (_, _, until) in _cache.items() if until <= now]:
                        del _cache[stale]
                _cache[key] = (user, auth_token, now + settings.MF_USER_TOKEN_CACHE_SECONDS)
        return user, auth_token

    def _authenticate_with_knox(self, token: bytes) -> tuple[Any, AuthToken]:
        self.expired_at: Any = None
        try:
            return super().authenticate_credentials(token)
        except exceptions.AuthenticationFailed as exc:
            if self.expired_at is not None:
                raise exceptions.AuthenticationFailed(
                    f"Token expired at {self.expired_at:%Y-%m-%dT%H:%M:%SZ}; get a new one at POST /api/auth/token/."
                ) from exc
            if str(exc.detail) == "Invalid token.":
                raise exceptions.AuthenticationFailed(
                    "Invalid or revoked token; get a new one at POST /api/auth/token/."
                ) from exc
            raise

    def _cleanup_token(self, auth_token: AuthToken) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            self.expired_at = auth_token.expiry
        return super()._cleanup_token(auth_token)


def forget_user_tokens(user_id: Any) -> None:
    """Drop a user's remembered tokens from this process (their tokens were revoked)."""
    with _cache_lock:
        for key in [key for key, (user, _, _) in _cache.items() if user.pk == user_id]:
            del _cache[key]


class UserTokenScheme(OpenApiAuthenticationExtension):
    """Documents user tokens in the OpenAPI schema (drf-spectacular finds it on import)."""

    target_class = UserTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")  # noqa: S106 - the scheme name
