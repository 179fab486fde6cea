"""Loading a checked artifact as a model that predicts: only with the types a reviewer accepted, and only
in worker and serving processes. Each kind of model is wrapped to answer `predict` and `predict_proba`
on a DataFrame, as serving, the checks and the compiler expect.

No Django imports: this module is also used by scripts and benchmarks.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from registry import mlmodel
from registry.artifacts import (
    INCOMPLETE_SCAN,
    MLFLOW,
    ONNX,
    PICKLE,
    SKOPS,
    ArtifactError,
    UntrustedArtifactError,
    pickle_globals,
    pickle_stream,
    read_mlflow_model,
    skops_untrusted_types,
)
from registry.compilation import COLUMNS_METADATA
from registry.schema import parse_binary, parse_boolean, parse_datetime


class Predictor(Protocol):
    classes: list[Any] | None

    def predict(self, frame: pd.DataFrame) -> np.ndarray: ...

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None: ...


class EstimatorPredictor:
    """A scikit-learn-compatible estimator."""

    def __init__(self, estimator: Any):
        self.estimator = estimator
        classes = getattr(estimator, "classes_", None)
        self.classes = [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else None

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        if not hasattr(self.estimator, "predict_proba"):
            return None
        return np.asarray(self.estimator.predict_proba(frame))


# The numpy dtypes MLflow's pyfunc casts each column type to before calling the model, so that a model
# sees here what it sees under MLflow (a float32 "float" column splits a tree exactly as it does there).
_MLFLOW_DTYPES = {
    name: np.dtype(dtype)
    for name, dtype in {
        "integer": "int32",
        "long": "int64",
        "float": "float32",
        "double": "float64",
        "boolean": "bool",
    }.items()
}


class MlflowPredictor(EstimatorPredictor):
    """A scikit-learn model of an MLflow zip, fed as MLflow's pyfunc feeds it: columns cast to the
    signature's types, binary columns as bytes, and a tensor input as one 2-D array."""

    def __init__(self, estimator: Any, signature: mlmodel.Signature):
        super().__init__(estimator)
        self.signature = signature

    def model_input(self, frame: pd.DataFrame) -> pd.DataFrame | np.ndarray:
        if self.signature.tensor_dtype is not None:
            names = [spec["name"] for spec in self.signature.inputs or []]
            return frame[names].to_numpy().astype(self.signature.tensor_dtype)
        cast: dict[str, Any] = {}
        dtypes = frame.dtypes
        for name, mlflow_type in self.signature.column_types.items():
            if name not in frame.columns:
                continue
            dtype = _MLFLOW_DTYPES.get(mlflow_type)
            if dtype is not None and dtypes[name] == dtype:
                continue  # already what MLflow casts to: no column lookup (~30 us a column on a one-row request)
            column = frame[name]
            # A missing value stays NaN or None: MLflow refuses it in an integer column, we leave it to the model.
            if dtype is not None and not column.isna().any():
                # Values as the schema reads them: "no" is False and "3" is 3 (astype would make "no" True).
                if mlflow_type == "boolean":
                    values = column.map(lambda v: v if isinstance(v, bool | np.bool_) else parse_boolean(v))
                else:
                    values = pd.to_numeric(column)
                cast[name] = values.astype(dtype)
            elif mlflow_type == "datetime" and not pd.api.types.is_datetime64_dtype(column):
                cast[name] = pd.Series(
                    [None if pd.isna(v) else parse_datetime(v)[0] for v in column], index=frame.index
                ).astype("datetime64[ns]")
            elif mlflow_type == "binary":
                cast[name] = column.map(lambda v: v if v is None or isinstance(v, bytes) else parse_binary(v))
        return frame.assign(**cast) if cast else frame

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict(self.model_input(frame)))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        if not hasattr(self.estimator, "predict_proba"):
            return None
        return np.asarray(self.estimator.predict_proba(self.model_input(frame)))


_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


