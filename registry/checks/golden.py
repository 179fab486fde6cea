"""The golden set reproduced: the model's predictions against the validated outputs registered with it."""

from __future__ import annotations

from typing import Any

import pandas as pd

from registry.checks.context import Context
from registry.checks.results import (
    FAILED,
    GOLDEN_SET,
    MAX_DETAIL_ROWS,
    PASSED,
    WARNING,
    CheckResult,
    label,
    plain,
    result,
)
from registry.schema import GOLDEN_EXPECTED_COLUMN


def _validated(expected: pd.Series) -> pd.Series:
    text = expected.astype(str).str.strip()
    return expected.notna() & (text != "")


def check_golden_set(context: Context) -> CheckResult:
    if context.predictor is None:
        return context.unloadable(GOLDEN_SET)
    if context.golden_error:
        return result(GOLDEN_SET, FAILED, f"The golden set is unusable: {context.golden_error}")
    nothing = "No golden set with validated outputs: nothing to reproduce."
    golden = context.golden
    if golden is None or golden.empty or GOLDEN_EXPECTED_COLUMN not in golden.columns:
        return result(GOLDEN_SET, WARNING, nothing)
    validated = _validated(golden[GOLDEN_EXPECTED_COLUMN])
    skipped = int((~validated).sum())
    if not validated.any():
        return result(GOLDEN_SET, WARNING, f"{nothing[:-1]} ({skipped} rows have no expected value).")
    rows = golden[validated]
    predictions = context.predictor.predict(rows.reindex(columns=context.input_names()))
    tolerance = context.version.model.score_tolerance
    mismatches: list[dict[str, Any]] = []
    for index, expected, got in zip(rows.index, rows[GOLDEN_EXPECTED_COLUMN], predictions, strict=True):
        if context.is_classifier:
            if label(expected) != label(got):
                mismatches.append({"index": int(index), "expected": plain(expected), "got": plain(got)})
            continue
        expected_number = pd.to_numeric(pd.Series([expected]), errors="coerce").iloc[0]
        difference = abs(float(got) - float(expected_number))
        if not difference <= tolerance:  # NaN on either side is a mismatch too
            mismatches.append(
                {"index": int(index), "expected": plain(expected), "got": plain(got), "difference": difference}
            )
    total = len(rows)
    how = "exactly" if context.is_classifier else f"within {tolerance:g}"
    note = f" {skipped} row{'s' if skipped != 1 else ''} without a validated output were skipped." if skipped else ""
    if mismatches:
        first = mismatches[0]
        summary = (
            f"{total - len(mismatches)} of {total} golden rows reproduced {how}; row {first['index']} "
            f"expected {plain(first['expected'])!r}, got {plain(first['got'])!r}.{note}"
        )
        return result(GOLDEN_SET, FAILED, summary, details=mismatches[:MAX_DETAIL_ROWS])
    return result(GOLDEN_SET, PASSED, f"{total} of {total} golden rows reproduced {how}.{note}")
