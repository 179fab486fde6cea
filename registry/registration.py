"""Registering a version: every file and field checked before anything is written, then all of it
stored in one transaction with its audit row and its compilation row, or nothing at all."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.text import get_valid_filename

from config.parsers import TOO_DEEP, json_loads
from registry import artifacts, permissions, queue
from registry.audit import audit_event_create
from registry.choices import ArtifactFormat, AuditAction, FileKind, SchemaSource
from registry.compilation_services import compilation_create
from registry.models import Compilation, ModelVersion, RegisteredModel, VersionFile
from registry.schema import (
    GOLDEN_EXPECTED_COLUMN,
    FieldSpec,
    SchemaError,
    check_frame,
    infer_schema,
    parse_schema,
    records_frame,
)
from registry.tables import read_table

logger = logging.getLogger(__name__)

_HASH_CHUNK = 1024 * 1024


@dataclass
class VersionUpload:
    """Everything a data scientist registers with a version; only `artifact` is required."""

    artifact: File
    format: str | None = None
    release_notes: str = ""
    notebook: File | None = None
    golden_set: File | None = None
    reference_data: File | None = None
    training_data: File | None = None
    onnx: File | None = None
    documents: list[File] = field(default_factory=list)
    input_schema: Any = None
    output_schema: Any = None
    params: Any = None
    metrics: Any = None
    environment: Any = None
    requirements: str = ""
    training_data_uri: str = ""
    training_data_rows: int | None = None
    training_data_sha256: str = ""
    code_uri: str = ""
    code_commit: str = ""
    parent: int | None = None
    # Set by the MLflow import (registry/mlflow_import.py): where the version came from, kept in
    # ModelVersion.mlflow["import"], and the key that refuses a second import of the same MLflow version.
    mlflow_import: dict[str, Any] | None = None
    mlflow_source: str = ""


@dataclass
class _StagedFile:
    kind: str
    path: Path
    filename: str
    sha256: str
    size: int
    rows: int | None = None


class _Errors:
    """Collects problems by field, so one response names everything that is wrong."""

    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, field_name: str, message: str) -> None:
        self.by_field.setdefault(field_name, []).append(message)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise ValidationError(self.by_field)


def _stage(upload: File, kind: str, directory: Path) -> _StagedFile:
    filename = get_valid_filename(Path(upload.name or kind).name) or kind
    path = directory / f"{kind}-{len(list(directory.iterdir()))}-{filename}"
    digest = hashlib.sha256()
    size = 0
    upload.seek(0)
    with path.open("wb") as target:
        for chunk in upload.chunks(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            target.write(chunk)
    return _StagedFile(kind=kind, path=path, filename=filename, sha256=digest.hexdigest(), size=size)


def _json_value(raw: Any, field_name: str, errors: _Errors) -> Any:
    if isinstance(raw, str):
        if not raw.strip():
            return None
        try:
            return json_loads(raw)
        except json.JSONDecodeError as exc:
            errors.add(field_name, f"Not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.")
        except ValueError as exc:  # valid JSON, but too deep, NaN, 1e400, NUL...: it would fail when stored or shown
            errors.add(field_name, f"Not valid JSON: {exc}")
        return None
    return raw


def _json_object(raw: Any, field_name: str, errors: _Errors, *, of: str) -> dict[str, Any]:
    value = _json_value(raw, field_name, errors)
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(field_name, f"Must be a JSON object of {of}.")
        return {}
    return value


def _check_params(raw: Any, errors: _Errors) -> dict[str, Any]:
    return _json_object(raw, "params", errors, of="parameter name to value")


def _check_metrics(raw: Any, errors: _Errors) -> dict[str, float]:
    metrics = {}
    for name, number in _json_object(raw, "metrics", errors, of="metric name to number").items():
        if isinstance(number, bool) or not isinstance(number, int | float) or not _finite(number):
            errors.add("metrics", f"{name}: must be a finite number, got {number!r}.")
        else:
            metrics[str(name)] = float(number)
    return metrics


def _finite(number: int | float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an integer too large for a float
        return False


def _check_schema(raw: Any, field_name: str, errors: _Errors) -> list[FieldSpec] | None:
    value = _json_value(raw, field_name, errors)
    if value is None:
        return None
    try:
        return parse_schema(value)
    except SchemaError as exc:
        for problem in exc.problems:
            errors.add(field_name, problem)
        return None


def _check_notebook(staged: _StagedFile, errors: _Errors) -> None:
    try:
        # Decoded here rather than by json.loads, which would also accept UTF-16 and UTF-32 bytes
        # that the pages rendering notebooks (and Jupyter itself) read as UTF-8.
        raw = json_loads(staged.path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        errors.add("notebook", "Not a Jupyter notebook: the file is not UTF-8 text.")
        return
    except json.JSONDecodeError as exc:
        errors.add("notebook", f"Not a Jupyter notebook: invalid JSON ({exc.msg} at line {exc.lineno}).")
        return
    except ValueError as exc:  # too deep to read, or strings the pages could not show
        errors.add("notebook", f"Not a Jupyter notebook we can read: {exc}")
        return
    if not isinstance(raw, dict) or not isinstance(raw.get("nbformat"), int):
        errors.add("notebook", "Not a Jupyter notebook: it has no nbformat version (is it an .ipynb file?).")
        return
    try:
        nbformat.validate(nbformat.reads(json.dumps(raw), as_version=4))
    except (nbformat.ValidationError, ValueError, KeyError, AttributeError) as exc:
        errors.add("notebook", f"Not a valid Jupyter notebook: {str(exc).splitlines()[0]}")


def _check_mlflow_values(mlflow: artifacts.MlflowModelInfo, errors: _Errors) -> None:
    """What the version keeps of an MLflow model must be JSON that can be stored and shown again: a value
    from its files that cannot (nested too deeply, NaN in the MLmodel file, an unpaired surrogate) is
    refused as json_loads refuses it in a request. The input example may hold NaN: it becomes a CSV file."""
    for what, value, allow_nan in (
        ("The MLmodel file", mlflow.metadata, False),
        ("The MLflow input example", mlflow.input_example, True),
    ):
        try:
            json_loads(json.dumps(value, default=str), allow_nan=allow_nan)
        except RecursionError:
            errors.add("artifact", f"{what} holds a value that cannot be kept: {TOO_DEEP}")
        except ValueError as exc:
            errors.add("artifact", f"{what} holds a value that cannot be kept: {exc}")


def _golden_from_example(rows: list[dict[str, Any]], directory: Path) -> _StagedFile:
    """An MLflow input example becomes the first golden rows, with no validated output yet."""
    frame = records_frame(rows)
    frame[GOLDEN_EXPECTED_COLUMN] = None
    path = directory / "golden_set-mlflow-input-example.csv"
    frame.to_csv(path, index=False)
    data = path.read_bytes()
    return _StagedFile(
        kind=FileKind.GOLDEN_SET,
        path=path,
        filename="golden_set.csv",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        rows=len(frame),
    )


def version_register(*, actor: Any, model: RegisteredModel, upload: VersionUpload) -> ModelVersion:
    """Register a new version with its files, all or nothing.

    Every input is checked before anything is written; a problem anywhere raises ValidationError
    by field. Files are stored before the database commit and removed again if it fails, so a
    refused upload leaves no file and consumes no version number.
    """
    permissions.require_register_versions(actor)
    staging = Path(tempfile.mkdtemp(prefix="register-", dir=settings.FILE_UPLOAD_TEMP_DIR))
    stored: list[str] = []
    try:
        version = _register(actor=actor, model=model, upload=upload, staging=staging, stored=stored)
    except BaseException:
        for name in stored:
            default_storage.delete(name)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if version.files.filter(kind=FileKind.REFERENCE_DATA).exists():
        queue.profile_reference_data(version)
    if version.compilation.status == Compilation.Status.PENDING:
        queue.compile_version(version)
    return version


def _register(
    *,
    actor: Any,
    model: RegisteredModel,
    upload: VersionUpload,
    staging: Path,
    stored: list[str],
) -> ModelVersion:
    errors = _Errors()
    declared = upload.format or None
    if declared is not None and declared not in ArtifactFormat.values:
        errors.add("format", f"Must be one of {', '.join(ArtifactFormat.values)} (or omitted to detect).")
        declared = None
    artifact = _stage(upload.artifact, FileKind.ARTIFACT, staging)
    inspection = None
    try:
        inspection = artifacts.inspect_artifact(artifact.path, declared)
    except artifacts.ArtifactError as exc:
        errors.add("artifact", str(exc))
    # An MLflow model saved with (cloud)pickle runs code when loaded just like a joblib file.
    if inspection and inspection.runs_code_on_load and not permissions.may_upload_pickle(actor):
        errors.add(
            "artifact",
            "joblib/pickle artifacts (and MLflow models saved with pickle) can run code when loaded; only users "
            "with the 'may upload pickles' permission can register them. Save the model with skops instead.",
        )
    mlflow = inspection.mlflow if inspection else None
    if mlflow is not None:
        _check_mlflow_values(mlflow, errors)

    staged: list[_StagedFile] = [artifact]
    for kind, file in (
        (FileKind.NOTEBOOK, upload.notebook),
        (FileKind.GOLDEN_SET, upload.golden_set),
        (FileKind.REFERENCE_DATA, upload.reference_data),
        (FileKind.TRAINING_DATA, upload.training_data),
        (FileKind.ONNX, upload.onnx),
    ):
        if file is not None:
            staged.append(_stage(file, kind, staging))
    staged.extend(_stage(document, FileKind.DOCUMENT, staging) for document in upload.documents)
    by_kind = {item.kind: item for item in staged if item.kind != FileKind.DOCUMENT}
    for item in staged:
        if item.kind == FileKind.DOCUMENT and item.size == 0:
            errors.add("documents", f"{item.filename} is empty.")

    if FileKind.NOTEBOOK in by_kind:
        _check_notebook(by_kind[FileKind.NOTEBOOK], errors)
    if FileKind.ONNX in by_kind:
        try:
            artifacts.inspect_artifact(by_kind[FileKind.ONNX].path, ArtifactFormat.ONNX)
        except artifacts.ArtifactError as exc:
            errors.add("onnx", str(exc))

    tables: dict[str, pd.DataFrame] = {}
    for kind in (FileKind.GOLDEN_SET, FileKind.REFERENCE_DATA, FileKind.TRAINING_DATA):
        if kind in by_kind:
            try:
                tables[kind] = read_table(by_kind[kind].path)
                by_kind[kind].rows = len(tables[kind])
            except ValueError as exc:
                reason = str(exc)
                errors.add(kind, f"{reason[:1].upper()}{reason[1:]}.")
            else:
                if kind == FileKind.TRAINING_DATA and tables[kind].empty:
                    errors.add(kind, "Has no rows.")

    input_fields = _check_schema(upload.input_schema, "input_schema", errors)
    schema_source = SchemaSource.DECLARED if input_fields is not None else ""
    # Whether a schema must be sent depends on what the artifact holds: unknown when the artifact is refused.
    artifact_read = inspection is not None
    if (
        input_fields is None
        and upload.input_schema in (None, "")
        and artifact_read
        and "input_schema" not in errors.by_field
    ):
        input_fields, schema_source = _default_input_schema(mlflow, tables, errors)
    output_fields = _check_schema(upload.output_schema, "output_schema", errors)
    if output_fields is None and mlflow and mlflow.output_schema:
        output_fields = parse_schema(mlflow.output_schema)

    golden = tables.get(FileKind.GOLDEN_SET)
    if golden is not None and input_fields is not None:
        if GOLDEN_EXPECTED_COLUMN not in golden.columns:
            errors.add("golden_set", f"Needs a column named {GOLDEN_EXPECTED_COLUMN!r} with the validated outputs.")
        if golden.empty:
            errors.add("golden_set", "Has no rows.")
        for problem in check_frame(golden, input_fields, extra_columns=[GOLDEN_EXPECTED_COLUMN]):
            errors.add("golden_set", f"Does not match the input schema: {problem}.")
    reference = tables.get(FileKind.REFERENCE_DATA)
    if reference is not None and input_fields is not None:
        if reference.empty:
            errors.add("reference_data", "Has no rows.")
        extra = [str(column) for column in reference.columns]
        for problem in check_frame(reference, input_fields, extra_columns=extra):
            errors.add("reference_data", f"Does not match the input schema: {problem}.")

    params = _check_params(upload.params, errors)
    metrics = _check_metrics(upload.metrics, errors)
    environment = _json_value(upload.environment, "environment", errors) or {}
    if not isinstance(environment, dict):
        errors.add("environment", 'Must be a JSON object, e.g. {"python": "3.11.7", "libraries": {...}}.')
    if mlflow and not environment:
        environment = mlflow.environment
    if upload.training_data_rows is not None and upload.training_data_rows < 0:
        errors.add("training_data_rows", "Must not be negative.")
    parent = None
    if upload.parent is not None:
        parent = model.versions.filter(number=upload.parent).first()
        if parent is None:
            errors.add("parent", f"{model.name} has no version {upload.parent}.")
    filenames = [item.filename for item in staged]
    if len(set(filenames)) != len(filenames):
        errors.add("documents", "Two uploaded files have the same name; rename one.")
    errors.raise_if_any()
    assert inspection is not None  # any inspection failure was raised above

    if mlflow and FileKind.GOLDEN_SET not in by_kind and mlflow.input_example:
        staged.append(_golden_from_example(mlflow.input_example, staging))

    libraries = environment.get("libraries", {}) if isinstance(environment, dict) else {}
    framework_version = libraries.get(inspection.framework) if isinstance(libraries, dict) else None
    with transaction.atomic():
        locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        latest = locked.versions.order_by("-number").values_list("number", flat=True).first()
        version = ModelVersion.objects.create(
            model=locked,
            number=(latest or 0) + 1,
            format=inspection.format,
            framework=" ".join(filter(None, [inspection.framework, framework_version])),
            estimator=inspection.estimator[:200],
            environment=environment,
            requirements=upload.requirements or (mlflow.requirements if mlflow else ""),
            input_schema=[f.as_json() for f in input_fields or []],
            input_schema_source=schema_source,
            output_schema=[f.as_json() for f in output_fields or []],
            params=params,
            metrics=metrics,
            training_data_uri=upload.training_data_uri,
            training_data_rows=upload.training_data_rows,
            training_data_sha256=upload.training_data_sha256,
            code_uri=upload.code_uri,
            code_commit=upload.code_commit,
            parent=parent,
            release_notes=upload.release_notes,
            untrusted_types=inspection.untrusted_types,
            author=actor,
            mlflow=_mlflow_metadata(mlflow, upload),
            mlflow_source=upload.mlflow_source,
        )
        for item in staged:
            version_file = VersionFile(
                version=version,
                kind=item.kind,
                filename=item.filename,
                sha256=item.sha256,
                size=item.size,
                rows=item.rows,
            )
            with item.path.open("rb") as handle:
                version_file.file.save(item.filename, File(handle), save=False)
            stored.append(str(version_file.file.name))
            version_file.save()
        audit_event_create(
            actor=actor,
            action=AuditAction.VERSION_REGISTERED,
            version=version,
            new={
                "number": version.number,
                "format": version.format,
                "files": {item.filename: item.sha256 for item in staged},
                "untrusted_types": version.untrusted_types,
                **({"mlflow_source": version.mlflow_source} if version.mlflow_source else {}),
            },
        )
        # In the same transaction: a version never exists without its compilation row.
        compilation_create(version=version)
    logger.info("Registered %s (%s)", version, version.format)
    return version


def _default_input_schema(
    mlflow: artifacts.MlflowModelInfo | None, tables: dict[str, pd.DataFrame], errors: _Errors
) -> tuple[list[FieldSpec] | None, str]:
    """Without an explicit schema: the MLflow signature, else inferred from the data uploaded; and its source."""
    if mlflow and mlflow.input_schema:
        return parse_schema(mlflow.input_schema), SchemaSource.MLFLOW_SIGNATURE
    if FileKind.REFERENCE_DATA in tables:
        return parse_schema(infer_schema(tables[FileKind.REFERENCE_DATA])), SchemaSource.REFERENCE_DATA
    if FileKind.GOLDEN_SET in tables:
        golden = tables[FileKind.GOLDEN_SET].drop(columns=[GOLDEN_EXPECTED_COLUMN], errors="ignore")
        return parse_schema(infer_schema(golden)), SchemaSource.GOLDEN_SET
    if mlflow and mlflow.input_example:
        return parse_schema(_schema_of_example(mlflow.input_example)), SchemaSource.INPUT_EXAMPLE
    without = " (this MLflow model has no signature and no input example)" if mlflow else ""
    errors.add(
        "input_schema",
        f"Required: send the input schema, or upload reference_data or a golden_set to infer it from{without}.",
    )
    return None, ""


def _schema_of_example(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only the types of an input example's columns: a few rows say nothing of ranges or of every category."""
    fields = []
    for spec in infer_schema(records_frame(rows)):
        spec.pop("minimum", None)
        spec.pop("maximum", None)
        if spec.pop("categories", None) is not None:
            spec["type"] = "string"
        fields.append(spec)
    return fields


def _mlflow_metadata(mlflow: artifacts.MlflowModelInfo | None, upload: VersionUpload) -> dict[str, Any]:
    """ModelVersion.mlflow: MLflow's description of the model, and where the MLflow import took it from."""
    if mlflow is None and not upload.mlflow_import:
        return {}
    metadata: dict[str, Any] = {"mlmodel": mlflow.metadata} if mlflow else {}
    if upload.mlflow_import:
        metadata["import"] = upload.mlflow_import
    return metadata
