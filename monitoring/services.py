"""Writes of monitoring: actuals as they arrive, alert rules, reports requested."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from monitoring import performance, queue
from monitoring.models import (
    Actual,
    AlertRule,
    EvidentlyReport,
    MonitoringConfig,
    Report,
    RetrainingRecipe,
    RetrainingRun,
)
from monitoring.permissions import require_configure_monitoring, require_record_actuals, require_request_reports
from monitoring.retraining import load_callable
from registry.audit import audit_event_create
from registry.choices import AuditAction
from registry.models import RegisteredModel
from registry.schedules import schedule_clear, schedule_set
from registry.schema import parse_schema
from registry.selectors import production_version
from scoring.batch import sources
from scoring.models import MAX_ENTITY_ID_LENGTH
from scoring.selectors import known_prediction_ids

MAX_ACTUALS_PER_REQUEST = 50_000


@dataclass
class ActualsResult:
    created: int
    unchanged: int


def _key(row: Any, index: int, problems: list[dict[str, Any]]) -> tuple[str | None, str | None, Any, datetime | None]:
    def problem(message: str) -> None:
        problems.append({"row": index, "error": message})

    if not isinstance(row, dict):
        problem("must be an object with prediction_id or entity_id, and actual")
        return None, None, None, None
    prediction_id, entity_id = row.get("prediction_id"), row.get("entity_id")
    if (prediction_id in (None, "")) == (entity_id in (None, "")):
        problem("give exactly one of prediction_id and entity_id")
        return None, None, None, None
    if "actual" not in row or row["actual"] is None:
        problem("actual: required")
    elif not isinstance(row["actual"], str | int | float | bool):
        problem("actual: must be a number, a string or true/false")
    elif isinstance(row["actual"], int) and abs(row["actual"]) > sys.float_info.max:
        # Stored, it would fail every report: metrics compute with floats.
        problem(f"actual: an integer of {len(str(abs(row['actual'])))} digits is too large for a number")
    if prediction_id not in (None, ""):
        try:
            prediction_id = str(uuid.UUID(str(prediction_id)))
        except ValueError:
            problem(f"prediction_id: {prediction_id!r} is not a prediction id")
            prediction_id = None
    observed_at = None
    if row.get("observed_at"):
        try:
            observed_at = parse_datetime(str(row["observed_at"]))
        except ValueError:
            observed_at = None
        if observed_at is None:
            problem("observed_at: not an ISO 8601 time")
        elif timezone.is_naive(observed_at):
            observed_at = timezone.make_aware(observed_at)
    if entity_id not in (None, "") and len(str(entity_id)) > MAX_ENTITY_ID_LENGTH:
        problem(f"entity_id: longer than {MAX_ENTITY_ID_LENGTH} characters")
        entity_id = None
    return prediction_id, (str(entity_id) if entity_id not in (None, "") else None), row.get("actual"), observed_at


def actuals_ingest(*, actor: Any, model: RegisteredModel, rows: list[Any]) -> ActualsResult:
    """Store actuals all or nothing; posting the same actual again changes nothing."""
    require_record_actuals(actor)
    if not isinstance(rows, list) or not rows:
        raise ValidationError({"rows": ["Send a non-empty list of rows."]})
    if len(rows) > MAX_ACTUALS_PER_REQUEST:
        raise ValidationError({"rows": [f"At most {MAX_ACTUALS_PER_REQUEST} rows per request."]})
    problems: list[dict[str, Any]] = []
    parsed = [_key(row, index, problems) for index, row in enumerate(rows)]
    by_prediction = {p: (i, v, t) for i, (p, _e, v, t) in enumerate(parsed) if p}
    by_entity = {e: (i, v, t) for i, (_p, e, v, t) in enumerate(parsed) if e}
    # A consumer labels its own predictions only; another consumer's do not exist for it.
    known = {
        str(pk)
        for pk in known_prediction_ids(
            model=model, ids=[uuid.UUID(p) for p in by_prediction], consumer=getattr(actor, "consumer", None)
        )
    }
    for prediction_id, (index, _value, _at) in by_prediction.items():
        if prediction_id not in known:
            problems.append({"row": index, "error": f"prediction_id: no prediction {prediction_id} of {model.name}"})
    existing_predictions = dict(
        Actual.objects.filter(model=model, prediction_id__in=list(by_prediction)).values_list("prediction_id", "value")
    )
    existing_entities = dict(
        Actual.objects.filter(model=model, entity_id__in=list(by_entity)).values_list("entity_id", "value")
    )
    for key, existing, (index, value, _at) in [
        *((k, existing_predictions.get(uuid.UUID(k)), v) for k, v in by_prediction.items()),
        *((k, existing_entities.get(k), v) for k, v in by_entity.items()),
    ]:
        if existing is not None and existing != value:
            problems.append(
                {"row": index, "error": f"{key} already has the actual {existing!r}; actuals are not overwritten"}
            )
    if problems:
        raise ValidationError(
            {"rows": [f"row {p['row']}: {p['error']}" for p in sorted(problems, key=lambda p: p["row"])]}
        )
    now = timezone.now()
    new = [
        Actual(model=model, prediction_id=p, entity_id=e or "", value=v, observed_at=t or now, received_at=now)
        for p, e, v, t in parsed
        if not (p and uuid.UUID(p) in existing_predictions) and not (e and e in existing_entities)
    ]
    with transaction.atomic():
        Actual.objects.bulk_create(new, ignore_conflicts=True, batch_size=5000)
    return ActualsResult(created=len(new), unchanged=len(rows) - len(new))


_SLICED = {AlertRule.Metric.DRIFT_SHARE, AlertRule.Metric.FEATURE_DRIFT, AlertRule.Metric.SLICE_PERFORMANCE}


def _rule_errors(model: RegisteredModel, rule: AlertRule) -> dict[str, list[str]]:
    """What would make a rule watch nothing: a metric the model does not have, a column or slice it lacks."""
    errors: dict[str, list[str]] = {}
    Metric = AlertRule.Metric  # noqa: N806  (the enum, read as in the model)
    production = production_version(model=model)
    inputs = [field.name for field in parse_schema(production.input_schema)] if production else None
    metrics: tuple[str, ...] = (
        performance.CLASSIFICATION_METRICS if model.task == "classification" else performance.REGRESSION_METRICS
    )
    if rule.metric in (Metric.PERFORMANCE, Metric.SLICE_PERFORMANCE) and rule.parameter not in metrics:
        errors["parameter"] = [f"Give one of the {model.task} metrics: {', '.join(metrics)}."]
    elif rule.metric == Metric.FEATURE_DRIFT and not rule.parameter:
        errors["parameter"] = ["Give the feature whose drift is watched."]
    elif rule.metric in (Metric.FEATURE_DRIFT, Metric.MISSING_SHARE) and rule.parameter and inputs is not None:
        if rule.parameter not in inputs:
            errors["parameter"] = [f"Not an input of version {production.number}: {', '.join(inputs)}."]  # type: ignore[union-attr]
    elif rule.metric == Metric.FAIRNESS_GAP:
        column, _, measure = rule.parameter.partition(":")
        config = MonitoringConfig.objects.filter(model=model).first()
        sensitive = config.sensitive_columns if config else []
        if column not in sensitive or (measure and measure not in performance.FAIRNESS_MEASURES):
            errors["parameter"] = [
                f"Give a sensitive column ({', '.join(sensitive) or 'none are set'}), optionally with "
                f"':' and one of {', '.join(performance.FAIRNESS_MEASURES)}."
            ]
    if rule.slice and rule.metric not in _SLICED:
        errors["slice"] = ["This metric is for the whole window; leave the slice empty."]
    elif rule.metric == Metric.SLICE_PERFORMANCE and not rule.slice:
        errors["slice"] = ['Give the slice, e.g. "region=south".']
    elif rule.slice:
        config = MonitoringConfig.objects.filter(model=model).first()
        column, equals, _value = rule.slice.partition("=")
        columns, named = (config.slice_columns, config.slice_expressions) if config else ([], {})
        if not ((equals and column in columns) or rule.slice in named):
            known = ", ".join([*columns, *named]) or "none are set"
            errors["slice"] = [f"Give column=value of a slice column, or a named slice (slices: {known})."]
    return errors


def alert_rule_create(*, actor: Any, model: RegisteredModel, **fields: Any) -> AlertRule:
    require_configure_monitoring(actor, model, "defines its alert rules")
    rule = AlertRule(model=model, created_by=actor, **fields)
    rule.full_clean()
    errors = _rule_errors(model, rule)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        rule.save()
        audit_event_create(
            actor=actor,
            action=AuditAction.ALERT_RULE_CREATED,
            model=model,
            new=dict(fields.items()),
        )
    return rule


def report_request(*, actor: Any, model: RegisteredModel, start: datetime, end: datetime) -> Report:
    """Compute a report over [start, end); `actor` None is the model's report schedule."""
    if actor is not None:
        require_request_reports(actor)
    if end <= start:
        raise ValidationError({"end": ["Must be after start."]})
    report = Report.objects.create(model=model, window_start=start, window_end=end, requested_by=actor)
    queue.compute_report(report.pk)
    return report


