"""The Python client against a real HTTP server, as a data scientist uses it from a notebook."""

import subprocess
import sys
from pathlib import Path

import pytest

from registry.client import ModelFactory, ModelFactoryError, capture_environment, estimator_params
from registry.models import ModelVersion
from tests.conftest import PASSWORD, notebook_json


@pytest.fixture
def mf(live_server, author):
    return ModelFactory.login(live_server.url, "ada", PASSWORD)


def test_it_registers_an_estimator_with_everything_attached(mf, trained, tmp_path):
    pipeline, frame = trained
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_bytes(notebook_json())
    version = mf.register(
        "churn",
        pipeline,
        frame.head(20),
        release_notes="First version",
        notebook=notebook,
        golden=(frame.head(5), pipeline.predict(frame.head(5))),
        reference=frame,
        metrics={"auc": 0.9},
        training_data=frame,
        code_uri="https://git.example.com/churn",
        code_commit="abc",
    )
    assert version["number"] == 1
    assert version["format"] == "skops"
    assert {f["kind"] for f in version["files"]} == {"artifact", "notebook", "golden_set", "reference_data"}
    assert version["environment"]["libraries"]["scikit-learn"]
    assert version["params"]["classify__C"] == 1.0
    assert version["output_schema"] == [
        {"name": "prediction", "type": "category", "required": True, "categories": ["0", "1"]}
    ]
    assert version["training_data_rows"] == 200
    assert len(version["training_data_sha256"]) == 64
    # The schema covers the reference data, not just the 20-row sample.
    tenure = next(f for f in version["input_schema"] if f["name"] == "tenure")
    assert tenure["maximum"] == frame["tenure"].max()

    model = mf.model("churn")
    assert model["task"] == "classification"
    assert [v["number"] for v in mf.versions("churn")] == [1]
    downloaded = mf.download("churn", 1, "artifact", tmp_path)
    assert downloaded.read_bytes() == ModelVersion.objects.get().files.get(kind="artifact").file.read()


def test_it_raises_with_the_servers_reasons(mf, trained):
    pipeline, frame = trained
    with pytest.raises(ModelFactoryError) as error:
        mf.register("churn", pipeline, frame, golden=(frame.head(3).drop(columns=["contract"]), [0, 1, 0]))
    assert error.value.status_code == 400
    assert "golden_set" in error.value.errors
    with pytest.raises(TypeError, match="DataFrame"):
        mf.register("churn", pipeline, frame.to_numpy())


def test_it_captures_the_environment_and_params(trained):
    pipeline, _ = trained
    environment = capture_environment(pipeline)
    assert environment["python"].startswith("3.11")
    assert {"scikit-learn", "numpy", "pandas"} <= set(environment["libraries"])
    assert estimator_params(pipeline)["classify__max_iter"] == 100


def test_it_imports_without_django(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import sys, registry.client, registry.sql; print('django' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.stdout.strip() == "False"
