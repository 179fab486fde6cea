"""The in-app notifications page: reading it marks them read."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from registry import notifications


@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    items = list(request.user.notifications.all()[:100])  # type: ignore[union-attr]
    response = render(request, "registry/notifications.html", {"items": items})
    notifications.notification_mark_read(user=request.user)
    return response
