"""What the checks share: the version's model and tables, loaded once, and rows made up from its schema."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from registry import artifacts
from registry.checks.results import FAILED, CheckResult, describe, plain, result
from registry.choices import FileKind, ModelTask
from registry.loading import ArtifactIntegrityError, load_version_model, verified_path
from registry.models import ModelVersion, VersionFile
from registry.predictors import Predictor
from registry.schema import GOLDEN_EXPECTED_COLUMN, NUMERIC_TYPES, FieldSpec, parse_schema
from registry.tables import read_table


@dataclass
class Context:
    """The version's model and tables, loaded once; a load error is kept as a sentence."""

    version: ModelVersion
    predictor: Predictor | None
    load_error: str
    golden: pd.DataFrame | None
    golden_error: str
    reference: pd.DataFrame | None

    @classmethod
    def build(cls, version: ModelVersion) -> Context:
        predictor: Predictor | None = None
        load_error = ""
        try:
            predictor = load_version_model(version)
        except VersionFile.DoesNotExist:
            load_error = "the version has no artifact file."
        except Exception as exc:  # skops, joblib and onnxruntime raise many kinds on a bad file
            readable = isinstance(exc, artifacts.ArtifactError | ArtifactIntegrityError)
            load_error = str(exc) if readable else describe(exc)
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
            names = [str(column) for column in self.golden.columns if column != GOLDEN_EXPECTED_COLUMN]
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
        row = {spec.name: synthesised_value(spec) for spec in self.fields()}
        for source in (self.golden_inputs(), self.reference_inputs()):
            if source is not None:
                first = source.iloc[0]
                for name in row:
                    if name in source.columns:
                        row[name] = plain(first[name], keep_nan=True)
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
        return result(name, FAILED, f"The model could not be loaded: {self.load_error}", required=required)


def _read(version: ModelVersion, kind: str) -> tuple[pd.DataFrame | None, str]:
    version_file = version.files.filter(kind=kind).first()
    if version_file is None:
        return None, ""
    try:
        return read_table(verified_path(version_file)), ""
    except Exception as exc:  # integrity errors and unreadable files alike make the table unusable
        return None, f"{version_file.filename} could not be read: {exc}"


def synthesised_value(spec: FieldSpec) -> Any:
    if spec.type in NUMERIC_TYPES:
        if spec.minimum is not None and spec.maximum is not None:
            middle = (spec.minimum + spec.maximum) / 2
            return math.floor(middle) if spec.type == "integer" else middle
        bound = spec.minimum if spec.minimum is not None else spec.maximum
        return numeric(spec, bound if bound is not None else 0)
    if spec.type == "category":
        return spec.categories[0] if spec.categories else "x"
    if spec.type == "boolean":
        return False
    if spec.type == "datetime":
        return "2000-01-01T00:00:00"
    if spec.type == "binary":
        return base64.b64encode(b"x").decode("ascii")
    return "x"


def numeric(spec: FieldSpec, value: float) -> float | int:
    return int(value) if spec.type == "integer" and float(value).is_integer() else float(value)
