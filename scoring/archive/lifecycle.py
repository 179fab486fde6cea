"""The archive's lifecycle, the same for every kind of hot rows (predictions here, actuals in monitoring):
archive each complete hour, list it in the manifest, delete hot rows the archive holds once they are old
enough, and delete archive files past retention.

The order makes a killed worker harmless at any point. Files are written first (under a temporary name,
then moved), the hour is listed after; so a run killed before listing leaves files that the next run
writes again, same paths. Hot rows are deleted only for listed hours, in one transaction that also marks
the hour pruned, and only if the delete removed exactly the rows the files hold; so a run killed before
pruning leaves rows that the next run deletes, and rows that arrived late (a recorder buffer held through
a database outage) are archived again instead of lost.

A location that refuses a write (permission denied, bucket missing: an OSError from pyarrow or fsspec)
stops the run before anything is deleted, tells admins once per outage, and the next run catches up.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from registry.models import RegisteredModel
from registry.notifications import notify_users
from registry.selectors import admin_list
from scoring.archive import store
from scoring.models import ArchivedHour, ArchiveState

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
# Longer than the archive tasks' time limit: a lease this old was left by a killed worker.
LEASE_SECONDS = 3900
# Rows per table handed to the Parquet writer: one hour of one version can be any size, memory cannot.
ROWS_PER_TABLE = 32_768
# Recently archived hours are counted again on every run, so that rows which arrived after their hour
# was archived reach the files within hours rather than at pruning, days later.
RECOUNT_HOURS = 3

T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """One kind of hot rows: the manifest's kind, the time that files them into hours, a model's rows, and
    how one hour of a model is written (returning the manifest's file entries)."""

    kind: str
    time_field: str
    rows: Callable[[int], QuerySet[Any]]
    write_hour: Callable[[int, datetime, QuerySet[Any]], list[dict[str, Any]]]
    # Removes whole UTC days of hot rows before a bound at once (PostgreSQL's day partitions), returning
    # the days it removed; the hours it cannot remove are deleted row by row.
    drop_days: Callable[[datetime], list[date]] | None = None

    def hour_rows(self, model_id: int, hour: datetime) -> QuerySet[Any]:
        return self.rows(model_id).filter(**{f"{self.time_field}__gte": hour, f"{self.time_field}__lt": hour + HOUR})


@dataclass
class ArchiveSummary:
    kind: str
    hours: int = 0  # hours archived, or archived again
    rows: int = 0
    bytes: int = 0
    pruned_rows: int = 0  # hot rows deleted
    expired_hours: int = 0  # hours whose files were deleted at the end of retention
    error: str = ""  # why the run stopped; nothing was deleted then
    skipped: bool = False  # another run held the lease


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def complete_before(now: datetime) -> datetime:
    """The start of the first hour that may still receive rows: earlier hours are complete.

    An hour is complete a grace after its end: rows wait in the recorder's buffer for up to a flush
    interval (twice, for a flush that failed once) before they reach the table.
    """
    grace = timedelta(seconds=2 * settings.MF_PREDICTION_LOG_FLUSH_SECONDS + 60)
    return hour_of(now - grace)


def chunked(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def location() -> str:
    """The archive's URL as it may be shown: without a query string, where credentials could be."""
    return str(settings.MF_ARCHIVE_URL).split("?", 1)[0]


def pending_hours(source: Source, *, model_id: int, before: datetime) -> Iterator[datetime]:
    """The model's hours before `before` that have hot rows and are not listed, oldest first.

    One index seek per run of listed hours rather than a scan of the table: empty hours are jumped over,
    and so are hours already listed (whose rows stay hot for MF_PREDICTION_HOT_DAYS).
    """
    rows = source.rows(model_id).filter(**{f"{source.time_field}__lt": before}).order_by(source.time_field)
    times = rows.values_list(source.time_field, flat=True)
    oldest = times.first()
    if oldest is None:
        return
    cursor = hour_of(oldest)
    # A pruned hour whose rows arrived later still (after MF_PREDICTION_HOT_DAYS) is listed too: archiving
    # it again from the hot table would overwrite its files with those few rows, so they stay hot.
    listed = set(
        ArchivedHour.objects.filter(model_id=model_id, kind=source.kind, hour__gte=cursor, hour__lt=before).values_list(
            "hour", flat=True
        )
    )
    while True:
        while cursor in listed:
            cursor += HOUR
        found = times.filter(**{f"{source.time_field}__gte": cursor}).first()
        if found is None:
            return
        hour = hour_of(found)
        if hour not in listed:
            yield hour
            cursor = hour + HOUR
        else:
            cursor = hour


def recounted_hours(source: Source, *, model_id: int, before: datetime) -> Iterator[datetime]:
    """Recently listed hours whose hot rows are no longer the rows their files hold (late arrivals)."""
    recent = ArchivedHour.objects.filter(
        model_id=model_id,
        kind=source.kind,
        pruned_at__isnull=True,
        hour__gte=before - RECOUNT_HOURS * HOUR,
        hour__lt=before,
    ).order_by("hour")
    for entry in recent:
        if source.hour_rows(model_id, entry.hour).count() != entry.rows:
            yield entry.hour


def manifest_save(*, model_id: int, kind: str, hour: datetime, files: list[dict[str, Any]]) -> ArchivedHour:
    """List an hour whose files are written (again: an hour archived anew replaces its entry)."""
    entry, _ = ArchivedHour.objects.update_or_create(
        model_id=model_id,
        kind=kind,
        hour=hour,
        defaults={
            "rows": sum(file["rows"] for file in files),
            "bytes": sum(file["bytes"] for file in files),
            "files": files,
            "archived_at": timezone.now(),
            "pruned_at": None,
        },
    )
    return entry


def hour_archive(source: Source, *, model_id: int, hour: datetime) -> ArchivedHour:
    """Write one hour of a model's hot rows to its files, then list it."""
    files = source.write_hour(model_id, hour, source.hour_rows(model_id, hour))
    return manifest_save(model_id=model_id, kind=source.kind, hour=hour, files=files)


def compact(source: Source, *, now: datetime | None = None) -> ArchiveSummary:
    """Archive every complete hour of every model not yet listed (and recent hours that got late rows).

    Stops at the first write the location refuses: admins are told (once per outage) and the summary
    says why; hours already archived stay listed.
    """
    before = complete_before(now or timezone.now())
    summary = ArchiveSummary(kind=source.kind)
    try:
        for model_id in RegisteredModel.objects.order_by("pk").values_list("pk", flat=True):
            hours = [*pending_hours(source, model_id=model_id, before=before)]
            hours += recounted_hours(source, model_id=model_id, before=before)
            for hour in hours:
                entry = hour_archive(source, model_id=model_id, hour=hour)
                summary.hours += 1
                summary.rows += entry.rows
                summary.bytes += entry.bytes
    except OSError as exc:
        location_failed(kind=source.kind, error=exc)
        summary.error = f"{type(exc).__name__}: {exc}"
        return summary
    if summary.hours:
        location_recovered(kind=source.kind)
    return summary


class _LateRowsError(Exception):
    """The hour's hot rows are not the rows its files hold: roll the delete back."""


def _hour_prune(source: Source, entry: ArchivedHour) -> int | None:
    """Delete the hot rows of a listed hour if they are the rows its files hold; None if more arrived."""
    rows = source.hour_rows(entry.model_id, entry.hour)
    try:
        with transaction.atomic():
            # One DELETE by time range: the ORM's delete() would first fetch every id (to look for rows
            # that refer to them) and send them back as an IN list.
            deleted = rows._raw_delete(rows.db)
            if deleted > entry.rows:
                raise _LateRowsError
            ArchivedHour.objects.filter(pk=entry.pk).update(pruned_at=timezone.now())
    except _LateRowsError:
        return None
    if deleted < entry.rows:
        # Some of the hour's hot rows were removed by something else; the files still hold them all.
        logger.warning(
            "%s of model %s at %s: %s hot rows for %s archived",
            entry.kind,
            entry.model_id,
            entry.hour,
            deleted,
            entry.rows,
        )
    return deleted


def prune_hot(source: Source, *, now: datetime | None = None) -> int:
    """Delete the hot rows of listed hours older than MF_PREDICTION_HOT_DAYS; returns how many.

    An hour whose hot rows outnumber its files' (rows that arrived after it was archived) is archived
    again first, same paths; an OSError from that write propagates (the caller stops the run).
    """
    bound = (now or timezone.now()) - timedelta(days=settings.MF_PREDICTION_HOT_DAYS)
    entries = ArchivedHour.objects.filter(kind=source.kind, pruned_at__isnull=True, hour__lte=bound - HOUR)
    deleted = 0
    for day in source.drop_days(bound) if source.drop_days is not None else []:
        start = datetime.combine(day, time(), tzinfo=UTC)
        dropped = entries.filter(hour__gte=start, hour__lt=start + timedelta(days=1))
        # The day went whole, holding no more rows than its files (drop_days checks): count those.
        deleted += dropped.aggregate(rows=Sum("rows"))["rows"] or 0
        dropped.update(pruned_at=timezone.now())
    for entry in entries.order_by("hour", "model_id"):
        pruned = _hour_prune(source, entry)
        if pruned is None:
            logger.info("%s of model %s at %s got late rows; archived again", entry.kind, entry.model_id, entry.hour)
            pruned = _hour_prune(source, hour_archive(source, model_id=entry.model_id, hour=entry.hour))
        if pruned is None:
            logger.warning(
                "%s of model %s at %s is still receiving rows; pruned next run", entry.kind, entry.model_id, entry.hour
            )
            continue
        deleted += pruned
    return deleted


def prune_archive(*, now: datetime | None = None, kind: str | None = None) -> int:
    """Delete files and manifest entries older than MF_PREDICTION_ARCHIVE_DAYS (0 keeps them forever).

    Files go first, the entry last, so a run killed in between is finished by the next. Only pruned hours
    expire: an entry removed while its rows are still hot would have them archived again.
    """
    days = settings.MF_PREDICTION_ARCHIVE_DAYS
    if not days:
        return 0
    bound = (now or timezone.now()) - timedelta(days=days)
    expired = ArchivedHour.objects.filter(pruned_at__isnull=False, hour__lte=bound - HOUR)
    if kind is not None:
        expired = expired.filter(kind=kind)
    count = 0
    for entry in expired.order_by("hour").iterator():
        for file in entry.files:
            store.delete(file["path"])
        entry.delete()
        count += 1
    return count


@contextmanager
def lease(kind: str) -> Iterator[bool]:
    """Claim the kind's archiving for this run (compare-and-set); yields False if another run has it."""
    ArchiveState.objects.get_or_create(kind=kind)
    claimed_at = timezone.now()
    stale = claimed_at - timedelta(seconds=LEASE_SECONDS)
    claimed = (
        ArchiveState.objects.filter(kind=kind)
        .filter(Q(running_since__isnull=True) | Q(running_since__lt=stale))
        .update(running_since=claimed_at)
    )
    if not claimed:
        yield False
        return
    try:
        yield True
    finally:
        ArchiveState.objects.filter(kind=kind, running_since=claimed_at).update(running_since=None)


def location_failed(*, kind: str, error: Exception) -> None:
    """Log the refused write; tell admins if this starts an outage (no kind was failing before)."""
    logger.error("The archive at %s refused a write; %s compaction stopped, hot rows kept: %r", location(), kind, error)
    text = f"{type(error).__name__}: {error}"
    with transaction.atomic():
        states = list(ArchiveState.objects.select_for_update().order_by("kind"))
        ongoing = any(state.failing_since is not None for state in states)
        ArchiveState.objects.filter(kind=kind, failing_since__isnull=True).update(
            failing_since=timezone.now(), error=text
        )
        if not ongoing:
            notify_users(
                users=admin_list(),
                message=(
                    f"The prediction archive at {location()} is not writable ({text}). Compaction has stopped "
                    "and the hot tables keep every row until it is writable again; it then catches up."
                ),
            )


def location_recovered(*, kind: str) -> None:
    if ArchiveState.objects.filter(kind=kind, failing_since__isnull=False).update(failing_since=None, error=""):
        logger.warning("The archive at %s is writable again; %s compaction caught up", location(), kind)


def run(source: Source, *, now: datetime | None = None) -> ArchiveSummary:
    """The task's work: compact, then (unless a write failed) prune the hot rows and expire old files."""
    now = now or timezone.now()
    with lease(source.kind) as claimed:
        if not claimed:
            logger.info("%s archiving is already running; this run skips", source.kind)
            return ArchiveSummary(kind=source.kind, skipped=True)
        summary = compact(source, now=now)
        if summary.error:
            return summary
        try:
            summary.pruned_rows = prune_hot(source, now=now)
            summary.expired_hours = prune_archive(now=now, kind=source.kind)
        except OSError as exc:
            location_failed(kind=source.kind, error=exc)
            summary.error = f"{type(exc).__name__}: {exc}"
        return summary
