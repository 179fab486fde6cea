"""Within latency budgets: one row and a batch, timed against the model's budgets."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from registry.checks.context import Context
from registry.checks.results import FAILED, LATENCY, PASSED, CheckResult, result

SINGLE_ROW_RUNS, SINGLE_ROW_WARMUP = 30, 3
BATCH_ROWS, BATCH_RUNS = 1_000, 5


def _timings_ms(call: Callable[[], object], *, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def check_latency(context: Context) -> CheckResult:
    predictor = context.predictor
    if predictor is None:
        return context.unloadable(LATENCY)
    model = context.version.model
    single = pd.DataFrame([context.base_row()], columns=context.input_names() or None)
    batch = context.sample_inputs(BATCH_ROWS)
    single_ms = _timings_ms(lambda: predictor.predict(single), runs=SINGLE_ROW_RUNS, warmup=SINGLE_ROW_WARMUP)
    batch_ms = _timings_ms(lambda: predictor.predict(batch), runs=BATCH_RUNS, warmup=1)
    single_median, batch_median = statistics.median(single_ms), statistics.median(batch_ms)
    single_ok = single_median <= model.latency_budget_ms
    batch_ok = batch_median <= model.batch_latency_budget_ms
    details = [
        {
            "case": "one row",
            "median_ms": round(single_median, 3),
            "p95_ms": round(float(np.percentile(single_ms, 95)), 3),
            "budget_ms": model.latency_budget_ms,
            "verdict": "within budget" if single_ok else "over budget",
        },
        {
            "case": f"{BATCH_ROWS:,} rows",
            "median_ms": round(batch_median, 3),
            "p95_ms": round(float(np.percentile(batch_ms, 95)), 3),
            "budget_ms": model.batch_latency_budget_ms,
            "verdict": "within budget" if batch_ok else "over budget",
        },
    ]
    summary = (
        f"One row: median {single_median:.2f} ms (p95 {details[0]['p95_ms']:.2f} ms, budget "
        f"{model.latency_budget_ms:,g} ms); {BATCH_ROWS:,} rows: median {batch_median:.1f} ms "
        f"(budget {model.batch_latency_budget_ms:,g} ms)."
    )
    return result(LATENCY, PASSED if single_ok and batch_ok else FAILED, summary, details=details)
