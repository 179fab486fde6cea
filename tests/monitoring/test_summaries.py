"""Hourly summaries: DuckDB's figures equal pandas' on the same rows, re-running changes nothing, and hours
merged equal the union summarised at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from monitoring.models import HourlySummary, MonitoringConfig, SummaryBins
from monitoring.summaries import summarise_archived_hour, summarise_archived_hours, summarise_hour
from monitoring.summary_selectors import summary_over, summary_trend
from registry.models import ModelVersion
from registry.schema import parse_schema
from scoring.archive import compaction, lifecycle, store
from scoring.archive import format as archive_format
from scoring.models import ArchivedHour, Prediction
from scoring.recorder import BUCKETS
from tests.conftest import customers

HOUR = datetime(2026, 11, 2, 10, tzinfo=UTC)


def hour_table(version: ModelVersion, hour: datetime, n: int = 400, seed: int = 1) -> pa.Table:
    """`n` logged predictions of the hour: some inputs with missing values, some kept only as a hash."""
    rng = np.random.default_rng(seed)
    inputs = customers(n, seed=seed).astype(object)
    inputs.loc[rng.random(n) < 0.1, "charges"] = None
    inputs.loc[rng.random(n) < 0.05, "contract"] = None
    inputs.loc[rng.random(n) < 0.02, "contract"] = "two-year"  # a value the reference never had
    scores = rng.random(n)
    rows = [
        {
            "id": uuid.uuid4(),
            "at": hour + timedelta(seconds=int(rng.integers(0, 3600))),
            "model_id": version.model_id,
            "version_id": version.pk,
            "version": version.number,
            "entity_id": f"e{seed}-{i}",
            "input": None if i % 25 == 0 else {k: v for k, v in inputs.iloc[i].items() if v is not None},
            "input_sha256": "0" * 64,
            "output": int(scores[i] > 0.6),
            "probabilities": [1 - scores[i], scores[i]],
            "latency_ms": float(rng.choice([0.3, 1.5, 7.0, 42.0, 900.0, 8000.0])),
        }
        for i in range(n)
    ]
    return archive_format.predictions_table(rows, parse_schema(version.input_schema))


@pytest.fixture
def sliced(production: ModelVersion) -> ModelVersion:
    MonitoringConfig.objects.create(model=production.model, slice_columns=["contract"])
    return production


def _expected(frame: pd.DataFrame, bins: dict[str, Any]) -> dict[str, Any]:
    """The summary's figures computed by pandas and numpy, row by row semantics spelled out."""
    kept = frame[frame[archive_format.INPUT_KEPT]]
    features = {}
    for name, spec in bins.items():
        values = kept[name]
        if spec["kind"] == "numerical":
            present = values.dropna().astype(float)
            # bin i holds edges[i-1] <= v < edges[i]: the number of edges at or below the value
            index = np.searchsorted(np.asarray(spec["edges"]), present.to_numpy(), side="right")
            counts = np.bincount(index, minlength=len(spec["edges"]) + 1).tolist()
        else:
            positions = {value: position for position, value in enumerate(spec["values"])}
            # a value not kept counts as "other", the last bin
            index = values.dropna().astype(str).map(positions).fillna(len(positions)).to_numpy(dtype=int)
            counts = np.bincount(index, minlength=len(positions) + 1).tolist()
        features[name] = {"counts": counts, "missing": int(values.isna().sum())}
    latency = frame[archive_format.LATENCY_MS].to_numpy()
    return {
        "rows": len(frame),
        "latency_sum_ms": pytest.approx(float(latency.sum())),
        "latency_histogram": np.bincount(
            np.searchsorted(BUCKETS, latency, side="left"), minlength=len(BUCKETS) + 1
        ).tolist(),
        "predictions": frame[archive_format.PREDICTION].value_counts().to_dict(),
        "score_count": int(frame[archive_format.SCORE].notna().sum()),
        "score_sum": pytest.approx(float(frame[archive_format.SCORE].sum())),
        "features": features,
    }


