"""The compiled model agrees: the ONNX graph against the native model, row by row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from registry.checks.context import Context
from registry.checks.results import (
    COMPILED,
    FAILED,
    MAX_DETAIL_ROWS,
    PASSED,
    SKIPPED,
    WARNING,
    CheckResult,
    label,
    result,
)
from registry.loading import load_compiled_model
from registry.models import Compilation
from registry.predictors import OnnxPredictor

# The compiled graph computes in double; its only float32 step (a tree ensemble's output) costs ~6e-8.
COMPILED_RTOL = 1e-6
PROBABILITY_FLOOR = 1e-7  # see _relative_agreement
# The reference data compared with the compiled graph: all rows up to this many, else a seeded sample.
MAX_COMPARED_REFERENCE_ROWS = 10_000


def check_compiled(context: Context) -> CheckResult:
    """The compiled graph against the native model on the golden set and the reference data.

    Not required: a graph that cannot be made or disagrees only means the native model serves; the
    result says which, and a passed result names the file it verified (serving re-checks its sha256).
    """
    compilation = Compilation.objects.filter(version=context.version).first()
    if compilation is None:
        return result(COMPILED, SKIPPED, "The version was never compiled: the native model serves.", required=False)
    if compilation.status != Compilation.Status.COMPILED:
        status = WARNING if compilation.status == Compilation.Status.FAILED else SKIPPED
        reason = f": {compilation.error}" if compilation.error else ""
        summary = f"{compilation.get_status_display()}{reason}. The native model serves."
        if compilation.status == Compilation.Status.PENDING:
            summary = "Not compiled yet (the artifact's types await a reviewer). The native model serves."
        return result(COMPILED, status, summary, required=False)
    if context.predictor is None:
        return context.unloadable(COMPILED, required=False)
    compiled = load_compiled_model(compilation)
    sources: list[tuple[str, pd.DataFrame]] = []
    golden, reference = context.golden_inputs(), context.reference_inputs()
    reference_total = 0
    if golden is not None:
        sources.append(("golden", golden))
    if reference is not None:
        reference_total = len(reference)
        if reference_total > MAX_COMPARED_REFERENCE_ROWS:
            reference = reference.sample(n=MAX_COMPARED_REFERENCE_ROWS, random_state=0).sort_index()
        sources.append(("reference", reference))
    if not sources:
        sources.append(("synthesised", context.sample_inputs(1)))
    mismatches: list[dict[str, Any]] = []
    count, largest = 0, 0.0
    rows: dict[str, int] = {}
    for source, frame in sources:
        listed, found, source_largest = _compare_compiled(context, compiled, source, frame)
        mismatches.extend(listed)
        count += found
        largest = max(largest, source_largest)
        rows[source] = len(frame)
    evidence = {
        "sha256": compilation.sha256,
        "source": compilation.source,
        "rows": rows,
        "reference_rows": reference_total,
        "mismatches": count,
        "largest_relative_difference": largest,
    }
    compared = " and ".join(f"{count:,} {source}" for source, count in rows.items())
    if reference_total > rows.get("reference", reference_total):
        compared += f" (a sample of the {reference_total:,} reference rows, seed 0)"
    what = "labels and probabilities" if context.is_classifier else "predictions"
    tolerance = f"within {COMPILED_RTOL:g} relative"
    if count:
        first = mismatches[0]
        summary = (
            f"The compiled graph differs from the native model on {count:,} of the {compared} rows; "
            f"first: {first['source']} row {first['row']}, native {first['native']!r}, compiled "
            f"{first['compiled']!r}. The native model serves."
        )
        return result(
            COMPILED, FAILED, summary, required=False, details=mismatches[:MAX_DETAIL_ROWS], evidence=evidence
        )
    summary = (
        f"The compiled graph (sha256 {compilation.sha256[:12]}…) gives the native model's {what} {tolerance} "
        f"on all {compared} rows (largest relative difference {largest:.2g}). It serves."
    )
    return result(COMPILED, PASSED, summary, required=False, evidence=evidence)


def _compare_compiled(
    context: Context, compiled: OnnxPredictor, source: str, frame: pd.DataFrame
) -> tuple[list[dict[str, Any]], int, float]:
    """The first rows where the two engines differ, how many do, and the largest relative difference."""
    predictor = context.predictor
    assert predictor is not None  # check_compiled returns first when the model could not be loaded
    columns = {str(name): frame[name].to_numpy() for name in frame.columns}
    compiled_labels, compiled_probabilities = compiled.score(columns)
    native_labels = predictor.predict(frame)
    if context.is_classifier:
        native_probabilities = predictor.predict_proba(frame)
        if native_probabilities is None or compiled_probabilities is None:
            native_values, compiled_values = np.zeros((len(frame), 0)), np.zeros((len(frame), 0))
            if (native_probabilities is None) != (compiled_probabilities is None):
                raise ValueError("One engine gives probabilities and the other does not.")
        else:
            native_values = np.asarray(native_probabilities, dtype=np.float64)
            compiled_values = np.asarray(compiled_probabilities, dtype=np.float64)
        if native_values.shape != compiled_values.shape:
            raise ValueError(
                f"The compiled graph gives probabilities of shape {compiled_values.shape}, "
                f"the native model {native_values.shape}."
            )
        floor = PROBABILITY_FLOOR
        same_labels = np.array(
            [label(a) == label(b) for a, b in zip(native_labels, compiled_labels, strict=True)], dtype=bool
        )
    else:
        native_values = np.asarray(native_labels, dtype=np.float64).reshape(len(frame), -1)
        compiled_values = np.asarray(compiled_labels, dtype=np.float64).reshape(len(frame), -1)
        floor = 0.0
        same_labels = np.ones(len(frame), dtype=bool)
    difference, relative, close = _relative_agreement(native_values, compiled_values, floor)
    agree = same_labels & close.all(axis=1)
    largest = float(np.nanmax(relative)) if relative.size else 0.0
    listed = []
    for position in np.flatnonzero(~agree)[:MAX_DETAIL_ROWS]:
        gap: str | float
        if not same_labels[position]:
            native, other, gap = native_labels[position], compiled_labels[position], "label"
        elif context.is_classifier:  # same label, probabilities apart
            native, other = list(native_values[position]), list(compiled_values[position])
            gap = float(np.max(difference[position]))
        else:
            native, other = native_values[position, 0], compiled_values[position, 0]
            gap = float(np.max(difference[position]))
        row = int(frame.index[position])
        listed.append({"source": source, "row": row, "native": native, "compiled": other, "difference": gap})
    return listed, int((~agree).sum()), largest


def _relative_agreement(
    native: np.ndarray, compiled: np.ndarray, floor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|a - b| <= COMPILED_RTOL * max(|a|, |b|), or <= `floor` (probabilities), elementwise; NaN agrees with NaN.

    Relative, because a regression output's scale is the model's business. The floor is for
    probabilities only: onnxruntime's tree classifiers output float32, and a probability near 0
    (1 - p of the other class, say) carries up to half a float32 step at 1.0 (6e-8) of absolute
    rounding that is any multiple of itself relative to 0. 1e-7 admits that rounding and no wrong leaf.
    """
    difference = np.abs(native - compiled)
    scale = np.maximum(np.abs(native), np.abs(compiled))
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(difference == 0, 0.0, difference / scale)
    both_nan = np.isnan(native) & np.isnan(compiled)
    close = (difference <= COMPILED_RTOL * scale) | (difference <= floor) | both_nan
    return difference, np.where(both_nan, 0.0, relative), close