def evidently_report_request(*, actor: Any, report: Report) -> EvidentlyReport:
    """Ask a worker for Evidently's report of a stored report's window, once.

    Asked again while it is being prepared or once it is ready, nothing changes; after a failure it is
    prepared again.
    """
    require_request_reports(actor)
    if report.status != Report.Status.DONE:
        raise ValidationError({"report": ["The report is not computed yet."]})
    if not report.rows_current:
        raise ValidationError({"report": ["This report's window has no production rows to show."]})
    with transaction.atomic():
        row, created = EvidentlyReport.objects.get_or_create(report=report, defaults={"requested_by": actor})
        # Compare-and-set on a failed one: of two people asking again at once, one queues it.
        retried = not created and EvidentlyReport.objects.filter(
            pk=row.pk, status=EvidentlyReport.Status.FAILED
        ).update(
            status=EvidentlyReport.Status.PREPARING,
            error="",
            requested_by=actor,
            requested_at=timezone.now(),
            finished_at=None,
        )
        if created or retried:
            queue.build_evidently_report(report.pk)
    row.refresh_from_db()
    return row


CONFIG_FIELDS = (
    "baseline",
    "trailing_days",
    "slice_columns",
    "sensitive_columns",
    "min_slice_rows",
    "fdr_correction",
    "fairness_threshold",
    "window_days",
)


