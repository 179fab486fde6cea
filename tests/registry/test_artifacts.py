"""Recognising, inspecting and loading artifacts, including hostile ones, without running them."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from registry import artifacts, predictors
from registry.artifacts import ArtifactError, UntrustedArtifactError


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


class Exploit:
    """Unpickling this would run a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def pipeline(trained: tuple[Pipeline, pd.DataFrame]) -> Pipeline:
    return trained[0]


@pytest.fixture
def frame(trained: tuple[Pipeline, pd.DataFrame]) -> pd.DataFrame:
    return trained[1]


# --- detection and inspection -------------------------------------------------------------------


def test_skops_is_detected_and_its_untrusted_types_listed(tmp_path: Path) -> None:
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(np.eye(4), [0, 1, 0, 1])
    path = write(tmp_path, "forest.skops", sio.dumps(forest))

    inspection = artifacts.inspect_artifact(path)

    assert inspection.format == "skops"
    assert inspection.framework == "scikit-learn"
    assert "sklearn.tree._tree.Tree" in inspection.untrusted_types


def test_skops_pipeline_of_trusted_types_needs_no_acceptance(tmp_path: Path, pipeline: Pipeline) -> None:
    inspection = artifacts.inspect_artifact(write(tmp_path, "m.skops", sio.dumps(pipeline)), "skops")

    assert inspection.format == "skops"
    assert inspection.untrusted_types == []


def test_the_estimator_is_named_without_loading_the_artifact(tmp_path: Path, pipeline: Pipeline) -> None:
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(np.eye(4), [0, 1, 0, 1])
    joblib.dump(forest, tmp_path / "forest.joblib")

    # A pipeline's last step predicts; private modules are left out of the name.
    assert artifacts.inspect_artifact(write(tmp_path, "m.skops", sio.dumps(pipeline))).estimator == (
        "sklearn.linear_model.LogisticRegression"
    )
    assert artifacts.inspect_artifact(tmp_path / "forest.joblib").estimator == "sklearn.ensemble.RandomForestClassifier"
    # A pickle is only scanned: its top object is what it names.
    joblib.dump(pipeline, tmp_path / "pipeline.joblib")
    assert artifacts.inspect_artifact(tmp_path / "pipeline.joblib").estimator == "sklearn.pipeline.Pipeline"


@pytest.mark.parametrize(
    ("case", "estimator"),
    [
        ("classifier", "sklearn.ensemble.RandomForestClassifier"),  # skops, as MLflow writes it by default
        ("regressor", "sklearn.ensemble.GradientBoostingRegressor"),
        ("cloudpickle_classifier", "sklearn.pipeline.Pipeline"),
        ("pickle_regressor", "sklearn.tree.DecisionTreeRegressor"),
    ],
)
def test_the_estimator_of_a_directory_mlflow_wrote(tmp_path: Path, case: str, estimator: str) -> None:
    from tests.registry.test_mlflow_models import model_zip

    path = write(tmp_path, "model.zip", model_zip(case))
    assert artifacts.inspect_artifact(path).estimator == estimator


def test_onnx_is_detected_and_checked(tmp_path: Path) -> None:
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(np.eye(4, dtype=np.float32), [0, 1, 0, 1])
    onnx_model = to_onnx(forest, np.eye(4, dtype=np.float32), options={id(forest): {"zipmap": False}})
    path = write(tmp_path, "forest.onnx", onnx_model.SerializeToString())

    inspection = artifacts.inspect_artifact(path)

    assert inspection.format == "onnx"
    assert inspection.untrusted_types == []
    predictor = predictors.load_artifact(path, "onnx", trusted_types=[])
    rows = pd.DataFrame(np.eye(4, dtype=np.float32))
    assert predictor.predict(rows).tolist() == forest.predict(np.eye(4)).tolist()
    proba = predictor.predict_proba(rows)
    assert proba is not None
    assert np.allclose(proba, forest.predict_proba(np.eye(4)), atol=1e-5)


def test_onnx_pipeline_with_one_input_per_column(tmp_path: Path, pipeline: Pipeline, frame: pd.DataFrame) -> None:
    # ONNX works in float32: declaring the numeric columns so keeps the graph's types consistent.
    sample = frame.head(1).astype({"tenure": np.float32, "charges": np.float32})
    onnx_model = to_onnx(pipeline, sample, options={id(pipeline.steps[-1][1]): {"zipmap": False}})
    path = write(tmp_path, "churn.onnx", onnx_model.SerializeToString())

    predictor = predictors.load_artifact(path, "onnx", trusted_types=[])

    assert predictor.predict(frame).tolist() == pipeline.predict(frame).tolist()
    proba = predictor.predict_proba(frame)
    assert proba is not None
    assert np.allclose(proba, pipeline.predict_proba(frame), atol=1e-4)


