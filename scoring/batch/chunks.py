"""Scoring one chunk of a run exactly once: its scores, its rejects, its "done" mark and the run's counters
are committed together, by whichever delivery of the chunk's task claims it first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from registry.schema import validate_rows
from scoring.batch.runs import run_fail
from scoring.batch.snapshots import ENTITY_ID_COLUMN, FIRST_ROW_COLUMN, frame_of, read_rows
from scoring.batch.writes import WRITE_BATCH_SIZE, ChunkScores, scores_write
from scoring.models import MAX_ENTITY_ID_LENGTH, BatchChunk, BatchReject, BatchRun
from scoring.runtime import model_cache


@dataclass(frozen=True)
class ChunkOutcome:
    rows_scored: int
    rows_rejected: int


def chunk_score(*, run_id: int, chunk_index: int) -> ChunkOutcome | None:
    """Score one chunk and commit it with its rejects and the run's counters; None if there was nothing to do.

    Scoring happens outside the transaction; the commit claims the chunk with a compare-and-set, so
    of two deliveries of the same chunk exactly one writes.
    """
    chunk = BatchChunk.objects.select_related("run__job").get(run_id=run_id, index=chunk_index)
    run = chunk.run
    if chunk.status == BatchChunk.Status.DONE or run.status != BatchRun.Status.RUNNING:
        return None  # done by an earlier delivery, or the run failed: a resume requeues what is left
    BatchChunk.objects.filter(pk=chunk.pk).update(attempts=F("attempts") + 1)
    assert run.version_id is not None  # runs are created with their version
    loaded = model_cache.loaded_version(run.version_id)
    job = run.job
    table = read_rows(
        run.snapshot,
        chunk.first_row,
        chunk.last_row,
        [field.name for field in loaded.fields] + [job.entity_column, ENTITY_ID_COLUMN, FIRST_ROW_COLUMN],
    )
    entity = table[ENTITY_ID_COLUMN].combine_chunks()
    first_rows = table[FIRST_ROW_COLUMN].to_numpy()
    frame = frame_of(table.drop_columns([ENTITY_ID_COLUMN, FIRST_ROW_COLUMN]))
    validation = validate_rows(
        frame, loaded.fields, unknown_categories=loaded.unknown_categories, extra_columns=[job.entity_column]
    )
    missing_entity = entity.is_null().to_numpy(zero_copy_only=False)
    too_long = pc.fill_null(pc.utf8_length(entity), 0).to_numpy() > MAX_ENTITY_ID_LENGTH
    repeated = first_rows >= 0
    bad = validation.bad_rows | missing_entity | too_long | repeated
    good = ~bad

    now = timezone.now()
    labels: np.ndarray = np.empty(0, dtype=object)
    positive: np.ndarray | None = None
    if good.any():
        inputs = validation.frame if good.all() else validation.frame[good]
        labels, class_probabilities = loaded.score(inputs)
        labels = np.asarray(labels)
        # Only binary classifiers have one "positive class" probability.
        if class_probabilities is not None and class_probabilities.ndim == 2 and class_probabilities.shape[1] == 2:
            positive = np.asarray(class_probabilities[:, 1], dtype=float)
    scores = ChunkScores(
        run_id=run.pk,
        model_id=loaded.model_id,
        version_id=loaded.version_id,
        scored_at=now,
        entity_ids=entity.filter(pa.array(good)),
        labels=labels,
        probabilities=positive,
    )
    reasons = _reasons(validation.problems, np.flatnonzero(bad))
    for row in np.flatnonzero(missing_entity).tolist():
        reasons[row].append(f"{job.entity_column}: the entity id is missing")
    for row in np.flatnonzero(too_long).tolist():
        reasons[row].append(f"{job.entity_column}: the entity id is longer than {MAX_ENTITY_ID_LENGTH} characters")
    for row in np.flatnonzero(repeated).tolist():
        reasons[row].append(
            f"{job.entity_column}: {entity[row].as_py()!r} already appears in row {first_rows[row] + 1}"
        )
    rejects = [
        BatchReject(
            run_id=run.pk,
            row_number=int(chunk.first_row + row + 1),
            entity_id=(entity[row].as_py() or "")[:MAX_ENTITY_ID_LENGTH],
            reason="; ".join(reasons[row]) or "rejected",
        )
        for row in reasons
    ]
    with transaction.atomic():
        claimed = (
            BatchChunk.objects.filter(pk=chunk.pk)
            .exclude(status=BatchChunk.Status.DONE)
            .update(
                status=BatchChunk.Status.DONE,
                rows_scored=len(scores),
                rows_rejected=len(rejects),
                error="",
                finished_at=now,
            )
        )
        if not claimed:
            return None  # a concurrent delivery of this chunk committed first
        BatchReject.objects.bulk_create(rejects, ignore_conflicts=True, batch_size=WRITE_BATCH_SIZE)
        scores_write(scores)
        BatchRun.objects.filter(pk=run.pk).update(
            chunks_done=F("chunks_done") + 1,
            rows_scored=F("rows_scored") + len(scores),
            rows_rejected=F("rows_rejected") + len(rejects),
        )
    return ChunkOutcome(rows_scored=len(scores), rows_rejected=len(rejects))


def _reasons(problems: list[Any], bad_rows: np.ndarray) -> dict[int, list[str]]:
    """Why each rejected row was rejected: its own problems after those of the whole table."""
    table_wide = [f"{problem.field}: {problem.message}" for problem in problems if problem.row is None]
    reasons: dict[int, list[str]] = {int(row): list(table_wide) for row in bad_rows}
    for problem in problems:
        if problem.row is not None:
            reasons[problem.row].append(f"{problem.field}: {problem.message}")
    return reasons


def chunk_record_error(*, run_id: int, chunk_index: int, error: str, final: bool) -> None:
    """Note why a chunk attempt failed; on the final attempt, fail the chunk and its run."""
    chunk = BatchChunk.objects.filter(run_id=run_id, index=chunk_index).exclude(status=BatchChunk.Status.DONE)
    if not final:
        chunk.update(error=error[:10_000])
        return
    with transaction.atomic():
        chunk.update(status=BatchChunk.Status.FAILED, error=error[:10_000], finished_at=timezone.now())
        attempts = (
            BatchChunk.objects.filter(run_id=run_id, index=chunk_index).values_list("attempts", flat=True).first()
        )
        run_fail(run_id=run_id, error=f"Chunk {chunk_index} failed after {attempts} attempts: {error}")
