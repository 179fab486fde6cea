"""Performance and fairness of a window's predictions against their actuals, per slice, in DuckDB.

A slice with at most EXACT_MAX_VALUES labelled rows is fetched and measured by
scikit-learn (`performance.classification` / `regression`); a larger one from counts: the confusion
counts (exact label metrics), a score histogram per class on SCORE_BINS bins (ranking metrics) with the
sums of scores and squared scores (exact Brier score and calibration), or sums of errors (regression).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitoring import performance
from monitoring.columnar import (
    ACTUAL_LABEL,
    ACTUAL_NUMBER,
    NUMBER,
    PREDICTION,
    SCORE,
    TRAFFIC,
    Window,
    labelled_rows,
    literal,
    quote,
)
from monitoring.grouping import SLICE, Grouping, by_slice, slice_rows
from monitoring.slicing import Slice

SCORE_BINS = 10_000
# scikit-learn's metrics on this many rows take tens of milliseconds; beyond, counts are as exact for every
# metric but the ranking ones, which differ from scikit-learn's by about 1e-4.
EXACT_MAX_VALUES = 10_000
_CALIBRATION_EDGES = np.linspace(0, 1, performance.CALIBRATION_BINS + 1)[1:-1]


def _labelled_count(source: str, window: Window) -> int:
    (rows,) = window.connection.execute(f"SELECT count(*) FROM {source} WHERE {ACTUAL_LABEL} IS NOT NULL").fetchall()
    return int(rows[0])


def slice_performance(window: Window, slices: list[Slice], classification: bool) -> dict[str | None, dict[str, Any]]:
    """Performance of the whole window (key None) and of each slice given."""
    grouping = Grouping(slices)
    conditions = {piece.name: piece.condition for piece in slices}
    labelled = labelled_rows(window, [column for piece in slices for column in piece.reads])
    sizes = grouping.query(window, [], [("__n", "count(*)")], where=f"{ACTUAL_LABEL} IS NOT NULL", source=labelled)
    counted = {name: int(n) for name, n in zip(sizes[SLICE], sizes["__n"], strict=True)}
    results: dict[str | None, dict[str, Any]] = {name: {"rows": 0} for name in [None, *conditions]}
    big = [name for name, rows in counted.items() if rows > EXACT_MAX_VALUES]
    small = [name for name, rows in counted.items() if 0 < rows <= EXACT_MAX_VALUES]
    columns = [ACTUAL_LABEL, PREDICTION, SCORE] if classification else [ACTUAL_NUMBER, NUMBER]
    where = f"{ACTUAL_LABEL} IS NOT NULL"
    for name, rows in slice_rows(window, small, conditions, counted, columns, where=where, source=labelled):
        results[name] = _exact(rows, classification)
    if big:
        results.update(_aggregated(window, grouping, big, classification, labelled))
    return results


def _exact(rows: pd.DataFrame, classification: bool) -> dict[str, Any]:
    if not classification:
        return performance.regression(rows[ACTUAL_NUMBER].to_numpy(float), rows[NUMBER].to_numpy(float))
    scores = rows[SCORE].to_numpy(dtype=float, na_value=np.nan)
    return performance.classification(
        rows[ACTUAL_LABEL].astype(str).to_numpy(),
        rows[PREDICTION].astype(str).to_numpy(),
        None if np.isnan(scores).any() else scores,
    )


def _aggregated(
    window: Window, grouping: Grouping, big: list[str | None], classification: bool, labelled: str
) -> dict[str | None, dict[str, Any]]:
    where = f"{ACTUAL_LABEL} IS NOT NULL"
    if not classification:
        error = f"({ACTUAL_NUMBER} - {NUMBER})"
        sums = grouping.query(
            window,
            [],
            [
                ("__n", "count(*)"),
                ("__abs", f"sum(abs({error}))"),
                ("__sq", f"sum({error} * {error})"),
                ("__actual", f"sum({ACTUAL_NUMBER})"),
                ("__actual_square", f"sum({ACTUAL_NUMBER} * {ACTUAL_NUMBER})"),
            ],
            where=where,
            source=labelled,
        )
        found = {}
        split = by_slice(sums)
        for name in big:
            mine = split.get(name, sums.iloc[0:0])
            first = mine.iloc[0]
            rows = int(first["__n"])
            deviations = float(first["__actual_square"]) - float(first["__actual"]) ** 2 / rows
            found[name] = performance.regression_from_sums(
                rows, float(first["__abs"]), float(first["__sq"]), deviations
            )
        return found
    calibration = " + ".join(f"CAST({SCORE} >= {float(edge)!r} AS INTEGER)" for edge in _CALIBRATION_EDGES)
    groups = grouping.query(
        window,
        [
            ("__a", ACTUAL_LABEL),
            ("__p", PREDICTION),
            ("__bin", f"least(CAST(floor({SCORE} * {SCORE_BINS}) AS BIGINT), {SCORE_BINS - 1})"),
            ("__cal", calibration),
        ],
        [
            ("__n", "count(*)"),
            ("__scored", f"count({SCORE})"),
            ("__sum", f"sum({SCORE})"),
            ("__square", f"sum({SCORE} * {SCORE})"),
        ],
        where=where,
        source=labelled,
    )
    results: dict[str | None, dict[str, Any]] = {}
    split = by_slice(groups)
    for name in big:
        mine = split.get(name, groups.iloc[0:0])
        pairs = mine.groupby(["__a", "__p"])["__n"].sum()
        confusion = {
            (str(actual), str(predicted)): int(n)
            for actual, predicted, n in zip(
                pairs.index.get_level_values(0), pairs.index.get_level_values(1), pairs.to_numpy(), strict=True
            )
        }
        labels = sorted({label for pair in confusion for label in pair})
        scores = None
        if len(labels) <= 2 and int(mine["__scored"].sum()) == int(mine["__n"].sum()):
            positive = labels[-1]
            by_bin = mine.assign(__positive=(mine["__a"].astype(str) == positive).astype(int))
            scores = (
                by_bin.groupby(["__bin", "__cal", "__positive"])[["__n", "__sum", "__square"]]
                .sum()
                .reset_index()
                .to_numpy(float)
            )
        results[name] = performance.classification_from_counts(confusion, scores)
    return results


def fairness(window: Window, columns: list[str], min_rows: int, threshold: float) -> dict[str, Any]:
    """Positive rate (and with actuals TPR, FPR) per group of each sensitive column, and their gaps."""
    labelled = _labelled_count(labelled_rows(window, columns), window)
    # With enough actuals, judge on the labelled rows (so TPR and FPR exist); else positive rates on all rows.
    with_truth = labelled >= min_rows or (labelled == window.rows and labelled > 0)
    source, where, actual = (
        (labelled_rows(window, columns), f"{ACTUAL_LABEL} IS NOT NULL", ACTUAL_LABEL)
        if with_truth
        else (TRAFFIC, "TRUE", "NULL")
    )
    predictions = {
        row[0]
        for row in window.connection.execute(f"SELECT DISTINCT {PREDICTION} FROM {source} WHERE {where}").fetchall()
    }
    present = sorted(label for label in predictions if label is not None)
    positive = "1" if "1" in predictions else (present[-1] if present else None)
    result = {}
    for column in columns:
        if column not in window.columns:
            continue
        rows = window.connection.execute(
            f"""SELECT {quote(column)}, coalesce({PREDICTION} = {literal(positive)}, FALSE),
                {actual} = {literal(positive)}, count(*)
            FROM {source} WHERE {where} GROUP BY ALL"""
        ).fetchall()
        counts = [
            (str(group), bool(predicted), actual if with_truth else None, int(n))
            for group, predicted, actual, n in rows
        ]
        found = performance.fairness(counts, with_truth, min_rows)
        found["threshold"] = threshold
        found["exceeded"] = any(g is not None and g > threshold for g in found["gaps"].values())
        result[column] = found
    return result