def test_joblib_pickle_lists_the_globals_it_would_import(tmp_path: Path, pipeline: Pipeline) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(pipeline, path)

    inspection = artifacts.inspect_artifact(path)

    assert inspection.format == "pickle"
    assert inspection.framework == "scikit-learn"
    assert "sklearn.pipeline.Pipeline" in inspection.untrusted_types


def test_compressed_joblib_is_a_pickle(tmp_path: Path, pipeline: Pipeline) -> None:
    path = tmp_path / "model.joblib.gz"
    joblib.dump(pipeline, path, compress=("gzip", 3))

    inspection = artifacts.inspect_artifact(path, "pickle")

    assert "sklearn.pipeline.Pipeline" in inspection.untrusted_types


def test_malicious_pickle_is_listed_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, "model.pkl", pickle.dumps(Exploit(marker), protocol=4))

    inspection = artifacts.inspect_artifact(path)

    assert inspection.format == "pickle"
    assert any(name.endswith(".system") for name in inspection.untrusted_types)
    with pytest.raises(UntrustedArtifactError):
        predictors.load_artifact(path, "pickle", trusted_types=[])
    assert not marker.exists()


@pytest.mark.parametrize(
    ("declared", "data", "message"),
    [
        ("skops", b"\x80\x04K\x01.", "not a skops artifact: its contents are joblib/pickle"),
        ("onnx", b"hello, this is text", "not a valid ONNX model"),
        ("pickle", b"just text", "not a joblib/pickle file"),
        ("mlflow", b"just text", "must be uploaded as a zip"),
        (None, b"just text", "Not a recognised model artifact"),
        (None, b"", "The file is empty"),
        (None, b"PK\x03\x04" + b"\x00" * 40, "The zip file is corrupt"),
    ],
)
def test_wrong_or_broken_files_are_refused_with_a_reason(
    tmp_path: Path, declared: str | None, data: bytes, message: str
) -> None:
    with pytest.raises(ArtifactError, match=message):
        artifacts.inspect_artifact(write(tmp_path, "upload.bin", data), declared)


def test_truncated_skops_file_is_a_corrupt_zip(tmp_path: Path, pipeline: Pipeline) -> None:
    data = sio.dumps(pipeline)
    with pytest.raises(ArtifactError, match=r"corrupt|not a skops"):
        artifacts.inspect_artifact(write(tmp_path, "m.skops", data[: len(data) // 2]), "skops")


# --- MLflow -------------------------------------------------------------------------------------


# Inspecting and loading what MLflow writes is tested with MLflow's own files in test_mlflow_models.py;
# these zips are hostile ones, which no MLflow writes.


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_with_path_traversal_is_refused(tmp_path: Path) -> None:
    data = zip_of({"MLmodel": b"flavors: {}", "../../etc/cron.d/evil": b"* * * * * root rm -rf /"})
    with pytest.raises(ArtifactError, match="unsafe path"):
        artifacts.inspect_artifact(write(tmp_path, "m.zip", data), "mlflow")


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    data = zip_of({"MLmodel": b"flavors: {}", "model.pkl": b"\0" * (50 * 1024 * 1024)})
    with pytest.raises(ArtifactError, match="decompression bomb"):
        artifacts.inspect_artifact(write(tmp_path, "m.zip", data), "mlflow")


def test_zip_without_mlmodel_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no MLmodel"):
        artifacts.inspect_artifact(write(tmp_path, "m.zip", zip_of({"notes.txt": b"hi"})))


# --- loading ------------------------------------------------------------------------------------


def test_skops_refuses_types_that_were_not_accepted(tmp_path: Path) -> None:
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(np.eye(4), [0, 1, 0, 1])
    path = write(tmp_path, "forest.skops", sio.dumps(forest))

    with pytest.raises(UntrustedArtifactError, match=r"sklearn\.tree\._tree\.Tree"):
        predictors.load_artifact(path, "skops", trusted_types=[])

    accepted = artifacts.inspect_artifact(path).untrusted_types
    predictor = predictors.load_artifact(path, "skops", trusted_types=accepted)
    assert predictor.classes == [0, 1]
    assert predictor.predict(pd.DataFrame(np.eye(4))).tolist() == [0, 1, 0, 1]


def test_trusted_pickle_loads(tmp_path: Path, pipeline: Pipeline, frame: pd.DataFrame) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(pipeline, path)
    inspection = artifacts.inspect_artifact(path)

    predictor = predictors.load_artifact(path, "pickle", trusted_types=inspection.untrusted_types)

    assert predictor.predict(frame).tolist() == pipeline.predict(frame).tolist()
