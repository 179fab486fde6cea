"""Pre-deployment checks of a registered version, run as a worker runs them."""

from __future__ import annotations

import importlib.metadata
import json
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from skl2onnx import to_onnx
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from registry.checks import latency as latency_check
from registry.checks.environment import serving_environment
from registry.checks.results import CheckOutcome, CheckResult
from registry.checks.runner import run_checks
from registry.choices import FileKind
from registry.compilation_services import compilation_run
from registry.models import ModelVersion, RegisteredModel
from tests.conftest import INPUT_SCHEMA
from tests.factories import RegisteredModelFactory

Register = Callable[..., ModelVersion]
Trained = tuple[Pipeline, pd.DataFrame]


class NanIntolerantClassifier:
    """Predicts churn from tenure and raises on a missing value, as estimators without imputation do."""

    classes_ = np.array([0, 1])

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if frame[["tenure", "charges"]].isna().to_numpy().any():
            raise ValueError("Input X contains NaN.")
        return (frame["tenure"].to_numpy() < 24).astype(int)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        churn = self.predict(frame).astype(float)
        # A ratio feature divided by zero: a free charge gives no probability at all.
        churn[frame["charges"].to_numpy() == 0] = np.nan
        return np.column_stack([1 - churn, churn])


def by_name(outcome: CheckOutcome) -> dict[str, CheckResult]:
    return {result.name: result for result in outcome.results}


def golden_csv(trained: Trained, expected: list[Any] | None = None) -> SimpleUploadedFile:
    pipeline, frame = trained
    golden = frame.head(5).copy()
    golden["expected"] = list(pipeline.predict(golden)) if expected is None else expected
    return SimpleUploadedFile("golden.csv", golden.to_csv(index=False).encode())


def matching_environment() -> str:
    return json.dumps(serving_environment())


def other_sklearn(level: str) -> str:
    major, minor, patch = (int(part) for part in importlib.metadata.version("scikit-learn").split(".")[:3])
    return f"{major}.{minor + 1}.0" if level == "minor" else f"{major}.{minor}.{patch + 1}"


def test_it_passes_a_good_version(churn_model: RegisteredModel, author: Any, register: Register) -> None:
    version = register(churn_model, author, environment=matching_environment())

    outcome = run_checks(version)

    results = by_name(outcome)
    assert outcome.passed
    assert list(results) == ["golden_set", "robustness", "environment", "latency", "compiled"]
    assert {name: result.status for name, result in results.items()} == {
        "golden_set": "passed",
        "robustness": "passed",
        "environment": "passed",
        "latency": "passed",
        "compiled": "skipped",
    }
    assert results["golden_set"].summary == "5 of 5 golden rows reproduced exactly."
    # Registered, not yet compiled: the worker's task has not run (nor the checks' own call, in a real run).
    assert results["compiled"].summary.startswith("Not compiled yet")
    assert not results["compiled"].required
    assert outcome.serving_environment["libraries"]["scikit-learn"] == importlib.metadata.version("scikit-learn")
    cases = {(row["field"], row["case"]): row["outcome"] for row in results["robustness"].details}
    assert cases[("tenure", "missing")] == "rejected by schema"
    assert cases[("contract", "unseen category ('__unseen__')")] == "rejected by schema"
    assert cases[("charges", "maximum (500)")] == "prediction"
    assert ("charges", "zero") not in cases  # the same case as its minimum of 0
    assert cases[("(all fields)", "every field missing")] == "rejected by schema"
    # Stored in a JSONField: must survive a round trip with no NaN or numpy values.
    for result in outcome.results:
        assert json.loads(json.dumps(result.as_json(), allow_nan=False)) == result.as_json()


