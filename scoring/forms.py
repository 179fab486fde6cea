"""Forms of the batch scoring pages; the services check everything again and name bad fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django_celery_beat.models import PeriodicTask

from registry import schedules
from registry.choices import VersionStatus
from registry.forms import form_apply_errors
from registry.models import RegisteredModel
from scoring.batch.services import DEFAULT_CHUNK_ROWS, MAX_CHUNK_ROWS
from scoring.batch.sources import batch_input_dir, scoring_databases
from scoring.models import BatchJob


class BatchJobForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="Letters, digits, hyphens, e.g. nightly-churn")
    input_kind = forms.ChoiceField(
        label="Input", choices=BatchJob.InputKind.choices, initial=BatchJob.InputKind.UPLOAD, widget=forms.RadioSelect
    )
    input_file = forms.FileField(label="File (CSV or Parquet)", required=False)
    input_path = forms.CharField(label="Path on the server", required=False, max_length=500)
    sql_connection = forms.ChoiceField(label="Database", required=False)
    sql_query = forms.CharField(
        label="SQL query (one SELECT)", required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    entity_column = forms.CharField(max_length=200, help_text="The column that identifies each row, e.g. customer_id")
    pinned_version = forms.TypedChoiceField(
        label="Version",
        required=False,
        coerce=int,
        empty_value=None,
        help_text="Production: whichever is live at run time",
    )
    chunk_rows = forms.IntegerField(
        label="Rows per chunk", initial=DEFAULT_CHUNK_ROWS, min_value=1, max_value=MAX_CHUNK_ROWS
    )
    write_parquet = forms.BooleanField(label="Also write the scores to a Parquet file", required=False)

    def __init__(self, *args: Any, model: RegisteredModel, **kwargs: Any):
        super().__init__(*args, **kwargs)
        databases = sorted(scoring_databases())
        self.fields["sql_connection"].choices = [("", "—")] + [(name, name) for name in databases]  # type: ignore[attr-defined]
        servable = model.versions.filter(status__in=VersionStatus.SERVABLE).order_by("-number")
        self.fields["pinned_version"].choices = [("", "The production version")] + [  # type: ignore[attr-defined]
            (version.number, f"Version {version.number} ({version.get_status_display().lower()})")
            for version in servable
        ]
        self.fields["input_path"].help_text = f"Relative to {batch_input_dir()}"


class ScheduleForm(forms.Form):
    KIND_CHOICES = [("cron", "Cron expression"), ("interval", "Every N minutes"), ("none", "No schedule")]

    kind = forms.ChoiceField(label="Schedule", choices=KIND_CHOICES, initial="none", widget=forms.RadioSelect)
    crontab = forms.CharField(
        label="Cron", required=False, max_length=200, help_text="minute hour day-of-month month day-of-week (UTC)"
    )
    every_minutes = forms.IntegerField(label="Every (minutes)", required=False, min_value=1)
    enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    @classmethod
    def for_task(cls, task: PeriodicTask | None, prefix: str | None = None) -> ScheduleForm:
        """The form filled with a job's or a model's current schedule."""
        schedule = schedules.describe(task)
        if schedule is None:
            return cls(initial={"kind": "none", "enabled": True}, prefix=prefix)
        return cls(
            initial={
                "kind": "cron" if schedule["crontab"] else "interval",
                "crontab": schedule["crontab"] or "",
                "every_minutes": schedule["every_minutes"],
                "enabled": schedule["enabled"],
            },
            prefix=prefix,
        )


def schedule_form_apply(
    form: ScheduleForm,
    *,
    what: str,
    unscheduled: str,
    set_schedule: Callable[..., PeriodicTask | None],
    unset_schedule: Callable[[], object],
) -> str | None:
    """Set or clear the schedule a posted ScheduleForm describes, through the caller's services.

    `set_schedule(crontab=, every_minutes=, enabled=)` returns the beat row now in place. Returns the
    success message ("<what> now runs ...", or "<what> <unscheduled>."), or None with the errors on the
    form: its own, and those of the service (a refusal as a form-wide error).
    """
    if not form.is_valid():
        return None
    data = form.cleaned_data
    try:
        if data["kind"] == "none":
            unset_schedule()
            return f"{what} {unscheduled}."
        task = set_schedule(
            crontab=data["crontab"] if data["kind"] == "cron" else None,
            every_minutes=data["every_minutes"] if data["kind"] == "interval" else None,
            enabled=data["enabled"],
        )
    except ValidationError as exc:
        if data["kind"] == "interval" and "crontab" in getattr(exc, "message_dict", {}):
            form.add_error("every_minutes", "Give the number of minutes between runs.")
        else:
            form_apply_errors(form, exc)
        return None
    except PermissionDenied as exc:
        form.add_error(None, str(exc))
        return None
    described = schedules.describe(task) or {}
    state = "" if data["enabled"] else " (disabled)"
    return f"{what} now runs {described.get('description', '')}{state}."
