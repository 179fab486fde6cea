"""Model artifacts: recognise and inspect them without running them, and refuse unsafe zips.

Inspecting never executes anything from the file: skops lists the types it would construct,
pickles are scanned opcode by opcode for the globals they would import, ONNX is parsed as
protobuf, and an MLflow model zip is read member by member (no MLflow needed). Loading them is
predictors.py's business.

No Django imports: this module is also used by scripts and benchmarks.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import pickletools
import posixpath
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry import mlmodel

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
INCOMPLETE_SCAN = "<more globals after binary data>"

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
    # The class that predicts, as far as the file names it without being loaded: a pipeline's last step
    # in a skops file, the top object of a pickle; "" for ONNX.
    estimator: str = ""

    @property
    def runs_code_on_load(self) -> bool:
        """Whether loading unpickles (a joblib/pickle file, or an MLflow model saved with pickle)."""
        return self.format == PICKLE or (self.mlflow is not None and self.mlflow.serialization_format != "skops")


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


def skops_untrusted_types(data: bytes) -> list[str]:
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
    untrusted = skops_untrusted_types(data)
    with zipfile.ZipFile(path) as archive:
        schema = _skops_schema(archive)
    module = str(schema.get("__module__", ""))
    return ArtifactInspection(
        format=SKOPS, untrusted_types=untrusted, framework=_framework(module), estimator=_skops_estimator(schema)
    )


def _skops_schema(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        schema = json.loads(archive.read("schema.json"))
    except (KeyError, ValueError) as exc:
        raise ArtifactError("The skops file has no readable schema.json.") from exc
    return schema if isinstance(schema, dict) else {}


def _skops_estimator(node: dict[str, Any]) -> str:
    """The class of a skops schema's object; for a pipeline, of its last step (the one that predicts)."""
    while node.get("__class__") == "Pipeline":
        try:
            node = node["content"]["content"]["steps"]["content"][-1]["content"][1]
        except (KeyError, IndexError, TypeError):
            break
    if not isinstance(node.get("__class__"), str) or not isinstance(node.get("__module__"), str):
        return ""
    return _public_name(f"{node['__module__']}.{node['__class__']}")


def _public_name(dotted: str) -> str:
    """`sklearn.linear_model._logistic.LogisticRegression` as it is imported: without private modules."""
    *modules, name = dotted.split(".")
    return ".".join([*(module for module in modules if not module.startswith("_")), name])


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


def pickle_stream(path: Path) -> io.BufferedIOBase:
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
    """The module.name globals a pickle would import, in the order met, and whether the scan read it all.

    joblib interleaves raw numpy buffers with pickle opcodes, so a scan may stop early; the
    globals seen until then are still reported.
    """
    found: dict[str, None] = {}  # in the order met: the first is the pickled object's own class
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
                found.setdefault(str(arg).replace(" ", ".", 1))
            elif name == "STACK_GLOBAL":
                found.setdefault(".".join(strings[-2:]) if len(strings) >= 2 else "<unresolved global>")
    except (ValueError, EOFError, TypeError):
        complete = False
    return list(found), complete


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
    with pickle_stream(path) as stream:
        try:
            found, complete = pickle_globals(stream)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise ArtifactError(f"The joblib/pickle file is corrupt: {exc}") from exc
    if not found:
        raise ArtifactError("The joblib/pickle file holds no model (it imports no classes).")
    # Any pickle can run code when loaded, so it always needs a reviewer's acceptance.
    untrusted = sorted(found) if complete else [*sorted(found), INCOMPLETE_SCAN]
    modules = {name.split(".")[0] for name in found}
    framework = next((_FRAMEWORKS[m] for m in _FRAMEWORKS if m in modules), "")
    return ArtifactInspection(
        format=PICKLE, untrusted_types=untrusted, framework=framework, estimator=_public_name(found[0])
    )


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
    except RecursionError:  # YAML or JSON nested deeper than the parsers (recursive) can go
        raise ArtifactError("The MLflow model's MLmodel file or input example is nested too deeply to read.") from None


def read_mlflow_model(path: Path) -> tuple[MlflowModelInfo, bytes]:
    """An MLflow model zip checked as at registration: what it says about itself, and its model's bytes."""
    inspection = _inspect_mlflow(path, ZipLimits.from_settings())
    assert inspection.mlflow is not None  # an MLflow inspection always describes the model
    with zipfile.ZipFile(path) as archive:
        data = _read_member(archive, _mlflow_root(archive), inspection.mlflow.model_path) or b""
    return inspection.mlflow, data


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
        untrusted = skops_untrusted_types(model_bytes)
        estimator = _skops_estimator(_skops_schema(zipfile.ZipFile(io.BytesIO(model_bytes))))
    else:
        found, complete = pickle_globals(io.BytesIO(model_bytes))
        untrusted = sorted(found) if complete else [*sorted(found), INCOMPLETE_SCAN]
        untrusted = untrusted or ["<pickle>"]
        estimator = _public_name(found[0]) if found else ""
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
    return ArtifactInspection(
        format=MLFLOW, untrusted_types=untrusted, framework="scikit-learn", mlflow=info, estimator=estimator
    )
