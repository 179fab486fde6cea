"""Pages of the reviewer's day: inbox, sign-off forms, comments, checks, audit log, notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.http import require_GET, require_POST

from config.api import ConflictError
from registry import audit, notifications, selectors, workflow
from registry.choices import VersionStatus
from registry.models import ModelVersion, SignOff


def _flash_errors(request: HttpRequest, exc: Exception) -> None:
    messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))


@require_POST
def version_transition(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = selectors.version_get(model_name=name, number=number)
    action = request.POST.get("action", "")
    try:
        version = workflow.version_transition(
            actor=request.user, version=version, action=action, comment=request.POST.get("comment", "")
        )
    except (PermissionDenied, ValidationError, ConflictError) as exc:
        _flash_errors(request, exc)
    else:
        transition = workflow.TRANSITIONS[action]
        messages.success(request, f"{transition.label}: {version} is now {version.get_status_display().lower()}.")
    return redirect(version)


@require_POST
def version_run_checks(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = selectors.version_get(model_name=name, number=number)
    try:
        workflow.checks_request(actor=request.user, version=version)
    except (PermissionDenied, ConflictError) as exc:
        _flash_errors(request, exc)
    else:
        messages.success(request, "The pre-deployment checks are running; this page shows them when they finish.")
    return redirect(f"{version.get_absolute_url()}#checks")


@require_POST
def version_comment(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = selectors.version_get(model_name=name, number=number)
    parent_id = request.POST.get("parent", "")
    parent = version.comments.filter(pk=parent_id).first() if parent_id.isdigit() else None
    try:
        workflow.comment_create(actor=request.user, version=version, body=request.POST.get("body", ""), parent=parent)
    except (PermissionDenied, ValidationError) as exc:
        _flash_errors(request, exc)
    return redirect(f"{version.get_absolute_url()}#comments")


@require_GET
def review_inbox(request: HttpRequest) -> HttpResponse:
    """Versions waiting for this user: approvals to give, go-lives to sign, own versions sent back."""
    user: Any = request.user
    waiting = ModelVersion.objects.none()
    if user.has_perm(workflow.REVIEW_PERMISSION):
        already = SignOff.objects.filter(
            kind=SignOff.Kind.APPROVAL, user=user, version=OuterRef("pk"), review_round=OuterRef("review_round")
        )
        waiting = waiting | ModelVersion.objects.filter(status=VersionStatus.IN_REVIEW).exclude(
            Q(author=user) | Q(Exists(already))
        )
    if user.has_perm(workflow.GO_LIVE_PERMISSION):
        waiting = waiting | ModelVersion.objects.filter(status=VersionStatus.CHECKS_PASSED).exclude(author=user)
    mine = ModelVersion.objects.filter(
        author=user, status__in=[VersionStatus.CHANGES_REQUESTED, VersionStatus.CHECKS_FAILED, VersionStatus.DRAFT]
    )
    now = timezone.now()
    return render(
        request,
        "registry/review_inbox.html",
        {
            "waiting": waiting.select_related("model", "author").order_by("status_changed_at"),
            "mine": mine.select_related("model").order_by("status_changed_at"),
            "now": now,
        },
    )


@require_GET
def audit_log(request: HttpRequest) -> HttpResponseBase:
    filters = {
        "model": request.GET.get("model", "").strip(),
        "action": request.GET.get("action", "").strip(),
        "actor": request.GET.get("actor", "").strip(),
    }
    raw_since, raw_until = request.GET.get("since", ""), request.GET.get("until", "")
    events = audit.event_list(
        model=filters["model"],
        action=filters["action"],
        actor=filters["actor"],
        since=_date(raw_since),
        until=_date(raw_until),
    )
    if request.GET.get("export") == "csv":
        return audit.csv_response(events)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "registry/audit_log.html",
        {"page": page, "filters": {**filters, "since": raw_since, "until": raw_until}},
    )


def _date(raw: str) -> datetime | None:
    day = parse_date(raw.strip()) if raw.strip() else None
    if day is None:
        return None
    return timezone.make_aware(datetime(day.year, day.month, day.day))


@require_GET
def production_at_page(request: HttpRequest, name: str) -> HttpResponse:
    model = selectors.model_get(name=name)
    raw = request.GET.get("t", "")
    answer = error = None
    if raw:
        try:
            at = parse_datetime(raw)
        except ValueError:
            at = None
        if at is None:
            error = "Give a date and time, e.g. 2026-11-23T09:30."
        else:
            at = at if timezone.is_aware(at) else timezone.make_aware(at)
            answer = workflow.production_at(model=model, at=at)
    return render(request, "registry/production_at.html", {"model": model, "answer": answer, "error": error, "t": raw})


@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    items = list(request.user.notifications.all()[:100])  # type: ignore[union-attr]
    response = render(request, "registry/notifications.html", {"items": items})
    notifications.notification_mark_read(user=request.user)
    return response
