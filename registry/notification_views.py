"""The in-app notifications page. Opening it marks nothing read: the user does, one or all at a time, so
that a notification glanced at in passing is still there to act on."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from registry import notifications


@require_http_methods(["GET", "POST"])
def notification_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        chosen = request.POST.get("id", "")
        if chosen != "all" and not chosen.isdigit():
            messages.error(request, "id: choose a notification, or all of them, to mark read.")
            return redirect("registry:notifications")
        changed = notifications.notification_mark_read(
            user=request.user, notification_ids=None if chosen == "all" else [int(chosen)]
        )
        messages.success(request, f"{changed} notification{'' if changed == 1 else 's'} marked read.")
        return redirect("registry:notifications")
    items = list(request.user.notifications.all()[:100])  # type: ignore[union-attr]
    unread = sum(item.read_at is None for item in items)
    return render(request, "registry/notifications.html", {"items": items, "unread": unread})
