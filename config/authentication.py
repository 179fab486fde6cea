"""How users authenticate to the API with a token (views in config/tokens.py).

A module of its own, importing no DRF views: REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] names it,
and DRF imports it while rest_framework.views is still loading.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework import exceptions


class UserTokenAuthentication(TokenAuthentication):
    """knox's token authentication, saying why a token is refused (expired tokens are deleted by knox,
    so a second attempt with the same token reads as unknown)."""

    def authenticate_credentials(self, token: bytes) -> tuple[Any, AuthToken]:
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


class UserTokenScheme(OpenApiAuthenticationExtension):
    """Documents user tokens in the OpenAPI schema (drf-spectacular finds it on import)."""

    target_class = UserTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")  # noqa: S106 - the scheme name
