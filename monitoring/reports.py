"""Computing a report for a window: drift per feature and slice, performance, fairness; then alerts.

Stored results (Report.results) have this shape, read by the pages, charts and alert rules:
    baseline: {kind, description, rows}
    correction: "benjamini-hochberg" | "none"
    dataset: {drift_share, drifted, columns: {column: {test, statistic, threshold, drifted, kind}}}
    prediction_drift: {test, statistic, threshold, drifted} | null
    slices: {"region=north": {rows, too_small, drift_share, drifted, columns: {...}, performance,
             histograms: {column: current counts on the window histogram's bins}}}
    performance: {...} (also in Report.performance), registered_metrics: {...}
    fairness: {column: {groups, gaps, threshold, exceeded}}
    missing_share: {column: share}
    histograms: {column: {kind, edges | categories, reference, current}}
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from django.db import transaction
from django.utils import timezone

from monitoring import alerts, drift_report, performance
from monitoring.models import MonitoringConfig, Report
from monitoring.window import ACTUAL, PREDICTION, SCORE, production_window
from registry.choices import FileKind, ModelTask, VersionStatus
from registry.loading import verified_path
from registry.models import ModelVersion, RegisteredModel
from registry.schema import parse_schema
from registry.tables import read_table
from scoring import runtime

logger = logging.getLogger(__name__)
HISTOGRAM_BINS = 20


def version_for(model: RegisteredModel, frame: pd.DataFrame) -> ModelVersion | None:
    """The version that served most of the window, else the production one."""
    if not frame.empty and "__version" in frame and frame["__version"].notna().any():
        number = int(frame["__version"].mode().iloc[0])
        return model.versions.filter(number=number).first()
    return model.versions.filter(status=VersionStatus.PRODUCTION).first()


def baseline_for(
    model: RegisteredModel, version: ModelVersion, config: MonitoringConfig, start: datetime
) -> tuple[pd.DataFrame, dict[str, Any]]:
    if config.baseline == MonitoringConfig.Baseline.TRAILING:
        earlier = production_window(model, start - pd.Timedelta(days=config.trailing_days), start)
        return earlier, {
            "kind": "trailing",
            "description": f"production inputs of the {config.trailing_days} days before the window",
            "rows": len(earlier),
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


def _histogram(reference: pd.Series, current: pd.Series) -> dict[str, Any]:
    if pd.api.types.is_numeric_dtype(reference) and reference.nunique() > 10:
        both = pd.concat([reference, current]).dropna().astype(float)
        edges = np.histogram_bin_edges(both, bins=HISTOGRAM_BINS) if len(both) else np.array([0.0, 1.0])
        return {
            "kind": "numerical",
            "edges": edges.tolist(),
            "reference": np.histogram(reference.dropna().astype(float), bins=edges)[0].tolist(),
            "current": np.histogram(current.dropna().astype(float), bins=edges)[0].tolist(),
        }
    categories = sorted(set(reference.dropna().astype(str)) | set(current.dropna().astype(str)))[:50]
    ref_counts = reference.astype(str).value_counts()
    cur_counts = current.astype(str).value_counts()
    return {
        "kind": "categorical",
        "categories": categories,
        "reference": [int(ref_counts.get(c, 0)) for c in categories],
        "current": [int(cur_counts.get(c, 0)) for c in categories],
    }


def _recount(histogram: dict[str, Any], current: pd.Series) -> list[int]:
    """Counts of a slice's values on the window histogram's bins, so the two overlay exactly."""
    if histogram["kind"] == "numerical":
        return np.histogram(current.dropna().astype(float), bins=np.asarray(histogram["edges"]))[0].tolist()
    counts = current.astype(str).value_counts()
    return [int(counts.get(c, 0)) for c in histogram["categories"]]


def _performance(model: RegisteredModel, frame: pd.DataFrame) -> dict[str, Any]:
    labelled = frame[frame[ACTUAL].notna()] if ACTUAL in frame else frame.iloc[0:0]
    if labelled.empty:
        return {"rows": 0}
    if model.task == ModelTask.CLASSIFICATION:
        y_true = labelled[ACTUAL].astype(str).to_numpy()
        y_pred = labelled[PREDICTION].astype(str).to_numpy()
        scores = labelled[SCORE].astype(float).to_numpy() if SCORE in labelled else None
        if scores is not None and np.isnan(scores).any():
            scores = None
        # Labels compare as text (an actual posted as "1" matches a prediction of 1).
        y_true = np.array([_label(v) for v in y_true])
        y_pred = np.array([_label(v) for v in y_pred])
        return performance.classification(y_true, y_pred, scores)
    return performance.regression(
        labelled[ACTUAL].astype(float).to_numpy(), labelled[PREDICTION].astype(float).to_numpy()
    )


def _label(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else value


def _slices(frame: pd.DataFrame, config: MonitoringConfig) -> dict[str, pd.Series]:
    """Slice name -> boolean mask over the window's rows."""
    masks: dict[str, pd.Series] = {}
    for column in config.slice_columns:
        if column not in frame:
            continue
        for value in sorted(frame[column].dropna().astype(str).unique()):
            masks[f"{column}={value}"] = frame[column].astype(str) == value
    for name, expression in (config.slice_expressions or {}).items():
        try:
            masks[name] = pd.Series(np.asarray(frame.eval(expression), dtype=bool), index=frame.index)
        except Exception as exc:  # a bad expression is reported, not fatal to the report
            logger.warning("Slice %s (%s) could not be evaluated: %s", name, expression, exc)
    return masks


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
    frame = production_window(model, report.window_start, report.window_end)
    version = version_for(model, frame)
    if version is None:
        raise ValueError(f"{model.name} has no production version and no traffic in the window.")
    features = [field.name for field in parse_schema(version.input_schema)]
    reference, baseline = baseline_for(model, version, config, report.window_start)
    results: dict[str, Any] = {"baseline": baseline, "columns": features, "registered_metrics": version.metrics}
    if frame.empty:
        results["note"] = "No production traffic with kept inputs in this window."
        summary_drift: dict[str, Any] = {"drift_share": None, "drifted": None}
    else:
        columns = [c for c in features if c in frame and c in reference]
        masks = _slices(frame, config)
        reference_masks = {name: mask for name, mask in _slices(reference, config).items() if name in masks}
        profile = drift_report.profile_for(version.pk, reference[columns], baseline["kind"], reference_masks)
        defined_by = {name: name.partition("=")[0] for name in masks if name.partition("=")[0] in config.slice_columns}
        overall, per_slice, correction = drift_report.window_drift(
            profile,
            frame[columns],
            masks,
            min_rows=config.min_slice_rows,
            fdr=config.fdr_correction,
            defined_by=defined_by,
        )
        results["correction"] = correction
        results["dataset"] = overall
        summary_drift = overall
        results["slices"] = per_slice
        for name, mask in masks.items():
            if not per_slice.get(name, {}).get("too_small"):
                per_slice[name]["performance"] = _performance(model, frame[mask.to_numpy()])
        results["missing_share"] = {c: float(frame[c].isna().mean()) for c in columns}
        histograms = {c: _histogram(reference[c], frame[c]) for c in columns}
        results["histograms"] = histograms
        for name, mask in masks.items():
            if not per_slice.get(name, {}).get("too_small"):
                rows = frame[mask.to_numpy()]
                per_slice[name]["histograms"] = {c: _recount(histograms[c], rows[c]) for c in columns}
        results["fairness"] = _fairness(model, frame, config)
        results["prediction_drift"] = _prediction_drift(version, reference, frame, columns)
    perf = _performance(model, frame) if not frame.empty else {"rows": 0}
    results["performance"] = perf
    with transaction.atomic():
        # Compare-and-set: of two deliveries computing the same report, only the first to commit
        # stores it and evaluates its alerts; the other's update finds it done and changes nothing.
        stored = Report.objects.filter(pk=report.pk, status=Report.Status.RUNNING).update(
            version=version,
            baseline=baseline["description"],
            rows_current=len(frame),
            rows_reference=len(reference),
            rows_with_actuals=int(frame[ACTUAL].notna().sum()) if ACTUAL in frame else 0,
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


def _prediction_drift(
    version: ModelVersion, reference: pd.DataFrame, frame: pd.DataFrame, columns: list[str]
) -> dict[str, Any] | None:
    """Drift of the model's output: the window's predictions against the version's on the baseline.

    A trailing baseline carries its own predictions; a reference dataset is scored here (reports
    run on workers, where loading models is allowed).
    """
    if PREDICTION in reference:
        expected = reference[PREDICTION]
    else:
        loaded = runtime.model_cache.loaded_version(version.pk)
        expected = pd.Series(np.asarray(loaded.predictor.predict(reference[columns])))
    current = frame[PREDICTION]
    if version.model.task == ModelTask.REGRESSION:
        return drift_report.column_drift(expected.astype(float), current.astype(float))
    # Labels compare as text, as for performance: a prediction stored as 1 equals a reference "1".
    return drift_report.column_drift(expected.map(lambda v: _label(str(v))), current.map(lambda v: _label(str(v))))


def _fairness(model: RegisteredModel, frame: pd.DataFrame, config: MonitoringConfig) -> dict[str, Any]:
    if model.task != ModelTask.CLASSIFICATION:
        return {}
    result = {}
    # With actuals, judge on the labelled rows (so TPR and FPR exist); else positive rates on all rows.
    labelled = frame[frame[ACTUAL].notna()]
    if len(labelled) >= config.min_slice_rows:
        frame = labelled
    predictions = np.array([_label(str(v)) for v in frame[PREDICTION]])
    positive = "1" if "1" in set(predictions) else (sorted(set(predictions))[-1] if len(predictions) else None)
    y_true = np.array([_label(str(v)) for v in frame[ACTUAL]]) if frame[ACTUAL].notna().all() else None
    for column in config.sensitive_columns:
        if column not in frame:
            continue
        found = performance.fairness(y_true, predictions, frame[column].to_numpy(), positive, config.min_slice_rows)
        found["threshold"] = config.fairness_threshold
        found["exceeded"] = any(g is not None and g > config.fairness_threshold for g in found["gaps"].values())
        result[column] = found
    return result