def test_it_fails_a_golden_row_the_model_does_not_reproduce(
    churn_model: RegisteredModel, author: Any, register: Register, trained: Trained
) -> None:
    pipeline, frame = trained
    expected = [int(label) for label in pipeline.predict(frame.head(5))]
    expected[2] = 1 - expected[2]
    version = register(churn_model, author, golden_set=golden_csv(trained, expected))

    outcome = run_checks(version)

    golden = by_name(outcome)["golden_set"]
    assert golden.status == "failed"
    assert not outcome.passed
    assert golden.summary.startswith("4 of 5 golden rows reproduced exactly")
    assert golden.details == [{"index": 2, "expected": expected[2], "got": 1 - expected[2]}]


def test_it_reproduces_regression_scores_within_the_tolerance(
    author: Any, register: Register, trained: Trained
) -> None:
    pipeline, frame = trained
    regressor = Pipeline([*pipeline.steps[:-1], ("regress", LinearRegression())])
    regressor.fit(frame, frame["tenure"] * 1.5 + frame["charges"] * 0.3)
    model = RegisteredModelFactory.create(name="spend", task="regression", owner=author, score_tolerance=1e-3)
    golden = frame.head(5).copy()
    golden["expected"] = regressor.predict(golden) + np.array([0, 0.0005, 0.01, 0, 0])
    version = register(
        model,
        author,
        artifact=SimpleUploadedFile("spend.skops", sio.dumps(regressor)),
        golden_set=SimpleUploadedFile("golden.csv", golden.to_csv(index=False).encode()),
    )

    outcome = run_checks(version)

    result = by_name(outcome)["golden_set"]
    assert result.status == "failed"
    assert result.summary.startswith("4 of 5 golden rows reproduced within 0.001; row 2 expected")
    assert [row["index"] for row in result.details] == [2]
    assert result.details[0]["difference"] == pytest.approx(0.01)
    assert by_name(outcome)["robustness"].status == "passed"


def test_it_skips_golden_rows_without_a_validated_output(
    churn_model: RegisteredModel, author: Any, register: Register, trained: Trained
) -> None:
    pipeline, frame = trained
    expected: list[Any] = [int(label) for label in pipeline.predict(frame.head(5))]
    # Blanks make pandas read the other labels back as 1.0 and 0.0, which must still match 1 and 0.
    expected[0] = expected[1] = None
    version = register(churn_model, author, golden_set=golden_csv(trained, expected))

    golden = by_name(run_checks(version))["golden_set"]

    assert golden.status == "passed"
    assert golden.summary == "3 of 3 golden rows reproduced exactly. 2 rows without a validated output were skipped."


def test_it_warns_when_there_is_nothing_to_reproduce(
    churn_model: RegisteredModel, author: Any, register: Register
) -> None:
    version = register(churn_model, author, golden_set=None)

    outcome = run_checks(version)

    golden = by_name(outcome)["golden_set"]
    assert golden.status == "warning"
    assert golden.summary == "No golden set with validated outputs: nothing to reproduce."
    assert outcome.passed
    assert by_name(outcome)["robustness"].status == "passed"  # its base row came from the reference data


def test_it_names_the_edge_case_that_crashes_the_model(
    churn_model: RegisteredModel, author: Any, register: Register
) -> None:
    author.user_permissions.add(Permission.objects.get(codename="upload_pickle"))
    author = get_user_model().objects.get(pk=author.pk)
    schema: list[dict[str, Any]] = json.loads(json.dumps(INPUT_SCHEMA))
    schema[1]["required"] = False  # the schema lets a missing charge through; the model cannot take it
    version = register(
        churn_model,
        author,
        artifact=SimpleUploadedFile("model.pkl", pickle.dumps(NanIntolerantClassifier())),
        input_schema=json.dumps(schema),
    )
    version.trust_accepted_at = timezone.now()
    version.save(update_fields=["trust_accepted_at"])

    outcome = run_checks(version)

    robustness = by_name(outcome)["robustness"]
    assert robustness.status == "failed"
    assert not outcome.passed
    assert "charges missing: crash (ValueError: Input X contains NaN.)" in robustness.summary
    broken = [row for row in robustness.details if row["outcome"] != "rejected by schema"]
    assert [row for row in broken if row["outcome"] != "prediction"] == [
        {
            "field": "charges",
            "case": "minimum (0)",
            "outcome": "invalid output",
            "detail": "predicted 0 with NaN or infinite probabilities",
        },
        {"field": "charges", "case": "missing", "outcome": "crash", "detail": "ValueError: Input X contains NaN."},
    ]
    assert robustness.summary.startswith("2 of ")
    assert by_name(outcome)["latency"].status == "passed"


