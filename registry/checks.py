"""Pre-deployment checks of a model version: what could go wrong once it serves real traffic.

Pure computation: the checks load the model and its registered files, predict and time, and
return results. They write nothing; the caller stores the outcome and moves the version on.
Every check reports its own failure (including an exception) so that one broken check never
hides the others.
"""

from __future__ import annotations

import base64
import importlib.metadata
import math
import platform
import re
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from packaging.version import InvalidVersion, Version
from threadpoolctl import threadpool_limits

from registry import artifacts, services
from registry.choices import FileKind, ModelTask
from registry.loading import ArtifactIntegrityError, load_compiled_model, load_version_model, verified_path
from registry.models import Compilation, ModelVersion, VersionFile
from registry.schema import NUMERIC_TYPES, FieldSpec, check_frame, parse_schema
from registry.tables import read_table

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

SERVING_LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "skops", "onnxruntime", "joblib")
# Names under which registration tools record a library, mapped to its distribution name.
_LIBRARY_ALIASES = {"sklearn": "scikit-learn"}

MAX_DETAIL_ROWS = 50
SINGLE_ROW_RUNS, SINGLE_ROW_WARMUP = 30, 3
BATCH_ROWS, BATCH_RUNS = 1_000, 5
# The compiled graph computes in double; its only float32 step (a tree ensemble's output) costs ~6e-8.
COMPILED_RTOL = 1e-6
PROBABILITY_FLOOR = 1e-7  # see _relative_agreement
# The reference data compared with the compiled graph: all rows up to this many, else a seeded sample.
MAX_COMPARED_REFERENCE_ROWS = 10_000
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
            "details": [{str(key): _plain(value) for key, value in row.items()} for row in self.details],
        }
        if self.evidence:
            result["evidence"] = _plain(self.evidence)
        return result


@dataclass
class CheckOutcome:
    results: list[CheckResult]
    serving_environment: dict[str, Any]

    @property
    def passed(self) -> bool:
        return not any(result.required and result.status == FAILED for result in self.results)


def serving_environment() -> dict[str, Any]:
    """The Python and library versions of this process, in the shape registration captures."""
    libraries = {}
    for name in SERVING_LIBRARIES:
        try:
            libraries[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "libraries": libraries}


def run_checks(version: ModelVersion) -> CheckOutcome:
    """Run every check of `version`; never raises for a problem with the version itself."""
    environment = serving_environment()
    context = _Context.build(version)
    checks: list[tuple[str, bool, Callable[[], CheckResult]]] = [
        (GOLDEN_SET, True, lambda: _check_golden_set(context)),
        (ROBUSTNESS, True, lambda: _check_robustness(context)),
        (ENVIRONMENT, True, lambda: _check_environment(version, environment)),
        (LATENCY, True, lambda: _check_latency(context)),
        (COMPILED, False, lambda: _check_compiled(context)),
    ]
    # One thread for BLAS/OpenMP: on small shared machines their thread pools oversubscribe the
    # cores and make tree models up to 100x slower, which would fail latency for the wrong reason.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # Edge cases make estimators warn (unknown categories, feature names); the results say it better.
        warnings.simplefilter("ignore")
        results = [_guarded(name, required, check) for name, required, check in checks]
    return CheckOutcome(results=results, serving_environment=environment)


def _guarded(name: str, required: bool, check: Callable[[], CheckResult]) -> CheckResult:
    try:
        return check()
    except Exception as exc:  # a check that breaks is a failed check, not a failed run
        return _result(name, FAILED, f"The check could not run: {_describe(exc)}", required=required)


