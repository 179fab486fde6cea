"""A model's production traffic in a time window, as DuckDB views over columnar data.

The window is the union, by column name, of three sources:
- archived hours (`scoring.models.ArchivedHour`, kind "predictions"): their Parquet files, scanned in
  place through a pyarrow dataset (local or object storage) with the time filter pushed down;
- hot rows of the hours the manifest does not list yet, converted with the archive's own format and
  kept in DuckDB temporary tables (which spill to disk beyond the memory limit);
- batch runs finished in the window: their input snapshot joined with their scores.
Only rows whose input was kept take part. Actuals (archived and hot, received from the window's start
on) are joined in SQL (`labelled_rows`): by prediction id, else by entity id, the latest observed one
per key.

A file the manifest lists but that cannot be opened is not skipped silently: it is listed in
`Window.unreadable` (which hour, which file, how many rows the manifest says it holds) and the window
holds the rest.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from django.db.models import Q
from django.utils import timezone

from monitoring.models import Actual
from registry.models import RegisteredModel
from registry.schema import FieldSpec, parse_schema
from scoring.archive import format, store
from scoring.archive.lifecycle import chunked
from scoring.batch.snapshots import ENTITY_ID_COLUMN, FIRST_ROW_COLUMN, read_rows
from scoring.ids import first_uuid7
from scoring.models import ArchivedHour, BatchRun, BatchScore, Prediction

# The columns reports read, besides the features (names from the archive's format).
PREDICTION, NUMBER, SCORE, AT, ENTITY, PREDICTION_ID, VERSION = (
    format.PREDICTION,
    format.NUMBER,
    format.SCORE,
    format.AT,
    format.ENTITY,
    format.ID,
    format.VERSION,
)
ACTUAL_LABEL, ACTUAL_NUMBER = format.ACTUAL_LABEL, format.ACTUAL_NUMBER

TRAFFIC = "traffic"  # view: the window's rows
LABELLED_ROWS = "labelled_rows"  # table: the window's rows that have an actual, with it (made by `labelled_rows`)
ALL_ACTUALS = "all_actuals"  # view: every actual received from the window's start on (a key may repeat)
ACTUAL_BY_ENTITY = "actual_by_entity"  # table: the latest actual per entity id
HOUR = timedelta(hours=1)
CHUNK_ROWS = 20_000
# The window is joined with its actuals in parts of about this many predictions (by id, so by time):
# each part's hash tables fit in DuckDB's memory. One join of 50M predictions with 25M actuals spilled to disk and,
# with the deduplication it needed first, took 105 s.
JOIN_PART_ROWS = 10_000_000
# DuckDB's share of a report worker's memory; beyond it joins and temporary tables spill to disk. With
# Python, the reference and the model beside it (about 800 MB), a worker peaks under 1.5 GB.
MEMORY_LIMIT = "600MB"
_DUCKDB_TYPES = {"float": "DOUBLE", "integer": "BIGINT", "boolean": "BOOLEAN"}


@dataclass
class Window:
    """The window's views on an open DuckDB connection (valid inside `open_window`)."""

    connection: duckdb.DuckDBPyConnection
    start: datetime
    end: datetime
    columns: dict[str, str]  # column of TRAFFIC -> DuckDB type
    rows: int
    versions: dict[int, int]  # version number -> rows
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    labelled: set[str] = field(default_factory=set)  # the columns LABELLED_ROWS holds, once made

    def query(self, sql: str, parameters: list[Any] | None = None) -> pd.DataFrame:
        return self.connection.execute(sql, parameters or []).df()

    def sample(self, columns: list[str], rows: int, seed: int = 0) -> pd.DataFrame:
        """At most `rows` rows of `columns`, a seeded reservoir sample when the window holds more."""
        selected = ", ".join(quote(column) for column in columns)
        if self.rows <= rows:
            return self.query(f"SELECT {selected} FROM {TRAFFIC}")
        return self.query(
            f"SELECT {selected} FROM {TRAFFIC} USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE ({seed})"
        )


