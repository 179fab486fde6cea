"""The audit trail: its one writer (rows are only ever added), and reading it back for pages, the API and
a spreadsheet-safe CSV export."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from registry import csv_export
from registry.models import AuditEvent, ModelVersion, RegisteredModel


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
    )


CSV_HEADER = ["id", "at", "actor", "action", "model", "version", "old", "new", "reason"]


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
    ]


def csv_response(events: QuerySet[AuditEvent]) -> StreamingHttpResponse:
    """Streamed through the shared spreadsheet-safe writer (CSV injection is neutralised there)."""
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    rows = (csv_row(event) for event in events.iterator(chunk_size=2000))
    return csv_export.csv_response(header=CSV_HEADER, rows=rows, filename=f"audit-{stamp}.csv")
