# ruff: noqa: S608 - DuckDB SQL over in-memory Arrow tables: names are quoted by _quoted, values are parameters
"""Hourly summaries of predictions: counts, latency, label coverage and feature histograms per slice.

`summarise_hour` turns one hour of archived predictions (an Arrow table in the layout of
scoring/archive/format.py) into HourlySummary rows, one per version and slice: all traffic ("") and
"column=value" for each of the model's MonitoringConfig.slice_columns (slice expressions need pandas
and are left to reports). DuckDB computes every figure in a few GROUP BY scans; Python only assembles
the aggregated rows. Feature values are counted on the version's SummaryBins, fixed once per version,
so hours merge by adding their counts (monitoring/summary_selectors.py).

Compaction summarises an hour right after archiving it (`summarise_archived_hour`); summarising an hour
again replaces its rows, so a retried or repeated run is harmless, and it is how label coverage is
brought up to date once more actuals have arrived (while the hour's predictions are still hot).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
from django.db import transaction
from django.db.models import Exists, OuterRef, Sum

from monitoring.columnar import quote
from monitoring.models import Actual, HourlySummary, MonitoringConfig, SummaryBins
from registry.choices import FileKind, ModelTask
from registry.loading import verified_path
from registry.models import ModelVersion, RegisteredModel
from registry.schema import FieldSpec, parse_schema
from registry.tables import read_table
from scoring.archive import format as archive_format
from scoring.archive import store
from scoring.models import ArchivedHour, Prediction, ScoringStats
from scoring.recorder import BUCKETS

NUMERICAL, CATEGORICAL = "numerical", "categorical"
NUMERICAL_TYPES = frozenset({"float", "integer"})
CATEGORICAL_TYPES = frozenset({"boolean", "string", "category"})  # datetime and binary text is not binned
# Quantile edges of the reference: 20 bins inside its range, one below and one at or above its maximum.
QUANTILE_BINS = 20
# Categorical features keep counts of the reference's most frequent values and of all others together.
TOP_VALUES = 20
MISSING_BIN = -1

_SLICE = "__slice"
_HAS_ACTUAL = "__has_actual"


# --- bins -------------------------------------------------------------------------------------------


def _binned_fields(version: ModelVersion) -> list[FieldSpec]:
    return [f for f in parse_schema(version.input_schema) if f.type in NUMERICAL_TYPES | CATEGORICAL_TYPES]


def _derive_bins(connection: duckdb.DuckDBPyConnection, relation: str, fields: list[FieldSpec]) -> dict[str, Any]:
    """Bins of each field from the rows of `relation` (a name registered on the connection)."""
    available = {row[0] for row in connection.execute(f"DESCRIBE {relation}").fetchall()}
    bins: dict[str, Any] = {}
    quantiles = [index / QUANTILE_BINS for index in range(QUANTILE_BINS + 1)]
    for field in fields:
        if field.name not in available:
            continue
        column = quote(field.name)
        if field.type in NUMERICAL_TYPES:
            value = f"TRY_CAST({column} AS DOUBLE)"
            found = connection.execute(
                f"SELECT quantile_cont({value}, ?::DOUBLE[]) FROM {relation} WHERE NOT isnan({value})", [quantiles]
            ).fetchone()
            edges = sorted(set(found[0] or [])) if found else []
            bins[field.name] = {"kind": NUMERICAL, "edges": edges}
        else:
            rows = connection.execute(
                f"SELECT CAST({column} AS VARCHAR) AS value, count(*) AS n FROM {relation} "
                f"WHERE {column} IS NOT NULL GROUP BY value ORDER BY n DESC, value LIMIT {TOP_VALUES}"
            ).fetchall()
            bins[field.name] = {"kind": CATEGORICAL, "values": [row[0] for row in rows]}
    return bins


def summary_bins(version: ModelVersion, hour_table: pa.Table) -> SummaryBins:
    """The version's bins: stored ones, else derived from its reference data (or, without any, from
    `hour_table`, the first hour summarised) and stored for every later hour."""
    found = SummaryBins.objects.filter(version=version).first()
    if found is not None:
        return found
    fields = _binned_fields(version)
    reference_file = version.files.filter(kind=FileKind.REFERENCE_DATA).first()
    connection = duckdb.connect()
    if reference_file is not None:
        reference: pd.DataFrame | pa.Table = read_table(verified_path(reference_file))
        source = SummaryBins.Source.REFERENCE
    else:
        reference, source = hour_table, SummaryBins.Source.TRAFFIC
    connection.register("reference", reference)
    features = _derive_bins(connection, "reference", fields)
    # Two summarisers of a new version's first hours: the first to insert wins, the other reads its bins.
    bins, _ = SummaryBins.objects.get_or_create(version=version, defaults={"source": source, "features": features})
    return bins


def _bin_expression(column: str, spec: dict[str, Any], params: list[Any]) -> str:
    """SQL giving each value its bin's index (MISSING_BIN for a missing value); appends its parameters."""
    if spec["kind"] == NUMERICAL:
        value = f"TRY_CAST({quote(column)} AS DOUBLE)"
        cases = [f"WHEN {value} IS NULL OR isnan({value}) THEN {MISSING_BIN}"]
        for index, edge in enumerate(spec["edges"]):
            cases.append(f"WHEN {value} < ?::DOUBLE THEN {index}")
            params.append(edge)
        return f"CASE {' '.join(cases)} ELSE {len(spec['edges'])} END"
    value = f"CAST({quote(column)} AS VARCHAR)"
    cases = [f"WHEN {value} IS NULL THEN {MISSING_BIN}"]
    for index, category in enumerate(spec["values"]):
        cases.append(f"WHEN {value} = ? THEN {index}")
        params.append(category)
    return f"CASE {' '.join(cases)} ELSE {len(spec['values'])} END"


