"""PostgreSQL day partitions of the prediction log: made ahead, rows routed to their day, dropped once archived."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from registry.models import ModelVersion, RegisteredModel
from scoring.archive import compaction, partitions
from scoring.models import ArchivedHour, Prediction
from scoring.recorder import Recorder
from tests.factories import RegisteredModelFactory
from tests.scoring.archive_support import archived_ids

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="day partitions exist on PostgreSQL only (set DATABASE_URL=postgres://...); SQLite keeps a plain table",
)
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="what SQLite does instead of partitions")

# Far from the days the migration made partitions for, so every partition these tests see is their own.
DAY = date(2031, 3, 10)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def prediction(version: ModelVersion, when: datetime) -> Prediction:
    return Prediction(
        id=uuid.uuid4(),
        at=when,
        model_id=version.model_id,
        version_id=version.pk,
        input={"tenure": 3},
        input_sha256="0" * 64,
        output=1,
        latency_ms=1.0,
    )


def record(version: ModelVersion, *times: datetime) -> list[Prediction]:
    """Through the recorder, as real-time scoring writes them (MF_PREDICTION_LOG is "sync" in tests)."""
    rows = [prediction(version, when) for when in times]
    Recorder().record(version_id=version.pk, rows=rows, latency_ms=1.0)
    return rows


def partition_of(row: Prediction) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {partitions.TABLE} WHERE id = %s", [row.pk])  # noqa: S608
        (name,) = cursor.fetchone()
    return str(name)


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        (exists,) = cursor.fetchone()
    return bool(exists)


def archive(model: RegisteredModel, *hours: datetime, kind: str = ArchivedHour.Kind.PREDICTIONS) -> None:
    ArchivedHour.objects.bulk_create(ArchivedHour(model=model, kind=kind, hour=hour) for hour in hours)


def committed() -> None:
    """What a commit does to the rows written so far: a table cannot be dropped in the transaction that
    wrote rows whose foreign keys are still to be checked, and each test runs in one transaction."""
    connection.check_constraints()


@pytest.fixture
def version(churn_model: RegisteredModel, author: Any, register: Callable[..., ModelVersion]) -> ModelVersion:
    return register(churn_model, author)


@on_postgresql
def test_it_partitions_the_prediction_table_by_day_with_every_index_and_key(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_partkeydef(%s::regclass), pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " WHERE c.conrelid = %s::regclass AND c.contype = 'p'",
            [partitions.TABLE] * 2,
        )
        assert cursor.fetchall() == [("RANGE (at)", "PRIMARY KEY (id, at)")]
        cursor.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass", [partitions.TABLE]
        )
        indexed = {definition.split(" USING btree ")[1] for (definition,) in cursor.fetchall()}
        cursor.execute(
            "SELECT confrelid::regclass::text FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [partitions.TABLE],
        )
        referenced = {table for (table,) in cursor.fetchall()}
    assert {"(id, at)", "(at)", "(model_id, at)", "(entity_id)", "(version_id)", "(consumer_id)"} <= indexed
    assert referenced == {"registry_registeredmodel", "registry_modelversion", "registry_consumer", "auth_user"}
    assert table_exists(partitions.DEFAULT_PARTITION)


@on_postgresql
def test_rows_land_in_their_day_partition_or_wait_in_the_default_one(version: ModelVersion) -> None:
    assert partitions.ensure_partitions(now=at(DAY, 12), days_ahead=1) == [DAY, DAY + timedelta(days=1)]

    first, late, next_day, unmade = record(
        version, at(DAY, 0), at(DAY, 23, 59), at(DAY + timedelta(days=1), 0), at(DAY + timedelta(days=2), 0)
    )

    assert partition_of(first) == partition_of(late) == "scoring_prediction_p20310310"
    assert partition_of(next_day) == "scoring_prediction_p20310311"
    assert partition_of(unmade) == partitions.DEFAULT_PARTITION


@on_postgresql
def test_ensuring_partitions_is_idempotent_and_moves_rows_waiting_in_the_default_partition(
    version: ModelVersion,
) -> None:
    waiting, other_day = record(version, at(DAY, 9), at(DAY + timedelta(days=5), 9))
    assert partition_of(waiting) == partitions.DEFAULT_PARTITION

    made = partitions.ensure_partitions(now=at(DAY, 15), days_ahead=2)

    assert made == [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    assert partition_of(waiting) == partitions.partition_name(DAY)
    assert partition_of(other_day) == partitions.DEFAULT_PARTITION
    assert partitions.ensure_partitions(now=at(DAY, 15), days_ahead=2) == []
    assert Prediction.objects.get(pk=waiting.pk).at == waiting.at


@on_postgresql
def test_it_drops_only_days_whose_every_hour_is_archived_for_every_model(
    version: ModelVersion, author: Any, register: Callable[..., ModelVersion]
) -> None:
    other = register(RegisteredModelFactory.create(name="fraud", owner=author), author)
    archived_day, partly_archived, empty_day, limit = (DAY + timedelta(days=n) for n in range(4))
    partitions.ensure_partitions(now=at(DAY, 0), days_ahead=3)
    gone = record(version, at(archived_day, 1), at(archived_day, 5, 30)) + record(other, at(archived_day, 7))
    kept = record(version, at(partly_archived, 2)) + record(other, at(partly_archived, 3, 15))
    kept += record(version, at(limit, 4)) + record(version, at(DAY - timedelta(days=1), 4))  # the last: DEFAULT
    archive(version.model, at(archived_day, 1), at(archived_day, 5), at(partly_archived, 2), at(partly_archived, 3))
    archive(other.model, at(archived_day, 7), at(limit, 4))
    # Listed for another kind, or for the other model only: hour 3 of that day is not archived for `other`.
    archive(other.model, at(partly_archived, 3), kind=ArchivedHour.Kind.ACTUALS)
    committed()

    assert partitions.day_archived(archived_day) and partitions.day_archived(empty_day)
    assert not partitions.day_archived(partly_archived)

    dropped = partitions.drop_partitions(before_day=limit)

    # Before them, the empty days the migration made partitions for went too.
    assert [day for day in dropped if day >= DAY] == [archived_day, empty_day]

    assert not table_exists(partitions.partition_name(archived_day))
    assert not table_exists(partitions.partition_name(empty_day))
    assert table_exists(partitions.partition_name(partly_archived)) and table_exists(partitions.partition_name(limit))
    assert set(Prediction.objects.values_list("pk", flat=True)) == {row.pk for row in kept}
    assert not Prediction.objects.filter(pk__in=[row.pk for row in gone]).exists()
    assert partitions.drop_partitions(before_day=limit) == []


@on_postgresql
def test_the_caller_decides_which_days_are_archived(version: ModelVersion) -> None:
    partitions.ensure_partitions(now=at(DAY, 0), days_ahead=1)
    record(version, at(DAY, 1), at(DAY + timedelta(days=1), 1))
    committed()
    asked = []

    def archived(day: date) -> bool:
        asked.append(day)
        return day == DAY + timedelta(days=1)

    assert partitions.drop_partitions(before_day=DAY + timedelta(days=2), archived=archived) == [
        DAY + timedelta(days=1)
    ]
    assert DAY in asked and table_exists(partitions.partition_name(DAY))


@on_postgresql
def test_the_recorder_inserts_into_partitions_and_a_retried_insert_skips_rows_already_there(
    version: ModelVersion,
) -> None:
    partitions.ensure_partitions(now=at(DAY, 0), days_ahead=0)
    rows = [prediction(version, at(DAY, hour)) for hour in range(3)] + [
        prediction(version, at(DAY, 4) + timedelta(days=9))
    ]
    recorder = Recorder()
    recorder.record(version_id=version.pk, rows=rows, latency_ms=1.0)
    # The commit's acknowledgement was lost: the same rows, with the same ids and times, come round again.
    recorder.record(version_id=version.pk, rows=rows, latency_ms=1.0)

    assert Prediction.objects.count() == 4
    assert [partition_of(row) for row in rows] == [partitions.partition_name(DAY)] * 3 + [partitions.DEFAULT_PARTITION]


@on_sqlite
def test_partition_maintenance_does_nothing_on_sqlite(version: ModelVersion) -> None:
    (row,) = record(version, at(DAY, 1))
    archive(version.model, at(DAY, 1))
    assert partitions.ensure_partitions(now=at(DAY, 0)) == []
    assert partitions.drop_partitions(before_day=DAY + timedelta(days=1)) == []
    assert Prediction.objects.filter(pk=row.pk).exists()


@on_postgresql
def test_the_archive_run_drops_archived_days_whole_but_not_a_day_with_late_rows(
    version: ModelVersion, settings: Any
) -> None:
    settings.MF_PREDICTION_HOT_DAYS = 3
    clean_day, late_day = DAY, DAY + timedelta(days=1)
    partitions.ensure_partitions(now=at(DAY, 0), days_ahead=1)
    record(version, at(clean_day, 1), at(clean_day, 2), at(late_day, 1))
    committed()
    now = at(DAY + timedelta(days=6), 0)
    compaction.compact(now=now)
    # A row that reached its hour after the hour was archived: its day must not be dropped with it unread.
    late = record(version, at(late_day, 1, 30))
    committed()

    summary = compaction.archive_run(now=now)

    assert not summary.error
    assert not table_exists(partitions.partition_name(clean_day))
    # The late day was archived again and its rows deleted one by one; its partition is kept, empty.
    assert table_exists(partitions.partition_name(late_day))
    assert not Prediction.objects.exists()
    assert str(late[0].pk) in archived_ids()
    assert not ArchivedHour.objects.filter(kind=ArchivedHour.Kind.PREDICTIONS, pruned_at__isnull=True).exists()
