"""Actuals are archived like predictions: by the hour they were received, then pruned from the hot table."""

from __future__ import annotations

from typing import Any

from monitoring import archiving
from monitoring.models import Actual
from monitoring.tasks import archive_actuals
from scoring.archive import compaction, format
from scoring.models import ArchivedHour, Prediction
from tests.scoring.archive_support import archived_ids, archived_rows, later


def test_actuals_are_archived_by_hour_of_receipt_and_pruned(traffic: list[str], churn_model: Any) -> None:
    assert archiving.compact_actuals().hours == 0  # this hour is still receiving actuals

    summary = archiving.compact_actuals(now=later(hours=2))

    assert (summary.hours, summary.rows) == (1, 300)
    entry = ArchivedHour.objects.get(kind="actuals")
    assert (entry.model_id, entry.rows, entry.files[0]["version"]) == (churn_model.pk, 300, None)
    rows = {row[format.ID]: row for row in archived_rows("actuals")}
    assert sorted(rows) == sorted(traffic)
    for index, prediction_id in enumerate(traffic):
        assert rows[prediction_id][format.ACTUAL_LABEL] == str(index % 2)
        assert rows[prediction_id][format.ACTUAL_NUMBER] == index % 2
    actual = Actual.objects.get(prediction_id=traffic[0])
    assert rows[traffic[0]][format.RECEIVED_AT] == actual.received_at
    assert rows[traffic[0]][format.ACTUAL_ID] == actual.pk

    assert archiving.compact_actuals(now=later(hours=3)).hours == 0  # idempotent
    assert archiving.prune_hot_actuals(now=later(days=13)) == 0
    pruned = archiving.archive_actuals_run(now=later(days=15))

    assert pruned.pruned_rows == 300
    assert not Actual.objects.exists()
    # The predictions go their own way, and both archives keep every row once.
    assert compaction.archive_run(now=later(days=15)).pruned_rows == 300
    assert not Prediction.objects.exists()
    assert sorted(archived_ids("actuals")) == sorted(archived_ids("predictions")) == sorted(traffic)


def test_an_hours_actuals_are_written_in_prediction_id_order(traffic: list[str], churn_model: Any) -> None:
    # Received in the reverse order of their predictions, and one by entity id: reports read one range
    # of prediction ids at a time, and skip the row groups outside it only if the file is in id order.
    Actual.objects.all().delete()
    Actual.objects.bulk_create(
        [Actual(model=churn_model, prediction_id=pid, value=1) for pid in reversed(traffic)]
        + [Actual(model=churn_model, entity_id="c7", value=0)]
    )

    archiving.compact_actuals(now=later(hours=2))

    ids = archived_ids("actuals")
    assert ids[:-1] == sorted(traffic) and ids[-1] is None


def test_beat_runs_the_actuals_archive(settings: Any, db: None) -> None:
    assert settings.CELERY_BEAT_SCHEDULE["archive-actuals"]["task"] == "monitoring.tasks.archive_actuals"
    archive_actuals.apply()
    assert not ArchivedHour.objects.exists()
