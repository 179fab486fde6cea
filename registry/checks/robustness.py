"""Robust to unusual inputs: edge cases of every field of the input schema, each one request."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from registry.checks.context import Context, numeric
from registry.checks.results import FAILED, PASSED, ROBUSTNESS, WARNING, CheckResult, describe, plain, result
from registry.schema import NUMERIC_TYPES, FieldSpec, check_frame

REJECTED, PREDICTED, CRASHED, INVALID = "rejected by schema", "prediction", "crash", "invalid output"
# A text value the model's encoder never saw (scikit-learn's OneHotEncoder and OrdinalEncoder with
# handle_unknown="error", MLflow's usual pipelines, whose signatures carry no categories): the model refuses
# it, and serving answers such a request 400 with the model's words; not a crash.
REFUSED = "refused by the model"
_UNKNOWN_CATEGORY = re.compile(r"unknown categor", re.IGNORECASE)
_TEXT_TYPES = ("string", "category")


def _missing(spec: FieldSpec) -> Any:
    return np.nan if spec.type in NUMERIC_TYPES else None


@dataclass(frozen=True)
class _Case:
    field: str
    case: str
    values: dict[str, Any]


def _edge_cases(fields: list[FieldSpec], base: dict[str, Any]) -> list[_Case]:
    cases: list[_Case] = []
    seen: set[tuple[str, str]] = set()

    def add(spec: FieldSpec, label: str, value: Any) -> None:
        # A minimum of 0 and the "zero" case are one case; type included so that 0 and "0" stay apart.
        key = (spec.name, repr((type(value).__name__, value)))
        if key not in seen:
            seen.add(key)
            cases.append(_Case(spec.name, label, {**base, spec.name: value}))

    for spec in fields:
        if spec.type in NUMERIC_TYPES:
            if spec.minimum is not None:
                add(spec, f"minimum ({spec.minimum:g})", numeric(spec, spec.minimum))
            if spec.maximum is not None:
                add(spec, f"maximum ({spec.maximum:g})", numeric(spec, spec.maximum))
            for label, value in (("zero", 0), ("-1", -1), ("-1e9", -1e9), ("1e12", 1e12)):
                add(spec, label, numeric(spec, value))
            add(spec, "missing", np.nan)
            add(spec, "wrong type ('not-a-number')", "not-a-number")
        elif spec.type == "category":
            add(spec, "unseen category ('__unseen__')", "__unseen__")
            add(spec, "missing", None)
            add(spec, "wrong type (12345)", 12345)
        elif spec.type == "boolean":
            add(spec, "true", True)
            add(spec, "false", False)
            add(spec, "missing", None)
            add(spec, "wrong type ('maybe')", "maybe")
        elif spec.type == "datetime":
            add(spec, "epoch (1970-01-01)", "1970-01-01T00:00:00")
            add(spec, "far future (2262-04-01)", "2262-04-01T00:00:00")
            add(spec, "with a time zone", "2024-02-29T23:59:59+05:30")
            add(spec, "date only", "2024-02-29")
            add(spec, "missing", None)
            add(spec, "wrong type ('not-a-date')", "not-a-date")
        elif spec.type == "binary":
            add(spec, "empty", "")
            add(spec, "1 MB", base64.b64encode(bytes(1024 * 1024)).decode("ascii"))
            add(spec, "missing", None)
            add(spec, "wrong type ('not base64!')", "not base64!")
        else:
            add(spec, "empty string", "")
            add(spec, "missing", None)
            add(spec, "10,000 characters", "x" * 10_000)
    if fields:
        cases.append(_Case("(all fields)", "every field missing", {spec.name: _missing(spec) for spec in fields}))
    return cases


def _invalid(values: np.ndarray | None) -> bool:
    if values is None:
        return False
    array = np.asarray(values)
    if array.dtype.kind in "fc":
        return not bool(np.all(np.isfinite(array)))
    return bool(pd.isna(pd.Series(array.ravel())).any())


def _run_case(context: Context, fields: list[FieldSpec], case: _Case) -> dict[str, Any]:
    assert context.predictor is not None
    row = {"field": case.field, "case": case.case}
    frame = pd.DataFrame([case.values], columns=[spec.name for spec in fields])
    problems = check_frame(frame, fields)
    if problems:
        return {**row, "outcome": REJECTED, "detail": problems[0]}
    try:
        predictions = context.predictor.predict(frame)
        probabilities = context.predictor.predict_proba(frame) if context.is_classifier else None
    except Exception as exc:  # any exception here is exactly what this check looks for
        text_field = any(spec.name == case.field and spec.type in _TEXT_TYPES for spec in fields)
        if text_field and isinstance(exc, ValueError) and _UNKNOWN_CATEGORY.search(str(exc)):
            return {**row, "outcome": REFUSED, "detail": describe(exc)}
        return {**row, "outcome": CRASHED, "detail": describe(exc)}
    if len(predictions) != 1:
        return {**row, "outcome": INVALID, "detail": f"{len(predictions)} predictions for one row"}
    if _invalid(predictions):
        return {**row, "outcome": INVALID, "detail": f"predicted {plain(predictions[0])}"}
    if _invalid(probabilities):
        return {
            **row,
            "outcome": INVALID,
            "detail": f"predicted {plain(predictions[0])} with NaN or infinite probabilities",
        }
    detail = f"predicted {plain(predictions[0])}"
    if probabilities is not None:
        detail += " (probabilities " + ", ".join(f"{p:.3f}" for p in np.asarray(probabilities)[0]) + ")"
    return {**row, "outcome": PREDICTED, "detail": detail}


def check_robustness(context: Context) -> CheckResult:
    if context.predictor is None:
        return context.unloadable(ROBUSTNESS)
    fields = context.fields()
    if not fields:
        return result(ROBUSTNESS, WARNING, "The version has no input schema: no edge cases could be generated.")
    rows = [_run_case(context, fields, case) for case in _edge_cases(fields, context.base_row())]
    broken = [row for row in rows if row["outcome"] in (CRASHED, INVALID)]
    if broken:
        named = "; ".join(f"{row['field']} {row['case']}: {row['outcome']} ({row['detail']})" for row in broken[:3])
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        summary = f"{len(broken)} of {len(rows)} edge cases broke the model: {named}{more}."
        return result(ROBUSTNESS, FAILED, summary, details=rows)
    rejected = sum(row["outcome"] == REJECTED for row in rows)
    refused = [row for row in rows if row["outcome"] == REFUSED]
    predicted = len(rows) - rejected - len(refused)
    summary = f"All {len(rows)} edge cases were handled: {rejected} rejected by the schema, {predicted} predicted."
    if refused:
        names = ", ".join(sorted({str(row["field"]) for row in refused}))
        summary += (
            f" {len(refused)} text value(s) the model's encoder never saw were refused by the model ({names}): such "
            "a request gets a 400 with the model's message. Declare the categories in the input schema to name "
            "the allowed values in that answer."
        )
    return result(ROBUSTNESS, PASSED, summary, details=rows)