@transaction.atomic
def monitoring_configure(*, actor: Any, model: RegisteredModel, **fields: Any) -> MonitoringConfig:
    """Change how a model is monitored; slice and sensitive columns must be inputs of its production version."""
    require_configure_monitoring(actor, model, "changes its monitoring")
    unknown = set(fields) - set(CONFIG_FIELDS)
    if unknown:
        raise ValidationError({name: ["Not a monitoring setting."] for name in sorted(unknown)})
    production = production_version(model=model)
    inputs = {field.name for field in parse_schema(production.input_schema)} if production else None
    errors: dict[str, list[str]] = {}
    for name in ("slice_columns", "sensitive_columns"):
        columns = fields.get(name)
        if columns is not None and production is not None and inputs is not None:
            missing = [c for c in columns if c not in inputs]
            if missing:
                errors[name] = [f"Not an input of version {production.number}: {', '.join(missing)}."]
    if set(fields.get("sensitive_columns") or []) - set(fields.get("slice_columns") or []):
        errors.setdefault("sensitive_columns", []).append("Sensitive columns must also be slice columns.")
    if errors:
        raise ValidationError(errors)
    config, _ = MonitoringConfig.objects.select_for_update().get_or_create(model=model)
    old = {name: getattr(config, name) for name in CONFIG_FIELDS}
    for name, value in fields.items():
        setattr(config, name, value)
    config.full_clean(exclude=["model", "periodic_task"])
    config.save()
    audit_event_create(
        actor=actor,
        action=AuditAction.MONITORING_CONFIGURED,
        model=model,
        old=old,
        new={n: getattr(config, n) for n in CONFIG_FIELDS},
    )
    return config


@transaction.atomic
def report_schedule(
    *, actor: Any, model: RegisteredModel, crontab: str | None, every_minutes: int | None, enabled: bool = True
) -> MonitoringConfig:
    """Compute a report over the last `window_days` on a cron schedule or every N minutes."""
    require_configure_monitoring(actor, model, "schedules its reports")
    config, _ = MonitoringConfig.objects.select_for_update().get_or_create(model=model)
    schedule_set(
        actor=actor,
        model=model,
        holder=config,
        action=AuditAction.MONITORING_SCHEDULED,
        name=f"monitoring:{model.name}",
        task_name=queue.RUN_SCHEDULED_REPORT,
        args=[model.pk],
        description=f"Monitoring of {model.name} (managed on its monitoring page)",
        crontab=crontab,
        every_minutes=every_minutes,
        enabled=enabled,
    )
    return config


@transaction.atomic
def report_unschedule(*, actor: Any, model: RegisteredModel) -> MonitoringConfig:
    require_configure_monitoring(actor, model, "schedules its reports")
    config, _ = MonitoringConfig.objects.select_for_update().get_or_create(model=model)
    schedule_clear(actor=actor, model=model, holder=config, action=AuditAction.MONITORING_UNSCHEDULED)
    return config


# --- retraining -----------------------------------------------------------------------------------

RECIPE_FIELDS = ("callable_path", "data_path", "data_query", "data_connection")


def _recipe_errors(fields: dict[str, str]) -> dict[str, list[str]]:
    """What is wrong with a recipe, checked as far as possible without training anything."""
    errors: dict[str, list[str]] = {}
    try:
        if not callable(load_callable(fields["callable_path"])):
            errors["callable_path"] = ["That name is not a function."]
    except (ImportError, AttributeError, ValueError) as exc:
        errors["callable_path"] = [f"Cannot import it: {exc}"]
    if bool(fields["data_path"]) == bool(fields["data_query"]):
        errors["data_path"] = ["Give either a training-data file or a SQL query (one of them)."]
    elif fields["data_path"]:
        try:
            sources.resolve_input_path(fields["data_path"])
        except ValueError as exc:
            errors["data_path"] = [str(exc)]
    else:
        try:
            sources.sql_input_columns(fields["data_connection"], fields["data_query"])
        except ValueError as exc:
            errors["data_query"] = [str(exc)]
    return errors


