"""Every scikit-learn model compiled to ONNX at registration; the graph serves only once verified."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient
from skl2onnx import to_onnx
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from registry import selectors, services
from registry.checks.results import COMPILED
from registry.checks.runner import run_checks
from registry.choices import ModelTask
from registry.compilation_services import compilation_run
from registry.models import AuditEvent, Compilation, ModelVersion, RegisteredModel
from registry.registration import VersionUpload, version_register
from scoring import runtime
from scoring.models import Prediction
from tests.conftest import INPUT_SCHEMA, customers
from tests.factories import RegisteredModelFactory
from tests.registry import test_mlflow_models as mlflow_models

ROWS = [
    {"tenure": 3, "charges": 99.5, "contract": "monthly"},
    {"tenure": 60, "charges": 25.0, "contract": "yearly"},
]


class Doubler(BaseEstimator, TransformerMixin):
    """A custom transformer: skl2onnx has no converter for it."""

    def fit(self, frame: Any, labels: Any = None) -> Doubler:
        return self

    def transform(self, frame: Any) -> Any:
        return np.asarray(frame, dtype=float) * 2


def churn_labels(frame: pd.DataFrame) -> pd.Series:
    return ((frame["contract"] == "monthly") & (frame["tenure"] < 24)).astype(int)


def one_hot(final: Any) -> Pipeline:
    prepare = ColumnTransformer(
        [("numbers", StandardScaler(), ["tenure", "charges"]), ("contract", OneHotEncoder(), ["contract"])]
    )
    return Pipeline([("prepare", prepare), ("model", final)])


def upload(estimator: Any, frame: pd.DataFrame, *, expected: Any = None, **overrides: Any) -> VersionUpload:
    golden = frame.head(20).copy()
    golden["expected"] = estimator.predict(golden) if expected is None else expected
    reference = io.BytesIO()
    frame.to_parquet(reference, index=False)
    fields: dict[str, Any] = {
        "artifact": SimpleUploadedFile("model.skops", sio.dumps(estimator)),
        "golden_set": SimpleUploadedFile("golden.csv", golden.to_csv(index=False).encode()),
        "reference_data": SimpleUploadedFile("reference.parquet", reference.getvalue()),
        "input_schema": json.dumps(INPUT_SCHEMA),
        "release_notes": "Compiled.",
        **overrides,
    }
    return VersionUpload(**fields)


@pytest.fixture
def registered(author: Any, reviewer: Any, django_capture_on_commit_callbacks: Any) -> Callable[..., ModelVersion]:
    """Register as the API does and run what the worker runs after the commit (compile_version)."""

    def do(model: RegisteredModel, estimator: Any, frame: pd.DataFrame, **overrides: Any) -> ModelVersion:
        with django_capture_on_commit_callbacks(execute=True):
            version = version_register(actor=author, model=model, upload=upload(estimator, frame, **overrides))
        if version.requires_trust:
            with django_capture_on_commit_callbacks(execute=True):
                version = services.version_accept_untrusted_types(actor=reviewer, version=version, reason="Trees.")
        return ModelVersion.objects.get(pk=version.pk)

    return do


def compiled_result(version: ModelVersion) -> dict[str, Any]:
    check_run = version.check_runs.order_by("-finished_at").first()
    assert check_run is not None
    return next(result for result in check_run.results if result["name"] == COMPILED)


def user_client(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_it_compiles_a_random_forest_pipeline_and_serves_it_once_verified(
    churn_model: RegisteredModel,
    registered: Callable[..., ModelVersion],
    go_live: Callable[[ModelVersion], ModelVersion],
    author: Any,
    manager: Any,
) -> None:
    frame = customers(300)
    pipeline = one_hot(RandomForestClassifier(n_estimators=30, random_state=0)).fit(frame, churn_labels(frame))
    version = registered(churn_model, pipeline, frame)

    compilation = version.compilation
    assert (compilation.status, compilation.source) == ("compiled", "compiled")
    assert compilation.sha256 == hashlib.sha256(Path(compilation.file.path).read_bytes()).hexdigest()
    assert compilation.converter["precision"] == "double"
    assert AuditEvent.objects.filter(action="version.compiled", version=version).count() == 1
    # Compiled, but nothing has compared it with the native model yet.
    assert selectors.serving_engine(version=version).engine == "skops"

    version = go_live(version)

    result = compiled_result(version)
    assert result["status"] == "passed", result["summary"]
    assert not result["required"]
    assert result["evidence"]["rows"] == {"golden": 20, "reference": 300}
    assert result["evidence"]["sha256"] == compilation.sha256
    assert runtime.model_cache.loaded_version(version.pk).engine == "onnx"
    answer = user_client(author).post("/api/models/churn/predict/", {"instances": ROWS}, format="json").json()
    native = pipeline.predict_proba(pd.DataFrame(ROWS))
    assert answer["predictions"] == pipeline.predict(pd.DataFrame(ROWS)).tolist()
    assert np.allclose(answer["probabilities"], native, rtol=1e-6, atol=1e-7)
    assert set(Prediction.objects.values_list("engine", flat=True)) == {"onnx"}
    detail = user_client(manager).get("/api/models/churn/versions/1/").json()
    assert detail["serving_engine"]["engine"] == "onnx"
    assert detail["serving_engine"]["reason"] == f"Verified by check run #{version.check_runs.get().pk} on 320 rows."


def test_it_compiles_a_regressor_in_double_precision(
    author: Any, registered: Callable[..., ModelVersion], go_live: Callable[[ModelVersion], ModelVersion]
) -> None:
    model = RegisteredModelFactory.create(
        name="charges",
        task=ModelTask.REGRESSION,
        owner=author,
        latency_budget_ms=5_000,
        batch_latency_budget_ms=120_000,
    )
    frame = customers(400)
    target = frame["charges"] * 3 + frame["tenure"]
    regressor = one_hot(RandomForestRegressor(n_estimators=20, random_state=0)).fit(frame, target)

    version = go_live(registered(model, regressor, frame))

    result = compiled_result(version)
    assert result["status"] == "passed", result["summary"]
    assert result["evidence"]["largest_relative_difference"] < 1e-6
    loaded = runtime.model_cache.loaded_version(version.pk)
    assert loaded.engine == "onnx"
    columns = {name: np.array([row[name] for row in ROWS]) for name in ROWS[0]}
    compiled, _ = loaded.score(columns)
    assert np.allclose(compiled, regressor.predict(pd.DataFrame(ROWS)), rtol=1e-6, atol=0)


def test_a_one_hot_pipeline_takes_string_categories(churn_model: RegisteredModel, registered: Any) -> None:
    frame = customers()
    pipeline = one_hot(DecisionTreeClassifier(max_depth=4, random_state=0)).fit(frame, churn_labels(frame))

    version = registered(churn_model, pipeline, frame)

    assert version.compilation.status == "compiled"
    assert version.compilation.converter["inputs"] == "3 inputs, one per column"
    outcome = run_checks(version)
    compiled = next(result for result in outcome.results if result.name == COMPILED)
    assert compiled.status == "passed", compiled.summary


def test_an_unsupported_estimator_serves_natively_with_the_converters_reason(
    churn_model: RegisteredModel,
    registered: Any,
    go_live: Callable[[ModelVersion], ModelVersion],
    client: Any,
    manager: Any,
) -> None:
    frame = customers()
    pipeline = Pipeline(
        [
            ("prepare", ColumnTransformer([("numbers", Doubler(), ["tenure", "charges"])])),
            ("model", RandomForestClassifier(5, random_state=0)),
        ]
    ).fit(frame, churn_labels(frame))

    version = go_live(registered(churn_model, pipeline, frame))

    assert version.compilation.status == "unsupported"
    assert "tests.registry.test_compilation.Doubler" in version.compilation.error
    serving = selectors.serving_engine(version=version)
    assert serving.engine == "skops"
    assert serving.reason.startswith("Cannot be compiled: unsupported: tests.registry.test_compilation.Doubler")
    assert compiled_result(version)["status"] == "skipped"
    assert runtime.model_cache.loaded_version(version.pk).engine == "skops"
    client.force_login(manager)
    page = client.get("/models/churn/versions/1/").content.decode()
    assert "Serving engine: native model" in page
    assert "tests.registry.test_compilation.Doubler" in page


def test_a_doctored_onnx_export_is_caught_and_the_native_model_serves(
    churn_model: RegisteredModel,
    registered: Any,
    go_live: Callable[[ModelVersion], ModelVersion],
    client: Any,
    manager: Any,
) -> None:
    frame = customers()
    pipeline = one_hot(DecisionTreeClassifier(max_depth=3, random_state=0)).fit(frame, churn_labels(frame))
    # An export of another model, attached as if it were this one's.
    other = one_hot(DecisionTreeClassifier(max_depth=1, random_state=0)).fit(frame, 1 - churn_labels(frame))
    sample = frame.head(1).astype({"tenure": np.float32, "charges": np.float32})
    exported = to_onnx(other, sample, options={id(other.steps[-1][1]): {"zipmap": False}}).SerializeToString()

    version = go_live(registered(churn_model, pipeline, frame, onnx=SimpleUploadedFile("model.onnx", exported)))

    assert (version.compilation.status, version.compilation.source) == ("compiled", "attached")
    result = compiled_result(version)
    assert result["status"] == "failed", result["summary"]
    assert version.status == "production"  # not required: a disagreeing graph only means the native model serves
    assert "evidence" in result, result["summary"]
    mismatches = result["evidence"]["mismatches"]
    assert mismatches > 0
    first = result["details"][0]
    assert set(first) == {"source", "row", "native", "compiled", "difference"}
    assert result["summary"].startswith(f"The compiled graph differs from the native model on {mismatches:,} of the")
    serving = selectors.serving_engine(version=version)
    assert serving.engine == "skops"
    assert "did not pass check run" in serving.reason
    assert runtime.model_cache.loaded_version(version.pk).engine == "skops"
    client.force_login(manager)
    page = client.get("/models/churn/versions/1/").content.decode()
    assert "First rows where the engines differ" in page


def test_with_compilation_switched_off_nothing_is_compiled(
    churn_model: RegisteredModel, registered: Any, go_live: Callable[[ModelVersion], ModelVersion], settings: Any
) -> None:
    settings.MF_COMPILE_MODELS = False
    frame = customers()
    pipeline = one_hot(RandomForestClassifier(5, random_state=0)).fit(frame, churn_labels(frame))

    version = go_live(registered(churn_model, pipeline, frame))

    assert version.compilation.status == "disabled"
    assert not version.compilation.file
    assert compiled_result(version)["status"] == "skipped"
    loaded = runtime.model_cache.loaded_version(version.pk)
    assert loaded.engine == "skops"
    assert "MF_COMPILE_MODELS" in selectors.serving_engine(version=version).reason
    # The native forest sums its trees in a loop of its own (no joblib): scikit-learn's answer, bit for bit.
    labels, probabilities = loaded.score(frame)
    assert probabilities is not None
    assert np.array_equal(probabilities, pipeline.predict_proba(frame))
    assert np.array_equal(labels, pipeline.predict(frame))


def test_compiling_twice_does_nothing_the_second_time(churn_model: RegisteredModel, registered: Any) -> None:
    frame = customers()
    pipeline = one_hot(RandomForestClassifier(5, random_state=0)).fit(frame, churn_labels(frame))
    version = registered(churn_model, pipeline, frame)
    before = Compilation.objects.get(version=version)

    after = compilation_run(version_id=version.pk)

    assert after is not None
    assert (after.file.name, after.sha256, after.finished_at) == (before.file.name, before.sha256, before.finished_at)
    assert AuditEvent.objects.filter(action="version.compiled", version=version).count() == 1


def test_the_compiled_file_downloads_with_its_sha256(
    churn_model: RegisteredModel, registered: Any, client: Any, manager: Any, outsider: Any
) -> None:
    frame = customers()
    pipeline = one_hot(RandomForestClassifier(5, random_state=0)).fit(frame, churn_labels(frame))
    version = registered(churn_model, pipeline, frame)
    compilation = version.compilation

    client.force_login(manager)
    page = client.get("/models/churn/versions/1/")
    assert "/models/churn/versions/1/compiled/" in page.content.decode()
    assert compilation.sha256 in page.content.decode()
    download = client.get("/models/churn/versions/1/compiled/")
    data = download.getvalue()
    assert download["Content-Disposition"] == 'attachment; filename="churn-v1.onnx"'
    assert hashlib.sha256(data).hexdigest() == compilation.sha256
    api = user_client(manager).get("/api/models/churn/versions/1/compiled/download/")
    assert hashlib.sha256(api.getvalue()).hexdigest() == compilation.sha256
    assert user_client(outsider).get("/api/models/churn/versions/1/compiled/download/").status_code == 403

    Path(compilation.file.path).write_bytes(data + b"x")
    assert user_client(manager).get("/api/models/churn/versions/1/compiled/download/").status_code == 409


def test_a_prediction_is_reproduced_with_the_engine_that_made_it(
    churn_model: RegisteredModel,
    registered: Any,
    go_live: Callable[[ModelVersion], ModelVersion],
    author: Any,
) -> None:
    frame = customers()
    pipeline = one_hot(RandomForestClassifier(10, random_state=0)).fit(frame, churn_labels(frame))
    version = go_live(registered(churn_model, pipeline, frame))
    client = user_client(author)
    answer = client.post("/api/models/churn/predict/", {"instances": ROWS[:1]}, format="json").json()
    prediction_id = answer["prediction_ids"][0]
    assert Prediction.objects.get(pk=prediction_id).engine == "onnx"

    reproduced = client.post(f"/api/predictions/{prediction_id}/reproduce/").json()

    # The compiled graph's float32 probabilities are reproduced bit for bit by the graph, not by the native model.
    assert (reproduced["engine"], reproduced["identical"]) == ("onnx", True), reproduced
    Prediction.objects.filter(pk=prediction_id).update(engine="skops")
    assert client.post(f"/api/predictions/{prediction_id}/reproduce/").json()["engine"] == "skops"
    assert version.status == "production"


# --- MLflow's own directories, compared with MLflow's own answers ----------------------------------


@pytest.mark.parametrize(("case", "task"), [("classifier", "classification"), ("regressor", "regression")])
def test_an_mlflow_model_is_compiled_and_serves_what_mlflow_predicts(
    case: str, task: str, author: Any, reviewer: Any, go_live: Callable[[ModelVersion], ModelVersion]
) -> None:
    RegisteredModelFactory.create(
        name="m", task=task, owner=author, latency_budget_ms=5_000, batch_latency_budget_ms=120_000
    )
    artifact = SimpleUploadedFile(f"{case}.zip", mlflow_models.model_zip(case))
    response = user_client(author).post("/api/models/m/versions/", {"artifact": artifact}, format="multipart")
    assert response.status_code == 201, response.json()
    version = ModelVersion.objects.get(model__name="m")
    services.version_accept_untrusted_types(actor=reviewer, version=version, reason="MLflow fixture")

    version = go_live(version)

    assert compiled_result(version)["status"] == "passed", compiled_result(version)["summary"]
    assert runtime.model_cache.loaded_version(version.pk).engine == "onnx"
    want = mlflow_models.expected(case)
    answer = user_client(reviewer).post("/api/models/m/invocations", want["request"], format="json").json()
    if task == "classification":
        assert answer["predictions"] == want["predictions"]
    else:
        assert np.allclose(answer["predictions"], want["predictions"], rtol=1e-6, atol=0)


def test_a_text_value_the_compiled_encoder_does_not_know_is_refused_by_field(
    churn_model: RegisteredModel,
    registered: Callable[..., ModelVersion],
    go_live: Callable[[ModelVersion], ModelVersion],
    author: Any,
) -> None:
    # A string column, as an MLflow signature declares it: the schema has no categories to check.
    schema = [*INPUT_SCHEMA[:2], {"name": "contract", "type": "string"}]
    frame = customers(100)
    pipeline = one_hot(DecisionTreeClassifier(random_state=0)).fit(frame, churn_labels(frame))
    version = go_live(registered(churn_model, pipeline, frame, input_schema=json.dumps(schema)))
    assert runtime.model_cache.loaded_version(version.pk).engine == "onnx"

    rows = [{**ROWS[0], "contract": "weekly"}, ROWS[1]]
    answer = user_client(author).post("/api/models/churn/predict/", {"instances": rows}, format="json")

    assert answer.status_code == 400
    assert answer.json()["errors"] == [
        {"row": 0, "field": "contract", "error": "'weekly' is not one of ['monthly', 'yearly']"}
    ]
    ok = user_client(author).post("/api/models/churn/predict/", {"instances": ROWS}, format="json")
    assert ok.json()["predictions"] == pipeline.predict(pd.DataFrame(ROWS)).tolist()
