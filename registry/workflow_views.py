"""Pages of the reviewer's day: the inbox, and the forms of the version page's review panel (sign-offs,
checks, comments)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from config.api import ConflictError
from registry import check_runs, comments, selectors, workflow
from registry.choices import VersionStatus
from registry.forms import flash_errors
from registry.models import ModelVersion


@require_POST
def version_transition(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = selectors.version_get(model_name=name, number=number)
    action = request.POST.get("action", "")
    try:
        version = workflow.version_transition(
            actor=request.user, version=version, action=action, comment=request.POST.get("comment", "")
        )
    except (PermissionDenied, ValidationError, ConflictError) as exc:
        flash_errors(request, exc)
    else:
        messages.success(request, _transition_message(version, action))
    return redirect(version)


@require_POST
def version_run_checks(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = selectors.version_get(model_name=name, number=number)
    try:
        check_runs.checks_request(actor=request.user, version=version)
    except (PermissionDenied, ValidationError, ConflictError) as exc:
        flash_errors(request, exc)
    else:
        messages.success(request, "The pre-deployment checks are running; this page shows them when they finish.")
    return redirect(f"{version.get_absolute_url()}#checks")


@require_POST
def version_comment(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = selectors.version_get(model_name=name, number=number)
    parent_id = request.POST.get("parent", "")
    parent = selectors.comment_get(version=version, comment_id=int(parent_id)) if parent_id.isdigit() else None
    try:
        comments.comment_create(actor=request.user, version=version, body=request.POST.get("body", ""), parent=parent)
    except (PermissionDenied, ValidationError) as exc:
        flash_errors(request, exc)
    return redirect(f"{version.get_absolute_url()}#comments")


@require_GET
def review_inbox(request: HttpRequest) -> HttpResponse:
    """Versions waiting for this user: approvals to give, go-lives to sign, own versions sent back."""
    inbox = selectors.review_inbox(user=request.user)
    return render(
        request,
        "registry/review_inbox.html",
        {"waiting": inbox.waiting, "mine": inbox.mine, "now": timezone.now()},
    )


def _transition_message(version: ModelVersion, action: str) -> str:
    """What the transition did: an approval short of the quorum says so, and who may give the next one."""
    if action == "approve" and version.status == VersionStatus.IN_REVIEW:
        given = selectors.round_approvals(version=version).count()
        names = [user.get_full_name() or user.username for user in selectors.approvers_left(version=version)]
        who = f" May still approve: {', '.join(names)}." if names else " No other reviewer may approve yet."
        return f"Approval recorded ({given} of {workflow.approvals_needed(version)}) for {version}.{who}"
    label = workflow.TRANSITIONS[action].label
    return f"{label}: {version} is now {version.get_status_display().lower()}."
