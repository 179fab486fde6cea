"""Schedules that users edit in the app (batch jobs, monitoring reports, retraining), kept as
django-celery-beat rows.

Beat reads PeriodicTask rows, so a schedule changed in a page or in the admin takes effect without
a restart. One place parses cron text, saves the rows, describes them and audits their changes, for
every app.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Protocol

from celery import schedules
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from django_celery_beat.validators import crontab_validator

from registry.audit import audit_event_create
from registry.models import RegisteredModel

MAX_EVERY_MINUTES = 366 * 24 * 60


def crontab_fields(expression: str) -> dict[str, str]:
    parts = expression.split()
    if len(parts) != 5:
        raise ValidationError(
            {"crontab": ["Give five fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *'."]}
        )
    fields = dict(zip(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), parts, strict=True))
    try:
        crontab_validator(" ".join(parts))
        schedules.crontab(**fields)  # Celery's own parser too: beat must be able to run it
    except (ValidationError, ValueError) as exc:
        detail = "; ".join(getattr(exc, "messages", [str(exc)]))
        raise ValidationError({"crontab": [f"{expression!r} is not a valid schedule: {detail}"]}) from exc
    return fields


def describe(task: PeriodicTask | None) -> dict[str, Any] | None:
    """A schedule as shown and audited: cron text or minutes, enabled, next run."""
    if task is None:
        return None
    crontab, interval = task.crontab, task.interval
    expression = description = None
    if crontab is not None:
        expression = (
            f"{crontab.minute} {crontab.hour} {crontab.day_of_month} {crontab.month_of_year} {crontab.day_of_week}"
        )
        description = crontab.human_readable
    every = int(interval.every) if interval is not None else None
    return {
        "crontab": expression,
        "every_minutes": every,
        "enabled": task.enabled,
        "description": description or (f"every {every} minute{'s' if every != 1 else ''}" if every else ""),
        "next_run_at": next_run_at(task),
    }


def audited(task: PeriodicTask | None) -> dict[str, Any] | None:
    """What an audit row keeps of a schedule (not the derived next run and description)."""
    schedule = describe(task)
    if schedule is not None:
        schedule = {key: value for key, value in schedule.items() if key not in ("next_run_at", "description")}
    return schedule


def next_run_at(task: PeriodicTask | None, now: datetime | None = None) -> datetime | None:
    """When beat will next start the task (an estimate from its schedule and last run)."""
    if task is None or not task.enabled:
        return None
    now = now or timezone.now()
    if task.crontab is not None:
        remaining = task.crontab.schedule.remaining_estimate(task.last_run_at or now)
        # Cron times fall on whole minutes; the estimate is off by the microseconds it took to compute.
        estimate = now + max(remaining, timedelta(0)) + timedelta(seconds=30)
        return estimate.replace(second=0, microsecond=0)
    if task.interval is not None:
        return max((task.last_run_at or now) + timedelta(minutes=task.interval.every), now)
    return None


def _schedule_rows(
    crontab: str | None, every_minutes: int | None
) -> tuple[CrontabSchedule | None, IntervalSchedule | None]:
    """The shared beat schedule row for a cron expression or a number of minutes (exactly one of them)."""
    crontab = (crontab or "").strip() or None
    if (crontab is None) == (every_minutes is None):
        raise ValidationError({"crontab": ["Give either a cron expression or every_minutes (one of them)."]})
    cron_schedule: CrontabSchedule | None = None
    interval_schedule: IntervalSchedule | None = None
    if crontab is not None:
        fields = crontab_fields(crontab)
        zone = settings.CELERY_TIMEZONE
        # Schedules are shared rows; filter().first() because nothing stops duplicates existing.
        cron_schedule = CrontabSchedule.objects.filter(**fields, timezone=zone).first()
        if cron_schedule is None:
            cron_schedule = CrontabSchedule.objects.create(**fields, timezone=zone)
    else:
        assert every_minutes is not None  # narrowed by the either/or check above
        if not 1 <= every_minutes <= MAX_EVERY_MINUTES:
            raise ValidationError({"every_minutes": ["Must be a whole number of minutes, from 1 to a year."]})
        interval_schedule = IntervalSchedule.objects.filter(
            every=every_minutes, period=IntervalSchedule.MINUTES
        ).first()
        if interval_schedule is None:
            interval_schedule = IntervalSchedule.objects.create(every=every_minutes, period=IntervalSchedule.MINUTES)
    return cron_schedule, interval_schedule


class Scheduled(Protocol):
    """A row that owns a beat schedule (a batch job, a monitoring config, a retraining recipe)."""

    periodic_task: PeriodicTask | None

    def save(self, *, update_fields: list[str]) -> None: ...


def schedule_set(
    *,
    actor: Any,
    model: RegisteredModel,
    holder: Scheduled,
    action: str,
    name: str,
    task_name: str,
    args: list[Any],
    description: str,
    crontab: str | None,
    every_minutes: int | None,
    enabled: bool,
) -> None:
    """Give `holder` (locked by the caller) a schedule running `task_name(*args)`; audited as `action`."""
    old = audited(holder.periodic_task)
    cron_schedule, interval_schedule = _schedule_rows(crontab, every_minutes)
    name = name[:200]  # PeriodicTask names are at most 200 characters
    task = holder.periodic_task or PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
    task.name = name
    task.task = task_name
    task.args = json.dumps(args)
    task.kwargs = "{}"
    task.crontab = cron_schedule
    task.interval = interval_schedule
    task.enabled = enabled
    task.description = description
    task.save()  # save(), not update(): beat notices changes through PeriodicTask's save signal
    holder.periodic_task = task
    holder.save(update_fields=["periodic_task"])
    audit_event_create(actor=actor, action=action, model=model, old=old, new=audited(holder.periodic_task))


def schedule_clear(*, actor: Any, model: RegisteredModel, holder: Scheduled, action: str) -> None:
    """Remove `holder`'s schedule, audited as `action`; nothing happens, and nothing is audited, without one."""
    if holder.periodic_task is None:
        return
    old = audited(holder.periodic_task)
    holder.periodic_task.delete()
    holder.periodic_task = None  # the database link is cleared by on_delete=SET_NULL
    audit_event_create(actor=actor, action=action, model=model, old=old, new=None)
