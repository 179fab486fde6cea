"""Scoring with SQL outside the server (registry/sql.py, in DuckDB or Spark), governed as every other use:
the server decides whether a version may score when the function is registered, counts what it scored as
the client reports it, logs a sample of its rows for monitoring, and answers each report with whether the
version may still score, so that a "do not use" reaches SQL users within a minute."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from registry.models import ModelVersion, RegisteredModel
from registry.schema import json_column, parse_schema, validate_records
from registry.selectors import production_version
from scoring import permissions, runtime
from scoring.archive.format import input_digest
from scoring.ids import uuid7
from scoring.models import Prediction, ScoringPolicy, SqlRun

# Rows of inputs and outputs a report may carry for monitoring.
MAX_SAMPLE_ROWS = 10_000
# Rows one report may count: far more than a session scores, and the run's 64-bit totals take ~9 million
# such reports before they overflow.
MAX_REPORTED_ROWS = 10**12


def _refusal(version: ModelVersion) -> str:
    """Why `version` may not score with SQL now, or ""."""
    refused = runtime.not_servable(version.model.name, version.number, version.status)
    if refused is not None:
        return str(refused)
    if not version.is_trusted:
        return f"{version} holds types no reviewer has accepted yet: it may not be loaded."
    return ""


def sql_run_open(
    *, actor: Any, model: RegisteredModel, version_number: int | None, engine: str, function_name: str
) -> SqlRun:
    """A run for a SQL function on `version_number` (default: the production version), or a refusal
    naming the version to use."""
    permissions.require_score_with_sql(actor)
    if version_number is None:
        version = production_version(model=model)
        if version is None:
            raise ValidationError({"version": [f"{model.name} has no version in production: name an approved one."]})
    else:
        found = model.versions.filter(number=version_number).first()
        if found is None:
            raise ValidationError({"version": [f"{model.name} has no version {version_number}."]})
        version = found
    refusal = _refusal(version)
    if refusal:
        raise ValidationError({"version": [refusal]})
    return SqlRun.objects.create(model=model, version=version, engine=engine, function_name=function_name, user=actor)


def sql_run_report(
    *,
    actor: Any,
    run: SqlRun,
    rows_scored: int,
    rows_rejected: int,
    seconds: float,
    engine: str,
    sample: list[dict[str, Any]],
) -> SqlRun:
    """Add a report's counts to the run and log its sample; the run says whether its version may still score.

    A sample row is {"inputs": {field: value}, "output": label or number, "probabilities": [...] or None};
    rows whose inputs do not match the schema are not logged (the client sends only rows it scored)."""
    permissions.require_sql_run_reporter(actor, run)
    version = ModelVersion.objects.select_related("model").get(pk=run.version_id)
    logged = _log_sample(run, version, actor, engine, sample, seconds / max(rows_scored, 1) * 1e3)
    with transaction.atomic():
        SqlRun.objects.filter(pk=run.pk).update(
            rows_scored=F("rows_scored") + rows_scored,
            rows_rejected=F("rows_rejected") + rows_rejected,
            seconds=F("seconds") + seconds,
            rows_logged=F("rows_logged") + logged,
            last_reported_at=timezone.now(),
            refused=_refusal(version),
        )
    run.refresh_from_db()
    return run


def _log_sample(
    run: SqlRun, version: ModelVersion, actor: Any, engine: str, sample: list[dict[str, Any]], latency_ms: float
) -> int:
    if not sample:
        return 0
    fields = parse_schema(version.input_schema)
    policy, _ = ScoringPolicy.objects.get_or_create(model=version.model)
    validation = validate_records(
        [row.get("inputs") or {} for row in sample], fields, unknown_categories=policy.unknown_categories
    )
    names = [spec.name for spec in fields]
    columns = [json_column(spec, validation.columns[spec.name]) for spec in fields]
    now = timezone.now()
    rows = []
    for index, row in enumerate(sample):
        # A row with no output (NaN, as the client sends it) is no prediction to log: Prediction.output holds one.
        if validation.bad_rows[index] or row.get("output") is None:
            continue
        record = {name: column[index] for name, column in zip(names, columns, strict=True)}
        rows.append(
            Prediction(
                id=uuid7(now),
                at=now,
                model_id=version.model_id,
                version=version,
                user=actor,
                input=record if policy.input_logging == ScoringPolicy.InputLogging.FULL else None,
                input_sha256=input_digest(record),
                output=row.get("output"),
                probabilities=row.get("probabilities"),
                latency_ms=latency_ms,
                engine=engine,  # as a REST prediction names it: reproducible with the same engine
            )
        )
    Prediction.objects.bulk_create(rows)
    return len(rows)
