"""Scores written by COPY: values survive the text format, and a score already stored is kept, not duplicated."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.utils import timezone

from registry.models import ModelVersion
from scoring.batch import runs, snapshots, writes
from scoring.models import BatchScore
from tests.scoring.batch_support import customer_table, nightly_job, use_input_dir, write_input


@pytest.fixture
def run(production: ModelVersion, author: Any, settings: Any, tmp_path: Path) -> Any:
    write_input(use_input_dir(settings, tmp_path), customer_table(10), "nightly.csv")
    return runs.run_start(job=nightly_job(production.model, author, input_path="nightly.csv"), actor=author)


def _scores(run: Any, version: ModelVersion, entity_ids: list[str], labels: Any, probabilities: Any = None) -> Any:
    return writes.ChunkScores(
        run_id=run.pk,
        model_id=version.model_id,
        version_id=version.pk,
        scored_at=timezone.now(),
        entity_ids=pa.array(entity_ids, type=pa.string()),
        labels=np.asarray(labels),
        probabilities=None if probabilities is None else np.array(probabilities, dtype=float),
    )


def test_it_writes_awkward_values_and_skips_scores_already_stored(run: Any, production: ModelVersion) -> None:
    entities = ["tab\there", 'quote"d, comma', "new\nline", "back\\slash", "ünï", "\\N", ""]
    labels = ["yes\\no\n", 'say "hi"', "plain", "", "x", "null", "y"]
    probabilities = [0.25, np.nan, 1e-300, 1 / 3, 0.0, 1.0, 5e-324]
    writes.scores_write(_scores(run, production, entities[:1], labels[:1], probabilities[:1]))
    writes.scores_write(_scores(run, production, entities, labels, probabilities))  # the first one again: kept once
    writes.scores_write(_scores(run, production, ["i1", "i2"], np.array([1, 0])))
    writes.scores_write(_scores(run, production, ["b1", "b2"], np.array([True, False])))
    writes.scores_write(_scores(run, production, ["f1", "f2", "f3"], np.array([0.1, np.nan, -np.inf])))
    # float32 (an ONNX regressor) is stored as the real-time API answers it: the float64 of the same value.
    writes.scores_write(_scores(run, production, ["g1"], np.array([0.1], dtype=np.float32)))

    stored = {score.entity_id: (score.prediction, score.probability) for score in BatchScore.objects.filter(run=run)}
    expected_probabilities = [None if np.isnan(p) else p for p in probabilities]
    assert stored == {
        **{e: (label, p) for e, label, p in zip(entities, labels, expected_probabilities, strict=True)},
        "i1": (1, None),
        "i2": (0, None),
        "b1": (True, None),
        "b2": (False, None),
        "f1": (0.1, None),
        "f2": (None, None),
        "f3": (None, None),
        "g1": (float(np.float32(0.1)), None),
    }
    # PostgreSQL stamps the rows with its own clock (the column's default), other databases with the chunk's.
    times = set(BatchScore.objects.filter(run=run).values_list("scored_at", flat=True))
    assert all(abs(at - timezone.now()) < timedelta(minutes=5) for at in times)


@pytest.mark.parametrize("kind", ["arrow", "parquet"])
def test_snapshots_are_read_by_row_range_from_arrow_files_and_older_parquet_ones(kind: str, tmp_path: Path) -> None:
    table = pa.table({"a": list(range(10)), "b": [f"e{i}" for i in range(10)]})
    path = tmp_path / f"snapshot.{kind}"
    if kind == "arrow":
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=3)
    else:
        pq.write_table(table, path, row_group_size=4)
    snapshot: Any = SimpleNamespace(path=str(path))

    assert snapshots.read_rows(snapshot, 2, 8, ["b", "not a column"]).to_pydict() == {
        "b": [f"e{i}" for i in range(2, 8)]
    }
    assert snapshots.read_rows(snapshot, 0, 10).to_pydict() == table.to_pydict()
    assert snapshots.read_rows(snapshot, 9, 10, ["a"]).to_pydict() == {"a": [9]}
    assert snapshots.read_rows(snapshot, 10, 10, ["a"]).num_rows == 0