@transaction.atomic
def retraining_recipe_save(*, actor: Any, model: RegisteredModel, **fields: str) -> RetrainingRecipe:
    """Set how a model is retrained: a function in an installed module and its training data."""
    require_configure_monitoring(actor, model, "sets its retraining recipe")
    unknown = set(fields) - set(RECIPE_FIELDS)
    if unknown:
        raise ValidationError({name: ["Not a recipe field."] for name in sorted(unknown)})
    cleaned = {name: (fields.get(name) or "").strip() for name in RECIPE_FIELDS}
    errors = _recipe_errors(cleaned)
    if errors:
        raise ValidationError(errors)
    recipe = RetrainingRecipe.objects.select_for_update().filter(model=model).first()
    old = {name: getattr(recipe, name) for name in RECIPE_FIELDS} if recipe else None
    if recipe is None:
        recipe = RetrainingRecipe(model=model, created_by=actor)
    for name, value in cleaned.items():
        setattr(recipe, name, value)
    recipe.full_clean(exclude=["model", "created_by", "periodic_task"])
    recipe.save()
    audit_event_create(actor=actor, action=AuditAction.RETRAINING_RECIPE_SAVED, model=model, old=old, new=cleaned)
    return recipe


def _recipe_for_change(actor: Any, model: RegisteredModel) -> RetrainingRecipe:
    require_configure_monitoring(actor, model, "retrains it")
    recipe = RetrainingRecipe.objects.select_for_update().filter(model=model).first()
    if recipe is None:
        raise ValidationError({"recipe": [f"{model.name} has no retraining recipe yet."]})
    return recipe


@transaction.atomic
def retraining_schedule(
    *, actor: Any, model: RegisteredModel, crontab: str | None, every_minutes: int | None, enabled: bool = True
) -> RetrainingRecipe:
    """Retrain on a cron schedule or every N minutes; each result waits in review like any version."""
    recipe = _recipe_for_change(actor, model)
    schedule_set(
        actor=actor,
        model=model,
        holder=recipe,
        action=AuditAction.RETRAINING_SCHEDULED,
        name=f"retraining:{model.name}",
        task_name=queue.RETRAIN_MODEL,
        args=[model.pk, None, RetrainingRun.Trigger.SCHEDULE],
        description=f"Retraining of {model.name} (managed on its monitoring page)",
        crontab=crontab,
        every_minutes=every_minutes,
        enabled=enabled,
    )
    return recipe


@transaction.atomic
def retraining_unschedule(*, actor: Any, model: RegisteredModel) -> RetrainingRecipe:
    recipe = _recipe_for_change(actor, model)
    schedule_clear(actor=actor, model=model, holder=recipe, action=AuditAction.RETRAINING_UNSCHEDULED)
    return recipe


@transaction.atomic
def retraining_request(*, actor: Any, model: RegisteredModel) -> None:
    """Retrain now, on a worker; the run appears on the monitoring page."""
    _recipe_for_change(actor, model)
    audit_event_create(actor=actor, action=AuditAction.RETRAINING_REQUESTED, model=model)
    queue.retrain_model(model_id=model.pk, trigger=RetrainingRun.Trigger.MANUAL, requested_by_id=actor.pk)


def _typed(text: str) -> int | float | str:
    """A CSV cell as the JSON value the API would have received: 1 stays a number, "yes" text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def actuals_from_csv(upload: Any) -> list[dict[str, Any]]:
    """Rows of an uploaded CSV (prediction_id or entity_id, actual, optional observed_at), for actuals_ingest."""
    try:
        frame = pd.read_csv(upload, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError({"file": ["The file is not UTF-8 text."]}) from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValidationError({"file": [f"Not a readable CSV file: {exc}"]}) from exc
    columns = set(frame.columns)
    if "actual" not in columns or not columns & {"prediction_id", "entity_id"}:
        raise ValidationError({"file": ["Give the columns actual and prediction_id or entity_id."]})
    wanted = [c for c in ("prediction_id", "entity_id", "actual", "observed_at") if c in columns]
    return [
        {str(key): (_typed(value) if key == "actual" else value) for key, value in row.items() if value != ""}
        for row in frame[wanted].to_dict("records")
    ]


def watch(*, actor: Any, model: RegisteredModel, watching: bool) -> MonitoringConfig:
    """Start or stop telling `actor` of the model's alerts (in-app and email), as its owner is told."""
    config, _ = MonitoringConfig.objects.get_or_create(model=model)
    if watching:
        config.watchers.add(actor)
    else:
        config.watchers.remove(actor)
    return config
