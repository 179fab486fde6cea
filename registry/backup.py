"""Backup and restore of a whole instance: every table of the database and every file of the artifact store.

The database is written table by table as JSON lines (one row per line, primary keys kept, no natural
keys), so the same backup restores onto SQLite or PostgreSQL, tables of millions of rows are streamed
rather than held in memory, and restoring only ever INSERTs (the append-only audit table's PostgreSQL
trigger refuses UPDATE and DELETE, never INSERT). The files are copied through the default storage.
`manifest.json` lists every table with its row count and every file with its size and sha256.

A backup is a folder, or the same folder packed as a .tar / .tar.gz archive:

    manifest.json
    db/<app_label>.<model>.jsonl
    files/<path in the artifact store>

Restore refuses a target that already holds data (unless forced), checks every file against the
manifest before touching anything, loads all tables in one transaction and, before it commits,
re-reads every registered file and compares it with the sha256 the registry recorded at registration.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.core.management import call_command
from django.core.management.color import no_style
from django.core.serializers import sort_dependencies
from django.db import connections, models, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone
from django.utils.duration import duration_iso_string
from django_celery_beat.models import PeriodicTasks

from registry.models import VersionFile

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
# Rows per executemany() on restore.
BATCH_ROWS = 2000
_CHUNK = 1024 * 1024

# Tables that `migrate` fills on a fresh database (content types, permissions and the role groups):
# restore replaces their rows with the backup's, so that primary keys and foreign keys keep matching.
SEEDED = frozenset({"contenttypes.contenttype", "auth.permission", "auth.group", "auth.group_permissions"})
# Logins are not worth restoring: people sign in again.
EXCLUDED = frozenset({"sessions.session"})


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why."""


@dataclass
class RestoreResult:
    tables: dict[str, int]
    files: int
    verified_artifacts: int
    problems: list[str] = field(default_factory=list)


# --- which tables, in which order ------------------------------------------------------------------


def _label(model: type[models.Model]) -> str:
    return model._meta.label_lower


def backed_up_models() -> list[type[models.Model]]:
    """Every table with rows worth keeping, parents before children, many-to-many tables after both ends."""
    # Foreign keys are checked at commit on restore, so this order is for readers of the backup.
    ordered = sort_dependencies([(config, None) for config in apps.get_app_configs()], allow_cycles=True)
    through: list[type[models.Model]] = []
    for model in ordered:
        for m2m in model._meta.local_many_to_many:
            intermediate = m2m.remote_field.through
            if isinstance(intermediate, type) and intermediate._meta.auto_created and intermediate not in through:
                through.append(intermediate)
    return [
        model
        for model in [*ordered, *through]
        if model._meta.managed and not model._meta.proxy and not model._meta.swapped and _label(model) not in EXCLUDED
    ]


