"""What an archived prediction file holds: the input as typed columns, and the log's own columns.

One file holds one version's predictions of one hour, so its columns follow that version's input
schema. The log's columns start with "__" (the names monitoring's windows use), so they never meet a
feature's name. Outputs are kept as JSON text (what reproduction compares) and also as a label text and
a number, the forms reports compare with actuals; class probabilities as a list of doubles, exact.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from registry.schema import FieldSpec

ID = "__prediction_id"
AT = "__at"
MODEL_ID = "__model_id"
VERSION_ID = "__version_id"
VERSION = "__version"
CONSUMER_ID = "__consumer_id"
USER_ID = "__user_id"
ENTITY = "__entity_id"
INPUT_SHA256 = "__input_sha256"
OUTPUT = "__output"
PREDICTION = "__prediction"  # the output as a label: 1 and 1.0 are both "1"
NUMBER = "__number"  # the output as a number, when it is one
SCORE = "__score"  # probability of the positive class, for binary classifiers
PROBABILITIES = "__probabilities"
LATENCY_MS = "__latency_ms"
ENGINE = "__engine"
# False when only the input's sha256 was logged: its feature columns are then empty, not missing values.
INPUT_KEPT = "__input_kept"

# The Prediction and Actual attributes `predictions_table` and `actuals_table` read (what to ask the ORM for).
PREDICTION_ATTRIBUTES = (
    "id",
    "at",
    "model_id",
    "version_id",
    "consumer_id",
    "user_id",
    "entity_id",
    "input",
    "input_sha256",
    "output",
    "probabilities",
    "latency_ms",
    "engine",
)
ACTUAL_ATTRIBUTES = ("id", "model_id", "prediction_id", "entity_id", "value", "observed_at", "received_at")

TIMESTAMP = pa.timestamp("us", tz="UTC")
LOG_COLUMNS = pa.schema(
    [
        (ID, pa.string()),
        (AT, TIMESTAMP),
        (MODEL_ID, pa.int64()),
        (VERSION_ID, pa.int64()),
        (VERSION, pa.int32()),
        (CONSUMER_ID, pa.int64()),
        (USER_ID, pa.int64()),
        (ENTITY, pa.string()),
        (INPUT_SHA256, pa.binary(32)),
        (INPUT_KEPT, pa.bool_()),
        (OUTPUT, pa.string()),
        (PREDICTION, pa.string()),
        (NUMBER, pa.float64()),
        (SCORE, pa.float64()),
        (PROBABILITIES, pa.list_(pa.float64())),
        (LATENCY_MS, pa.float64()),
        (ENGINE, pa.string()),
    ]
)
FEATURE_TYPES = {
    "float": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "category": pa.string(),
    "datetime": pa.string(),  # ISO-8601 text as sent: reproduction re-parses it as the request did
    "binary": pa.string(),  # base64 text as sent
}

# Actuals, archived by the hour they were received.
ACTUAL = "__actual"  # JSON text of the value
ACTUAL_LABEL = "__actual_label"
ACTUAL_NUMBER = "__actual_number"
OBSERVED_AT = "__observed_at"
RECEIVED_AT = "__received_at"
ACTUAL_ID = "__actual_id"
ACTUAL_COLUMNS = pa.schema(
    [
        (ACTUAL_ID, pa.int64()),
        (MODEL_ID, pa.int64()),
        (ID, pa.string()),
        (ENTITY, pa.string()),
        (ACTUAL, pa.string()),
        (ACTUAL_LABEL, pa.string()),
        (ACTUAL_NUMBER, pa.float64()),
        (OBSERVED_AT, TIMESTAMP),
        (RECEIVED_AT, TIMESTAMP),
    ]
)


def label(value: Any) -> str | None:
    """A prediction or an actual as the text labels compare by: 1, 1.0, "1" and True are all "1"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        number = float(value)
        if math.isfinite(number) and number.is_integer():
            return str(int(number))
        return repr(number)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return str(int(number)) if math.isfinite(number) and number.is_integer() else value
    return json.dumps(value, sort_keys=True)


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def positive_score(probabilities: Any) -> float | None:
    if isinstance(probabilities, list) and len(probabilities) == 2 and probabilities[1] is not None:
        return float(probabilities[1])
    return None


def prediction_schema(fields: Iterable[FieldSpec]) -> pa.Schema:
    """The log's columns, then one typed column per input field of the version."""
    schema = LOG_COLUMNS
    for field in fields:
        schema = schema.append(pa.field(field.name, FEATURE_TYPES.get(field.type, pa.string())))
    return schema


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def input_digest(row: Mapping[str, Any]) -> str:
    """The sha256 logged with a prediction: of its input row as JSON with sorted keys."""
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()


def _digests(rows: list[Mapping[str, Any]], features: Mapping[str, pa.Array]) -> pa.Array:
    """The sha256s to archive: none where the input as archived gives the logged digest again (the
    costliest column otherwise, 32 incompressible bytes a row), else its 32 bytes."""
    columns = {name: column.to_pylist() for name, column in features.items()}
    digests: list[bytes | None] = []
    for index, row in enumerate(rows):
        value = row.get("input_sha256") or ""
        read_back = {name: column[index] for name, column in columns.items()}
        if row.get("input") is not None and input_digest(read_back) == value:
            digests.append(None)
        else:
            digests.append(_hex_bytes(value))
    return pa.array(digests, pa.binary(32))


