"""Drift of a production window against a version's reference profile, overall and per slice.

The reference profile of a version is built once and kept in-process, so that scheduled reports and
every slice of a report reuse it; a trailing baseline changes with each window and is never kept.
A slice is compared with the same slice of the reference ("contract=two-year" customers have long
tenures in both), and with the whole reference only when the reference has no rows of it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from monitoring import drift

PROFILE_CACHE_SIZE = 4
BENJAMINI_HOCHBERG = "benjamini-hochberg"
NO_CORRECTION = "none"
OVERALL = None  # the whole window, kept among the slices so that it shares their loop and correction


@dataclass(frozen=True)
class Profile:
    columns: dict[str, drift.ColumnProfile]
    slices: dict[str, Profile] = field(default_factory=dict)


_profiles: OrderedDict[tuple[int, str, tuple[str, ...], tuple[str, ...]], Profile] = OrderedDict()
# Celery may run a report per thread; OrderedDict reordering is not safe to interleave.
_profiles_lock = threading.Lock()


def build_profile(reference_frame: pd.DataFrame, slice_masks: dict[str, pd.Series] | None = None) -> Profile:
    """Statistics of every reference column, and of every slice the reference has rows of."""
    slices = {
        name: build_profile(reference_frame[np.asarray(mask, dtype=bool)])
        for name, mask in (slice_masks or {}).items()
        if np.asarray(mask, dtype=bool).any()
    }
    return Profile(
        columns={
            str(column): drift.profile_column(reference_frame[column], drift.column_kind(reference_frame[column]))
            for column in reference_frame.columns
        },
        slices=slices,
    )


def profile_for(
    version_id: int, reference_frame: pd.DataFrame, kind: str, slice_masks: dict[str, pd.Series] | None = None
) -> Profile:
    """The reference profile of a version, from the cache when the same columns and slices were profiled lately.

    `slice_masks` select each slice's rows of `reference_frame`.
    """
    if kind == "trailing":
        return build_profile(reference_frame, slice_masks)
    key = (
        version_id,
        kind,
        tuple(str(column) for column in reference_frame.columns),
        tuple(sorted(slice_masks or {})),
    )
    with _profiles_lock:
        if key in _profiles:
            _profiles.move_to_end(key)
            return _profiles[key]
    profile = build_profile(reference_frame, slice_masks)
    with _profiles_lock:
        _profiles[key] = profile
        while len(_profiles) > PROFILE_CACHE_SIZE:
            _profiles.popitem(last=False)
    return profile


def window_drift(
    profile: Profile,
    current_frame: pd.DataFrame,
    masks: dict[str, pd.Series],
    min_rows: int,
    fdr: bool,
    defined_by: dict[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], str]:
    """Evidently's drift verdicts for the whole window and each slice with at least `min_rows` rows.

    With `fdr`, the p-value tests of all slices and of the whole window are corrected together by
    Benjamini-Hochberg (see `drift.control_false_discoveries`); distance tests keep their verdicts.
    A column with no value in a slice is left out of that slice's columns and drift share, and so
    is the column a slice is defined by (`defined_by`: slice name -> column): "region=south" holds
    one region by construction, which is no drift.
    """
    rows_by_slice: dict[str | None, np.ndarray | None] = {OVERALL: None}
    sizes: dict[str | None, int] = {OVERALL: len(current_frame)}
    for name, mask in masks.items():
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        sizes[name] = positions.size
        if positions.size >= min_rows:
            rows_by_slice[name] = positions

    judged: list[tuple[str | None, str, drift.ColumnVerdict]] = []
    # The Wasserstein dot products are too short for OpenBLAS's threads to help; left on, they spin
    # between calls and double the CPU time taken from the worker's other processes.
    with threadpool_limits(1, user_api="blas"):
        for column, column_profile in profile.columns.items():
            current = drift.encode_current(column_profile, current_frame[column])
            for slice_name, rows in rows_by_slice.items():
                if defined_by and slice_name is not None and defined_by.get(slice_name) == column:
                    continue
                own = profile.slices[slice_name].columns[column] if slice_name in profile.slices else None
                if own is not None and rows is not None:
                    verdict = drift.judge(own, drift.encode_current(own, current_frame[column].iloc[rows]), None)
                else:
                    verdict = drift.judge(column_profile, current, rows)
                if verdict is not None:
                    judged.append((slice_name, column, verdict))

    return summarise(judged, sizes, list(masks), set(rows_by_slice), set(profile.slices), fdr)


def summarise(
    judged: list[tuple[str | None, str, drift.ColumnVerdict]],
    sizes: dict[str | None, int],
    names: list[str],
    compared: set[str | None],
    own_baseline: set[str],
    fdr: bool,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], str]:
    """The whole window's and each slice's results from their verdicts (`compared`: the slices judged,
    the others being too small; `own_baseline`: slices compared with the same slice of the reference)."""
    verdicts = [verdict for _, _, verdict in judged]
    if fdr:
        verdicts = drift.control_false_discoveries(verdicts)
    by_slice: dict[str | None, dict[str, drift.ColumnVerdict]] = {slice_name: {} for slice_name in compared}
    for (slice_name, column, _), verdict in zip(judged, verdicts, strict=True):
        by_slice[slice_name][column] = verdict

    per_slice = {
        name: (
            {
                "rows": sizes[name],
                "too_small": False,
                "baseline": "the same slice of the reference" if name in own_baseline else "the whole reference",
                **_summary(by_slice[name]),
            }
            if name in by_slice
            else {"rows": sizes[name], "too_small": True, "drift_share": None, "drifted": None, "columns": {}}
        )
        for name in names
    }
    return _summary(by_slice[OVERALL]), per_slice, BENJAMINI_HOCHBERG if fdr else NO_CORRECTION


def _summary(verdicts: dict[str, drift.ColumnVerdict]) -> dict[str, Any]:
    share, drifted = drift.dataset_drift(verdicts.values())
    return {
        "drift_share": share,
        "drifted": drifted,
        "columns": {column: verdict.as_dict() for column, verdict in verdicts.items()},
    }
