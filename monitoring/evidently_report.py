"""Evidently's own data-drift report of a stored report's window, built when a user opens it.

A module of its own so that only the pages load Evidently (seconds to import); workers computing
reports never need it.
"""

from __future__ import annotations

from evidently import DataDefinition, Dataset
from evidently import Report as EvidentlyReport
from evidently.presets import DataDriftPreset

from monitoring import drift
from monitoring.columnar import open_window
from monitoring.models import MonitoringConfig, Report
from monitoring.reports import baseline_for, version_for
from registry.schema import parse_schema

EVIDENTLY_MAX_ROWS = 50_000


def evidently_html(report: Report) -> str:
    """Evidently's HTML for a stored report's window.

    Windows and references above EVIDENTLY_MAX_ROWS rows are sampled (seeded) to that size: Evidently
    needs seconds per 100,000 rows, and this runs while the user waits. The stored verdicts, computed
    on all rows, stay the reference figures.
    """
    model = report.model
    config, _ = MonitoringConfig.objects.get_or_create(model=model)
    with open_window(model, report.window_start, report.window_end) as window:
        version = report.version or version_for(model, window)
        if version is None or window.rows == 0:
            raise ValueError("This report's window has no production rows to show.")
        features = [field.name for field in parse_schema(version.input_schema)]
        reference, _ = baseline_for(model, version, config, report.window_start)
        columns = [c for c in features if c in window.columns and c in reference]
        current = window.sample(columns, EVIDENTLY_MAX_ROWS)
    reference = reference[columns]
    if len(reference) > EVIDENTLY_MAX_ROWS:
        reference = reference.sample(EVIDENTLY_MAX_ROWS, random_state=0)
    kinds = {column: drift.column_kind(reference[column]) for column in columns}
    definition = DataDefinition(
        numerical_columns=[c for c, kind in kinds.items() if kind == drift.NUMERICAL],
        categorical_columns=[c for c, kind in kinds.items() if kind == drift.CATEGORICAL],
    )
    snapshot = EvidentlyReport([DataDriftPreset()]).run(
        Dataset.from_pandas(current.reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(reference.reset_index(drop=True), data_definition=definition),
    )
    return str(snapshot.get_html_str(as_iframe=False))
