"""Retraining: run a model's recipe on a worker, register the result as a draft, put it in review.

A recipe is a callable `package.module:function` that takes the training DataFrame and returns
{"estimator": fitted, "X_sample": DataFrame, "metrics": {...}, "golden": (X, y) (optional),
"reference": DataFrame (optional)}. The new version is never promoted automatically.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import skops.io as sio
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from monitoring.models import Alert, RetrainingRecipe, RetrainingRun
from registry import audit, registration, workflow
from registry.choices import VersionStatus
from registry.client import capture_environment, estimator_params, output_schema
from registry.schema import infer_schema
from registry.tables import read_table
from scoring.batch import sources


def load_callable(path: str) -> Callable[[pd.DataFrame], dict[str, Any]]:
    """The recipe function `package.module:function`, from a package the administrator allowed."""
    module_name, _, function = path.partition(":")
    if not module_name or not function:
        raise ValueError(f"{path!r}: write it as package.module:function")
    allowed = settings.MF_RETRAINING_PACKAGES
    # Workers run this code: only packages named in the settings, never any importable module (os:system).
    if not any(module_name == package or module_name.startswith(f"{package}.") for package in allowed):
        listed = f"MF_RETRAINING_PACKAGES: {', '.join(allowed)}" if allowed else "MF_RETRAINING_PACKAGES allows none"
        raise ValueError(f"{module_name!r} is not in an allowed package ({listed})")
    return getattr(importlib.import_module(module_name), function)


def training_data(recipe: RetrainingRecipe) -> pd.DataFrame:
    """The recipe's training data: a file under the batch input folder, or a SELECT on a scoring database."""
    if recipe.data_path:
        return read_table(sources.resolve_input_path(recipe.data_path))
    return sources.sql_input_frame(recipe.data_connection, recipe.data_query)


def _table(frame: pd.DataFrame, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, frame.to_parquet(index=False))


def _via(run: RetrainingRun) -> str:
    """The retraining as the audit trail names it, with its trigger."""
    if run.alert is not None:
        return f"retraining, triggered by alert #{run.alert.pk} ({run.alert.rule.name})"
    if run.trigger == RetrainingRun.Trigger.SCHEDULE:
        return "retraining, on its schedule"
    return f"retraining, started by {run.requested_by or 'someone'}"


def _release_notes(run: RetrainingRun, parent: Any, metrics: dict[str, float]) -> str:
    recipe, alert = run.recipe, run.alert
    if alert is not None:
        trigger = (
            f"the alert **{alert.rule.name}** ({alert.rule.get_metric_display()} {alert.rule.parameter} "
            f"{alert.rule.slice} at {alert.last_value:.4g}, threshold {alert.rule.threshold:g})"
        )
    elif run.trigger == RetrainingRun.Trigger.SCHEDULE:
        trigger = "the retraining schedule"
    else:
        trigger = f"{run.requested_by or 'someone'} starting it by hand"
    lines = [
        "## Retrained automatically",
        "",
        f"Triggered by {trigger} on {timezone.now():%Y-%m-%d %H:%M} UTC, with `{recipe.callable_path}`.",
        "It is a draft in review: it goes live only through the usual sign-offs.",
        "",
        "| metric | parent | this version | change |",
        "|---|---|---|---|",
    ]
    previous = parent.metrics if parent is not None else {}
    for name, value in sorted(metrics.items()):
        old = previous.get(name)
        change = f"{value - old:+.4f}" if isinstance(old, int | float) else "new"
        lines.append(f"| {name} | {old if old is not None else '-'} | {value:.4f} | {change} |")
    return "\n".join(lines)


def retrain(
    *,
    model_id: int,
    alert_id: int | None = None,
    trigger: str = RetrainingRun.Trigger.ALERT,
    requested_by_id: int | None = None,
) -> RetrainingRun:
    recipe = RetrainingRecipe.objects.select_related("model__owner").get(model_id=model_id)
    alert = Alert.objects.select_related("rule").filter(pk=alert_id).first() if alert_id else None
    if alert is not None:
        earlier = RetrainingRun.objects.filter(alert=alert).first()
        if earlier is not None:  # a redelivered task: one retraining per alert
            return earlier
    run = RetrainingRun.objects.create(
        recipe=recipe,
        alert=alert,
        trigger=RetrainingRun.Trigger.ALERT if alert is not None else trigger,
        requested_by_id=requested_by_id,
    )
    model = recipe.model
    try:
        frame = training_data(recipe)
        result = load_callable(recipe.callable_path)(frame)
        estimator, sample = result["estimator"], result["X_sample"]
        metrics = {k: float(v) for k, v in (result.get("metrics") or {}).items()}
        parent = model.versions.filter(status=VersionStatus.PRODUCTION).first() or model.versions.first()
        golden = result.get("golden")
        golden_file = None
        if golden is not None:
            inputs, expected = golden
            table = inputs.copy()
            table["expected"] = list(expected)
            golden_file = SimpleUploadedFile("golden_set.csv", table.to_csv(index=False).encode())
        reference = result.get("reference")
        author = model.owner  # registered on the owner's behalf; four-eyes keeps them from approving it
        with audit.system_action(_via(run)):
            version = registration.version_register(
                actor=author,
                model=model,
                upload=registration.VersionUpload(
                    artifact=SimpleUploadedFile(f"{model.name}.skops", sio.dumps(estimator)),
                    format="skops",
                    release_notes=_release_notes(run, parent, metrics),
                    golden_set=golden_file,
                    reference_data=_table(reference, "reference_data.parquet") if reference is not None else None,
                    training_data=_table(frame, "training_data.parquet"),
                    input_schema=json.dumps(infer_schema(sample)),
                    output_schema=json.dumps(output_schema(estimator)),
                    params=json.dumps(estimator_params(estimator)),
                    metrics=json.dumps(metrics),
                    environment=json.dumps(capture_environment(estimator)),
                    training_data_uri=recipe.data_path or f"sql:{recipe.data_connection}",
                    training_data_rows=len(frame),
                    parent=parent.number if parent is not None else None,
                ),
            )
            workflow.version_transition(
                actor=author, version=version, action="submit", comment="Retrained automatically"
            )
    except Exception as exc:  # the run records why; the alert stays open
        RetrainingRun.objects.filter(pk=run.pk).update(
            status=RetrainingRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now()
        )
        raise
    RetrainingRun.objects.filter(pk=run.pk).update(
        status=RetrainingRun.Status.REGISTERED, version=version, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run
