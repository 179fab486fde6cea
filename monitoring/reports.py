"""Computing a report for a window: drift per feature and slice, performance, fairness; then alerts.

The window stays in DuckDB (monitoring/columnar.py): drift, histograms, performance and fairness are
aggregations over it (monitoring/window_drift.py, monitoring/window_performance.py), so a report's
memory follows the number of slices, features and bins, not the number of predictions.

Stored results (Report.results) have this shape, read by the pages, charts and alert rules:
    baseline: {kind, description, rows}
    correction: "benjamini-hochberg" | "none"
    dataset: {drift_share, drifted, columns: {column: {test, statistic, threshold, drifted, kind}}}
    prediction_drift: {test, statistic, threshold, drifted} | null
    slices: {"region=north": {rows, too_small, drift_share, drifted, columns: {...}, performance,
             histograms: {column: current counts on the window histogram's bins}}}
    slice_errors: {slice name: why its expression could not be used} (only when one could not)
    performance: {...} (also in Report.performance), registered_metrics: {...}
    fairness: {column: {groups, gaps, threshold, exceeded}}
    missing_share: {column: share}
    histograms: {column: {kind, edges | categories, reference, current}}
    unreadable: [{kind, hour, path, rows, error}] archive files listed for the window that could not be
        read (the report holds the rest of the window); incomplete: whether there were any
    note: why there is nothing to judge (a window with no rows)
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from monitoring import alerts, drift, drift_report, slicing, window_drift, window_performance
from monitoring.columnar import NUMBER, PREDICTION, Window, open_window
from monitoring.models import MonitoringConfig, Report
from registry.choices import FileKind, ModelTask, VersionStatus
from registry.loading import verified_path
from registry.models import ModelVersion, RegisteredModel
from registry.schema import parse_schema
from registry.tables import read_table
from scoring import runtime
from scoring.archive import format

logger = logging.getLogger(__name__)
# A trailing baseline is a seeded sample of the production rows before the window, of at most this many.
TRAILING_SAMPLE_ROWS = 100_000
# The reference is scored in parts of this many rows, so that the model's intermediate arrays stay small.
SCORING_ROWS = 20_000


def version_for(model: RegisteredModel, window: Window) -> ModelVersion | None:
    """The version that served most of the window, else the production one."""
    if window.versions:
        number = max(sorted(window.versions), key=lambda n: window.versions[n])
        return model.versions.filter(number=number).first()
    return model.versions.filter(status=VersionStatus.PRODUCTION).first()


def baseline_for(
    model: RegisteredModel, version: ModelVersion, config: MonitoringConfig, start: datetime
) -> tuple[pd.DataFrame, dict[str, Any]]:
    features = [field.name for field in parse_schema(version.input_schema)]
    if config.baseline == MonitoringConfig.Baseline.TRAILING:
        with open_window(model, start - pd.Timedelta(days=config.trailing_days), start) as earlier:
            columns = [c for c in [*features, PREDICTION, NUMBER] if c in earlier.columns]
            sample = earlier.sample(columns, TRAILING_SAMPLE_ROWS)
            total = earlier.rows
        return sample, {
            "kind": "trailing",
            "description": f"production inputs of the {config.trailing_days} days before the window"
            + (f" (a random sample of {len(sample):,} of their {total:,} rows)" if total > len(sample) else ""),
            "rows": len(sample),
        }
    reference_file = version.files.filter(kind=FileKind.REFERENCE_DATA).first()
    if reference_file is None:
        raise ValueError(f"{version} has no reference data: register one, or use a trailing baseline.")
    reference = read_table(verified_path(reference_file))
    return reference, {
        "kind": "reference",
        "description": f"reference data of version {version.number}",
        "rows": len(reference),
    }


def compute(*, report_id: int) -> Report | None:
    """Compute a running report once: a redelivered or concurrent task finds it done and returns.

    The results, the status change and the alert changes they cause commit together, so a worker
    killed at any point leaves either nothing (the redelivered task does it all) or everything.
    """
    report = Report.objects.select_related("model").filter(pk=report_id).first()
    if report is None or report.status != Report.Status.RUNNING:
        return report
    try:
        _compute(report)
    except Exception as exc:  # the report says why instead of staying "running"
        logger.exception("Report %s failed", report_id)
        Report.objects.filter(pk=report.pk, status=Report.Status.RUNNING).update(
            status=Report.Status.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now()
        )
        return Report.objects.get(pk=report.pk)
    report.refresh_from_db()
    return report


def _compute(report: Report) -> None:
    model = report.model
    config, _ = MonitoringConfig.objects.get_or_create(model=model)
    with open_window(model, report.window_start, report.window_end) as window:
        version = version_for(model, window)
        if version is None:
            raise ValueError(f"{model.name} has no production version and no traffic in the window.")
        features = [field.name for field in parse_schema(version.input_schema)]
        reference, baseline = baseline_for(model, version, config, report.window_start)
        results: dict[str, Any] = {
            "baseline": baseline,
            "columns": features,
            "registered_metrics": version.metrics,
            "unreadable": window.unreadable,
            "incomplete": bool(window.unreadable),
        }
        perf: dict[str, Any] = {"rows": 0}
        if window.rows == 0:
            results["note"] = "No production traffic with kept inputs in this window."
            summary_drift: dict[str, Any] = {"drift_share": None, "drifted": None}
        else:
            summary_drift = _judge(window, model, version, config, reference, baseline, features, results)
            perf = results.pop("overall_performance")
        results["performance"] = perf
        rows = window.rows
    with transaction.atomic():
        # Compare-and-set: of two deliveries computing the same report, only the first to commit
        # stores it and evaluates its alerts; the other's update finds it done and changes nothing.
        stored = Report.objects.filter(pk=report.pk, status=Report.Status.RUNNING).update(
            version=version,
            baseline=baseline["description"],
            rows_current=rows,
            rows_reference=len(reference),
            rows_with_actuals=perf.get("rows", 0),
            drift_share=summary_drift.get("drift_share"),
            dataset_drift=summary_drift.get("drifted"),
            performance=perf,
            results=results,
            status=Report.Status.DONE,
            finished_at=timezone.now(),
        )
        if stored:
            report.refresh_from_db()
            alerts.evaluate(report)  # notifications go out after the commit (on_commit)


def _judge(
    window: Window,
    model: RegisteredModel,
    version: ModelVersion,
    config: MonitoringConfig,
    reference: pd.DataFrame,
    baseline: dict[str, Any],
    features: list[str],
    results: dict[str, Any],
) -> dict[str, Any]:
    """Drift, histograms, performance and fairness of a window with rows, into `results`."""
    columns = [c for c in features if c in window.columns and c in reference]
    slices, slice_errors = slicing.window_slices(window, config.slice_columns, config.slice_expressions or {})
    if slice_errors:
        logger.warning("Slices of %s could not be evaluated: %s", model.name, slice_errors)
        results["slice_errors"] = slice_errors
    target, expected = _expected_outputs(version, reference, columns)
    masks = slicing.reference_masks(reference, slices, config.slice_expressions or {})
    profile = drift_report.profile_for(version.pk, reference[columns], baseline["kind"], masks)
    found = window_drift.window_drift(
        window, profile, reference[columns], slices, min_rows=config.min_slice_rows, fdr=config.fdr_correction
    )
    results.update(
        correction=found.correction,
        dataset=found.overall,
        slices=found.slices,
        missing_share=found.missing_share,
        histograms=found.histograms,
    )
    classification = model.task == ModelTask.CLASSIFICATION
    judged = [piece for piece in slices if not found.slices[piece.name]["too_small"]]
    performance = window_performance.slice_performance(window, judged, classification)
    for piece in judged:
        found.slices[piece.name]["performance"] = performance[piece.name]
    results["overall_performance"] = performance[None]
    results["fairness"] = (
        window_performance.fairness(window, config.sensitive_columns, config.min_slice_rows, config.fairness_threshold)
        if classification
        else {}
    )
    verdict = window_drift.column_verdict(window, target, expected)
    results["prediction_drift"] = None if verdict is None else verdict.as_dict()
    return found.overall


def _expected_outputs(
    version: ModelVersion, reference: pd.DataFrame, columns: list[str]
) -> tuple[window_drift.Target, drift.ColumnProfile]:
    """The model's output on the baseline, profiled for prediction drift, and the window's column to judge.

    A trailing baseline carries its own predictions; a reference dataset is scored here (reports run on
    workers, where loading models is allowed), before the window's queries take DuckDB's memory.
    """
    regression = version.model.task == ModelTask.REGRESSION
    carried = NUMBER if regression else PREDICTION
    if carried in reference:
        expected = reference[carried]
    else:
        predictor = runtime.model_cache.loaded_version(version.pk).predictor
        parts = [
            np.asarray(predictor.predict(reference[columns].iloc[start : start + SCORING_ROWS]))
            for start in range(0, len(reference), SCORING_ROWS)
        ]
        expected = pd.Series(np.concatenate(parts) if parts else np.array([]))
    if regression:
        expected = pd.to_numeric(expected, errors="coerce")
    else:
        # Labels compare as text, as for performance: a prediction stored as 1 equals a reference "1".
        codes, uniques = pd.factorize(expected)
        labels = np.array([format.label(value) for value in uniques] + [None], dtype=object)
        expected = pd.Series(labels[codes])
    kind = drift.NUMERICAL if regression else drift.CATEGORICAL
    return window_drift.Target.of(carried, kind), drift.profile_column(expected, kind)
