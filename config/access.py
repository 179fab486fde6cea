"""Signing in is not enough: pages and the API need a role.

An account in no group (created by single sign-on, or someone whose groups were taken away) must not
read models, download artifacts and notebooks, or see the audit trail. Every role holds
`registry.view_registeredmodel`, so that permission is the test for "has a role"; what each role may
do beyond reading is checked by the services. Consumer tokens are not users: only the scoring,
scores and actuals endpoints accept them, and those check the token's model themselves.

A module of its own, importing no DRF views: REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"] names it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from rest_framework.permissions import BasePermission

ROLE_PERMISSION = "registry.view_registeredmodel"

# Pages for anyone signed in, role or not: their own notifications, and signing out.
NO_ROLE_PAGES = frozenset({"logout", "registry:notifications"})


def has_role(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.has_perm(ROLE_PERMISSION))


def _is_consumer(user: Any) -> bool:
    # Marked by scoring's ConsumerPrincipal: config sits below the apps and imports none of them.
    return bool(getattr(user, "is_consumer", False))


class HasRole(BasePermission):
    """The API's default: a signed-in user with a role, or a consumer token (on views that accept one)."""

    message = "Your account has no role in Model Factory; ask an administrator for one."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return False  # DRF answers 401 (no credentials) rather than 403
        return _is_consumer(user) or has_role(user)


class RoleRequiredMiddleware:
    """Pages: after PagesLoginRequiredMiddleware has sent strangers to the login page, 403 for a
    signed-in account with no role. The admin site checks is_staff and its own permissions."""

    def __init__(self, get_response: Any):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = self.get_response(request)
        return response

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        if request.path_info.startswith("/api/") or not getattr(view_func, "login_required", True):
            return None
        match = request.resolver_match
        if match is not None and (match.namespace == "admin" or match.view_name in NO_ROLE_PAGES):
            return None
        if request.user.is_authenticated and not has_role(request.user):
            raise PermissionDenied("Your account has no role in Model Factory; ask an administrator for one.")
        return None
