"""Evidently's own data-drift report of a stored report's window, built by a worker from a bounded sample.

Evidently needs seconds and about a gigabyte per million rows, so it is never run over a whole window
nor inside a web request: a worker (monitoring/tasks.py) builds the HTML once from a uniform random
sample of at most MF_EVIDENTLY_SAMPLE_ROWS rows and stores it as a file; the pages show that file.
A module of its own because importing Evidently takes seconds: only the task that builds a report loads it.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from evidently import DataDefinition, Dataset
from evidently import Report as DriftReport
from evidently.presets import DataDriftPreset

from monitoring import drift
from monitoring.columnar import open_window
from monitoring.models import EvidentlyReport, MonitoringConfig, Report, evidently_file_path
from monitoring.reports import baseline_for, version_for
from registry.schema import parse_schema

logger = logging.getLogger(__name__)

# One seed for every sample: building a window's report again shows the same rows.
SAMPLE_SEED = 0
FILENAME = "evidently.html"
NO_ROWS = "This report's window has no production rows to show."


def _bounded(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """At most `rows` rows of the frame, a uniform random sample (seeded) when there are more."""
    sample = frame.sample(rows, random_state=SAMPLE_SEED) if len(frame) > rows else frame
    return sample.reset_index(drop=True)


def evidently_sample(report: Report, rows: int) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """A uniform random sample of at most `rows` rows of the report's window and of its baseline (the
    model's input columns only), and the number of rows in the window.

    The window's sample is taken while DuckDB scans it (a seeded reservoir), so memory stays bounded
    whatever the window's size.
    """
    model = report.model
    config = MonitoringConfig.objects.filter(model=model).first() or MonitoringConfig(model=model)
    with open_window(model, report.window_start, report.window_end) as window:
        version = report.version or version_for(model, window)
        if version is None or window.rows == 0:
            raise ValueError(NO_ROWS)
        features = [field.name for field in parse_schema(version.input_schema)]
        reference, _ = baseline_for(model, version, config, report.window_start)
        columns = [c for c in features if c in window.columns and c in reference]
        current = window.sample(columns, rows, seed=SAMPLE_SEED)
        total = window.rows
    return current, _bounded(reference[columns], rows), total


def evidently_html(current: pd.DataFrame, reference: pd.DataFrame) -> str:
    """Evidently's DataDriftPreset of `current` against `reference`, as one self-contained HTML page."""
    kinds = {column: drift.column_kind(reference[column]) for column in reference.columns}
    definition = DataDefinition(
        numerical_columns=[c for c, kind in kinds.items() if kind == drift.NUMERICAL],
        categorical_columns=[c for c, kind in kinds.items() if kind == drift.CATEGORICAL],
    )
    snapshot = DriftReport([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return str(snapshot.get_html_str(as_iframe=False))


def evidently_report_build(*, report_id: int) -> EvidentlyReport | None:
    """Build the Evidently report asked for on a stored report, once: a redelivered or concurrent task
    finds it ready (or failed) and returns.

    Never raises for a problem with the data: the reason is stored on the row, for the page.
    """
    row = EvidentlyReport.objects.select_related("report__model", "report__version").filter(report_id=report_id).first()
    if row is None or row.status != EvidentlyReport.Status.PREPARING:
        return row
    try:
        current, reference, total = evidently_sample(row.report, settings.MF_EVIDENTLY_SAMPLE_ROWS)
        html = evidently_html(current, reference)
    except Exception as exc:  # the page says why instead of "being prepared" for ever
        logger.warning("Evidently's report of report %s failed", report_id, exc_info=True)
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        return _finish(row, status=EvidentlyReport.Status.FAILED, error=message)
    name = default_storage.save(evidently_file_path(row, FILENAME), ContentFile(html.encode()))
    finished = _finish(
        row,
        status=EvidentlyReport.Status.READY,
        file=name,
        sample_rows=len(current),
        total_rows=total,
        reference_sample_rows=len(reference),
    )
    if finished.file.name != name:  # another delivery finished first: keep its file only
        default_storage.delete(name)
    return finished


def _finish(row: EvidentlyReport, *, status: str, **values: Any) -> EvidentlyReport:
    # Compare-and-set: of two deliveries building at once, the first to finish writes.
    EvidentlyReport.objects.filter(pk=row.pk, status=EvidentlyReport.Status.PREPARING).update(
        status=status, finished_at=timezone.now(), **values
    )
    return EvidentlyReport.objects.select_related("report").get(pk=row.pk)