def _stored(summary: HourlySummary) -> dict[str, Any]:
    return {
        "rows": summary.rows,
        "latency_sum_ms": summary.latency_sum_ms,
        "latency_histogram": summary.latency_histogram,
        "predictions": summary.predictions,
        "score_count": summary.score_count,
        "score_sum": summary.score_sum,
        "features": summary.features,
    }


def test_it_equals_pandas_for_all_traffic_and_each_slice(sliced: ModelVersion) -> None:
    table = hour_table(sliced, HOUR)

    stored = summarise_hour(sliced.model_id, HOUR, table)

    frame = table.to_pandas()
    bins = SummaryBins.objects.get(version=sliced)
    assert bins.source == SummaryBins.Source.REFERENCE and set(bins.features) == {"tenure", "charges", "contract"}
    reference = customers()  # the registered reference data
    quantiles = np.quantile(reference["charges"], np.linspace(0, 1, 21))
    assert bins.features["charges"]["edges"] == pytest.approx(sorted(set(quantiles)))
    assert set(bins.features["contract"]["values"]) == {"monthly", "yearly"}
    slices = {
        "": frame,
        "contract=monthly": frame[frame["contract"] == "monthly"],
        "contract=yearly": frame[frame["contract"] == "yearly"],
        "contract=two-year": frame[frame["contract"] == "two-year"],
    }
    summaries = {s.slice: s for s in HourlySummary.objects.filter(model=sliced.model, hour=HOUR)}
    assert stored == len(summaries) and set(summaries) == set(slices)
    for name, rows in slices.items():
        assert _stored(summaries[name]) == _expected(rows, bins.features), name
    assert summaries[""].errors == 0 and summaries["contract=monthly"].errors is None
    assert summaries[""].features["contract"]["counts"][-1] == (frame["contract"] == "two-year").sum()  # "other"


def test_label_coverage_counts_actuals_by_prediction_id_else_entity(sliced: ModelVersion) -> None:
    table = hour_table(sliced, HOUR, n=100)
    ids, entities = table[archive_format.ID].to_pylist(), table[archive_format.ENTITY].to_pylist()
    actuals = pa.table(
        {
            archive_format.ID: pa.array(ids[:30] + [None] * 20 + [str(uuid.uuid4())], pa.string()),
            archive_format.ENTITY: pa.array([None] * 30 + entities[20:40] + ["someone else"], pa.string()),
        }
    )

    summarise_hour(sliced.model_id, HOUR, table, actuals)

    assert HourlySummary.objects.get(slice="", hour=HOUR).rows_with_actuals == 40  # 0-29 by id, 30-39 by entity


def test_summarising_again_replaces_the_hour(sliced: ModelVersion) -> None:
    table = hour_table(sliced, HOUR)
    summarise_hour(sliced.model_id, HOUR, table)
    first = {s.slice: _stored(s) for s in HourlySummary.objects.all()}

    summarise_hour(sliced.model_id, HOUR, table)

    assert {s.slice: _stored(s) for s in HourlySummary.objects.all()} == first
    # An hour whose rows changed (say, rewritten by a repeated compaction) loses the slices it no longer has.
    monthly = table.filter(pa.compute.equal(table["contract"], "monthly"))
    summarise_hour(sliced.model_id, HOUR, monthly)
    assert set(HourlySummary.objects.values_list("slice", flat=True)) == {"", "contract=monthly"}