def _result(
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


# --- what the checks share ----------------------------------------------------------------------


@dataclass
class _Context:
    """The version's model and tables, loaded once; a load error is kept as a sentence."""

    version: ModelVersion
    predictor: artifacts.Predictor | None
    load_error: str
    golden: pd.DataFrame | None
    golden_error: str
    reference: pd.DataFrame | None

    @classmethod
    def build(cls, version: ModelVersion) -> _Context:
        predictor: artifacts.Predictor | None = None
        load_error = ""
        try:
            predictor = load_version_model(version)
        except VersionFile.DoesNotExist:
            load_error = "the version has no artifact file."
        except Exception as exc:  # skops, joblib and onnxruntime raise many kinds on a bad file
            readable = isinstance(exc, artifacts.ArtifactError | ArtifactIntegrityError)
            load_error = str(exc) if readable else _describe(exc)
        golden, golden_error = _read(version, FileKind.GOLDEN_SET)
        reference, _ = _read(version, FileKind.REFERENCE_DATA)
        return cls(version, predictor, load_error, golden, golden_error, reference)

    @property
    def is_classifier(self) -> bool:
        return self.version.model.task == ModelTask.CLASSIFICATION

    def fields(self) -> list[FieldSpec]:
        return parse_schema(self.version.input_schema or [])

    def input_names(self) -> list[str]:
        names = [spec.name for spec in self.fields()]
        if not names and self.golden is not None:
            names = [str(column) for column in self.golden.columns if column != services.GOLDEN_EXPECTED_COLUMN]
        return names

    def golden_inputs(self) -> pd.DataFrame | None:
        if self.golden is None or self.golden.empty:
            return None
        # An optional field absent from the file reaches the model as missing, as in a request.
        return self.golden.reindex(columns=self.input_names())

    def reference_inputs(self) -> pd.DataFrame | None:
        if self.reference is None or self.reference.empty:
            return None
        return self.reference.reindex(columns=self.input_names())

    def base_row(self) -> dict[str, Any]:
        """A valid request: real data where there is some, else one synthesised from the schema."""
        row = {spec.name: _synthesised_value(spec) for spec in self.fields()}
        for source in (self.golden_inputs(), self.reference_inputs()):
            if source is not None:
                first = source.iloc[0]
                for name in row:
                    if name in source.columns:
                        row[name] = _plain(first[name], keep_nan=True)
                break
        return row

    def sample_inputs(self, rows: int) -> pd.DataFrame:
        source = self.golden_inputs()
        if source is None:
            source = self.reference_inputs()
        if source is None:
            return pd.DataFrame([self.base_row()] * rows)
        return source.sample(n=rows, replace=True, random_state=0).reset_index(drop=True)

    def unloadable(self, name: str, *, required: bool = True) -> CheckResult:
        return _result(name, FAILED, f"The model could not be loaded: {self.load_error}", required=required)


def _read(version: ModelVersion, kind: str) -> tuple[pd.DataFrame | None, str]:
    version_file = version.files.filter(kind=kind).first()
    if version_file is None:
        return None, ""
    try:
        return read_table(verified_path(version_file)), ""
    except Exception as exc:  # integrity errors and unreadable files alike make the table unusable
        return None, f"{version_file.filename} could not be read: {exc}"


def _synthesised_value(spec: FieldSpec) -> Any:
    if spec.type in NUMERIC_TYPES:
        if spec.minimum is not None and spec.maximum is not None:
            middle = (spec.minimum + spec.maximum) / 2
            return math.floor(middle) if spec.type == "integer" else middle
        bound = spec.minimum if spec.minimum is not None else spec.maximum
        return _numeric(spec, bound if bound is not None else 0)
    if spec.type == "category":
        return spec.categories[0] if spec.categories else "x"
    if spec.type == "boolean":
        return False
    if spec.type == "datetime":
        return "2000-01-01T00:00:00"
    if spec.type == "binary":
        return base64.b64encode(b"x").decode("ascii")
    return "x"


def _numeric(spec: FieldSpec, value: float) -> float | int:
    return int(value) if spec.type == "integer" and float(value).is_integer() else float(value)


def _missing(spec: FieldSpec) -> Any:
    return np.nan if spec.type in NUMERIC_TYPES else None


def _plain(value: Any, *, keep_nan: bool = False) -> Any:
    """A JSON-friendly Python value; NaN and infinities become text unless kept for a DataFrame."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value) and not keep_nan:
        return str(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _describe(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _label(value: Any) -> str:
    """A class label as text, so that 1, 1.0, "1" and "1.0" (a CSV with blanks reads ints as floats) agree."""
    value = _plain(value, keep_nan=True)
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


def _validated(expected: pd.Series) -> pd.Series:
    text = expected.astype(str).str.strip()
    return expected.notna() & (text != "")


# --- golden set ---------------------------------------------------------------------------------


def _check_golden_set(context: _Context) -> CheckResult:
    if context.predictor is None:
        return context.unloadable(GOLDEN_SET)
    if context.golden_error:
        return _result(GOLDEN_SET, FAILED, f"The golden set is unusable: {context.golden_error}")
    nothing = "No golden set with validated outputs: nothing to reproduce."
    golden = context.golden
    if golden is None or golden.empty or services.GOLDEN_EXPECTED_COLUMN not in golden.columns:
        return _result(GOLDEN_SET, WARNING, nothing)
    validated = _validated(golden[services.GOLDEN_EXPECTED_COLUMN])
    skipped = int((~validated).sum())
    if not validated.any():
        return _result(GOLDEN_SET, WARNING, f"{nothing[:-1]} ({skipped} rows have no expected value).")
    rows = golden[validated]
    predictions = context.predictor.predict(rows.reindex(columns=context.input_names()))
    tolerance = context.version.model.score_tolerance
    mismatches: list[dict[str, Any]] = []
    for index, expected, got in zip(rows.index, rows[services.GOLDEN_EXPECTED_COLUMN], predictions, strict=True):
        if context.is_classifier:
            if _label(expected) != _label(got):
                mismatches.append({"index": int(index), "expected": _plain(expected), "got": _plain(got)})
            continue
        expected_number = pd.to_numeric(pd.Series([expected]), errors="coerce").iloc[0]
        difference = abs(float(got) - float(expected_number))
        if not difference <= tolerance:  # NaN on either side is a mismatch too
            mismatches.append(
                {"index": int(index), "expected": _plain(expected), "got": _plain(got), "difference": difference}
            )
    total = len(rows)
    how = "exactly" if context.is_classifier else f"within {tolerance:g}"
    note = f" {skipped} row{'s' if skipped != 1 else ''} without a validated output were skipped." if skipped else ""
    if mismatches:
        first = mismatches[0]
        summary = (
            f"{total - len(mismatches)} of {total} golden rows reproduced {how}; row {first['index']} "
            f"expected {_plain(first['expected'])!r}, got {_plain(first['got'])!r}.{note}"
        )
        return _result(GOLDEN_SET, FAILED, summary, details=mismatches[:MAX_DETAIL_ROWS])
    return _result(GOLDEN_SET, PASSED, f"{total} of {total} golden rows reproduced {how}.{note}")


# --- robustness ---------------------------------------------------------------------------------


REJECTED, PREDICTED, CRASHED, INVALID = "rejected by schema", "prediction", "crash", "invalid output"
# A text value the model's encoder never saw (scikit-learn's OneHotEncoder and OrdinalEncoder with
# handle_unknown="error", MLflow's usual pipelines, whose signatures carry no categories): the model refuses
# it, and serving answers such a request 400 with the model's words; not a crash.
REFUSED = "refused by the model"
_UNKNOWN_CATEGORY = re.compile(r"unknown categor", re.IGNORECASE)
_TEXT_TYPES = ("string", "category")


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
                add(spec, f"minimum ({spec.minimum:g})", _numeric(spec, spec.minimum))
            if spec.maximum is not None:
                add(spec, f"maximum ({spec.maximum:g})", _numeric(spec, spec.maximum))
            for label, value in (("zero", 0), ("-1", -1), ("-1e9", -1e9), ("1e12", 1e12)):
                add(spec, label, _numeric(spec, value))
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


def _run_case(context: _Context, fields: list[FieldSpec], case: _Case) -> dict[str, Any]:
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
            return {**row, "outcome": REFUSED, "detail": _describe(exc)}
        return {**row, "outcome": CRASHED, "detail": _describe(exc)}
    if len(predictions) != 1:
        return {**row, "outcome": INVALID, "detail": f"{len(predictions)} predictions for one row"}
    if _invalid(predictions):
        return {**row, "outcome": INVALID, "detail": f"predicted {_plain(predictions[0])}"}
    if _invalid(probabilities):
        return {
            **row,
            "outcome": INVALID,
            "detail": f"predicted {_plain(predictions[0])} with NaN or infinite probabilities",
        }
    detail = f"predicted {_plain(predictions[0])}"
    if probabilities is not None:
        detail += " (probabilities " + ", ".join(f"{p:.3f}" for p in np.asarray(probabilities)[0]) + ")"
    return {**row, "outcome": PREDICTED, "detail": detail}


def _check_robustness(context: _Context) -> CheckResult:
    if context.predictor is None:
        return context.unloadable(ROBUSTNESS)
    fields = context.fields()
    if not fields:
        return _result(ROBUSTNESS, WARNING, "The version has no input schema: no edge cases could be generated.")
    rows = [_run_case(context, fields, case) for case in _edge_cases(fields, context.base_row())]
    broken = [row for row in rows if row["outcome"] in (CRASHED, INVALID)]
    if broken:
        named = "; ".join(f"{row['field']} {row['case']}: {row['outcome']} ({row['detail']})" for row in broken[:3])
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        summary = f"{len(broken)} of {len(rows)} edge cases broke the model: {named}{more}."
        return _result(ROBUSTNESS, FAILED, summary, details=rows)
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
    return _result(ROBUSTNESS, PASSED, summary, details=rows)


# --- environment --------------------------------------------------------------------------------

_SEVERITY = {PASSED: 0, WARNING: 1, FAILED: 2}


def _release(text: str) -> tuple[int, int, int] | None:
    try:
        release = Version(str(text)).release
    except InvalidVersion:
        return None
    major, minor, patch = (*release, 0, 0, 0)[:3]
    return major, minor, patch


def _compare(library: str, registered: str, serving: str | None) -> tuple[str, str]:
    """The status and a short verdict for one library's registered and serving versions."""
    if serving is None:
        return (FAILED if library == "scikit-learn" else WARNING), "not installed here"
    if registered == serving:
        return PASSED, "same"
    old, new = _release(registered), _release(serving)
    if old is None or new is None:
        return WARNING, "version not readable"
    if old == new:
        return PASSED, "same release"
    level = "major" if old[0] != new[0] else "minor" if old[1] != new[1] else "patch"
    if library == "scikit-learn" and level != "patch":
        return FAILED, f"{level} version differs: estimators may not load or may predict differently"
    if library == "numpy" and level == "major":
        return FAILED, "major version differs: stored arrays may not load"
    return WARNING, f"{level} version differs"


def _library_name(name: str) -> str:
    normalised = name.strip().lower().replace("_", "-")
    return _LIBRARY_ALIASES.get(normalised, normalised)


def _environment_row(library: str, registered: Any, serving: Any, verdict: str) -> dict[str, Any]:
    return {"library": library, "registered": registered, "serving": serving, "verdict": verdict}


def _check_environment(version: ModelVersion, serving: dict[str, Any]) -> CheckResult:
    registered = version.environment if isinstance(version.environment, dict) else {}
    raw_libraries = registered.get("libraries")
    libraries = (
        {_library_name(str(k)): str(v) for k, v in raw_libraries.items()} if isinstance(raw_libraries, dict) else {}
    )
    serving_libraries: dict[str, str] = serving["libraries"]
    if not registered.get("python") and not libraries:
        details = [
            _environment_row(name, None, number, "not captured")
            for name, number in {"python": serving["python"], **serving_libraries}.items()
        ]
        return _result(ENVIRONMENT, WARNING, "No environment was captured at registration.", details=details)

    rows: list[tuple[str, dict[str, Any]]] = []
    python = registered.get("python")
    if python:
        old, new = _release(str(python)), _release(serving["python"])
        same = old is not None and new is not None and old[:2] == new[:2]
        status, verdict = (PASSED, "same minor version") if same else (WARNING, "minor version differs")
    else:
        status, verdict = WARNING, "not captured"
    rows.append((status, _environment_row("python", python, serving["python"], verdict)))
    for library in SERVING_LIBRARIES:
        here = serving_libraries.get(library)
        if library in libraries:
            status, verdict = _compare(library, libraries[library], here)
            rows.append((status, _environment_row(library, libraries[library], here, verdict)))
        elif library == "scikit-learn" and version.format != artifacts.ONNX:
            # Without it nobody can tell whether the estimators were pickled by a compatible release.
            rows.append((WARNING, _environment_row(library, None, here, "not captured")))
    worst = max((status for status, _ in rows), key=_SEVERITY.__getitem__)
    details = [{**row, "status": status} for status, row in rows]
    differing = [row for status, row in rows if status == worst and status != PASSED]
    if worst == PASSED:
        compared = ", ".join(f"{row['library']} {row['serving']}" for _, row in rows)
        return _result(
            ENVIRONMENT, PASSED, f"The serving environment matches the registered one: {compared}.", details=details
        )
    described = "; ".join(
        f"{row['library']} {row['registered'] or '(not captured)'} registered, {row['serving'] or 'none'} here"
        for row in differing
    )
    lead = "The serving environment differs where it matters" if worst == FAILED else "Minor differences"
    warnings_too = sum(status == WARNING for status, _ in rows) if worst == FAILED else 0
    also = f" Also {warnings_too} smaller difference{'s' if warnings_too != 1 else ''}." if warnings_too else ""
    return _result(ENVIRONMENT, worst, f"{lead}: {described}.{also}", details=details)


# --- latency ------------------------------------------------------------------------------------


def _timings_ms(call: Callable[[], object], *, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _check_latency(context: _Context) -> CheckResult:
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
    return _result(LATENCY, PASSED if single_ok and batch_ok else FAILED, summary, details=details)


# --- compiled model -----------------------------------------------------------------------------


def _check_compiled(context: _Context) -> CheckResult:
    """The compiled graph against the native model on the golden set and the reference data.

    Not required: a graph that cannot be made or disagrees only means the native model serves; the
    result says which, and a passed result names the file it verified (serving re-checks its sha256).
    """
    compilation = Compilation.objects.filter(version=context.version).first()
    if compilation is None:
        return _result(COMPILED, SKIPPED, "The version was never compiled: the native model serves.", required=False)
    if compilation.status != Compilation.Status.COMPILED:
        status = WARNING if compilation.status == Compilation.Status.FAILED else SKIPPED
        reason = f": {compilation.error}" if compilation.error else ""
        summary = f"{compilation.get_status_display()}{reason}. The native model serves."
        if compilation.status == Compilation.Status.PENDING:
            summary = "Not compiled yet (the artifact's types await a reviewer). The native model serves."
        return _result(COMPILED, status, summary, required=False)
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
        return _result(
            COMPILED, FAILED, summary, required=False, details=mismatches[:MAX_DETAIL_ROWS], evidence=evidence
        )
    summary = (
        f"The compiled graph (sha256 {compilation.sha256[:12]}…) gives the native model's {what} {tolerance} "
        f"on all {compared} rows (largest relative difference {largest:.2g}). It serves."
    )
    return _result(COMPILED, PASSED, summary, required=False, evidence=evidence)


def _compare_compiled(
    context: _Context, compiled: artifacts.OnnxPredictor, source: str, frame: pd.DataFrame
) -> tuple[list[dict[str, Any]], int, float]:
    """The first rows where the two engines differ, how many do, and the largest relative difference."""
    predictor = context.predictor
    assert predictor is not None  # _check_compiled returns first when the model could not be loaded
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
            [_label(a) == _label(b) for a, b in zip(native_labels, compiled_labels, strict=True)], dtype=bool
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
