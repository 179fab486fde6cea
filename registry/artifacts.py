"""Model artifacts: recognise and inspect them without running them, and load them when trusted.

Inspecting never executes anything from the file: skops lists the types it would construct,
pickles are scanned opcode by opcode for the globals they would import, ONNX is parsed as
protobuf, and an MLflow model zip is read member by member (no MLflow needed). Loading happens
only in worker and serving processes, and only with the types a reviewer accepted.

No Django imports: this module is also used by scripts and benchmarks.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import pickle
import pickletools
import posixpath
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from registry import mlmodel
from registry.compilation import COLUMNS_METADATA
from registry.schema import parse_binary, parse_boolean, parse_datetime

SKOPS, ONNX, PICKLE, MLFLOW = "skops", "onnx", "pickle", "mlflow"

# Zip safety defaults, used when no Django settings say otherwise (MF_ZIP_MAX_UNCOMPRESSED_MB,
# MF_ZIP_MAX_COMPRESSION_RATIO). Real models compress 2-10x; a bomb compresses ~1000x.
MAX_COMPRESSION_RATIO = 200
MAX_UNCOMPRESSED_BYTES = 2 * 1024**3
MAX_ZIP_MEMBERS = 10_000
# Below this size a member (or archive) may compress as much as it likes: it cannot hurt.
_RATIO_FREE_BYTES = 1024 * 1024
# Bytes of a pickle scanned for globals; a model's class references sit in its first frames.
_PICKLE_SCAN_BYTES = 64 * 1024 * 1024
# Listed among a pickle's untrusted types when the scan could not read past joblib's raw buffers.
_INCOMPLETE_SCAN = "<more globals after binary data>"

_FRAMEWORKS = {"sklearn": "scikit-learn", "xgboost": "xgboost", "lightgbm": "lightgbm"}


class ArtifactError(ValueError):
    """The file is not a usable model artifact; the message says why, for the uploader."""


class UntrustedArtifactError(ArtifactError):
    """Loading would construct types that no reviewer has accepted."""


@dataclass(frozen=True)
class ZipLimits:
    """How far a zip upload may expand before it is refused as a decompression bomb."""

    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES
    max_compression_ratio: int = MAX_COMPRESSION_RATIO
    max_members: int = MAX_ZIP_MEMBERS

    @classmethod
    def from_settings(cls) -> ZipLimits:
        """The limits of the Django settings when they are configured, else the defaults.

        Imported lazily so that scripts and benchmarks keep using this module without Django.
        """
        try:
            from django.conf import settings
        except ImportError:  # pragma: no cover - Django is always installed with the app
            return cls()
        if not settings.configured:
            return cls()
        return cls(
            max_uncompressed_bytes=settings.MF_ZIP_MAX_UNCOMPRESSED_BYTES,
            max_compression_ratio=settings.MF_ZIP_MAX_COMPRESSION_RATIO,
        )


@dataclass(frozen=True)
class MlflowModelInfo:
    """What an MLflow model zip says about itself; `metadata` is kept on the version as MLflow wrote it."""

    input_schema: list[dict[str, Any]] | None
    output_schema: list[dict[str, Any]] | None
    input_example: list[dict[str, Any]] | None
    requirements: str
    environment: dict[str, Any]
    serialization_format: str
    model_path: str
    signature: mlmodel.Signature = field(default_factory=mlmodel.Signature)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactInspection:
    format: str
    untrusted_types: list[str] = field(default_factory=list)
    framework: str = ""
    mlflow: MlflowModelInfo | None = None

    @property
    def runs_code_on_load(self) -> bool:
        """Whether loading unpickles (a joblib/pickle file, or an MLflow model saved with pickle)."""
        return self.format == PICKLE or (self.mlflow is not None and self.mlflow.serialization_format != "skops")


class Predictor(Protocol):
    classes: list[Any] | None

    def predict(self, frame: pd.DataFrame) -> np.ndarray: ...

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray | None: ...


# --- recognising --------------------------------------------------------------------------------


def detect_format(path: Path) -> str | None:
    """The format the file's bytes say it is, or None."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return None
        if "schema.json" in names:
            return SKOPS
        if any(posixpath.basename(name) == "MLmodel" for name in names):
            return MLFLOW
        return None
    if _is_pickle_head(head) or _joblib_compression(head) is not None:
        return PICKLE
    try:
        _load_onnx(path)
    except ArtifactError:
        return None
    return ONNX


