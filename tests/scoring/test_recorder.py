"""The prediction log buffer: rows written by the flush, exactly once, and kept while the database refuses them."""

from __future__ import annotations

import uuid
from typing import Any
from unittest import mock

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from registry.models import ModelVersion
from scoring.models import Prediction, ScoringStats
from scoring.recorder import FLUSH_SLICE_ROWS, Recorder


def _row(version: ModelVersion, **values: Any) -> Prediction:
    return Prediction(
        id=uuid.uuid4(),
        at=timezone.now(),
        model_id=version.model_id,
        version_id=version.pk,
        entity_id=values.get("entity_id", ""),
        input={"tenure": 3, "plan": "basic", "note": 'tab\there "quoted" ü'},
        input_sha256="0" * 64,
        output=values.get("output", 1),
        probabilities=[0.25, 0.75],
        latency_ms=1.5,
    )


@pytest.fixture
def buffered(settings: Any) -> Recorder:
    settings.MF_PREDICTION_LOG = "buffered"
    recorder = Recorder()
    recorder._ensure_thread = lambda: None  # type: ignore[method-assign]  # the test flushes by hand
    return recorder


def test_a_flush_writes_every_buffered_row_and_the_counters(buffered: Recorder, production: ModelVersion) -> None:
    rows = [_row(production, entity_id=f"c{i}", output=i % 2) for i in range(FLUSH_SLICE_ROWS * 3 + 1)]
    buffered.record(version_id=production.pk, rows=rows[:5], latency_ms=3.0)
    buffered.record(version_id=production.pk, rows=rows[5:], latency_ms=40.0)
    assert Prediction.objects.count() == 0 and buffered.pending() == len(rows)

    assert buffered.flush() == len(rows)

    stored = {p.pk: p for p in Prediction.objects.all()}
    assert set(stored) == {row.pk for row in rows}
    first = stored[rows[0].pk]
    assert (first.input, first.output, first.probabilities, first.at) == (
        rows[0].input,
        rows[0].output,
        rows[0].probabilities,
        rows[0].at,
    )
    stats = ScoringStats.objects.get(version=production)
    assert (stats.requests, stats.rows) == (2, len(rows))
    assert buffered.pending() == 0 and buffered.flush() == 0


def test_a_retried_flush_skips_rows_already_written(buffered: Recorder, production: ModelVersion) -> None:
    rows = [_row(production) for _ in range(3)]
    buffered.record(version_id=production.pk, rows=rows, latency_ms=2.0)
    buffered.flush()
    # The commit's acknowledgement was lost: the same rows come round again.
    buffered.record(version_id=production.pk, rows=rows, latency_ms=2.0)
    assert buffered.flush() == 3
    assert Prediction.objects.count() == 3


def test_rows_stay_buffered_while_the_database_refuses_them(buffered: Recorder, production: ModelVersion) -> None:
    rows = [_row(production) for _ in range(4)]
    buffered.record(version_id=production.pk, rows=rows, latency_ms=2.0)
    refused = DatabaseError("server closed the connection")
    with mock.patch("scoring.recorder._insert_sql", side_effect=refused), pytest.raises(DatabaseError):
        buffered.flush()
    assert buffered.pending() == 4 and Prediction.objects.count() == 0

    assert buffered.flush() == 4
    assert Prediction.objects.count() == 4
    assert ScoringStats.objects.get(version=production).requests == 1


def test_a_row_the_database_refuses_is_dropped_and_logged_and_the_others_written(
    buffered: Recorder, production: ModelVersion, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [_row(production, entity_id=f"c{i}") for i in range(FLUSH_SLICE_ROWS + 7)]
    broken = rows[300]
    broken.at = None  # type: ignore[assignment]  # NOT NULL: refused again in every round, were it kept
    buffered.record(version_id=production.pk, rows=rows, latency_ms=2.0)

    written = buffered.flush()

    assert set(Prediction.objects.values_list("pk", flat=True)) == {row.pk for row in rows} - {broken.pk}
    assert buffered.pending() == 0
    assert ScoringStats.objects.get(version=production).rows == len(rows)
    if connection.vendor == "postgresql":  # SQLite's INSERT OR IGNORE skips such a row without a word
        assert written == len(rows) - 1
        (message,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert "refused a row, which is dropped" in message and "c300" in message


def test_an_output_the_model_could_not_give_is_logged_as_json_null(
    buffered: Recorder, production: ModelVersion
) -> None:
    row = _row(production, output=None)  # the model answered NaN, which the API answered as null
    buffered.record(version_id=production.pk, rows=[row], latency_ms=2.0)
    assert buffered.flush() == 1
    assert Prediction.objects.get(pk=row.pk).output is None
