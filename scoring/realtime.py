"""Real-time scoring of rows with a loaded version: validate first, predict, log for audit, reproduce on demand."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.utils import timezone

from registry.models import Consumer
from registry.schema import RowProblem, json_column, records_frame, validate_records, validate_rows
from scoring import runtime
from scoring.archive.format import input_digest
from scoring.ids import uuid7
from scoring.models import MAX_ENTITY_ID_LENGTH, Prediction, ScoringPolicy
from scoring.recorder import recorder

# A 400 lists at most this many problems (and says how many there were).
MAX_LISTED_PROBLEMS = 1000


class InvalidInputError(Exception):
    def __init__(self, message: str, problems: list[RowProblem]):
        super().__init__(message)
        self.problems = problems

    def as_json(self) -> dict[str, Any]:
        return {
            "detail": str(self),
            "errors": [problem.as_json() for problem in self.problems[:MAX_LISTED_PROBLEMS]],
            "error_count": len(self.problems),
        }


@dataclass
class Scored:
    model: str
    version: int
    engine: str
    predictions: list[Any]
    probabilities: list[list[float]] | None
    prediction_ids: list[str]


def _plain(values: np.ndarray) -> list[Any]:
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in np.asarray(values).tolist()]


# Up to this many rows, rows are checked in plain Python (pandas costs ~0.5 ms per column per call).
FAST_VALIDATION_ROWS = 200


def predict(
    *,
    loaded: runtime.LoadedModel,
    records: list[dict[str, Any]],
    consumer: Consumer | None = None,
    user: Any = None,
    entity_ids: list[str] | None = None,
) -> Scored:
    """Validate every row, then score them all; InvalidInputError (nothing scored) if any row is bad."""
    started = time.perf_counter()
    if len(records) == 0:
        raise InvalidInputError("There are no rows to score.", [])
    if len(records) > loaded.max_rows:
        raise InvalidInputError(f"At most {loaded.max_rows} rows per request; send the rest in another request.", [])
    if entity_ids is not None and len(entity_ids) != len(records):
        raise InvalidInputError(f"entity_ids has {len(entity_ids)} values for {len(records)} rows.", [])
    if entity_ids is not None:
        too_long = [
            RowProblem(
                row=row, field="entity_ids", code="too_long", message=f"longer than {MAX_ENTITY_ID_LENGTH} characters"
            )
            for row, entity in enumerate(entity_ids)
            if len(str(entity)) > MAX_ENTITY_ID_LENGTH
        ]
        if too_long:
            raise InvalidInputError("Some entity ids are too long.", too_long)
    if len(records) <= FAST_VALIDATION_ROWS:
        validation = validate_records(records, loaded.fields, unknown_categories=loaded.unknown_categories)
    else:
        validation = validate_rows(records_frame(records), loaded.fields, unknown_categories=loaded.unknown_categories)
    if not validation.ok:
        recorder.record(
            version_id=loaded.version_id, rows=[], latency_ms=(time.perf_counter() - started) * 1e3, error=True
        )
        raise InvalidInputError(
            f"The input does not match the schema of {loaded.model_name} v{loaded.number}.", validation.problems
        )
    inputs = validation.columns
    try:
        predictions, probabilities = loaded.score(inputs)
    except Exception as exc:  # e.g. an unseen category passed on by the model's policy
        recorder.record(
            version_id=loaded.version_id, rows=[], latency_ms=(time.perf_counter() - started) * 1e3, error=True
        )
        raise InvalidInputError(f"The model could not score these rows: {type(exc).__name__}: {exc}", []) from exc
    latency_ms = (time.perf_counter() - started) * 1e3
    outputs = _plain(predictions)
    probability_rows = [_plain(row) for row in probabilities] if probabilities is not None else None
    now = timezone.now()
    names = list(inputs)
    logged = [
        {
            name: None if isinstance(value, float) and value != value else value
            for name, value in zip(names, values, strict=True)
        }
        for values in zip(*(json_column(spec, inputs[spec.name]) for spec in loaded.fields), strict=True)
    ]
    rows = [
        Prediction(
            id=uuid7(now),  # the id carries `at`: the archive's files of that hour hold the row
            at=now,
            model_id=loaded.model_id,
            version_id=loaded.version_id,
            consumer=consumer,
            user=user if getattr(user, "pk", None) else None,
            entity_id=str(entity_ids[i]) if entity_ids is not None else "",
            input=record if loaded.input_logging == ScoringPolicy.InputLogging.FULL else None,
            input_sha256=input_digest(record),
            output=outputs[i],
            probabilities=probability_rows[i] if probability_rows is not None else None,
            latency_ms=latency_ms,
            engine=loaded.engine,
        )
        for i, record in enumerate(logged)
    ]
    recorder.record(version_id=loaded.version_id, rows=rows, latency_ms=latency_ms)
    return Scored(
        model=loaded.model_name,
        version=loaded.number,
        engine=loaded.engine,
        predictions=outputs,
        probabilities=probability_rows,
        prediction_ids=[str(row.id) for row in rows],
    )


@dataclass
class Reproduction:
    prediction: Prediction
    output: Any
    probabilities: list[float] | None
    identical: bool
    engine: str


def reproduce(*, prediction: Prediction) -> Reproduction:
    """Re-run a logged input on the logged version, loaded from its verified artifact."""
    if prediction.input is None:
        raise ValueError(
            "Only the sha256 of this prediction's input was kept (the model's input logging setting), "
            "so it cannot be re-run."
        )
    # Loaded afresh (not from the serving cache) with the engine that made the prediction: the compiled
    # graph and the native model agree within 1e-6, not to the last bit. Rows logged before engines were
    # recorded get the engine that serves now.
    loaded = runtime.load(prediction.version, engine=prediction.engine or None)
    frame = pd.DataFrame([prediction.input])
    validation = validate_rows(frame, loaded.fields, unknown_categories="pass")
    labels, proba = loaded.score(validation.columns)
    output = _plain(labels)[0]
    probabilities = _plain(proba[0]) if proba is not None else None
    identical = output == prediction.output and (
        prediction.probabilities is None
        or probabilities is None
        or np.allclose(probabilities, prediction.probabilities, rtol=0, atol=1e-9)
    )
    return Reproduction(
        prediction=prediction, output=output, probabilities=probabilities, identical=identical, engine=loaded.engine
    )