def _columns(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    return list(model._meta.concrete_fields)


# --- values to JSON and back ----------------------------------------------------------------------


def _encode(model_field: models.Field[Any, Any], value: Any) -> Any:
    """A value as read by values_list() (JSON parsed, file fields as their names), as JSON."""
    if value is None or isinstance(model_field, models.JSONField):
        return value
    # Full precision: Django's JSON encoder would cut datetimes to milliseconds, and the audit trail's
    # "what was in production at T" depends on the exact instants.
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, timedelta):
        return duration_iso_string(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return str(value)  # Decimal, UUID: text their fields parse back


def _decode(model_field: models.Field[Any, Any], value: Any) -> Any:
    if value is None or isinstance(model_field, models.JSONField | models.FileField):
        return value
    return model_field.to_python(value)


# --- files ----------------------------------------------------------------------------------------


def _sha256_of(handle: Any) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while piece := handle.read(_CHUNK):
        digest.update(piece)
        size += len(piece)
    return digest.hexdigest(), size


def _storage_files(storage: Storage, folder: str = "") -> Iterator[str]:
    """Every file name in `storage`, recursively (an absent root is an empty store)."""
    try:
        directories, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in sorted(files):
        yield f"{folder}/{name}" if folder else name
    for directory in sorted(directories):
        yield from _storage_files(storage, f"{folder}/{directory}" if folder else directory)


def _is_archive(path: Path) -> bool:
    return path.name.endswith(ARCHIVE_SUFFIXES)


# --- backup ---------------------------------------------------------------------------------------


def _migrations(alias: str) -> dict[str, list[str]]:
    applied: dict[str, list[str]] = {}
    for app_label, name in sorted(MigrationRecorder(connections[alias]).applied_migrations()):
        applied.setdefault(app_label, []).append(name)
    return applied


@contextmanager
def _snapshot(alias: str) -> Iterator[None]:
    """One consistent view of every table while they are read one after another, not blocking writers."""
    connection = connections[alias]
    outermost = not connection.in_atomic_block
    if connection.vendor == "sqlite" and outermost:
        # A plain (deferred) read transaction: in WAL mode it sees one snapshot and lets the web app and
        # workers keep writing. atomic() would BEGIN IMMEDIATE (our setting) and stall them meanwhile.
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("BEGIN DEFERRED")
            cursor.execute("SELECT count(*) FROM django_migrations")  # the snapshot starts at the first read
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("COMMIT")
        return
    with transaction.atomic(using=alias):
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _dump_table(model: type[models.Model], target: Path, alias: str) -> tuple[int, str]:
    columns = _columns(model)
    digest, rows = hashlib.sha256(), 0
    names = [column.attname for column in columns]
    rows_read = model._base_manager.using(alias).order_by("pk").values_list(*names)
    with target.open("w", encoding="utf-8") as out:
        for values in rows_read.iterator(chunk_size=2000):
            line = json.dumps(
                {name: _encode(column, value) for name, column, value in zip(names, columns, values, strict=True)},
                ensure_ascii=False,
            )
            line += "\n"
            out.write(line)
            digest.update(line.encode())
            rows += 1
    return rows, digest.hexdigest()


def backup(destination: Path, *, alias: str = "default", log: Any = None) -> dict[str, Any]:
    """Write a backup of the database `alias` and the default storage to `destination` (folder or archive)."""
    say = log or (lambda message: None)
    destination = destination.resolve()
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise BackupError(f"{destination} already exists; choose a new folder or archive name.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = (
        Path(tempfile.mkdtemp(prefix=".backup-", dir=destination.parent)) if _is_archive(destination) else destination
    )
    try:
        manifest = _write_backup(staging, alias=alias, say=say)
        if _is_archive(destination):
            compressed = destination.name.endswith((".tar.gz", ".tgz"))
            say(f"Packing {destination.name}")
            with tarfile.open(destination, "w:gz" if compressed else "w") as archive:
                for path in sorted(staging.rglob("*")):
                    archive.add(path, arcname=str(path.relative_to(staging)), recursive=False)
    except BaseException:
        if _is_archive(destination):
            destination.unlink(missing_ok=True)
        else:
            shutil.rmtree(destination, ignore_errors=True)
        raise
    finally:
        if staging != destination:
            shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _write_backup(folder: Path, *, alias: str, say: Any) -> dict[str, Any]:
    (folder / "db").mkdir(parents=True, exist_ok=True)
    tables: dict[str, dict[str, Any]] = {}
    # The database first, then the files: files are written before the rows that name them and are
    # never changed afterwards, so every file the snapshot names is already in the store.
    with _snapshot(alias):
        migrations = _migrations(alias)
        for model in backed_up_models():
            name = f"db/{_label(model)}.jsonl"
            rows, sha256 = _dump_table(model, folder / name, alias)
            tables[_label(model)] = {"file": name, "rows": rows, "sha256": sha256}
            if rows:
                say(f"  {_label(model)}: {rows} rows")
    storage = storages["default"]
    files: list[dict[str, Any]] = []
    for name in _storage_files(storage):
        target = folder / "files" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(name, "rb") as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        with target.open("rb") as copied:
            sha256, size = _sha256_of(copied)
        files.append({"path": name, "size": size, "sha256": sha256})
    say(f"  {len(files)} files from the artifact store")
    problems = _registered_file_problems(alias, {entry["path"]: entry["sha256"] for entry in files})
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "created_at": timezone.now().isoformat(),
        "database_vendor": connections[alias].vendor,
        "migrations": migrations,
        "tables": tables,
        "files": files,
        "problems": problems,
    }
    for problem in problems:
        say(f"  WARNING: {problem}")
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def _registered_file_problems(alias: str, stored: dict[str, str]) -> list[str]:
    """Registered files that are missing or whose bytes differ from the sha256 recorded at registration."""
    problems = []
    for name, expected, label in VersionFile.objects.using(alias).values_list("file", "sha256", "filename"):
        actual = stored.get(name)
        if actual is None:
            problems.append(f"{label} ({name}) is registered but missing from the artifact store")
        elif actual != expected:
            problems.append(f"{label} ({name}) does not match its registered sha256")
    return problems