def bin_count(spec: dict[str, Any]) -> int:
    """Bins of a feature: below, between and from the last edge; or each kept value and "other"."""
    return len(spec["edges"]) + 1 if spec["kind"] == NUMERICAL else len(spec["values"]) + 1


# --- summarising ------------------------------------------------------------------------------------


def _latency_bucket() -> str:
    """scoring.recorder's bucket: the first whose upper bound is at least the latency."""
    latency = archive_format.LATENCY_MS
    cases = " ".join(f"WHEN {latency} <= {bound}::DOUBLE THEN {index}" for index, bound in enumerate(BUCKETS))
    return f"CASE {cases} ELSE {len(BUCKETS)} END"


def _prepare(
    connection: duckdb.DuckDBPyConnection, table: pa.Table, actuals: pa.Table | None, slice_columns: list[str]
) -> None:
    """Register the hour as `sliced`: every row once with slice "", and again under each slice it is in."""
    connection.register("hour_table", table)
    has_actual = "FALSE"
    if actuals is not None and actuals.num_rows:
        connection.register("actuals", actuals)
        prediction_id, entity = archive_format.ID, archive_format.ENTITY
        # Set-based: DuckDB hashes the actuals' keys; by prediction id, else by entity id.
        has_actual = (
            f"({prediction_id} IN (SELECT {prediction_id} FROM actuals WHERE {prediction_id} IS NOT NULL) "
            f"OR {entity} IN (SELECT {entity} FROM actuals WHERE {entity} IS NOT NULL))"
        )
    connection.execute(f"CREATE TEMP VIEW base AS SELECT *, {has_actual} AS {_HAS_ACTUAL} FROM hour_table")
    parts = [f"SELECT '' AS {_SLICE}, * FROM base"]
    for column in slice_columns:
        name = column.replace("'", "''")
        quoted = quote(column)
        parts.append(
            f"SELECT '{name}=' || CAST({quoted} AS VARCHAR) AS {_SLICE}, * FROM base WHERE {quoted} IS NOT NULL"
        )
    connection.execute(f"CREATE TEMP VIEW sliced AS {' UNION ALL '.join(parts)}")


_TOTALS = (
    "rows",
    "latency_sum_ms",
    "rows_with_actuals",
    "prediction_count",
    "prediction_sum",
    "prediction_sum_squares",
    "score_count",
    "score_sum",
)


