"""Reading the audit trail back: filters for pages and the API, and a spreadsheet-safe CSV export."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from registry.models import AuditEvent

CSV_HEADER = ["id", "at", "actor", "action", "model", "version", "old", "new", "reason"]
# A cell starting with one of these is a formula to Excel and LibreOffice (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


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


def spreadsheet_safe(value: Any) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return f"'{text}" if text.startswith(_FORMULA_PREFIXES) else text


def csv_row(event: AuditEvent) -> list[str]:
    values = [
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
    return [spreadsheet_safe(value if not isinstance(value, int) else str(value)) for value in values]


class _Echo:
    """csv.writer needs a file; this one hands each row back to be streamed."""

    def write(self, value: str) -> str:
        return value


def _csv_rows(events: Iterator[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for event in events:
        yield writer.writerow(csv_row(event))


def csv_response(events: QuerySet[AuditEvent]) -> StreamingHttpResponse:
    """Streamed, so an export of millions of rows never sits in memory."""
    response = StreamingHttpResponse(_csv_rows(events.iterator(chunk_size=2000)), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response