def test_it_counts_a_text_value_the_encoder_never_saw_as_refused_not_a_crash(
    churn_model: RegisteredModel, author: Any, register: Register
) -> None:
    # As an MLflow signature declares it: a string column, with no categories the schema could check.
    schema: list[dict[str, Any]] = json.loads(json.dumps(INPUT_SCHEMA))
    schema[2] = {"name": "contract", "type": "string"}
    version = register(churn_model, author, input_schema=json.dumps(schema))
    compilation_run(version_id=version.pk)

    outcome = run_checks(version)

    robustness = by_name(outcome)["robustness"]
    assert robustness.status == "passed", robustness.summary
    refused = {row["case"] for row in robustness.details if row["outcome"] == "refused by the model"}
    assert refused == {"empty string", "10,000 characters"}
    assert "refused by the model (contract): such a request gets a 400" in robustness.summary
    cases = {row["case"]: row["outcome"] for row in robustness.details if row["field"] == "contract"}
    assert cases["missing"] == "rejected by schema"


@pytest.mark.parametrize(("level", "status"), [("minor", "failed"), ("patch", "warning")])
def test_it_compares_the_registered_scikit_learn_version(
    churn_model: RegisteredModel, author: Any, register: Register, level: str, status: str
) -> None:
    registered = other_sklearn(level)
    environment = serving_environment()
    environment["libraries"]["scikit-learn"] = registered
    version = register(churn_model, author, environment=json.dumps(environment))

    outcome = run_checks(version)

    result = by_name(outcome)["environment"]
    assert result.status == status
    assert outcome.passed is (status != "failed")
    row = next(row for row in result.details if row["library"] == "scikit-learn")
    assert row["registered"] == registered
    assert row["verdict"].startswith(f"{level} version differs")
    assert f"scikit-learn {registered} registered" in result.summary


def test_it_fails_an_old_scikit_learn_and_warns_about_python(
    churn_model: RegisteredModel, author: Any, register: Register
) -> None:
    environment = '{"python": "3.9.1", "libraries": {"scikit-learn": "1.0.2"}}'
    version = register(churn_model, author, environment=environment)

    result = by_name(run_checks(version))["environment"]

    assert result.status == "failed"
    verdicts = {row["library"]: row["status"] for row in result.details}
    assert verdicts == {"python": "warning", "scikit-learn": "failed"}


def test_it_warns_when_no_environment_was_captured(
    churn_model: RegisteredModel, author: Any, register: Register
) -> None:
    version = register(churn_model, author, environment=None)

    result = by_name(run_checks(version))["environment"]

    assert result.status == "warning"
    assert result.summary == "No environment was captured at registration."


def test_it_fails_an_impossible_latency_budget(churn_model: RegisteredModel, author: Any, register: Register) -> None:
    churn_model.latency_budget_ms = 1e-6
    churn_model.save()
    version = register(churn_model, author)

    outcome = run_checks(version)

    latency = by_name(outcome)["latency"]
    assert latency.status == "failed"
    assert not outcome.passed
    single, batch = latency.details
    assert (single["case"], single["budget_ms"], single["verdict"]) == ("one row", 1e-6, "over budget")
    assert single["median_ms"] <= single["p95_ms"]
    assert (batch["case"], batch["verdict"]) == ("1,000 rows", "within budget")


