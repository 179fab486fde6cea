"""Running every check of a version, each guarded so that one that breaks cannot hide the others."""

from __future__ import annotations

import warnings
from collections.abc import Callable

from threadpoolctl import threadpool_limits

from registry.checks import compiled, environment, golden, latency, robustness
from registry.checks.context import Context
from registry.checks.results import (
    COMPILED,
    ENVIRONMENT,
    FAILED,
    GOLDEN_SET,
    LATENCY,
    ROBUSTNESS,
    CheckOutcome,
    CheckResult,
    describe,
    result,
)
from registry.models import ModelVersion


def run_checks(version: ModelVersion) -> CheckOutcome:
    """Run every check of `version`; never raises for a problem with the version itself."""
    serving = environment.serving_environment()
    context = Context.build(version)
    checks: list[tuple[str, bool, Callable[[], CheckResult]]] = [
        (GOLDEN_SET, True, lambda: golden.check_golden_set(context)),
        (ROBUSTNESS, True, lambda: robustness.check_robustness(context)),
        (ENVIRONMENT, True, lambda: environment.check_environment(version, serving)),
        (LATENCY, True, lambda: latency.check_latency(context)),
        (COMPILED, False, lambda: compiled.check_compiled(context)),
    ]
    # One thread for BLAS/OpenMP: on small shared machines their thread pools oversubscribe the
    # cores and make tree models up to 100x slower, which would fail latency for the wrong reason.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # Edge cases make estimators warn (unknown categories, feature names); the results say it better.
        warnings.simplefilter("ignore")
        results = [_guarded(name, required, check) for name, required, check in checks]
    return CheckOutcome(results=results, serving_environment=serving)


def _guarded(name: str, required: bool, check: Callable[[], CheckResult]) -> CheckResult:
    try:
        return check()
    except Exception as exc:  # a check that breaks is a failed check, not a failed run
        return result(name, FAILED, f"The check could not run: {describe(exc)}", required=required)