def quote(name: str) -> str:
    """A column name as a DuckDB identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A value as a SQL literal (for view definitions, which take no parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


@contextlib.contextmanager
def open_window(model: RegisteredModel, start: datetime, end: datetime) -> Iterator[Window]:
    """The window's rows as the DuckDB view TRAFFIC (and its actuals' tables), on a connection closed on exit."""
    with tempfile.TemporaryDirectory(prefix="mf-window-") as scratch:
        connection = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": scratch})
        try:
            yield _build(connection, model, start, end)
        finally:
            connection.close()


def _build(connection: duckdb.DuckDBPyConnection, model: RegisteredModel, start: datetime, end: datetime) -> Window:
    unreadable: list[dict[str, Any]] = []
    sources = []
    archived, archived_hours = _archived(connection, model, ArchivedHour.Kind.PREDICTIONS, start, end, unreadable)
    if archived:
        sources.append(
            f"SELECT * FROM {archived} WHERE {AT} >= {literal(start)} AND {AT} < {literal(end)} AND {format.INPUT_KEPT}"
        )
    sources += _hot_predictions(connection, model, _uncovered(start, end, archived_hours))
    sources += _batch_rows(connection, model, start, end)
    if not sources:
        connection.register("no_predictions", format.LOG_COLUMNS.empty_table())
        sources = ["SELECT * FROM no_predictions"]
    connection.execute(f"CREATE TEMP VIEW {TRAFFIC} AS " + " UNION ALL BY NAME ".join(sources))
    _actuals(connection, model, start, end, unreadable)
    columns = dict(connection.execute(f"SELECT column_name, column_type FROM (DESCRIBE {TRAFFIC})").fetchall())
    versions = dict(connection.execute(f"SELECT {VERSION}, count(*) FROM {TRAFFIC} GROUP BY 1").fetchall())
    return Window(
        connection=connection,
        start=start,
        end=end,
        columns=columns,
        rows=int(sum(versions.values())),
        versions={int(number): int(rows) for number, rows in versions.items() if number is not None},
        unreadable=unreadable,
    )


def _archived(
    connection: duckdb.DuckDBPyConnection,
    model: RegisteredModel,
    kind: str,
    start: datetime,
    end: datetime,
    unreadable: list[dict[str, Any]],
) -> tuple[str | None, list[datetime]]:
    """The readable files of the archived hours overlapping [start, end) as one registered dataset.

    Each file's footer is read first: a missing or corrupt file is listed as unreadable instead of
    failing the scan, and the files' schemas (versions with different inputs) are unified by name.
    """
    hours = list(ArchivedHour.objects.filter(model=model, kind=kind, hour__gt=start - HOUR, hour__lt=end))
    filesystem, root = store.filesystem()
    paths, schemas = [], []
    for entry in hours:
        for listed in entry.files:
            try:
                with filesystem.open_input_file(f"{root}/{listed['path']}") as handle:
                    schemas.append(pq.ParquetFile(handle).schema_arrow)
            except (OSError, pa.ArrowException) as exc:
                unreadable.append(
                    {
                        "kind": kind,
                        "hour": entry.hour.isoformat(),
                        "path": listed["path"],
                        "rows": int(listed.get("rows") or 0),
                        "error": f"{type(exc).__name__}: {exc}"[:300],
                    }
                )
                continue
            paths.append(listed["path"])
    name = None
    if paths and isinstance(filesystem, pafs.LocalFileSystem):
        # DuckDB's own Parquet reader: several times faster than scanning a pyarrow dataset through Python,
        # with its threads, row-group statistics and only the columns a query names.
        name = f"archived_{kind}"
        files = ", ".join(literal(f"{root}/{path}") for path in paths)
        connection.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM read_parquet([{files}], union_by_name = true)")
    elif paths:  # object storage, which this DuckDB reaches only through pyarrow's filesystems
        name = f"archived_{kind}"
        connection.register(name, store.dataset(paths, schema=pa.unify_schemas(schemas, promote_options="permissive")))
    return name, [entry.hour for entry in hours]


def _uncovered(start: datetime, end: datetime, archived_hours: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """The parts of [start, end) outside the archived hours, merged into as few intervals as possible."""
    intervals: list[tuple[datetime, datetime]] = []
    cursor = start
    for hour in sorted(archived_hours):
        if hour > cursor:
            intervals.append((cursor, min(hour, end)))
        cursor = max(cursor, hour + HOUR)
    if cursor < end:
        intervals.append((cursor, end))
    return [(low, high) for low, high in intervals if low < high]


def _within(intervals: list[tuple[datetime, datetime]], field_name: str) -> Q:
    condition = Q(pk__in=[])
    for low, high in intervals:
        condition |= Q(**{f"{field_name}__gte": low, f"{field_name}__lt": high})
    return condition


def _append(connection: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, created: set[str]) -> None:
    connection.register("incoming", rows)
    if table in created:
        connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")
    else:
        connection.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM incoming")
        created.add(table)
    connection.unregister("incoming")


def _version_fields(model: RegisteredModel) -> dict[int, list[FieldSpec]]:
    return {number: parse_schema(schema) for number, schema in model.versions.values_list("number", "input_schema")}


def _hot_predictions(
    connection: duckdb.DuckDBPyConnection, model: RegisteredModel, intervals: list[tuple[datetime, datetime]]
) -> list[str]:
    """Predictions of the hours not archived yet, one temporary table per version (its own columns)."""
    if not intervals:
        return []
    fields = _version_fields(model)
    rows = (
        Prediction.objects.filter(model=model, input__isnull=False)
        .filter(_within(intervals, "at"))
        .values(*format.PREDICTION_ATTRIBUTES, "version__number")
        .iterator(chunk_size=CHUNK_ROWS)
    )
    created: set[str] = set()
    for chunk in chunked(rows, CHUNK_ROWS):
        by_version: dict[int, list[dict[str, Any]]] = {}
        for row in chunk:
            row["version"] = row.pop("version__number")
            by_version.setdefault(row["version"], []).append(row)
        for number, version_rows in by_version.items():
            _append(connection, f"hot_{number}", format.predictions_table(version_rows, fields[number]), created)
    return [f"SELECT * FROM {table}" for table in sorted(created)]


def _batch_rows(
    connection: duckdb.DuckDBPyConnection, model: RegisteredModel, start: datetime, end: datetime
) -> list[str]:
    """Batch runs finished in the window: each input row (first of its entity id) with its score."""
    runs = (
        BatchRun.objects.filter(
            job__model=model, status=BatchRun.Status.SUCCEEDED, finished_at__gte=start, finished_at__lt=end
        )
        .exclude(snapshot="")
        .exclude(version=None)
        .select_related("version")
    )
    sources = []
    for run in runs:
        assert run.version is not None
        fields = parse_schema(run.version.input_schema)
        snapshot = read_rows(
            run.snapshot, 0, run.rows_total, [f.name for f in fields] + [ENTITY_ID_COLUMN, FIRST_ROW_COLUMN]
        )
        connection.register("snapshot", snapshot)
        scores = f"batch_scores_{run.pk}"
        created: set[str] = set()
        values = BatchScore.objects.filter(run=run).values_list("entity_id", "prediction", "probability", "scored_at")
        for chunk in chunked(values.iterator(chunk_size=CHUNK_ROWS), CHUNK_ROWS):
            _append(connection, scores, _scores_table(chunk), created)
        if created:
            present = set(snapshot.column_names)
            features = ", ".join(
                f"TRY_CAST(s.{quote(f.name)} AS {_DUCKDB_TYPES.get(f.type, 'VARCHAR')}) AS {quote(f.name)}"
                for f in fields
                if f.name in present
            )
            table = f"batch_{run.pk}"
            connection.execute(
                f"""CREATE TEMP TABLE {table} AS SELECT {features}{"," if features else ""} c.*,
                    CAST(NULL AS VARCHAR) AS {PREDICTION_ID}, {int(run.version.number)} AS {VERSION},
                    TRUE AS {format.INPUT_KEPT}
                FROM snapshot s JOIN {scores} c ON s.{ENTITY_ID_COLUMN} = c.{ENTITY}
                WHERE s.{FIRST_ROW_COLUMN} < 0"""
            )
            sources.append(f"SELECT * FROM {table}")
            connection.execute(f"DROP TABLE {scores}")
        connection.unregister("snapshot")
    return sources


def _scores_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    return pa.table(
        {
            ENTITY: pa.array([row[0] for row in rows], pa.string()),
            PREDICTION: pa.array([format.label(row[1]) for row in rows], pa.string()),
            NUMBER: pa.array([format.number(row[1]) for row in rows], pa.float64()),
            SCORE: pa.array([row[2] for row in rows], pa.float64()),
            AT: pa.array([row[3] for row in rows], format.TIMESTAMP),
        }
    )


def _actuals(
    connection: duckdb.DuckDBPyConnection,
    model: RegisteredModel,
    start: datetime,
    end: datetime,
    unreadable: list[dict[str, Any]],
) -> None:
    """The view ALL_ACTUALS and the table ACTUAL_BY_ENTITY (the latest actual per entity id).

    Archived actuals stay in their files, which list each hour's rows in prediction id order
    (`monitoring.archiving`), so that each part of `labelled_rows` reads only its own row groups; hot
    ones, read in the same order, go to a temporary table.
    """
    far = max(end, timezone.now()) + HOUR  # no actual is received later than now
    archived, archived_hours = _archived(connection, model, ArchivedHour.Kind.ACTUALS, start, far, unreadable)
    sources = [f"SELECT * FROM {archived} WHERE {format.RECEIVED_AT} >= {literal(start)}"] if archived else []
    rows = (
        Actual.objects.filter(model=model)
        .filter(_within(_uncovered(start, far, archived_hours), "received_at"))
        .order_by("prediction_id", "id")
        .values(*format.ACTUAL_ATTRIBUTES)
        .iterator(chunk_size=CHUNK_ROWS)
    )
    created: set[str] = set()
    for chunk in chunked(rows, CHUNK_ROWS):
        _append(connection, "hot_actuals", format.actuals_table(chunk), created)
    sources += [f"SELECT * FROM {table}" for table in created]
    if not sources:
        connection.register("no_actuals", format.ACTUAL_COLUMNS.empty_table())
        sources = ["SELECT * FROM no_actuals"]
    connection.execute(f"CREATE TEMP VIEW {ALL_ACTUALS} AS " + " UNION ALL BY NAME ".join(sources))
    connection.execute(
        f"""CREATE TEMP TABLE {ACTUAL_BY_ENTITY} AS
        SELECT {ENTITY} AS key, {ACTUAL_LABEL}, {ACTUAL_NUMBER} FROM {ALL_ACTUALS} WHERE {ENTITY} IS NOT NULL
        QUALIFY {_LATEST} = 1"""
    )


# Of several actuals for one key, the one observed last (then received last) counts.
_LATEST = f"row_number() OVER (PARTITION BY key ORDER BY {format.OBSERVED_AT} DESC, {format.RECEIVED_AT} DESC)"


def labelled_rows(window: Window, columns: Iterable[str]) -> str:
    """The table LABELLED_ROWS: the window's rows that have an actual, with `columns` of the window, the
    outputs and the actual (by prediction id, else by entity id; the latest observed per key).

    Made once per window (again only for columns it lacks), so that the performance and fairness
    queries read it instead of each joining the window with its actuals again. The join runs in parts
    of the prediction ids' range, each of about JOIN_PART_ROWS predictions, so that each part's hash
    tables fit in memory. Prediction ids are UUIDv7s, which sort by time: a range of them is a time
    range, which the archive's files and row groups skip by their statistics, on both sides: the
    actuals' files are in prediction id order too. Ids are cut into parts as the text `format` writes
    (canonical: it sorts as the UUIDs' values), so any id falls in the same part on both sides: ids not
    made at their prediction's time (or not UUIDv7s) are joined all the same, only in unevenly sized
    parts. Within a part they are joined as UUIDs: that took 40% less time than joining the text.
    """
    wanted = {column for column in [*columns, PREDICTION, NUMBER, SCORE] if column in window.columns}
    if wanted <= window.labelled:
        return LABELLED_ROWS
    window.labelled = wanted | window.labelled
    selected = ", ".join(f"t.{quote(column)}" for column in sorted(window.labelled))
    window.connection.execute(f"DROP TABLE IF EXISTS {LABELLED_ROWS}")
    # Most models' actuals name their prediction: without an actual by entity id, the window's entity ids
    # are neither read nor joined (at 50M rows, 2 s of a report).
    (by_entity,) = window.connection.execute(f"SELECT count(*) > 0 FROM {ACTUAL_BY_ENTITY}").fetchone() or (False,)
    entity, joined = (
        (
            f", t.{ENTITY} AS __entity",
            f"""SELECT t.* EXCLUDE (__id, __entity),
                CASE WHEN p.key IS NOT NULL THEN p.{ACTUAL_LABEL} ELSE e.{ACTUAL_LABEL} END AS {ACTUAL_LABEL},
                CASE WHEN p.key IS NOT NULL THEN p.{ACTUAL_NUMBER} ELSE e.{ACTUAL_NUMBER} END AS {ACTUAL_NUMBER}
            FROM part t
            LEFT JOIN latest p ON t.__id = p.key
            LEFT JOIN {ACTUAL_BY_ENTITY} e ON t.__entity = e.key
            WHERE p.{ACTUAL_LABEL} IS NOT NULL OR (p.key IS NULL AND e.{ACTUAL_LABEL} IS NOT NULL)""",
        )
        if by_entity
        else (
            "",
            f"""SELECT t.* EXCLUDE (__id), p.{ACTUAL_LABEL}, p.{ACTUAL_NUMBER}
            FROM part t JOIN latest p ON t.__id = p.key WHERE p.{ACTUAL_LABEL} IS NOT NULL""",
        )
    )
    for index, (low, high) in enumerate(_id_ranges(window)):
        ids = [f"{PREDICTION_ID} >= '{low}'"] * (low is not None) + [f"{PREDICTION_ID} < '{high}'"] * (high is not None)
        in_part = " AND ".join(ids) or "TRUE"
        # Batch rows have no prediction id: their entity ids label them.
        where = f"{PREDICTION_ID} IS NULL OR ({in_part})" if low is None else in_part
        rows = f"""WITH part AS MATERIALIZED (
                SELECT {selected}, TRY_CAST(t.{PREDICTION_ID} AS UUID) AS __id{entity}
                FROM {TRAFFIC} t WHERE {where}
            ),
            latest AS (
                SELECT key, {ACTUAL_LABEL}, {ACTUAL_NUMBER}
                FROM (SELECT TRY_CAST({PREDICTION_ID} AS UUID) AS key, * FROM {ALL_ACTUALS} WHERE {in_part})
                WHERE key IS NOT NULL QUALIFY {_LATEST} = 1
            )
            {joined}"""
        window.connection.execute(
            f"CREATE TEMP TABLE {LABELLED_ROWS} AS {rows}" if index == 0 else f"INSERT INTO {LABELLED_ROWS} {rows}"
        )
    return LABELLED_ROWS


def _id_ranges(window: Window) -> list[tuple[str | None, str | None]]:
    """The prediction ids' range in parts of about JOIN_PART_ROWS predictions each (equal lengths of the
    window's time, as the first UUIDv7 of each part's first millisecond), the first and last open-ended."""
    count = max(1, -(-window.rows // JOIN_PART_ROWS))
    step = (window.end - window.start) / count
    cuts: list[str | None] = [str(first_uuid7(window.start + step * index)) for index in range(1, count)]
    return list(zip([None, *cuts], [*cuts, None], strict=True))
