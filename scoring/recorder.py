"""Prediction log and per-minute counters, written off the request path.

Requests append to an in-memory buffer; a daemon thread writes it with one bulk insert every
MF_PREDICTION_LOG_FLUSH_SECONDS (and at exit), so logging costs a list append per request. A
process killed with SIGKILL loses at most that interval of log rows.

While the database is down the rows stay in the buffer and are written once it is back (each
round retries everything not yet written); predictions themselves answer 503 meanwhile, since
finding the production version needs the database, so the buffer cannot grow without bound.
A row the database refuses for what it holds (a constraint, a value out of range) would be refused
again in every round and hold back every row behind it: it is set apart, logged with the reason, and
dropped, and the rest are written.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import threading
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, close_old_connections, connection, transaction
from django.db.models import JSONField, Value
from django.db.models.constants import OnConflict
from django.utils import timezone

from scoring.models import Prediction, ScoringStats

logger = logging.getLogger(__name__)

# Rows are adapted to database values by their fields in the request that made them (~0.1 ms), so a flush
# only runs multi-row INSERTs of ready tuples. Built by bulk_create in the flush, a second of traffic held
# the GIL for milliseconds at a time and requests queued behind it: the 1-connection p99 was 22-92 ms
# against a p50 of 3 ms (6 ms with no flush during the run). Rows go in statements of many rows rather
# than by executemany, which gave the GIL up and had to win it back from the request threads for every row.
FLUSH_SLICE_ROWS = 500
_FIELDS = Prediction._meta.concrete_fields
_OUTPUT = Prediction._meta.get_field("output")
# A model may answer NaN or infinity for a row, which the API answers as null: logged as JSON null, since
# a missing output (SQL NULL) is not allowed.
_JSON_NULL = Value(None, JSONField())

# Upper bounds (ms) of the latency histogram buckets; the last bucket is open-ended.
BUCKETS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]


def percentile(histogram: list[int], q: float) -> float | None:
    """The bucket bound under which a share `q` of requests fell (an upper estimate)."""
    total = sum(histogram)
    if not total:
        return None
    seen = 0
    for bound, count in zip([*BUCKETS, float("inf")], histogram, strict=True):
        seen += count
        if seen >= q * total:
            return bound
    return float("inf")


def _empty_stats() -> list[Any]:
    """requests, rows, errors, latency histogram."""
    return [0, 0, 0, [0] * (len(BUCKETS) + 1)]


class Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[tuple[Any, ...]] = []  # a Prediction's column values, adapted for the database
        self._stats: dict[tuple[int, datetime], list[Any]] = defaultdict(_empty_stats)
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def record(self, *, version_id: int, rows: list[Prediction], latency_ms: float, error: bool = False) -> None:
        minute = timezone.now().replace(second=0, microsecond=0)
        values = [tuple(_db_value(field, getattr(row, field.attname)) for field in _FIELDS) for row in rows]
        with self._lock:
            self._rows.extend(values)
            stats = self._stats[(version_id, minute)]
            stats[0] += 1
            stats[1] += len(rows)
            stats[2] += int(error)
            stats[3][bisect.bisect_left(BUCKETS, latency_ms)] += 1
        if settings.MF_PREDICTION_LOG == "sync":
            self.flush()
        else:
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
                    self._thread.start()
                    atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._wake.wait(settings.MF_PREDICTION_LOG_FLUSH_SECONDS)
            self._wake.clear()
            try:
                close_old_connections()
                self.flush()
            except DatabaseError as exc:  # e.g. the database is restarting: the next round retries
                logger.warning("Prediction log not written yet (%s rows kept, retrying): %r", self.pending(), exc)
            except Exception:  # the next round retries what was put back
                logger.exception("Could not write the prediction log; retrying")

    def pending(self) -> int:
        """Rows waiting to be written."""
        with self._lock:
            return len(self._rows)

    def flush(self) -> int:
        with self._lock:
            rows, self._rows = self._rows, []
            stats, self._stats = dict(self._stats), defaultdict(_empty_stats)
        if not rows and not stats:
            return 0
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                refused = _insert(cursor, rows)
                for (version_id, minute), (requests, count, errors, histogram) in stats.items():
                    row, _ = ScoringStats.objects.select_for_update().get_or_create(
                        version_id=version_id,
                        granularity=ScoringStats.Granularity.MINUTE,
                        start=minute,
                        defaults={"latency_histogram": [0] * len(histogram)},
                    )
                    row.requests += requests
                    row.rows += count
                    row.errors += errors
                    row.latency_histogram = [a + b for a, b in zip(row.latency_histogram, histogram, strict=True)]
                    row.save()
        except Exception:
            with self._lock:  # keep them for the next flush rather than lose them
                self._rows[:0] = rows
                for key, value in stats.items():
                    merged = self._stats[key]
                    merged[0] += value[0]
                    merged[1] += value[1]
                    merged[2] += value[2]
                    merged[3] = [a + b for a, b in zip(merged[3], value[3], strict=True)]
            raise
        for values, reason in refused:
            logger.error("The prediction log refused a row, which is dropped: %r. The row: %r", reason, values)
        return len(rows) - len(refused)


def _db_value(field: Any, value: Any) -> Any:
    return field.get_db_prep_save(_JSON_NULL if value is None and field is _OUTPUT else value, connection)


def _insert(cursor: Any, rows: list[tuple[Any, ...]]) -> list[tuple[tuple[Any, ...], DatabaseError]]:
    """Insert `rows` in statements of many rows, each in a savepoint; a statement the database refuses for
    its data is halved until the rows it refuses are found. Those are returned with the reason, unwritten."""
    size = min(FLUSH_SLICE_ROWS, connection.ops.bulk_batch_size(_FIELDS, rows) or 1)
    pieces = [rows[start : start + size] for start in range(0, len(rows), size)]
    refused: list[tuple[tuple[Any, ...], DatabaseError]] = []
    while pieces:
        piece = pieces.pop()
        try:
            with transaction.atomic():
                cursor.execute(_insert_sql(len(piece)), [value for row in piece for value in row])
        except (DataError, IntegrityError) as exc:
            if len(piece) == 1:
                refused.append((piece[0], exc))
            else:
                pieces += [piece[len(piece) // 2 :], piece[: len(piece) // 2]]
    return refused


def _insert_sql(rows: int) -> str:
    """INSERT of `rows` Predictions that skips any already there: a commit whose acknowledgement was lost
    (the connection dropped) is retried with the same ids, which is not a reason to fail."""
    ops = connection.ops
    table = ops.quote_name(Prediction._meta.db_table)
    columns = ", ".join(ops.quote_name(str(field.column)) for field in _FIELDS)
    values = ", ".join(["(" + ", ".join(["%s"] * len(_FIELDS)) + ")"] * rows)
    suffix = ops.on_conflict_suffix_sql(_FIELDS, OnConflict.IGNORE, None, None)
    return f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} {table} ({columns}) VALUES {values} {suffix}"


recorder = Recorder()
