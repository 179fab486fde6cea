"""MLflow model directories read without MLflow: the MLmodel file, its signature, its input example.

What `mlflow.sklearn.save_model` writes (tested with MLflow 3.17): an `MLmodel` YAML file naming the flavors,
the signature as JSON strings (`inputs`, `outputs`, `params`), the input example's file, and beside it
`requirements.txt` and `python_env.yaml`. A signature's inputs are either named columns of MLflow types
or one tensor; a tensor `[-1, n]` becomes n columns `column_0`..`column_{n-1}` of our schema, served from
rows sent as lists (`inputs`/`instances`) as MLflow's scoring server does, and handed to the model as one
array again.

No Django imports, and nothing here runs code from the model: artifacts.py calls it on the members of
an uploaded zip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import yaml

from registry.schema import SchemaError, parse_schema

# MLflow column types -> our schema types. Several map to one of ours, so each column's MLflow type is
# kept too (Signature.column_types): serving hands the model the dtypes MLflow's pyfunc would (int32 for
# "integer", float32 for "float", ...).
COLUMN_TYPES = {
    "boolean": "boolean",
    "integer": "integer",
    "long": "integer",
    "float": "float",
    "double": "float",
    "string": "string",
    "datetime": "datetime",
    "binary": "binary",
}
# numpy dtype kinds of MLflow tensor specs -> our schema types.
_TENSOR_KINDS = {"f": "float", "i": "integer", "u": "integer", "b": "boolean", "U": "string", "O": "string"}
PARAM_TYPES = (*COLUMN_TYPES, "object", "array")
SUPPORTED_SERIALIZATIONS = ("skops", "cloudpickle", "pickle")
# Names of a tensor input's columns in our schema; rows sent as lists fill them in order.
TENSOR_COLUMN = "column_{index}"


class MlmodelError(ValueError):
    """The MLflow model directory cannot be used; the message names the file or field and why."""


@dataclass(frozen=True)
class Signature:
    """A signature turned into our schemas, with what serving needs to feed the model as MLflow does."""

    inputs: list[dict[str, Any]] | None = None
    outputs: list[dict[str, Any]] | None = None
    # Column name -> MLflow type, for column-based inputs.
    column_types: dict[str, str] = field(default_factory=dict)
    # numpy dtype of a tensor input, whose columns are handed to the model as one 2-D array.
    tensor_dtype: str | None = None
    params: list[dict[str, Any]] | None = None


def read_mlmodel(data: bytes | None) -> dict[str, Any]:
    if data is None:
        raise MlmodelError("The zip file has no MLmodel file.")
    try:
        mlmodel = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MlmodelError(f"The MLmodel file is not valid YAML{at}: {problem}.") from exc
    if not isinstance(mlmodel, dict):
        raise MlmodelError("The MLmodel file is empty or not a YAML mapping (it should hold flavors and a signature).")
    return mlmodel


def sklearn_flavor(mlmodel: dict[str, Any]) -> dict[str, Any]:
    """The sklearn flavor's settings; other models are refused with what is supported instead."""
    flavors = mlmodel.get("flavors")
    if not isinstance(flavors, dict):
        raise MlmodelError("The MLmodel file has no flavors: is it a model directory written by MLflow?")
    sklearn = flavors.get("sklearn")
    if not isinstance(sklearn, dict):
        has = ", ".join(sorted(str(name) for name in flavors)) or "no flavors"
        raise MlmodelError(
            f"Only MLflow models with the sklearn flavor can be registered (saved by mlflow.sklearn.save_model "
            f"or log_model, as skops, cloudpickle or pickle); this model has {has}. A python_function-only model "
            "(an mlflow.pyfunc.PythonModel) runs its own code and cannot be reviewed or served here."
        )
    serialization = str(sklearn.get("serialization_format") or "cloudpickle")
    if serialization not in SUPPORTED_SERIALIZATIONS:
        raise MlmodelError(
            f"The sklearn flavor's serialization_format {serialization!r} is not supported; "
            f"supported: {', '.join(SUPPORTED_SERIALIZATIONS)}."
        )
    trusted = sklearn.get("skops_trusted_types")
    if trusted is not None and (not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted)):
        raise MlmodelError("The sklearn flavor's skops_trusted_types must be a list of type names.")
    return sklearn


def _json_list(raw: Any, what: str) -> list[Any] | None:
    if raw is None or raw in ("", "null"):
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise MlmodelError(f"The MLmodel signature's {what} are not valid JSON: {exc}.") from exc
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise MlmodelError(f"The MLmodel signature's {what} must be a JSON list, not {type(raw).__name__}.")
    return raw