def _totals(connection: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (slice, version number): the HourlySummary fields named in _TOTALS, in that order."""
    f = archive_format
    rows = connection.execute(
        f"""
        SELECT {_SLICE}, {f.VERSION}, count(*), coalesce(sum({f.LATENCY_MS}), 0)::DOUBLE,
               count(*) FILTER (WHERE {_HAS_ACTUAL}),
               count({f.NUMBER}), sum({f.NUMBER}), sum({f.NUMBER} * {f.NUMBER}),
               count({f.SCORE}), sum({f.SCORE})
        FROM sliced GROUP BY ALL
        """
    ).fetchall()
    return {(row[0], row[1]): dict(zip(_TOTALS, row[2:], strict=True)) for row in rows}


def _latency_histograms(connection: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], list[int]]:
    histograms: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
    rows = connection.execute(
        f"SELECT {_SLICE}, {archive_format.VERSION}, {_latency_bucket()} AS bucket, count(*) FROM sliced "
        f"WHERE {archive_format.LATENCY_MS} IS NOT NULL GROUP BY ALL"
    ).fetchall()
    for slice_name, number, bucket, count in rows:
        histograms[(slice_name, number)][bucket] = count
    return histograms


def _predicted_labels(connection: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], dict[str, int]]:
    labels: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
    rows = connection.execute(
        f"SELECT {_SLICE}, {archive_format.VERSION}, {archive_format.PREDICTION}, count(*) FROM sliced "
        f"WHERE {archive_format.PREDICTION} IS NOT NULL GROUP BY ALL"
    ).fetchall()
    for slice_name, number, label, count in rows:
        labels[(slice_name, number)][label] = count
    return labels


def _feature_counts(
    connection: duckdb.DuckDBPyConnection, number: int, bins: dict[str, Any], columns: set[str]
) -> dict[str, dict[str, Any]]:
    """Per slice of one version: {feature: {"counts": [...], "missing": n}}, in one scan and one GROUP BY."""
    features = [name for name in bins if name in columns]
    if not features:
        return {}
    params: list[Any] = []
    binned = ", ".join(
        f"{_bin_expression(name, bins[name], params)} AS f{index}" for index, name in enumerate(features)
    )
    kept = f"AND {archive_format.INPUT_KEPT}" if archive_format.INPUT_KEPT in columns else ""
    rows = connection.execute(
        f"""
        WITH binned AS (SELECT {_SLICE}, {binned} FROM sliced WHERE {archive_format.VERSION} = {int(number)} {kept})
        SELECT {_SLICE}, feature, bin, count(*) FROM (UNPIVOT binned ON COLUMNS(* EXCLUDE ({_SLICE}))
                                                      INTO NAME feature VALUE bin)
        GROUP BY ALL
        """,
        params,
    ).fetchall()
    per_slice: dict[str, dict[str, Any]] = defaultdict(
        lambda: {name: {"counts": [0] * bin_count(bins[name]), "missing": 0} for name in features}
    )
    for slice_name, alias, index, count in rows:
        counted = per_slice[slice_name][features[int(alias[1:])]]
        if index == MISSING_BIN:
            counted["missing"] = count
        else:
            counted["counts"][index] = count
    return dict(per_slice)


def summarise_hour(model_id: int, hour: datetime, table: pa.Table, actuals: pa.Table | None = None) -> int:
    """Compute and store the summaries of one hour of a model's predictions; returns the rows stored.

    `table` holds the hour's predictions in the archive's layout (one or several versions); `actuals`,
    if given, the actuals known so far (at least the archive's prediction id and entity id columns), for
    label coverage. Running it again for the same hour and table stores the same rows.
    """
    hour = hour.replace(minute=0, second=0, microsecond=0)
    model = RegisteredModel.objects.get(pk=model_id)
    config = MonitoringConfig.objects.filter(model=model).first()
    columns = set(table.column_names)
    slice_columns = [column for column in (config.slice_columns if config else []) if column in columns]
    connection = duckdb.connect()
    _prepare(connection, table, actuals, slice_columns)
    totals = _totals(connection)
    numbers = sorted({number for _, number in totals})
    versions = {v.number: v for v in ModelVersion.objects.filter(model=model, number__in=numbers)}
    latency = _latency_histograms(connection)
    labels = _predicted_labels(connection) if model.task == ModelTask.CLASSIFICATION else {}
    bins = {number: summary_bins(version, table) for number, version in versions.items()}
    features = {number: _feature_counts(connection, number, bins[number].features, columns) for number in versions}
    for number, version_bins in bins.items():
        _record_labels(version_bins, {label for (_, n), counts in labels.items() if n == number for label in counts})
    errors = dict(
        ScoringStats.objects.filter(version__in=versions.values(), start__gte=hour, start__lt=hour + timedelta(hours=1))
        .exclude(granularity=ScoringStats.Granularity.DAY)
        .values_list("version__number")
        .annotate(errors=Sum("errors"))
    )
    regression = model.task == ModelTask.REGRESSION
    summaries = []
    for (slice_name, number), figures in totals.items():
        if number not in versions:
            continue  # a version deleted since: nothing to attach its rows to
        if not regression:
            figures["prediction_sum"] = figures["prediction_sum_squares"] = None
        summaries.append(
            HourlySummary(
                model=model,
                version=versions[number],
                slice=slice_name,
                hour=hour,
                errors=errors.get(number, 0) if slice_name == "" else None,
                latency_histogram=latency[(slice_name, number)],
                predictions=labels.get((slice_name, number), {}),
                features=features[number].get(slice_name, {}),
                **figures,
            )
        )
    _store(model, hour, list(versions.values()), summaries)
    return len(summaries)


def _record_labels(bins: SummaryBins, labels: set[str]) -> None:
    """Add labels the version predicted for the first time to its list (read by trends)."""
    if labels <= set(bins.labels):
        return
    with transaction.atomic():
        locked = SummaryBins.objects.select_for_update().get(pk=bins.pk)
        locked.labels = sorted(set(locked.labels) | labels)
        locked.save(update_fields=["labels"])


def _store(
    model: RegisteredModel, hour: datetime, versions: list[ModelVersion], summaries: list[HourlySummary]
) -> None:
    """Upsert the hour's rows and drop any of its slices the new computation no longer has."""
    updated = [
        field.name
        for field in HourlySummary._meta.concrete_fields
        if field.name not in {"id", "model", "version", "slice", "hour"}
    ]
    with transaction.atomic():
        HourlySummary.objects.bulk_create(
            summaries,
            update_conflicts=True,
            unique_fields=["model", "version", "slice", "hour"],
            update_fields=updated,
        )
        for version in versions:
            kept = [summary.slice for summary in summaries if summary.version_id == version.pk]
            HourlySummary.objects.filter(model=model, version=version, hour=hour).exclude(slice__in=kept).delete()


def _known_actuals(model_id: int, hour: datetime) -> pa.Table:
    """Keys of the actuals stored for the hour's hot predictions: the database joins them (by prediction
    id, then by entity id), so only the keys that match come back, never the hour's ids as a list."""
    predictions = Prediction.objects.filter(model_id=model_id, at__gte=hour, at__lt=hour + timedelta(hours=1))
    actuals = Actual.objects.filter(model_id=model_id)
    by_prediction = actuals.filter(prediction_id__in=predictions.values("id")).values_list("prediction_id", flat=True)
    by_entity = actuals.filter(entity_id__in=predictions.exclude(entity_id="").values("entity_id")).values_list(
        "entity_id", flat=True
    )
    prediction_ids = [str(value) for value in by_prediction.iterator(chunk_size=10_000)]
    entities = list(by_entity.iterator(chunk_size=10_000))
    return pa.table(
        {
            archive_format.ID: pa.array(prediction_ids + [None] * len(entities), pa.string()),
            archive_format.ENTITY: pa.array([None] * len(prediction_ids) + entities, pa.string()),
        }
    )


SUMMARISE_PAGE = 100


def summarise_archived_hours() -> int:
    """Summarise every archived hour of predictions whose summaries are missing or older than its files
    (archived again after late rows); returns how many hours. Beat runs it after compaction: the archive
    (scoring) cannot call monitoring, so monitoring looks for what is new."""
    fresh = HourlySummary.objects.filter(
        model_id=OuterRef("model_id"), hour=OuterRef("hour"), computed_at__gte=OuterRef("archived_at")
    )
    pending = ArchivedHour.objects.filter(kind=ArchivedHour.Kind.PREDICTIONS, rows__gt=0).exclude(Exists(fresh))
    done, last = 0, 0
    # A page at a time, read before writing (on SQLite a cursor left open across the writes ends in
    # "database is locked"), after the last entry seen: an hour that leaves no summary is not asked again.
    while batch := list(pending.filter(pk__gt=last).order_by("pk")[:SUMMARISE_PAGE]):
        for entry in batch:
            summarise_archived_hour(entry)
        done += len(batch)
        last = batch[-1].pk
    return done


def summarise_archived_hour(entry: ArchivedHour) -> int:
    """Summarise an archived hour of predictions from its files (compaction calls it after archiving)."""
    if entry.kind != ArchivedHour.Kind.PREDICTIONS or not entry.files:
        return 0
    actuals = _known_actuals(entry.model_id, entry.hour)
    # One call per file: a file is one version's rows, with that version's columns.
    return sum(summarise_hour(entry.model_id, entry.hour, store.read(file["path"]), actuals) for file in entry.files)
