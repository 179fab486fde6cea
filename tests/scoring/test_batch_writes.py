"""Scores written by COPY: values survive the text format, and a score already stored is kept, not duplicated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from registry.models import ModelVersion
from scoring import batch
from scoring.models import BatchJob, BatchScore
from tests.scoring.batch_support import customer_table, use_input_dir, write_input


@pytest.fixture
def run(production: ModelVersion, author: Any, settings: Any, tmp_path: Path) -> Any:
    write_input(use_input_dir(settings, tmp_path), customer_table(10), "nightly.csv")
    job: BatchJob = batch.job_create(
        actor=author,
        model=production.model,
        name="nightly",
        input_kind="path",
        input_path="nightly.csv",
        entity_column="customer_id",
    )
    return batch.run_start(job=job, actor=author)


def test_it_writes_awkward_values_and_skips_scores_already_stored(
    run: Any, production: ModelVersion, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    now = timezone.now()
    rows: list[tuple[int, int, int, str, Any, float | None, Any]] = [
        (run.pk, production.model_id, production.pk, "tab\there", "yes\\no\n", 0.25, now),
        (run.pk, production.model_id, production.pk, "back\\slash", 1, None, now),
        (run.pk, production.model_id, production.pk, "plain", True, 1e-300, now),
    ]
    batch._write_scores(rows[:1])
    batch._write_scores(rows)  # the first score again: kept once

    stored = {
        score.entity_id: (score.prediction, score.probability, score.scored_at)
        for score in BatchScore.objects.filter(run=run)
    }
    assert stored == {entity: (prediction, probability, now) for _, _, _, entity, prediction, probability, _ in rows}