def test_it_reports_an_untrusted_model_instead_of_loading_it(
    churn_model: RegisteredModel, author: Any, register: Register, trained: Trained
) -> None:
    pipeline, frame = trained
    tree = Pipeline([*pipeline.steps[:-1], ("classify", DecisionTreeClassifier(max_depth=3))])
    tree.fit(frame, pipeline.predict(frame))
    version = register(churn_model, author, artifact=SimpleUploadedFile("tree.skops", sio.dumps(tree)))
    assert not version.is_trusted

    outcome = run_checks(version)

    results = by_name(outcome)
    assert not outcome.passed
    for name in ("golden_set", "robustness", "latency"):
        assert results[name].status == "failed"
        assert results[name].summary.startswith("The model could not be loaded: ")
        assert "sklearn.tree._tree.Tree" in results[name].summary
    assert results["environment"].status in {"passed", "warning"}


def test_it_refuses_an_artifact_changed_after_registration(
    churn_model: RegisteredModel, author: Any, register: Register
) -> None:
    version = register(churn_model, author)
    artifact = version.files.get(kind=FileKind.ARTIFACT)
    with open(artifact.file.path, "ab") as handle:
        handle.write(b"tampered")

    outcome = run_checks(version)

    golden = by_name(outcome)["golden_set"]
    assert golden.status == "failed"
    assert "model.skops of churn v1 was changed after registration" in golden.summary
    assert not outcome.passed


def test_it_reports_a_broken_check_and_runs_the_others(
    churn_model: RegisteredModel, author: Any, register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = register(churn_model, author)

    def broken(*args: Any) -> CheckResult:
        raise RuntimeError("timer exploded")

    monkeypatch.setattr(latency_check, "check_latency", broken)
    outcome = run_checks(version)

    latency = by_name(outcome)["latency"]
    assert (latency.status, latency.required) == ("failed", True)
    assert latency.summary == "The check could not run: RuntimeError: timer exploded"
    assert by_name(outcome)["golden_set"].status == "passed"
    assert by_name(outcome)["compiled"].status == "skipped"


def test_it_compares_an_attached_onnx_export_with_the_model(
    churn_model: RegisteredModel, author: Any, register: Register, trained: Trained
) -> None:
    pipeline, frame = trained
    sample = frame.head(1).astype({"tenure": np.float64})
    exported = to_onnx(pipeline, sample, options={id(pipeline.steps[-1][1]): {"zipmap": False}})
    version = register(churn_model, author, onnx=SimpleUploadedFile("model.onnx", exported.SerializeToString()))
    compilation_run(version_id=version.pk)

    compiled = by_name(run_checks(version))["compiled"]

    assert (compiled.status, compiled.required) == ("passed", False), compiled.summary
    assert compiled.evidence["source"] == "attached"
    assert compiled.evidence["rows"] == {"golden": 5, "reference": 200}


def test_it_fails_an_onnx_export_of_another_model_without_failing_the_version(
    churn_model: RegisteredModel, author: Any, register: Register, trained: Trained
) -> None:
    pipeline, frame = trained
    other = Pipeline([*pipeline.steps[:-1], ("classify", DecisionTreeClassifier(max_depth=1))])
    other.fit(frame, 1 - pipeline.predict(frame))
    sample = frame.head(1).astype({"tenure": np.float32, "charges": np.float32})
    exported = to_onnx(other, sample, options={id(other.steps[-1][1]): {"zipmap": False}})
    version = register(churn_model, author, onnx=SimpleUploadedFile("model.onnx", exported.SerializeToString()))
    compilation_run(version_id=version.pk)

    outcome = run_checks(version)

    compiled = by_name(outcome)["compiled"]
    assert compiled.status == "failed"
    assert outcome.passed  # a disagreeing graph only means the native model serves
    assert compiled.details[0]["source"] == "golden"
    assert compiled.summary.startswith("The compiled graph differs from the native model on 205 of the 5 golden")