def _hex_bytes(value: str) -> bytes | None:
    try:
        return bytes.fromhex(value) if len(value) == 64 else None
    except ValueError:
        return None


def _probabilities(value: Any) -> list[float] | None:
    # Numbers, not JSON text: a list of doubles is exact and compresses (float32 outputs leave low bits 0).
    if isinstance(value, list) and all(isinstance(item, int | float) and not isinstance(item, bool) for item in value):
        return [float(item) for item in value]
    return None


def _feature_column(values: list[Any], type_: pa.DataType) -> pa.Array:
    """A feature's values as the column type; a value that does not fit becomes missing, not an error.

    Requests were validated against the schema, so this only happens with rows logged under looser
    rules (unknown categories passed through, numbers sent as text).
    """
    try:
        return pa.array(values, type=type_, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    if pa.types.is_string(type_):
        return pa.array([None if v is None else str(v) for v in values], type=type_)
    converted = []
    for value in values:
        try:
            converted.append(pa.scalar(value, type=type_).as_py())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            converted.append(None)
    return pa.array(converted, type=type_)


def predictions_table(rows: Iterable[Mapping[str, Any]], fields: list[FieldSpec]) -> pa.Table:
    """Logged predictions as an archive table.

    Each row maps the Prediction's attribute names (id, at, model_id, version_id, consumer_id, user_id,
    entity_id, input, input_sha256, output, probabilities, latency_ms, engine) plus "version" (the
    version's number) to their values.
    """
    rows = list(rows)
    inputs = [row.get("input") for row in rows]
    log = {
        ID: pa.array([str(row["id"]) for row in rows], pa.string()),
        AT: pa.array([row["at"] for row in rows], TIMESTAMP),
        MODEL_ID: pa.array([row["model_id"] for row in rows], pa.int64()),
        VERSION_ID: pa.array([row["version_id"] for row in rows], pa.int64()),
        VERSION: pa.array([row["version"] for row in rows], pa.int32()),
        CONSUMER_ID: pa.array([row.get("consumer_id") for row in rows], pa.int64()),
        USER_ID: pa.array([row.get("user_id") for row in rows], pa.int64()),
        ENTITY: pa.array([row.get("entity_id") or None for row in rows], pa.string()),
        INPUT_KEPT: pa.array([value is not None for value in inputs], pa.bool_()),
        OUTPUT: pa.array([_json(row["output"]) for row in rows], pa.string()),
        PREDICTION: pa.array([label(row["output"]) for row in rows], pa.string()),
        NUMBER: pa.array([number(row["output"]) for row in rows], pa.float64()),
        SCORE: pa.array([positive_score(row.get("probabilities")) for row in rows], pa.float64()),
        PROBABILITIES: pa.array([_probabilities(row.get("probabilities")) for row in rows], pa.list_(pa.float64())),
        LATENCY_MS: pa.array([row.get("latency_ms") for row in rows], pa.float64()),
        ENGINE: pa.array([row.get("engine") or "" for row in rows], pa.string()),
    }
    schema = prediction_schema(fields)
    features = {
        field.name: _feature_column(
            [None if kept is None else kept.get(field.name) for kept in inputs], schema.field(field.name).type
        )
        for field in fields
    }
    log[INPUT_SHA256] = _digests(rows, features)
    return pa.table({**log, **features}, schema=schema).select(schema.names)


def logged_prediction(row: Mapping[str, Any], fields: list[FieldSpec]) -> dict[str, Any]:
    """An archived row back as the Prediction's attribute values (the inverse of `predictions_table`)."""
    inputs = {field.name: row.get(field.name) for field in fields} if row.get(INPUT_KEPT) else None
    if row.get(INPUT_SHA256) is not None:
        digest = row[INPUT_SHA256].hex()
    else:
        digest = input_digest(inputs) if inputs is not None else ""
    return {
        "id": row[ID],
        "at": row[AT],
        "model_id": row[MODEL_ID],
        "version_id": row[VERSION_ID],
        "consumer_id": row.get(CONSUMER_ID),
        "user_id": row.get(USER_ID),
        "entity_id": row.get(ENTITY) or "",
        "input": inputs,
        "input_sha256": digest,
        "output": json.loads(row[OUTPUT]) if row.get(OUTPUT) is not None else None,
        "probabilities": row.get(PROBABILITIES),
        "latency_ms": row.get(LATENCY_MS),
        "engine": row.get(ENGINE) or "",
    }


def actuals_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Actuals as an archive table; each row maps id, model_id, prediction_id, entity_id, value,
    observed_at and received_at."""
    rows = list(rows)
    return pa.table(
        {
            ACTUAL_ID: pa.array([row["id"] for row in rows], pa.int64()),
            MODEL_ID: pa.array([row["model_id"] for row in rows], pa.int64()),
            ID: pa.array([None if row.get("prediction_id") is None else str(row["prediction_id"]) for row in rows]),
            ENTITY: pa.array([row.get("entity_id") or None for row in rows], pa.string()),
            ACTUAL: pa.array([_json(row["value"]) for row in rows], pa.string()),
            ACTUAL_LABEL: pa.array([label(row["value"]) for row in rows], pa.string()),
            ACTUAL_NUMBER: pa.array([number(row["value"]) for row in rows], pa.float64()),
            OBSERVED_AT: pa.array([row["observed_at"] for row in rows], TIMESTAMP),
            RECEIVED_AT: pa.array([row["received_at"] for row in rows], TIMESTAMP),
        },
        schema=ACTUAL_COLUMNS,
    )
