"""What a check returns: its name, status and summary, and the helpers that make values fit for JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

PASSED, WARNING, FAILED, SKIPPED = "passed", "warning", "failed", "skipped"

GOLDEN_SET, ROBUSTNESS, ENVIRONMENT, LATENCY = "golden_set", "robustness", "environment", "latency"
COMPILED = "compiled"
TITLES = {
    GOLDEN_SET: "Golden set reproduced",
    ROBUSTNESS: "Robust to unusual inputs",
    ENVIRONMENT: "Serving environment matches",
    LATENCY: "Within latency budgets",
    COMPILED: "Compiled model agrees",
}
MAX_DETAIL_ROWS = 50
_MAX_MESSAGE = 300


@dataclass
class CheckResult:
    name: str
    title: str
    status: str
    required: bool
    summary: str
    details: list[dict[str, Any]] = field(default_factory=list)
    # What a result vouches for, where something relies on it (the compiled graph's sha256 and rows).
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        result = {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "required": self.required,
            "summary": self.summary,
            "details": [{str(key): plain(value) for key, value in row.items()} for row in self.details],
        }
        if self.evidence:
            result["evidence"] = plain(self.evidence)
        return result


@dataclass
class CheckOutcome:
    results: list[CheckResult]
    serving_environment: dict[str, Any]

    @property
    def passed(self) -> bool:
        return not any(result.required and result.status == FAILED for result in self.results)


def result(
    name: str,
    status: str,
    summary: str,
    *,
    required: bool = True,
    details: list[dict[str, Any]] | None = None,
    evidence: dict[str, Any] | None = None,
) -> CheckResult:
    return CheckResult(
        name=name,
        title=TITLES[name],
        status=status,
        required=required,
        summary=summary,
        details=details or [],
        evidence=evidence or {},
    )


def plain(value: Any, *, keep_nan: bool = False) -> Any:
    """A JSON-friendly Python value; NaN and infinities become text unless kept for a DataFrame."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value) and not keep_nan:
        return str(value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def describe(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def label(value: Any) -> str:
    """A class label as text, so that 1, 1.0, "1" and "1.0" (a CSV with blanks reads ints as floats) agree."""
    value = plain(value, keep_nan=True)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return str(int(number)) if number.is_integer() else value
    if isinstance(value, int | float) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)
