"""PostgreSQL day partitions of the prediction log: made ahead of the traffic, dropped whole once archived.

On PostgreSQL `scoring_prediction` is range-partitioned on `at` by UTC day (migration
`prediction_partitioned_by_day`): one table per day, `scoring_prediction_pYYYYMMDD`, and
`scoring_prediction_default` for rows of a day that has no partition yet. Dropping a day's table
frees its rows at once, where deleting them would write every one to the WAL and leave the table
to vacuum. On SQLite the table is a plain one and every function here does nothing: archived rows
are deleted instead.

Who calls what: a periodic task calls `ensure_partitions` (daily is enough: it makes a week ahead) and,
after compaction, `drop_partitions`, and only then deletes row by row the archived rows that remain (in
the DEFAULT partition, or of a day not dropped). Call both outside a transaction: each works in
transactions of its own, so that its locks are held for one day's work only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from django.db import OperationalError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from registry.models import RegisteredModel
from scoring.models import ArchivedHour, Prediction

logger = logging.getLogger(__name__)

TABLE = Prediction._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
_DAY_PARTITION = re.compile(rf"^{TABLE}_p(\d{{8}})$")
# A DROP waits for every query on the table and makes every later one wait behind it: it gives up
# rather than stall the prediction log behind a long report.
LOCK_TIMEOUT = "5s"
_LOCK_NOT_AVAILABLE = "55P03"
# Probes, per registered model and hour of the day, for a hot row (on the (model_id, at) index) of an
# hour the manifest does not list.
_DAY_ARCHIVED = f"""
    SELECT NOT EXISTS (
        SELECT 1
        FROM {RegisteredModel._meta.db_table} m
        CROSS JOIN generate_series(%(start)s::timestamptz, %(last_hour)s::timestamptz, '1 hour') h(hour)
        WHERE EXISTS (
            SELECT 1 FROM {TABLE} p
            WHERE p.model_id = m.id AND p.at >= %(start)s AND p.at < %(end)s
              AND p.at >= h.hour AND p.at < h.hour + interval '1 hour'
        )
        AND NOT EXISTS (
            SELECT 1 FROM {ArchivedHour._meta.db_table} a
            WHERE a.model_id = m.id AND a.kind = %(kind)s AND a.hour = h.hour
        )
    )
"""  # noqa: S608


def partition_name(day: date) -> str:
    """The table holding the predictions of a UTC day."""
    return f"{TABLE}_p{day:%Y%m%d}"


def is_partitioned() -> bool:
    """Whether this database keeps predictions in day partitions (PostgreSQL) rather than one table."""
    return connection.vendor == "postgresql"


def ensure_partitions(*, now: datetime | None = None, days_ahead: int = 7) -> list[date]:
    """Create the partitions of the UTC days from `now`'s to `days_ahead` days later; returns the days made.

    Idempotent: days that have their partition are left alone. A day whose rows already sit in the
    DEFAULT partition (nothing made its partition in time) is not skipped: its rows are moved into the
    new partition in the same transaction, so they can be dropped with their day.
    """
    if not is_partitioned():
        return []
    today = (now or timezone.now()).astimezone(UTC).date()
    made = []
    with transaction.atomic(), connection.cursor() as cursor:
        _lock_partition_maintenance(cursor)
        existing = _day_partitions(cursor)
        for offset in range(days_ahead + 1):
            day = today + timedelta(days=offset)
            if day not in existing:
                create_partition(cursor, day)
                made.append(day)
    return made


def drop_partitions(*, before_day: date, archived: Callable[[date], bool] | None = None) -> list[date]:
    """Drop the partitions of UTC days before `before_day` whose rows are all archived; returns the days dropped.

    `archived(day)` says whether a day may go; by default `day_archived`, which asks the archive's
    manifest. It is called with the table locked, so no row of that day can arrive between the check and
    the drop: keep it quick. A day whose lock cannot be had within LOCK_TIMEOUT is left for the next
    call. Rows in the DEFAULT partition are never dropped here: they are deleted row by row once archived.
    """
    if not is_partitioned():
        return []
    archived = archived or day_archived
    with connection.cursor() as cursor:
        candidates = sorted(day for day in _day_partitions(cursor) if day < before_day)
    dropped = []
    for day in candidates:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                _lock_partition_maintenance(cursor)
                cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
                if not archived(day):
                    continue
                # Checks of foreign keys deferred to the commit are "pending trigger events", which forbid
                # the drop: run them now (there are none unless the caller's transaction wrote rows).
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(f"DROP TABLE {partition_name(day)}")
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            logger.warning("Prediction partitions: %s not dropped, the table stayed busy; next time", day)
            break
        dropped.append(day)
    return dropped


def day_archived(day: date) -> bool:
    """Whether every hot prediction of a UTC day belongs to an hour the archive's manifest lists.

    Asked per model and hour (24 index probes of (model, at) per registered model) rather than by
    reading the day's rows, so its cost does not grow with traffic. PostgreSQL only.
    """
    start = datetime.combine(day, time(), tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            _DAY_ARCHIVED,
            {
                "start": start,
                "last_hour": start + timedelta(hours=23),
                "end": start + timedelta(days=1),
                "kind": ArchivedHour.Kind.PREDICTIONS.value,
            },
        )
        (all_archived,) = cursor.fetchone()
    return bool(all_archived)


def create_partition(cursor: CursorWrapper, day: date) -> None:
    """Make a day's partition, moving into it any rows of that day that wait in the DEFAULT partition.

    Attached rather than created as a partition: attaching locks out only other schema changes of the
    parent, not inserts into its other days. The parent's indexes and foreign keys come with the attach.
    """
    name = partition_name(day)
    start = datetime.combine(day, time(), tzinfo=UTC)
    bounds = {"start": start, "end": start + timedelta(days=1)}
    cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING ALL EXCLUDING INDEXES)")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE at >= %(start)s AND at < %(end)s RETURNING *)"  # noqa: S608
        f" INSERT INTO {name} SELECT * FROM moved",
        bounds,
    )
    cursor.execute(
        f"ALTER TABLE {TABLE} ATTACH PARTITION {name}"
        f" FOR VALUES FROM ('{bounds['start'].isoformat()}') TO ('{bounds['end'].isoformat()}')"
    )


def _day_partitions(cursor: CursorWrapper) -> set[date]:
    """The days that have a partition (the DEFAULT partition, or any other, is not one of them)."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        [TABLE],
    )
    names = (_DAY_PARTITION.match(name) for (name,) in cursor.fetchall())
    return {date.fromisoformat(match.group(1)) for match in names if match}


def _lock_partition_maintenance(cursor: CursorWrapper) -> None:
    """Two workers making or dropping partitions at once would both see a day missing (or there)."""
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{TABLE} partitions"])