def _is_pickle_head(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _joblib_compression(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\xfd7zXZ"):
        return "xz"
    if head.startswith(b"\x78") and len(head) > 1 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None


_FORMAT_NAMES = {SKOPS: "skops", ONNX: "ONNX", PICKLE: "joblib/pickle", MLFLOW: "MLflow model zip"}


def inspect_artifact(
    path: Path, declared_format: str | None = None, *, zip_limits: ZipLimits | None = None
) -> ArtifactInspection:
    """What the artifact is and what loading it would trust; raises ArtifactError if unusable.

    Nothing in the file is executed: pickles are only scanned, zips are checked for unsafe
    names and decompression bombs before any member is read.
    """
    limits = zip_limits or ZipLimits.from_settings()
    if path.stat().st_size == 0:
        raise ArtifactError("The file is empty.")
    detected = detect_format(path)
    if declared_format and detected and detected != declared_format:
        raise ArtifactError(
            f"The file is not a {_FORMAT_NAMES[declared_format]} artifact: its contents are {_FORMAT_NAMES[detected]}."
        )
    fmt = declared_format or detected
    if fmt is None:
        if zipfile.is_zipfile(path):
            raise ArtifactError(
                "The zip file is neither a skops file nor an MLflow model directory (no MLmodel file inside)."
            )
        if path.read_bytes()[:4] == b"PK\x03\x04":
            raise ArtifactError("The zip file is corrupt.")
        raise ArtifactError(
            "Not a recognised model artifact: expected skops, ONNX, joblib/pickle or a zipped MLflow model directory."
        )
    if fmt == SKOPS:
        return _inspect_skops(path, limits)
    if fmt == ONNX:
        model = _load_onnx(path)
        return ArtifactInspection(format=ONNX, framework=model.producer_name or "onnx")
    if fmt == PICKLE:
        return _inspect_pickle(path)
    return _inspect_mlflow(path, limits)


# --- skops --------------------------------------------------------------------------------------


def _skops_untrusted(data: bytes) -> list[str]:
    import skops.io as sio

    try:
        return sorted(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises many kinds on malformed files
        raise ArtifactError(f"The skops file cannot be read: {exc}") from exc


def _inspect_skops(path: Path, limits: ZipLimits) -> ArtifactInspection:
    if not zipfile.is_zipfile(path):
        raise ArtifactError("The file is not a skops file (skops files are zip archives).")
    check_zip(path, limits)
    data = path.read_bytes()
    untrusted = _skops_untrusted(data)
    with zipfile.ZipFile(path) as archive:
        try:
            schema = json.loads(archive.read("schema.json"))
        except (KeyError, ValueError) as exc:
            raise ArtifactError("The skops file has no readable schema.json.") from exc
    module = str(schema.get("__module__", "")) if isinstance(schema, dict) else ""
    return ArtifactInspection(format=SKOPS, untrusted_types=untrusted, framework=_framework(module))


def _framework(module: str) -> str:
    return _FRAMEWORKS.get(module.split(".")[0], module.split(".")[0])


# --- ONNX ---------------------------------------------------------------------------------------


def _load_onnx(path: Path) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(path.read_bytes())
        onnx.checker.check_model(model)
    except (DecodeError, onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"The file is not a valid ONNX model: {str(exc).splitlines()[0]}") from exc
    if not model.graph.node:
        raise ArtifactError("The file is not a valid ONNX model: its graph is empty.")
    return model


# --- pickle / joblib ----------------------------------------------------------------------------


def _pickle_stream(path: Path) -> io.BufferedIOBase:
    with path.open("rb") as handle:
        head = handle.read(8)
    compression = _joblib_compression(head)
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    if compression == "zlib":
        raw = path.read_bytes()
        try:
            return io.BytesIO(zlib.decompressobj().decompress(raw, _PICKLE_SCAN_BYTES))
        except zlib.error as exc:
            raise ArtifactError("The compressed joblib file is corrupt.") from exc
    return path.open("rb")


def pickle_globals(stream: io.BufferedIOBase) -> tuple[list[str], bool]:
    """The module.name globals a pickle would import, and whether the scan read it all.

    joblib interleaves raw numpy buffers with pickle opcodes, so a scan may stop early; the
    globals seen until then are still reported.
    """
    found: set[str] = set()
    strings: list[str] = []
    memo: dict[int, str] = {}
    complete = True
    data = stream.read(_PICKLE_SCAN_BYTES)
    try:
        for opcode, arg, _ in _genops(data):
            name = opcode.name
            if name in {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "STRING"}:
                strings.append(str(arg))
            elif name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif name in {"BINPUT", "LONG_BINPUT", "PUT"} and strings:
                memo[int(arg)] = strings[-1]
            elif name in {"BINGET", "LONG_BINGET", "GET"}:
                if int(arg) in memo:
                    strings.append(memo[int(arg)])
            elif name in {"GLOBAL", "INST"}:
                found.add(str(arg).replace(" ", ".", 1))
            elif name == "STACK_GLOBAL":
                found.add(".".join(strings[-2:]) if len(strings) >= 2 else "<unresolved global>")
    except (ValueError, EOFError, TypeError):
        complete = False
    return sorted(found), complete


def _genops(data: bytes) -> Iterator[tuple[Any, Any, Any]]:
    # Several pickles may follow each other (joblib writes one per numpy array wrapper).
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        for item in pickletools.genops(stream):
            yield item
            if item[0].name == "STOP":
                break


def _inspect_pickle(path: Path) -> ArtifactInspection:
    with path.open("rb") as handle:
        head = handle.read(8)
    if not (_is_pickle_head(head) or _joblib_compression(head)):
        raise ArtifactError("The file is not a joblib/pickle file (protocol 2 or newer).")
    with _pickle_stream(path) as stream:
        try:
            found, complete = pickle_globals(stream)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise ArtifactError(f"The joblib/pickle file is corrupt: {exc}") from exc
    if not found:
        raise ArtifactError("The joblib/pickle file holds no model (it imports no classes).")
    # Any pickle can run code when loaded, so it always needs a reviewer's acceptance.
    untrusted = found if complete else [*found, _INCOMPLETE_SCAN]
    modules = {name.split(".")[0] for name in found}
    framework = next((_FRAMEWORKS[m] for m in _FRAMEWORKS if m in modules), "")
    return ArtifactInspection(format=PICKLE, untrusted_types=untrusted, framework=framework)


# --- zips and MLflow ----------------------------------------------------------------------------


def megabytes(size: int) -> str:
    return f"{size / 1024**2:,.0f} MB"


def check_zip(path: Path, limits: ZipLimits | None = None) -> None:
    """Refuse path traversal, links and decompression bombs before reading any member.

    The sizes checked are those the archive declares; zipfile never inflates a member past its
    declared size, so they bound the work done by any later read (the CRC test comes last).
    """
    limits = limits or ZipLimits()
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise ArtifactError("The zip file is corrupt.") from exc
    if len(members) > limits.max_members:
        raise ArtifactError(f"The zip file has more than {limits.max_members} members.")
    seen: set[str] = set()
    total = 0
    for member in members:
        name = member.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":") or "\0" in name:
            raise ArtifactError(f"The zip file contains an unsafe path: {name!r}.")
        if (member.external_attr >> 16) & 0o170000 == 0o120000:
            raise ArtifactError(f"The zip file contains a symbolic link: {name!r}.")
        if name in seen:
            # Two members of one name: what a reviewer inspects and what a worker loads could differ.
            raise ArtifactError(f"The zip file contains {name!r} twice.")
        seen.add(name)
        total += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > _RATIO_FREE_BYTES and ratio > limits.max_compression_ratio:
            raise ArtifactError(
                f"The zip file looks like a decompression bomb: {name!r} expands {ratio:,.0f}x "
                f"(the limit is {limits.max_compression_ratio}x, MF_ZIP_MAX_COMPRESSION_RATIO)."
            )
    if total > limits.max_uncompressed_bytes:
        raise ArtifactError(
            f"The zip file expands to {megabytes(total)}, more than the limit of "
            f"{megabytes(limits.max_uncompressed_bytes)} (MF_ZIP_MAX_UNCOMPRESSED_MB)."
        )
    archive_size = path.stat().st_size
    if total > _RATIO_FREE_BYTES and total > limits.max_compression_ratio * max(archive_size, 1):
        # Many small members can each stay under the per-member check and still add up to a bomb.
        raise ArtifactError(
            f"The zip file looks like a decompression bomb: it expands {total / max(archive_size, 1):,.0f}x "
            f"(the limit is {limits.max_compression_ratio}x, MF_ZIP_MAX_COMPRESSION_RATIO)."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        raise ArtifactError("The zip file is corrupt.") from exc
    if bad is not None:
        raise ArtifactError(f"The zip file is corrupt: {bad} fails its checksum.")


def _mlflow_root(archive: zipfile.ZipFile) -> str:
    candidates = [n for n in archive.namelist() if posixpath.basename(n) == "MLmodel"]
    if not candidates:
        raise ArtifactError("The zip file has no MLmodel file: zip the MLflow model directory itself.")
    shallowest = min(candidates, key=lambda n: n.count("/"))
    return posixpath.dirname(shallowest)


def _read_member(archive: zipfile.ZipFile, root: str, name: str) -> bytes | None:
    try:
        return archive.read(posixpath.join(root, name) if root else name)
    except KeyError:
        return None


def _inspect_mlflow(path: Path, limits: ZipLimits) -> ArtifactInspection:
    if not zipfile.is_zipfile(path):
        if path.read_bytes()[:2] == b"PK":
            raise ArtifactError("The zip file is corrupt.")
        raise ArtifactError("An MLflow model must be uploaded as a zip of its model directory.")
    check_zip(path, limits)
    try:
        return _read_mlflow(path)
    except mlmodel.MlmodelError as exc:
        raise ArtifactError(str(exc)) from exc


def _text(data: bytes | None, name: str) -> str:
    try:
        return (data or b"").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise mlmodel.MlmodelError(f"{name} is not UTF-8 text.") from exc


def _read_mlflow(path: Path) -> ArtifactInspection:
    with zipfile.ZipFile(path) as archive:
        root = _mlflow_root(archive)
        description = mlmodel.read_mlmodel(_read_member(archive, root, "MLmodel"))
        sklearn = mlmodel.sklearn_flavor(description)
        model_path = str(sklearn.get("pickled_model") or "model.pkl")
        model_bytes = _read_member(archive, root, model_path)
        if model_bytes is None:
            raise ArtifactError(f"The MLmodel file names {model_path!r}, which is not in the zip.")
        signature = mlmodel.parse_signature(description.get("signature"))
        example_info = description.get("saved_input_example_info")
        example_name = example_info.get("artifact_path") if isinstance(example_info, dict) else None
        example = mlmodel.example_rows(
            _read_member(archive, root, str(example_name)) if example_name else None, signature
        )
        requirements = _text(_read_member(archive, root, "requirements.txt"), "requirements.txt")
        python_env = mlmodel.read_python_env(_read_member(archive, root, "python_env.yaml"))

    serialization = str(sklearn.get("serialization_format") or "cloudpickle")
    if serialization == "skops":
        untrusted = _skops_untrusted(model_bytes)
    else:
        found, complete = pickle_globals(io.BytesIO(model_bytes))
        untrusted = found if complete else [*found, _INCOMPLETE_SCAN]
        untrusted = untrusted or ["<pickle>"]
    info = MlflowModelInfo(
        input_schema=signature.inputs,
        output_schema=signature.outputs,
        input_example=example,
        requirements=requirements,
        environment=mlmodel.environment(description, sklearn, requirements, python_env),
        serialization_format=serialization,
        model_path=model_path,
        signature=signature,
        metadata=mlmodel.metadata(description, signature, requirements, python_env),
    )
    return ArtifactInspection(format=MLFLOW, untrusted_types=untrusted, framework="scikit-learn", mlflow=info)


# --- loading ------------------------------------------------------------------------------------


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
        with _pickle_stream(path) as stream:
            _require_pickle_trust(pickle_globals(stream), trusted_types)
        import joblib

        return EstimatorPredictor(joblib.load(path))
    if fmt == MLFLOW:
        inspection = _inspect_mlflow(path, ZipLimits.from_settings())
        assert inspection.mlflow is not None
        with zipfile.ZipFile(path) as archive:
            data = _read_member(archive, _mlflow_root(archive), inspection.mlflow.model_path) or b""
        signature = inspection.mlflow.signature
        if inspection.mlflow.serialization_format == "skops":
            return MlflowPredictor(_skops_load(data, trusted_types), signature)
        _require_pickle_trust(pickle_globals(io.BytesIO(data)), trusted_types)
        return MlflowPredictor(pickle.loads(data), signature)  # noqa: S301 - a reviewer accepted this pickle
    raise ArtifactError(f"Unknown artifact format {fmt!r}.")


def _skops_load(data: bytes, trusted_types: list[str]) -> Any:
    import skops.io as sio

    missing = set(_skops_untrusted(data)) - set(trusted_types)
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
    if not complete and _INCOMPLETE_SCAN not in trusted_types:
        missing.add(_INCOMPLETE_SCAN)
    if missing:
        raise UntrustedArtifactError(f"The pickle imports globals nobody accepted: {', '.join(sorted(missing))}.")
