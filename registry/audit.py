"""The audit trail: its one writer (rows are only ever added), and reading it back for pages, the API and
a spreadsheet-safe CSV export, and for what only the trail can prove: what was in production when, and the
quorum a review round was submitted with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from registry import csv_export
from registry.choices import AuditAction
from registry.models import AuditEvent, CheckRun, ModelVersion, RegisteredModel, SignOff

# Set while a process acts on a person's behalf (`system_action`): every audit row written meanwhile names it.
_VIA: ContextVar[str] = ContextVar("audit_via", default="")


@contextmanager
def system_action(description: str) -> Iterator[None]:
    """Audit rows written inside are marked as made by `description` (a process and its trigger), on
    behalf of their actor, so that the trail never credits a person with what a machine did."""
    token = _VIA.set(description[:200])
    try:
        yield
    finally:
        _VIA.reset(token)


def audit_event_create(
    *,
    actor: Any,
    action: str,
    model: RegisteredModel | None = None,
    version: ModelVersion | None = None,
    old: Any = None,
    new: Any = None,
    reason: str = "",
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        model=model or (version.model if version else None),
        version=version,
        old=old,
        new=new,
        reason=reason,
        via=_VIA.get(),
    )


CSV_HEADER = ["id", "at", "actor", "action", "model", "version", "old", "new", "reason", "via"]


def event_list(
    *,
    model: str = "",
    version: int | None = None,
    action: str = "",
    actor: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("actor", "model", "version").order_by("-at", "-id")
    if model:
        events = events.filter(model__name=model)
    if version is not None:
        events = events.filter(version__number=version)
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor__username=actor)
    if since is not None:
        events = events.filter(at__gte=since)
    if until is not None:
        events = events.filter(at__lt=until)
    return events


def csv_row(event: AuditEvent) -> list[Any]:
    return [
        event.pk,
        event.at.isoformat(),
        event.actor.username if event.actor else "system",
        event.action,
        event.model.name if event.model else "",
        event.version.number if event.version else "",
        event.old,
        event.new,
        event.reason,
        event.via,
    ]


def csv_response(events: QuerySet[AuditEvent]) -> StreamingHttpResponse:
    """Streamed through the shared spreadsheet-safe writer (CSV injection is neutralised there)."""
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    rows = (csv_row(event) for event in events.iterator(chunk_size=2000))
    return csv_export.csv_response(header=CSV_HEADER, rows=rows, filename=f"audit-{stamp}.csv")


# --- the history the trail proves ----------------------------------------------------------------


def production_history(*, model: RegisteredModel) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(model=model, action=AuditAction.MODEL_PRODUCTION_CHANGED).select_related("actor")


def quorum_at_submission(version: ModelVersion) -> int | None:
    """The approvals the model needed when the current review round was submitted, if the trail says."""
    submitted = (
        AuditEvent.objects.filter(
            version=version, action=AuditAction.VERSION_SUBMIT, new__review_round=version.review_round
        )
        .order_by("-at", "-id")
        .values_list("new", flat=True)
        .first()
    )
    if isinstance(submitted, dict) and isinstance(submitted.get("approvals_needed"), int):
        return int(submitted["approvals_needed"])
    return None


@dataclass
class ProductionAt:
    model: RegisteredModel
    at: datetime
    version: ModelVersion | None
    since: datetime | None
    event: AuditEvent | None
    signoffs: list[SignOff]
    checks: CheckRun | None


def production_at(*, model: RegisteredModel, at: datetime) -> ProductionAt:
    """What was in production at `at`, since when, who signed it and on what evidence."""
    event = (
        AuditEvent.objects.filter(model=model, action=AuditAction.MODEL_PRODUCTION_CHANGED, at__lte=at)
        .select_related("actor", "version")
        .order_by("-at", "-id")
        .first()
    )
    number = (event.new or {}).get("version") if event else None
    version = model.versions.filter(number=number).first() if number else None
    signoffs: list[SignOff] = []
    checks = None
    if version is not None and event is not None:
        went_live = version.signoffs.filter(kind__in=[SignOff.Kind.GO_LIVE, SignOff.Kind.ROLLBACK], at__lte=event.at)
        last_go_live = went_live.order_by("-at").first()
        approvals = version.signoffs.filter(kind=SignOff.Kind.APPROVAL, at__lte=event.at)
        if last_go_live is not None:
            approvals = approvals.filter(review_round=last_go_live.review_round)
        signoffs = [*approvals.select_related("user"), *([last_go_live] if last_go_live else [])]
        checks = (
            version.check_runs.filter(status=CheckRun.Status.PASSED, finished_at__lte=event.at)
            .order_by("-finished_at")
            .first()
        )
    return ProductionAt(
        model=model,
        at=at,
        version=version,
        since=event.at if event else None,
        event=event,
        signoffs=signoffs,
        checks=checks,
    )