# --- restore --------------------------------------------------------------------------------------


@contextmanager
def _opened(source: Path) -> Iterator[Path]:
    """The backup folder: `source` itself, or an archive unpacked into a temporary folder."""
    if source.is_dir():
        yield source
        return
    if not source.is_file():
        raise BackupError(f"There is no backup at {source}.")
    with tempfile.TemporaryDirectory(prefix="restore-") as folder:
        try:
            with tarfile.open(source) as archive:
                # The "data" filter refuses absolute paths, "..", links out of the folder and devices.
                archive.extractall(folder, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise BackupError(f"{source} is not a readable backup archive: {exc}") from exc
        yield Path(folder)


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{folder} has no readable {MANIFEST}: {exc}") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise BackupError(
            f"Backup format {manifest.get('format')!r} is not {FORMAT_VERSION}; restore it with its version."
        )
    return manifest


def verify_backup(folder: Path, manifest: dict[str, Any]) -> None:
    """Every table and file of the backup is present with the bytes the manifest names."""
    bad = []
    for label, table in manifest["tables"].items():
        path = folder / table["file"]
        if not path.is_file():
            bad.append(f"table {label}: {table['file']} is missing")
            continue
        with path.open("rb") as handle:
            if _sha256_of(handle)[0] != table["sha256"]:
                bad.append(f"table {label}: {table['file']} does not match its sha256")
    for entry in manifest["files"]:
        path = folder / "files" / entry["path"]
        if not path.is_file():
            bad.append(f"file {entry['path']} is missing")
            continue
        with path.open("rb") as handle:
            if _sha256_of(handle) != (entry["sha256"], entry["size"]):
                bad.append(f"file {entry['path']} does not match its sha256")
    if bad:
        shown = "; ".join(bad[:20]) + (f" … and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise BackupError(f"The backup is damaged, nothing was restored: {shown}")


def target_contents(alias: str = "default") -> list[str]:
    """What the target already holds besides what `migrate` puts there: tables with rows, and files."""
    held = [
        _label(model)
        for model in backed_up_models()
        if _label(model) not in SEEDED and model._base_manager.using(alias).exists()
    ]
    if next(_storage_files(storages["default"]), None) is not None:
        held.append("files in the artifact store")
    return held


def restore(source: Path, *, alias: str = "default", force: bool = False, log: Any = None) -> RestoreResult:
    """Restore the backup at `source` into database `alias` and the default storage.

    The target must be migrated to the same migrations as the source, and empty (only what
    `migrate` creates) unless `force`, which flushes the database first (its audit trail included)
    and overwrites files of the same name.
    """
    say = log or (lambda message: None)
    with _opened(source.resolve()) as folder:
        manifest = _read_manifest(folder)
        verify_backup(folder, manifest)
        say(f"Backup of {manifest['created_at']} ({manifest['database_vendor']}): all checksums match")
        current = _migrations(alias)
        if current != manifest["migrations"]:
            missing = sorted(
                f"{app}.{name}"
                for app, names in manifest["migrations"].items()
                for name in names
                if name not in current.get(app, [])
            )
            extra = sorted(
                f"{app}.{name}"
                for app, names in current.items()
                for name in names
                if name not in manifest["migrations"].get(app, [])
            )
            raise BackupError(
                "The target database is not at the backup's migrations: run `manage.py migrate` with the same "
                f"code version as the backup. Not applied here: {', '.join(missing) or 'none'}; "
                f"applied here only: {', '.join(extra) or 'none'}."
            )
        held = target_contents(alias)
        if held and not force:
            raise BackupError(
                f"The target is not empty ({', '.join(held[:8])}{' …' if len(held) > 8 else ''}): restore into "
                "a freshly migrated database and an empty artifact store, or pass --force to replace everything."
            )
        if held:
            say("--force: flushing the target database")
            call_command("flush", interactive=False, database=alias, verbosity=0)
        written = _restore_files(folder, manifest, overwrite=force)
        say(f"  {len(written)} files into the artifact store")
        try:
            result = _restore_tables(folder, manifest, alias=alias, say=say)
        except BaseException:
            storage = storages["default"]
            for name in written:  # the database was rolled back: leave no file it does not name
                storage.delete(name)
            raise
    result.files = len(written)
    _after_restore()
    return result


def _restore_files(folder: Path, manifest: dict[str, Any], *, overwrite: bool) -> list[str]:
    storage = storages["default"]
    written: list[str] = []
    try:
        for entry in manifest["files"]:
            name = entry["path"]
            if storage.exists(name):
                if not overwrite:
                    raise BackupError(f"{name} is already in the artifact store; pass --force to overwrite it.")
                storage.delete(name)
            with (folder / "files" / name).open("rb") as handle:
                saved = storage.save(name, File(handle, name=name))
            written.append(saved)
            if saved != name:
                raise BackupError(f"The storage saved {name} as {saved}; the database would not find it.")
    except BaseException:
        for name in written:
            storage.delete(name)
        raise
    return written


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def _restore_tables(folder: Path, manifest: dict[str, Any], *, alias: str, say: Any) -> RestoreResult:
    known = {_label(model): model for model in backed_up_models()}
    unknown = sorted(set(manifest["tables"]) - set(known))
    if unknown:
        raise BackupError(f"The backup has tables this code does not know: {', '.join(unknown)}.")
    connection = connections[alias]
    counts: dict[str, int] = {}
    # One transaction: foreign keys are checked at commit (Django declares them deferrable on both
    # SQLite and PostgreSQL), so rows load in any order and a failure leaves the target as it was.
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            # Replace what migrate seeded (content types, permissions, roles) with the source's rows.
            for label in sorted(SEEDED):
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(known[label]._meta.db_table)}")  # noqa: S608
        for label, model in known.items():
            table = manifest["tables"].get(label)
            if table is None:
                continue
            counts[label] = _load_table(model, folder / table["file"], alias)
            if counts[label] != table["rows"]:
                raise BackupError(f"{label}: {counts[label]} rows loaded, the manifest says {table['rows']}.")
            if counts[label]:
                say(f"  {label}: {counts[label]} rows")
        statements = connection.ops.sequence_reset_sql(no_style(), list(known.values()))
        if statements:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        # Before committing: every registered file must be the bytes its version was registered with.
        problems = artifact_problems(alias)
        if problems:
            raise BackupError(
                "Restored artifacts do not match the registry, nothing was restored: " + "; ".join(problems)
            )
        connection.check_constraints(table_names=[model._meta.db_table for model in known.values()])
    verified = _version_file_count(alias)
    say(f"  {verified} registered files verified against their sha256")
    return RestoreResult(tables=counts, files=0, verified_artifacts=verified)


