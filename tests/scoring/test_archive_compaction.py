"""Compaction of the prediction log into the archive: complete hours only, one typed file per version,
idempotent, safe to kill at any point, late rows kept, hot rows and files deleted by their retention."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import F, QuerySet
from django.utils import timezone

from registry.models import Consumer, ModelVersion
from scoring.archive import compaction, format, lifecycle, partitions, store
from scoring.ids import first_uuid7, uuid7, uuid7_time
from scoring.models import ArchivedHour, ArchiveState, Prediction
from scoring.tasks import archive_predictions
from tests.scoring.archive_support import archived_ids, archived_rows, later, score


class KilledError(BaseException):
    """A worker killed mid-task: nothing of ours catches it, as nothing catches SIGKILL."""


@pytest.fixture
def scored(production: ModelVersion, consumer_token: tuple[Consumer, str]) -> list[str]:
    return score(consumer_token[1], 20)


def test_it_gives_predictions_time_ordered_ids_that_tell_their_time(scored: list[str]) -> None:
    for prediction in Prediction.objects.all():
        assert prediction.id.version == 7
        made_at = uuid7_time(prediction.id)
        assert made_at is not None and abs(made_at - prediction.at) < timedelta(milliseconds=1)
        # The range of a millisecond's ids, as reports split a window's join by id; text sorts as the values.
        first, after = first_uuid7(made_at), first_uuid7(made_at + timedelta(milliseconds=1))
        assert first <= prediction.id < after and str(first) <= str(prediction.id) < str(after)


def test_it_archives_only_complete_hours(scored: list[str]) -> None:
    assert compaction.compact().hours == 0  # the hour of now is still receiving rows
    assert not ArchivedHour.objects.exists()
    # Complete only a grace after its end: the recorder may still hold rows of it.
    hour_end = lifecycle.hour_of(Prediction.objects.first().at) + timedelta(hours=1)  # type: ignore[union-attr]
    assert compaction.compact(now=hour_end + timedelta(seconds=30)).hours == 0
    summary = compaction.compact(now=hour_end + timedelta(seconds=2 * settings_flush() + 61))
    assert (summary.hours, summary.rows, summary.error) == (1, 20, "")


def settings_flush() -> float:
    return float(django_settings.MF_PREDICTION_LOG_FLUSH_SECONDS)


def test_it_writes_one_typed_file_per_version_with_every_row(
    scored: list[str], churn_model: Any, author: Any, register: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = register(churn_model, author)
    moved = list(Prediction.objects.order_by("id").values_list("id", flat=True)[:5])
    Prediction.objects.filter(pk__in=moved).update(version=second)
    monkeypatch.setattr(lifecycle, "ROWS_PER_TABLE", 4)  # an hour too big for one table: written piece by piece

    summary = compaction.compact(now=later(hours=2))

    entry = ArchivedHour.objects.get()
    assert (summary.hours, summary.rows, entry.rows, entry.kind) == (1, 20, 20, "predictions")
    assert [(file["version"], file["rows"]) for file in entry.files] == [(1, 15), (2, 5)]
    assert entry.bytes == sum(file["bytes"] for file in entry.files) > 0
    assert entry.files[0]["path"] == store.hour_path("predictions", churn_model.pk, entry.hour, 1)
    table = store.read(entry.files[0]["path"])
    filesystem, root = store.filesystem()
    assert pq.ParquetFile(f"{root}/{entry.files[0]['path']}", filesystem=filesystem).num_row_groups == 4
    assert table.schema.field("tenure").type == pa.int64()
    assert table.schema.field("charges").type == pa.float64()
    assert table.schema.field("contract").type == pa.string()
    assert table.schema.field(format.AT).type == format.TIMESTAMP
    by_id = {row[format.ID]: row for row in archived_rows()}
    assert sorted(by_id) == sorted(scored)
    for prediction in Prediction.objects.all():
        row = by_id[str(prediction.id)]
        assert row[format.AT] == prediction.at
        assert row[format.VERSION] == prediction.version.number
        assert row[format.ENTITY] == prediction.entity_id
        assert row[format.CONSUMER_ID] == prediction.consumer_id
        assert {name: row[name] for name in ("tenure", "charges", "contract")} == prediction.input
        assert row[format.PREDICTION] == format.label(prediction.output)
        assert prediction.probabilities is not None
        assert row[format.SCORE] == pytest.approx(prediction.probabilities[1])


def test_it_archives_each_hour_that_has_rows_and_finds_rows_of_skipped_hours_later(scored: list[str]) -> None:
    ids = sorted(scored)
    now = lifecycle.hour_of(Prediction.objects.get(pk=ids[0]).at)
    Prediction.objects.filter(pk__in=ids[:5]).update(at=F("at") - timedelta(days=2))
    Prediction.objects.filter(pk__in=ids[5:10]).update(at=F("at") - timedelta(hours=5))

    assert compaction.compact(now=later(hours=2)).hours == 3
    assert sorted(ArchivedHour.objects.values_list("hour", flat=True)) == [
        now - timedelta(days=2),
        now - timedelta(hours=5),
        now,
    ]
    # A row that reached an hour with no entry (empty when the hours around it were archived).
    Prediction.objects.filter(pk=ids[10]).update(at=F("at") - timedelta(days=1))
    assert compaction.compact(now=later(hours=3)).hours == 2
    assert ArchivedHour.objects.filter(hour=now - timedelta(days=1), rows=1).exists()
    assert ArchivedHour.objects.get(hour=now).rows == 9  # a recent hour, counted again: the row left it
    assert sorted(archived_ids()) == ids


def test_a_second_run_archives_nothing_again(scored: list[str]) -> None:
    compaction.compact(now=later(hours=2))
    written = ArchivedHour.objects.get()

    again = compaction.compact(now=later(hours=3))

    assert again.hours == 0
    assert ArchivedHour.objects.get().archived_at == written.archived_at
    assert sorted(archived_ids()) == sorted(scored)


def test_a_worker_killed_after_writing_files_but_before_listing_them_loses_and_doubles_nothing(
    scored: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write = store.write_tables

    def write_then_die(*args: Any, **kwargs: Any) -> tuple[int, int]:
        write(*args, **kwargs)
        raise KilledError

    with monkeypatch.context() as patch:
        patch.setattr(store, "write_tables", write_then_die)
        with pytest.raises(KilledError):
            compaction.archive_run(now=later(days=15))
    assert not ArchivedHour.objects.exists()
    assert Prediction.objects.count() == 20  # files but no listing: nothing deleted

    summary = compaction.archive_run(now=later(days=15))

    assert (summary.hours, summary.pruned_rows) == (1, 20)
    assert sorted(archived_ids()) == sorted(scored)  # each row exactly once: the same paths were written again
    assert not Prediction.objects.exists()


def test_a_worker_killed_after_listing_or_while_pruning_loses_nothing(
    scored: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    compaction.compact(now=later(hours=2))  # killed here: listed, nothing pruned
    raw_delete = QuerySet._raw_delete

    def delete_then_die(self: QuerySet[Any], using: str) -> int:
        raw_delete(self, using)
        raise KilledError

    # Row by row on both databases: PostgreSQL would otherwise drop the day's partition whole.
    monkeypatch.setattr(partitions, "drop_partitions", lambda **_: [])
    with monkeypatch.context() as patch:
        patch.setattr(QuerySet, "_raw_delete", delete_then_die)
        with pytest.raises(KilledError):
            compaction.archive_run(now=later(days=15))
    assert Prediction.objects.count() == 20  # the delete and the pruned mark are one transaction
    assert ArchivedHour.objects.get().pruned_at is None

    summary = compaction.archive_run(now=later(days=15))

    assert (summary.hours, summary.pruned_rows) == (0, 20)
    assert sorted(archived_ids()) == sorted(scored)
    assert not Prediction.objects.exists()
    assert ArchivedHour.objects.get().pruned_at is not None


def test_a_lease_left_by_a_killed_worker_is_taken_over_and_a_live_one_is_not(scored: list[str]) -> None:
    ArchiveState.objects.create(kind="predictions", running_since=timezone.now())
    assert compaction.archive_run(now=later(hours=2)).skipped
    assert not ArchivedHour.objects.exists()

    ArchiveState.objects.update(running_since=timezone.now() - timedelta(seconds=lifecycle.LEASE_SECONDS + 1))
    summary = compaction.archive_run(now=later(hours=2))

    assert (summary.skipped, summary.hours) == (False, 1)
    assert ArchiveState.objects.get().running_since is None  # released


def _late_row(hour_of: Prediction) -> Prediction:
    """A row of an archived hour that reached the table only now (held in a recorder through an outage)."""
    copy = Prediction.objects.get(pk=hour_of.pk)
    copy.id = uuid7(copy.at)
    copy.entity_id = "late"
    copy.save(force_insert=True)
    return copy


def test_late_rows_of_an_archived_hour_are_archived_again_before_pruning(scored: list[str]) -> None:
    compaction.compact(now=later(hours=2))
    late = _late_row(Prediction.objects.first())  # type: ignore[arg-type]

    pruned = compaction.prune_hot(now=later(days=15))

    assert pruned == 21
    assert sorted(archived_ids()) == sorted([*scored, str(late.id)])
    assert ArchivedHour.objects.get().rows == 21
    assert not Prediction.objects.exists()


def test_late_rows_of_a_recent_hour_reach_the_files_at_the_next_compaction(scored: list[str]) -> None:
    compaction.compact(now=later(hours=2))
    late = _late_row(Prediction.objects.first())  # type: ignore[arg-type]

    summary = compaction.compact(now=later(hours=2, minutes=15))

    assert (summary.hours, summary.rows) == (1, 21)
    assert Counter(archived_ids()) == Counter([*scored, str(late.id)])


def test_hot_rows_stay_for_the_hot_days_and_only_once_archived(scored: list[str], settings: Any) -> None:
    settings.MF_PREDICTION_HOT_DAYS = 14
    assert compaction.prune_hot(now=later(days=30)) == 0  # not archived: kept whatever their age
    compaction.compact(now=later(hours=2))

    assert compaction.prune_hot(now=later(days=13, hours=22)) == 0
    assert Prediction.objects.count() == 20
    assert compaction.prune_hot(now=later(days=14, hours=2)) == 20
    assert not Prediction.objects.exists()
    assert compaction.prune_hot(now=later(days=15)) == 0  # a pruned hour is not pruned (nor archived) again
    assert sorted(archived_ids()) == sorted(scored)


def test_archive_files_are_deleted_after_the_archive_days(scored: list[str], settings: Any) -> None:
    settings.MF_PREDICTION_ARCHIVE_DAYS = 30
    compaction.compact(now=later(hours=2))
    path = ArchivedHour.objects.get().files[0]["path"]
    assert compaction.prune_archive(now=later(days=31)) == 0  # its rows are still hot: kept

    compaction.archive_run(now=later(days=29))
    assert ArchivedHour.objects.get().pruned_at is not None
    assert compaction.prune_archive(now=later(days=29)) == 0

    assert compaction.archive_run(now=later(days=31)).expired_hours == 1
    assert not ArchivedHour.objects.exists()
    filesystem, root = store.filesystem()
    assert filesystem.get_file_info(f"{root}/{path}").type.name == "NotFound"


def test_the_archive_is_kept_forever_by_default(scored: list[str], settings: Any) -> None:
    assert settings.MF_PREDICTION_ARCHIVE_DAYS == 0
    compaction.archive_run(now=later(days=15))
    assert compaction.prune_archive(now=later(days=3650)) == 0
    assert sorted(archived_ids()) == sorted(scored)


def test_beat_runs_the_archive_task(scored: list[str], settings: Any) -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE["archive-predictions"]
    assert schedule["task"] == "scoring.tasks.archive_predictions"
    assert 5 in schedule["schedule"].minute
    archive_predictions.apply()  # the hour of now is not complete: nothing yet, and no error
    assert not ArchivedHour.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_claim_the_lease_once() -> None:
    ArchiveState.objects.create(kind="predictions")
    barrier = threading.Barrier(2)
    claims: list[bool] = []

    def run() -> None:
        try:
            barrier.wait()
            with lifecycle.lease("predictions") as claimed:
                claims.append(claimed)
                barrier.wait()  # both inside at once: the loser must already have been refused
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(claims) == [False, True]
    assert ArchiveState.objects.get().running_since is None
