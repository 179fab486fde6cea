"""Where a run's scores go: the BatchScore table (COPY on PostgreSQL, batched INSERTs elsewhere), and the
Parquet file a job may ask for once the run has succeeded."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from django.db import IntegrityError, connection, transaction
from django.db.models import JSONField, Value

from scoring.batch.sources import arrow_table
from scoring.models import BatchRun, BatchScore

WRITE_BATCH_SIZE = 5000


def _plain(values: np.ndarray) -> list[Any]:
    return [None if isinstance(value, float) and not math.isfinite(value) else value for value in values.tolist()]


@dataclass(frozen=True)
class ChunkScores:
    """A chunk's scores column by column; its rows share their run, model, version and time.

    On PostgreSQL the time is the database's own (the column's default), not `scored_at`.
    """

    run_id: int
    model_id: int
    version_id: int
    scored_at: datetime
    entity_ids: pa.Array  # text
    labels: np.ndarray
    probabilities: np.ndarray | None  # of the positive class (binary classifiers); NaN: none

    def __len__(self) -> int:
        return len(self.entity_ids)


def _prediction_json(labels: np.ndarray) -> np.ndarray:
    """Each label as JSON text, encoded once per distinct label; NaN and infinities as null."""
    codes, uniques = pd.factorize(labels)  # -1 for NaN
    encoded = [json.dumps(value) for value in _plain(np.asarray(uniques))]
    return np.array([*encoded, "null"], dtype=object)[codes]


def _copy_csv(scores: ChunkScores) -> bytes:
    """The scores as COPY's CSV, written by Arrow: building the text in Python was half of a chunk's own time."""
    rows = len(scores)
    probabilities = scores.probabilities
    probability = (
        pa.nulls(rows, pa.float64())
        if probabilities is None
        else pa.array(probabilities, type=pa.float64(), mask=~np.isfinite(probabilities))
    )
    table = pa.table(
        {
            "run_id": pa.array(np.full(rows, scores.run_id, dtype=np.int64)),
            "model_id": pa.array(np.full(rows, scores.model_id, dtype=np.int64)),
            "version_id": pa.array(np.full(rows, scores.version_id, dtype=np.int64)),
            "entity_id": scores.entity_ids,
            "prediction": pa.array(_prediction_json(scores.labels), type=pa.string()),
            "probability": probability,
        }
    )
    sink = pa.BufferOutputStream()
    # Strings are quoted and nulls left empty: COPY's CSV reads the first as text and the second as NULL.
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False))
    return bytes(sink.getvalue())


# scored_at is left to the column's default, now(): parsing a timestamp per row cost PostgreSQL 1.8 µs.
_SCORE_COLUMNS = "run_id, model_id, version_id, entity_id, prediction, probability"


def scores_write(scores: ChunkScores) -> None:
    """Insert scores, ignoring any (run, entity) already there; COPY on PostgreSQL, batched INSERTs elsewhere."""
    if not len(scores):
        return
    if connection.vendor == "postgresql":
        table = BatchScore._meta.db_table
        data = _copy_csv(scores)
        try:
            # The chunk's claim already keeps other deliveries out, so a conflict is not expected: COPY
            # straight into the table, and only on a conflict go through a temporary table that skips it.
            with (
                transaction.atomic(),
                connection.wrap_database_errors,
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY {table} ({_SCORE_COLUMNS}) FROM STDIN WITH (FORMAT csv)") as copy,
            ):
                copy.write(data)
            return
        except IntegrityError:
            pass
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE batch_score_load (run_id bigint, model_id bigint, version_id bigint, "
                "entity_id varchar(200), prediction jsonb, probability double precision) "
                "ON COMMIT DROP"
            )
            # Django's cursor wraps psycopg's; COPY is on psycopg's own cursor.
            with cursor.cursor.copy(f"COPY batch_score_load ({_SCORE_COLUMNS}) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(data)
            cursor.execute(
                f"INSERT INTO {table} ({_SCORE_COLUMNS}) SELECT {_SCORE_COLUMNS} FROM batch_score_load "  # noqa: S608
                "ON CONFLICT DO NOTHING"
            )
            cursor.execute("DROP TABLE batch_score_load")
        return
    # A missing prediction (NaN) is JSON null, as COPY stores it; a bare None would be SQL NULL, which the
    # column refuses, and ignore_conflicts would drop the row silently.
    json_null = Value(None, JSONField())
    predictions = [json_null if value is None else value for value in _plain(scores.labels)]
    probabilities = [None] * len(scores) if scores.probabilities is None else _plain(scores.probabilities)
    BatchScore.objects.bulk_create(
        (
            BatchScore(
                run_id=scores.run_id,
                model_id=scores.model_id,
                version_id=scores.version_id,
                entity_id=entity_id,
                prediction=prediction,
                probability=probability,
                scored_at=scores.scored_at,
            )
            for entity_id, prediction, probability in zip(
                scores.entity_ids.to_pylist(), predictions, probabilities, strict=True
            )
        ),
        ignore_conflicts=True,
        batch_size=WRITE_BATCH_SIZE,
    )


def output_write(run: BatchRun, directory: Path) -> Path:
    """The run's scores as Parquet: entity_id, prediction, probability, version, scored_at."""
    path = directory / f"run-{run.pk}-scores.parquet"
    version_number = run.version.number if run.version else None
    writer: pq.ParquetWriter | None = None
    rows = (
        BatchScore.objects.filter(run=run)
        .order_by("pk")
        .values_list("entity_id", "prediction", "probability", "scored_at")
    )
    batch: list[tuple[Any, ...]] = []
    try:
        for row in rows.iterator(chunk_size=WRITE_BATCH_SIZE):
            batch.append(row)
            if len(batch) == WRITE_BATCH_SIZE * 10:
                writer = _write_output_batch(writer, path, batch, version_number)
                batch = []
        if batch or writer is None:
            writer = _write_output_batch(writer, path, batch, version_number)
    finally:
        if writer is not None:
            writer.close()
    return path


def _write_output_batch(
    writer: pq.ParquetWriter | None, path: Path, batch: list[tuple[Any, ...]], version_number: int | None
) -> pq.ParquetWriter:
    frame = pd.DataFrame(batch, columns=["entity_id", "prediction", "probability", "scored_at"])
    frame["probability"] = frame["probability"].astype(float)
    frame.insert(3, "version", version_number)
    if writer is None:
        table = arrow_table(frame)
        writer = pq.ParquetWriter(path, table.schema)
    else:
        table = pa.Table.from_pandas(frame, schema=writer.schema, preserve_index=False)
    writer.write_table(table)
    return writer