def _load_table(model: type[models.Model], path: Path, alias: str) -> int:
    """INSERT the rows of one table in batches, each value prepared for the database by its own field.

    Values go in as they were (what loaddata's raw saves do): auto_now(_add) timestamps keep the
    source's instants instead of "now". No model instances are built: a third of the time per row.
    """
    connection = connections[alias]
    columns = _columns(model)
    if any(hasattr(column, "get_placeholder") for column in columns):
        raise BackupError(f"{_label(model)} has a column type restore does not handle.")
    quote = connection.ops.quote_name
    statement = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(str(column.column)) for column in columns)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    count = 0
    batch: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for row in _rows(path):
            batch.append(
                tuple(
                    column.get_db_prep_save(_decode(column, row.get(column.attname)), connection) for column in columns
                )
            )
            if len(batch) == BATCH_ROWS:
                cursor.executemany(statement, batch)
                count += len(batch)
                batch = []
        if batch:
            cursor.executemany(statement, batch)
            count += len(batch)
    return count


def _version_file_count(alias: str) -> int:
    return VersionFile.objects.using(alias).count()


def artifact_problems(alias: str = "default") -> list[str]:
    """Registered files that are missing or differ from the sha256 the registry recorded."""
    storage = storages["default"]
    problems = []
    for name, expected, label in VersionFile.objects.using(alias).values_list("file", "sha256", "filename"):
        try:
            with storage.open(name, "rb") as handle:
                actual = _sha256_of(handle)[0]
        except FileNotFoundError:
            problems.append(f"{label} ({name}) is missing")
            continue
        if actual != expected:
            problems.append(f"{label} ({name}) does not match its registered sha256")
    return problems


def _after_restore() -> None:
    # Beat caches the schedule: tell a running beat (DatabaseScheduler) that the tasks changed.
    ContentType.objects.clear_cache()  # the restored content types may have other primary keys
    PeriodicTasks.update_changed()
