"""The serving environment matches: this process's Python and libraries against those of registration."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from packaging.version import InvalidVersion, Version

from registry.checks.results import ENVIRONMENT, FAILED, PASSED, WARNING, CheckResult, result
from registry.choices import ArtifactFormat
from registry.models import ModelVersion

SERVING_LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "skops", "onnxruntime", "joblib")
# Names under which registration tools record a library, mapped to its distribution name.
_LIBRARY_ALIASES = {"sklearn": "scikit-learn"}
_SEVERITY = {PASSED: 0, WARNING: 1, FAILED: 2}


def serving_environment() -> dict[str, Any]:
    """The Python and library versions of this process, in the shape registration captures."""
    libraries = {}
    for name in SERVING_LIBRARIES:
        try:
            libraries[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {"python": platform.python_version(), "libraries": libraries}


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


def check_environment(version: ModelVersion, serving: dict[str, Any]) -> CheckResult:
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
        return result(ENVIRONMENT, WARNING, "No environment was captured at registration.", details=details)

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
        elif library == "scikit-learn" and version.format != ArtifactFormat.ONNX:
            # Without it nobody can tell whether the estimators were pickled by a compatible release.
            rows.append((WARNING, _environment_row(library, None, here, "not captured")))
    worst = max((status for status, _ in rows), key=_SEVERITY.__getitem__)
    details = [{**row, "status": status} for status, row in rows]
    differing = [row for status, row in rows if status == worst and status != PASSED]
    if worst == PASSED:
        compared = ", ".join(f"{row['library']} {row['serving']}" for _, row in rows)
        return result(
            ENVIRONMENT, PASSED, f"The serving environment matches the registered one: {compared}.", details=details
        )
    described = "; ".join(
        f"{row['library']} {row['registered'] or '(not captured)'} registered, {row['serving'] or 'none'} here"
        for row in differing
    )
    lead = "The serving environment differs where it matters" if worst == FAILED else "Minor differences"
    warnings_too = sum(status == WARNING for status, _ in rows) if worst == FAILED else 0
    also = f" Also {warnings_too} smaller difference{'s' if warnings_too != 1 else ''}." if warnings_too else ""
    return result(ENVIRONMENT, worst, f"{lead}: {described}.{also}", details=details)