class OnnxPredictor:
    """An ONNX graph on onnxruntime; columns map to inputs by name, or all to one tensor input."""

    def __init__(self, data: bytes):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Serving processes run many requests in threads; one intra-op thread each avoids oversubscription.
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.inputs = [(i.name, i.type) for i in self.session.get_inputs()]
        # A compiled graph with one tensor input records which column goes where (registry/compilation.py).
        stacked = self.session.get_modelmeta().custom_metadata_map.get(COLUMNS_METADATA)
        self.stacked_columns: list[str] | None = json.loads(stacked) if stacked else None
        outputs = [o.name for o in self.session.get_outputs()]
        self.label_output = outputs[0]
        self.proba_output = outputs[1] if len(outputs) > 1 else None
        self.classes: list[Any] | None = None

    def _feed(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if len(self.inputs) == 1 and self.inputs[0][0] not in columns:
            name, kind = self.inputs[0]
            ordered = [columns[column] for column in self.stacked_columns] if self.stacked_columns else columns.values()
            return {name: np.column_stack(list(ordered)).astype(_ONNX_DTYPES.get(kind, np.float32))}
        feed: dict[str, np.ndarray] = {}
        for name, kind in self.inputs:
            if name not in columns:
                raise ArtifactError(f"The ONNX model needs an input column {name!r}.")
            dtype = _ONNX_DTYPES.get(kind, np.float32)
            column = np.asarray(columns[name])
            column = column.astype(str) if dtype is np.object_ else column
            feed[name] = column.astype(dtype).reshape(-1, 1)
        return feed

    def score(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels and class probabilities (None without a probability output) from one session run,
        fed from one array per input column: no DataFrame, whose per-column cost dominates one row."""
        rows = len(next(iter(columns.values()))) if columns else 0
        if rows == 0:
            return np.array([]), None
        outputs = self.session.run(None, self._feed(columns))
        labels = np.asarray(outputs[0]).reshape(rows, -1).squeeze(axis=1)
        if self.proba_output is None:
            return labels, None
        probabilities = outputs[1]
        if isinstance(probabilities, list):  # ZipMap output: one {class: probability} per row
            keys = sorted(probabilities[0])
            self.classes = keys
            return labels, np.array([[row[k] for k in keys] for row in probabilities])
        return labels, np.asarray(probabilities)

    def _columns(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {str(name): frame[name].to_numpy() for name in frame.columns}

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.score(self._columns(frame))[0]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None:
        return self.score(self._columns(frame))[1]


def load_artifact(path: Path, fmt: str, *, trusted_types: list[str]) -> Predictor:
    """Load a checked artifact. `trusted_types` are those a reviewer accepted for this version."""
    if fmt == ONNX:
        return OnnxPredictor(path.read_bytes())
    if fmt == SKOPS:
        return EstimatorPredictor(_skops_load(path.read_bytes(), trusted_types))
    if fmt == PICKLE:
        with pickle_stream(path) as stream:
            _require_pickle_trust(pickle_globals(stream), trusted_types)
        import joblib

        return EstimatorPredictor(joblib.load(path))
    if fmt == MLFLOW:
        mlflow, data = read_mlflow_model(path)
        if mlflow.serialization_format == "skops":
            return MlflowPredictor(_skops_load(data, trusted_types), mlflow.signature)
        _require_pickle_trust(pickle_globals(io.BytesIO(data)), trusted_types)
        return MlflowPredictor(pickle.loads(data), mlflow.signature)  # noqa: S301 - a reviewer accepted this pickle
    raise ArtifactError(f"Unknown artifact format {fmt!r}.")


def _skops_load(data: bytes, trusted_types: list[str]) -> Any:
    import skops.io as sio

    missing = set(skops_untrusted_types(data)) - set(trusted_types)
    if missing:
        raise UntrustedArtifactError(f"The artifact contains types nobody accepted: {', '.join(sorted(missing))}.")
    return sio.loads(data, trusted=sorted(trusted_types))


def _require_pickle_trust(scan: tuple[list[str], bool], trusted_types: list[str]) -> None:
    """Refuse a pickle unless a reviewer accepted every global it imports, found by a fresh scan.

    Checked against the bytes about to be loaded rather than only against the version's flag, so
    a caller passing the wrong list (or a file swapped under the same name) cannot load code
    nobody looked at.
    """
    if not trusted_types:
        raise UntrustedArtifactError("A pickle is loaded only after a reviewer has accepted it.")
    found, complete = scan
    missing = set(found) - set(trusted_types)
    if not complete and INCOMPLETE_SCAN not in trusted_types:
        missing.add(INCOMPLETE_SCAN)
    if missing:
        raise UntrustedArtifactError(f"The pickle imports globals nobody accepted: {', '.join(sorted(missing))}.")