def test_merged_hours_equal_the_union_summarised_at_once(sliced: ModelVersion) -> None:
    first, second = hour_table(sliced, HOUR, seed=1), hour_table(sliced, HOUR + timedelta(hours=1), seed=2)
    summarise_hour(sliced.model_id, HOUR, first)
    summarise_hour(sliced.model_id, HOUR + timedelta(hours=1), second)
    elsewhere = HOUR + timedelta(days=3)  # the union as one hour, far from the others
    summarise_hour(sliced.model_id, elsewhere, pa.concat_tables([first, second]))

    for slice_name in ("", "contract=monthly"):
        merged = summary_over(model=sliced.model, start=HOUR, end=HOUR + timedelta(hours=2), slice=slice_name)
        union = summary_over(model=sliced.model, start=elsewhere, end=elsewhere + timedelta(hours=1), slice=slice_name)
        assert merged.hours == 2 and union.hours == 1
        merged.hours = union.hours
        assert merged.score_sum == pytest.approx(union.score_sum)
        assert merged.latency_sum_ms == pytest.approx(union.latency_sum_ms)
        merged.score_sum, merged.latency_sum_ms = union.score_sum, union.latency_sum_ms
        assert merged == union
        assert merged.features_version == sliced.number and merged.features["charges"].edges


def test_trend_points_per_day_add_up_to_the_range(sliced: ModelVersion) -> None:
    hours = [HOUR, HOUR + timedelta(hours=5), HOUR + timedelta(days=1)]
    for seed, hour in enumerate(hours):
        summarise_hour(sliced.model_id, hour, hour_table(sliced, hour, n=50, seed=seed))

    days = summary_trend(model=sliced.model, start=HOUR, end=HOUR + timedelta(days=2))

    assert [(point.start, point.summary.rows) for point in days] == [
        (HOUR.replace(hour=0), 100),
        (HOUR.replace(hour=0) + timedelta(days=1), 50),
    ]
    per_hour = summary_trend(model=sliced.model, start=HOUR, end=HOUR + timedelta(days=2), period="hour")
    assert [point.start for point in per_hour] == hours


def test_an_archived_hour_is_summarised_from_its_files_with_the_actuals_known(
    sliced: ModelVersion, traffic: list[str]
) -> None:
    hour = HOUR
    Prediction.objects.filter(model=sliced.model).update(at=hour + timedelta(minutes=30))
    logged = list(Prediction.objects.filter(model=sliced.model).values())
    rows = [{**row, "version": sliced.number} for row in logged]
    path = store.hour_path(store.PREDICTIONS, sliced.model_id, hour, sliced.number)
    size = store.write(path, archive_format.predictions_table(rows, parse_schema(sliced.input_schema)))
    entry = ArchivedHour.objects.create(
        model=sliced.model,
        kind=ArchivedHour.Kind.PREDICTIONS,
        hour=hour,
        rows=len(rows),
        bytes=size,
        files=[{"path": path, "version": sliced.number, "rows": len(rows), "bytes": size}],
    )

    assert summarise_archived_hour(entry) == 3  # all traffic, monthly, yearly

    whole = HourlySummary.objects.get(slice="", hour=hour)
    assert (whole.rows, whole.rows_with_actuals) == (300, 300)
    assert whole.errors == 0 and sum(whole.latency_histogram) == 300


def test_beat_summarises_each_hour_compaction_archived_once_and_again_after_late_rows(
    sliced: ModelVersion, traffic: list[str]
) -> None:
    Prediction.objects.filter(model=sliced.model).update(at=HOUR + timedelta(minutes=30))
    compaction.compact(now=HOUR + timedelta(hours=3))

    assert summarise_archived_hours() == 1
    assert HourlySummary.objects.get(slice="", hour=HOUR).rows == 300
    assert summarise_archived_hours() == 0  # nothing new

    # A late row: the hour is archived again, so its summaries are older than its files.
    late = Prediction.objects.filter(model=sliced.model).first()
    assert late is not None
    late.pk = uuid.uuid4()
    late.save(force_insert=True)
    ArchivedHour.objects.filter(hour=HOUR).update(archived_at=HOUR)  # listed long ago
    lifecycle.hour_archive(compaction.PREDICTIONS, model_id=sliced.model_id, hour=HOUR)

    assert summarise_archived_hours() == 1
    assert HourlySummary.objects.get(slice="", hour=HOUR).rows == 301
