"""Pages that read the audit trail back: the log with its CSV export, and what was in production when."""

from __future__ import annotations

from datetime import datetime

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.http import require_GET

from registry import audit, selectors


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
            answer = audit.production_at(model=model, at=at)
    return render(request, "registry/production_at.html", {"model": model, "answer": answer, "error": error, "t": raw})