def _tensor_type(spec: Any, what: str) -> tuple[str, list[int], str]:
    """A tensor spec's numpy dtype, shape and our field type."""
    tensor = spec.get("tensor-spec") if isinstance(spec, dict) else None
    if not isinstance(tensor, dict):
        raise MlmodelError(f"The MLmodel signature's {what} hold a tensor without a tensor-spec.")
    dtype = str(tensor.get("dtype"))
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
        raise MlmodelError(f"The MLmodel signature's {what} tensor has no valid shape: {shape!r}.")
    try:
        kind = _TENSOR_KINDS.get(pd.api.types.pandas_dtype(dtype).kind)
    except (TypeError, ValueError):
        kind = None
    if kind is None:
        supported = "float*, int*, uint*, bool, str, object"
        raise MlmodelError(
            f"The MLmodel signature's {what} tensor has dtype {dtype!r}, which cannot be checked; "
            f"supported: {supported}."
        )
    return dtype, shape, kind


def _columns(specs: list[Any], what: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    fields, types = [], {}
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise MlmodelError(f"The MLmodel signature's {what}[{index}] must be an object with a type.")
        if spec.get("type") == "tensor":
            raise MlmodelError(f"The MLmodel signature's {what} mix columns and tensors, which MLflow never writes.")
        name = str(spec.get("name") or ("prediction" if what == "outputs" and len(specs) == 1 else f"column_{index}"))
        mlflow_type = spec.get("type")
        if mlflow_type not in COLUMN_TYPES:
            raise MlmodelError(
                f"The MLmodel signature's {what} column {name!r} has type {mlflow_type!r}, which cannot be checked; "
                f"supported: {', '.join(COLUMN_TYPES)}."
            )
        required = spec.get("required", True)
        fields.append({"name": name, "type": COLUMN_TYPES[mlflow_type], "required": required is not False})
        types[name] = str(mlflow_type)
    return fields, types


def _tensor_fields(specs: list[Any], what: str) -> tuple[list[dict[str, Any]], str]:
    names = [str(spec["name"]) for spec in specs if isinstance(spec, dict) and spec.get("name")]
    if len(specs) != 1 or names:
        described = f"named tensors ({', '.join(names)})" if names else f"{len(specs)} tensors"
        raise MlmodelError(
            f"The MLmodel signature's {what} are {described}; only one unnamed tensor "
            "(a 2-D array, as scikit-learn takes) can be served."
        )
    dtype, shape, kind = _tensor_type(specs[0], what)
    if what == "outputs" and len(shape) == 1:
        return [{"name": "prediction", "type": kind, "required": True}], dtype
    if len(shape) != 2 or shape[1] < 1:
        raise MlmodelError(
            f"The MLmodel signature's {what} tensor has shape {shape}; only [-1, n] (rows of n values) can be "
            "served as columns."
        )
    prefix = "prediction_{index}" if what == "outputs" else TENSOR_COLUMN
    fields = [{"name": prefix.format(index=i), "type": kind, "required": True} for i in range(shape[1])]
    return fields, dtype


def parse_signature(raw: Any) -> Signature:
    """The MLmodel `signature` mapping as our schemas; raises MlmodelError naming the bad part."""
    if raw is None:
        return Signature()
    if not isinstance(raw, dict):
        raise MlmodelError("The MLmodel signature must be a mapping of inputs, outputs and params.")
    inputs = _json_list(raw.get("inputs"), "inputs")
    outputs = _json_list(raw.get("outputs"), "outputs")
    params = _json_list(raw.get("params"), "params")
    input_fields = output_fields = None
    column_types: dict[str, str] = {}
    tensor_dtype = None
    if inputs:
        if any(isinstance(spec, dict) and spec.get("type") == "tensor" for spec in inputs):
            input_fields, tensor_dtype = _tensor_fields(inputs, "inputs")
        else:
            input_fields, column_types = _columns(inputs, "inputs")
    if outputs:
        if any(isinstance(spec, dict) and spec.get("type") == "tensor" for spec in outputs):
            output_fields, _ = _tensor_fields(outputs, "outputs")
        else:
            output_fields, _ = _columns(outputs, "outputs")
    for what, fields in (("inputs", input_fields), ("outputs", output_fields)):
        try:
            parse_schema(fields or [])
        except SchemaError as exc:  # e.g. two columns of one name
            problems = "; ".join(exc.problems)
            raise MlmodelError(f"The MLmodel signature's {what} do not make a schema: {problems}.") from exc
    return Signature(
        inputs=input_fields,
        outputs=output_fields,
        column_types=column_types,
        tensor_dtype=tensor_dtype,
        params=_params(params) if params else None,
    )


def _params(specs: list[Any]) -> list[dict[str, Any]]:
    params = []
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise MlmodelError(f"The MLmodel signature's params[{index}] must be an object with a name and a type.")
        if spec.get("type") not in PARAM_TYPES:
            raise MlmodelError(
                f"The MLmodel signature's param {spec['name']!r} has type {spec.get('type')!r}; "
                f"MLflow's param types are {', '.join(PARAM_TYPES)}."
            )
        params.append({key: spec.get(key) for key in ("name", "type", "default", "shape")})
    return params


def example_rows(data: bytes | None, signature: Signature) -> list[dict[str, Any]] | None:
    """The input example as rows (JSON values), in any of the layouts MLflow writes it."""
    if data is None:
        return None
    try:
        example = json.loads(data)
    except ValueError as exc:
        raise MlmodelError(f"The MLflow input example is not valid JSON: {exc}.") from exc
    if isinstance(example, dict):
        for key in ("dataframe_split", "dataframe_records", "inputs", "instances"):
            if key in example:
                example = example[key]
                break
    if isinstance(example, dict) and isinstance(example.get("data"), list) and isinstance(example.get("columns"), list):
        columns = [str(name) for name in example["columns"]]
        return [dict(zip(columns, row, strict=False)) for row in example["data"] if isinstance(row, list)]
    if isinstance(example, list) and example and all(isinstance(row, dict) for row in example):
        return [{str(key): value for key, value in row.items()} for row in example]
    if isinstance(example, list) and example and all(isinstance(row, list) for row in example):
        # A numpy example (a tensor input): its values fill the tensor's columns in order.
        width = len(signature.inputs) if signature.inputs else max(len(row) for row in example)
        names = [TENSOR_COLUMN.format(index=i) for i in range(width)]
        return [dict(zip(names, row, strict=False)) for row in example]
    if isinstance(example, dict) and example:
        lists = {str(key): value if isinstance(value, list) else [value] for key, value in example.items()}
        count = max(len(values) for values in lists.values())
        return [{key: values[i] if i < len(values) else None for key, values in lists.items()} for i in range(count)]
    return None


def requirement_pins(requirements: str) -> dict[str, str]:
    """`name==version` lines of a requirements file, by lower-case name."""
    pins = {}
    for line in requirements.splitlines():
        line = line.split("#")[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[name.split("[")[0].strip().lower()] = version.split(";")[0].strip()
    return pins


def read_python_env(data: bytes | None) -> dict[str, Any]:
    """python_env.yaml's Python version and pip dependencies; {} when absent."""
    if data is None:
        return {}
    try:
        env = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise MlmodelError(f"python_env.yaml is not valid YAML: {str(exc).splitlines()[0]}.") from exc
    if not isinstance(env, dict):
        raise MlmodelError("python_env.yaml is not a YAML mapping.")
    lists = {}
    for key in ("build_dependencies", "dependencies"):
        value = env.get(key) or []
        if not isinstance(value, list):
            raise MlmodelError(f"python_env.yaml's {key} must be a list of requirements.")
        lists[key] = [str(item) for item in value]
    return {"python": str(env["python"]) if env.get("python") else "", **lists}


def environment(
    mlmodel: dict[str, Any], sklearn: dict[str, Any], requirements: str, python_env: dict[str, Any]
) -> dict[str, Any]:
    """The environment the model was saved in, in the shape registration captures (checks compare it)."""
    libraries = requirement_pins(requirements)
    for dependency in python_env.get("dependencies", []):
        libraries.update({k: v for k, v in requirement_pins(dependency).items() if k not in libraries})
    if sklearn.get("sklearn_version"):
        libraries.setdefault("scikit-learn", str(sklearn["sklearn_version"]))
    captured: dict[str, Any] = {"libraries": libraries}
    python_function = (mlmodel.get("flavors") or {}).get("python_function")
    python = python_env.get("python") or (
        python_function.get("python_version") if isinstance(python_function, dict) else None
    )
    if python:
        captured["python"] = str(python)
    if mlmodel.get("mlflow_version"):
        captured["mlflow"] = str(mlmodel["mlflow_version"])
    return captured


def metadata(
    mlmodel: dict[str, Any], signature: Signature, requirements: str, python_env: dict[str, Any]
) -> dict[str, Any]:
    """What the version keeps of MLflow's own description of the model (ModelVersion.mlflow["mlmodel"])."""
    flavors = mlmodel.get("flavors") or {}
    sklearn = flavors.get("sklearn") or {}
    raw_signature = mlmodel.get("signature") if isinstance(mlmodel.get("signature"), dict) else {}
    kept: dict[str, Any] = {
        key: str(mlmodel[key])
        for key in ("mlflow_version", "model_uuid", "run_id", "artifact_path", "utc_time_created", "model_id")
        if mlmodel.get(key) not in (None, "")
    }
    kept["flavors"] = {
        str(name): {key: value for key, value in settings.items() if isinstance(value, str | int | float | bool)}
        for name, settings in flavors.items()
        if isinstance(settings, dict)
    }
    kept["serialization_format"] = str(sklearn.get("serialization_format") or "cloudpickle")
    kept["skops_trusted_types"] = list(sklearn.get("skops_trusted_types") or [])
    kept["signature"] = {
        key: _json_list(raw_signature.get(key), key) for key in ("inputs", "outputs", "params") if raw_signature
    }
    kept["column_types"] = signature.column_types
    if signature.tensor_dtype:
        kept["tensor_dtype"] = signature.tensor_dtype
    kept["requirements"] = requirement_pins(requirements)
    if python_env:
        kept["python_env"] = python_env
    # A hand-written MLmodel may hold YAML dates and the like where MLflow writes JSON text: stored as text.
    stored: dict[str, Any] = json.loads(json.dumps(kept, default=str))
    return stored
