"""The request bodies MLflow's scoring server accepts, read into rows (one dict per row).

{"dataframe_split": {"columns": [...], "data": [[...], ...]}}
{"dataframe_records": [{"col": value, ...}, ...]}
{"instances": [{"col": value}, ...] or [[v1, v2, ...], ...]}
{"inputs": {"col": [values...]} or the same as instances}

Beside them, "params": {"name": value} as MLflow's scoring server takes them, checked against an MLflow
model's params schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from registry.schema import parse_binary, parse_datetime

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class RequestFormatError(ValueError):
    pass


def _rows(value: Any, columns: list[str], key: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise RequestFormatError(f"{key}: must be a list of rows.")
    if all(isinstance(row, Mapping) for row in value):
        return [dict(row) for row in value]
    if all(isinstance(row, list) for row in value):
        if {len(row) for row in value} - {len(columns)}:
            raise RequestFormatError(
                f"{key}: rows given as lists must have {len(columns)} values, in the order {columns}."
            )
        return [dict(zip(columns, row, strict=True)) for row in value]
    raise RequestFormatError(f"{key}: every row must be an object (column: value) or a list of values.")


def read_records(body: Any, columns: list[str]) -> list[dict[str, Any]]:
    """`columns` (the schema's, in order) name the values of rows sent as plain lists."""
    if not isinstance(body, Mapping):
        raise RequestFormatError(f"The body must be a JSON object with one of: {', '.join(FORMATS)}.")
    present = [key for key in FORMATS if key in body]
    if len(present) != 1:
        raise RequestFormatError(
            f"Send exactly one of {', '.join(FORMATS)}" + (f" (got {', '.join(present)})." if present else ".")
        )
    key = present[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, Mapping) or not isinstance(value.get("data"), list):
            raise RequestFormatError('dataframe_split: must be {"columns": [...], "data": [[...], ...]}.')
        split_columns = value.get("columns", columns)
        if not isinstance(split_columns, list) or not all(isinstance(c, str) for c in split_columns):
            raise RequestFormatError("dataframe_split.columns: must be a list of column names.")
        return _rows(value["data"], split_columns, "dataframe_split.data")
    if key == "inputs" and isinstance(value, Mapping):
        lists = {name: column if isinstance(column, list) else [column] for name, column in value.items()}
        lengths = {len(column) for column in lists.values()}
        if len(lengths) > 1:
            raise RequestFormatError("inputs: every column must have the same number of values.")
        count = lengths.pop() if lengths else 0
        return [{name: column[i] for name, column in lists.items()} for i in range(count)]
    return _rows(value, columns, key)


def _param_value_ok(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("integer", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "datetime":
        return parse_datetime(value)[1] is None
    if kind == "binary":
        return parse_binary(value) is not None
    return True  # "object" and "array" params: MLflow checks their inner types, the model ignores them


def check_params(body: Any, schema: list[dict[str, Any]] | None) -> None:
    """Refuse `params` that MLflow's pyfunc would refuse: not an object, or a value not of its param's type.

    Params the schema does not name are ignored, as MLflow ignores them; a scikit-learn model takes none,
    so the params are only checked, never passed on.
    """
    if not isinstance(body, Mapping) or body.get("params") is None:
        return
    params = body["params"]
    if not isinstance(params, Mapping):
        raise RequestFormatError('params: must be an object of parameter name to value, e.g. {"threshold": 0.5}.')
    for spec in schema or []:
        name = spec.get("name")
        if name not in params:
            continue
        kind = str(spec.get("type"))
        value = params[name]
        values = value if spec.get("shape") is not None else [value]
        if not isinstance(values, list) or not all(_param_value_ok(kind, item) for item in values):
            shape = " list" if spec.get("shape") is not None else ""
            raise RequestFormatError(f"params.{name}: {value!r} is not a {kind}{shape} (the model's params schema).")
