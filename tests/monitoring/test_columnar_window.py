"""The window as DuckDB views: archived hours, hot rows of the hours not archived, actuals joined in SQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from monitoring import columnar, reports
from monitoring.columnar import ACTUAL_LABEL, PREDICTION_ID, open_window
from monitoring.models import Actual, MonitoringConfig, Report
from registry.models import ModelVersion
from registry.schema import parse_schema
from scoring.archive import format, store
from scoring.ids import uuid7
from scoring.models import ArchivedHour, BatchRun, Prediction
from tests.scoring.batch_support import customer_table, nightly_job, run_now, use_input_dir, write_input


def predictions(version: ModelVersion, at: Any, count: int, prefix: str) -> list[Prediction]:
    return Prediction.objects.bulk_create(
        Prediction(
            id=uuid7(at + timedelta(seconds=index)),  # as the recorder makes them: sorting by time
            model=version.model,
            version=version,
            at=at + timedelta(seconds=index),
            entity_id=f"{prefix}{index}",
            input={"tenure": index % 70, "charges": 20.0 + index, "contract": "monthly" if index % 2 else "yearly"},
            input_sha256="x" * 64,
            output=index % 2,
            probabilities=[0.4, 0.6] if index % 2 else [0.7, 0.3],
            latency_ms=1.0,
        )
        for index in range(count)
    )


def archive(version: ModelVersion, hour: Any, rows: list[Prediction]) -> None:
    values = [
        {**value, "version": version.number}
        for value in Prediction.objects.filter(pk__in=[row.pk for row in rows]).values()
    ]
    table = format.predictions_table(values, parse_schema(version.input_schema))
    path = store.hour_path("predictions", version.model_id, hour, version.number)
    size = store.write(path, table)
    ArchivedHour.objects.create(
        model=version.model,
        kind="predictions",
        hour=hour,
        rows=len(values),
        bytes=size,
        files=[{"path": path, "version": version.number, "rows": len(values), "bytes": size}],
    )


@pytest.mark.parametrize("part_rows", [columnar.JOIN_PART_ROWS, 10], ids=["one join", "joined in parts"])
def test_the_window_holds_archived_and_hot_rows_and_reports_unreadable_files(
    production: ModelVersion, part_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(columnar, "JOIN_PART_ROWS", part_rows)
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    archived_hour, corrupt_hour, hot_hour = now - timedelta(hours=3), now - timedelta(hours=2), now - timedelta(hours=1)
    in_archive = predictions(production, archived_hour, 40, "a")
    archive(production, archived_hour, in_archive[:30])  # the file is what counts once the hour is listed
    path = store.hour_path("predictions", production.model_id, corrupt_hour, production.number)
    (Path(settings.MF_ARCHIVE_URL) / path).parent.mkdir(parents=True, exist_ok=True)
    (Path(settings.MF_ARCHIVE_URL) / path).write_bytes(b"not parquet at all")
    ArchivedHour.objects.create(
        model=production.model,
        kind="predictions",
        hour=corrupt_hour,
        rows=7,
        files=[{"path": path, "version": production.number, "rows": 7, "bytes": 18}],
    )
    predictions(production, corrupt_hour, 7, "lost")  # hot rows of a listed hour are not read twice
    hot = predictions(production, hot_hour, 25, "h")

    # Actuals: by prediction id beats by entity id; entity ids label predictions without their own actual.
    Actual.objects.create(model=production.model, prediction_id=in_archive[0].pk, value=1)
    Actual.objects.create(model=production.model, entity_id="a0", value=0)
    Actual.objects.create(model=production.model, entity_id="h3", value=1)
    archived_actuals = format.actuals_table(
        [
            {
                "id": 999,
                "model_id": production.model_id,
                "prediction_id": str(hot[5].pk),
                "entity_id": "",
                "value": 0,
                "observed_at": hot_hour,
                "received_at": hot_hour + timedelta(minutes=5),
            },
            {  # received before, archived, pruned, then received again: the one observed last counts
                "id": 998,
                "model_id": production.model_id,
                "prediction_id": str(in_archive[0].pk),
                "entity_id": "",
                "value": 0,
                "observed_at": hot_hour - timedelta(days=1),
                "received_at": hot_hour + timedelta(minutes=5),
            },
        ]
    )
    actuals_path = store.hour_path("actuals", production.model_id, hot_hour)
    store.write(actuals_path, archived_actuals)
    ArchivedHour.objects.create(
        model=production.model,
        kind="actuals",
        hour=hot_hour,
        rows=2,
        files=[{"path": actuals_path, "version": None, "rows": 2, "bytes": 1}],
    )

    with open_window(production.model, now - timedelta(hours=4), now) as window:
        assert window.rows == 30 + 25
        assert window.versions == {production.number: 55}
        assert [(u["path"], u["rows"]) for u in window.unreadable] == [(path, 7)]
        sample = window.sample(["tenure", "charges"], 10)
        # The joined rows performance and fairness read: made once, again only for columns they lack.
        table = columnar.labelled_rows(window, [PREDICTION_ID, "tenure"])
        labels = dict(window.connection.execute(f"SELECT {PREDICTION_ID}, {ACTUAL_LABEL} FROM {table}").fetchall())
        assert columnar.labelled_rows(window, ["tenure"]) == table and window.labelled >= {"tenure"}
        columnar.labelled_rows(window, ["charges"])
        joined = window.query(f"SELECT tenure, charges, {ACTUAL_LABEL} FROM {table}")
    assert labels == {str(in_archive[0].pk): "1", str(hot[3].pk): "1", str(hot[5].pk): "0"}
    assert len(joined) == 3 and sorted(joined[ACTUAL_LABEL]) == ["0", "1", "1"]
    assert len(sample) == 10 and set(sample.columns) == {"tenure", "charges"}


def test_a_report_lists_unreadable_files_and_computes_on_the_rest(traffic: list[str], production: ModelVersion) -> None:
    hour = (timezone.now() - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    ArchivedHour.objects.create(
        model=production.model,
        kind="predictions",
        hour=hour,
        rows=12,
        files=[{"path": f"predictions/model=1/missing-{uuid.uuid4().hex}.parquet", "version": 1, "rows": 12}],
    )
    now = timezone.now()
    report = Report.objects.create(
        model=production.model, window_start=now - timedelta(hours=3), window_end=now + timedelta(minutes=1)
    )
    done = reports.compute(report_id=report.pk)
    assert done is not None and done.status == Report.Status.DONE, done and done.error
    assert done.rows_current == 300 and done.rows_with_actuals == 300
    assert done.results["incomplete"] is True
    assert [entry["rows"] for entry in done.results["unreadable"]] == [12]
    assert columnar.TRAFFIC == "traffic"


def test_batch_runs_join_the_window_with_their_scores_and_entity_actuals(
    production: ModelVersion, author: Any, settings: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    frame = customer_table(25)
    frame.loc[24, "customer_id"] = "c3"  # a repeated entity id is rejected, not scored: it is not in the window
    write_input(use_input_dir(settings, tmp_path), frame)
    run = run_now(nightly_job(production.model, author), author, django_capture_on_commit_callbacks)
    assert run.status == BatchRun.Status.SUCCEEDED, run.error
    Actual.objects.create(model=production.model, entity_id="c7", value=1)

    now = timezone.now()
    with open_window(production.model, now - timedelta(hours=1), now + timedelta(minutes=1)) as window:
        rows = window.query(
            f"SELECT {columnar.ENTITY}, tenure, charges, contract, {columnar.PREDICTION}, {columnar.SCORE}, "
            f"{columnar.VERSION} FROM {columnar.TRAFFIC} ORDER BY {columnar.ENTITY}"
        )
        table = columnar.labelled_rows(window, [columnar.ENTITY])
        labelled = dict(window.connection.execute(f"SELECT {columnar.ENTITY}, {ACTUAL_LABEL} FROM {table}").fetchall())
    assert window.rows == 24 and sorted(rows[columnar.ENTITY]) == sorted(frame["customer_id"][:24])
    scores = {score.entity_id: score for score in run.scores.all()}
    first = rows.set_index(columnar.ENTITY).loc["c0"]
    assert first["tenure"] == frame.loc[0, "tenure"] and first["contract"] == frame.loc[0, "contract"]
    assert first[columnar.PREDICTION] == format.label(scores["c0"].prediction)
    assert first[columnar.SCORE] == scores["c0"].probability and first[columnar.VERSION] == production.number
    assert labelled == {"c7": "1"}


def test_a_trailing_baseline_is_a_bounded_sample_of_the_earlier_traffic(
    traffic: list[str], production: ModelVersion, monkeypatch: Any
) -> None:
    monkeypatch.setattr(reports, "TRAILING_SAMPLE_ROWS", 100)
    predictions(production, timezone.now() - timedelta(days=2), 150, "before")
    MonitoringConfig.objects.update_or_create(model=production.model, defaults={"baseline": "trailing"})
    now = timezone.now()
    report = Report.objects.create(
        model=production.model, window_start=now - timedelta(hours=1), window_end=now + timedelta(minutes=1)
    )
    done = reports.compute(report_id=report.pk)
    assert done is not None and done.status == Report.Status.DONE, done and done.error
    baseline = done.results["baseline"]
    assert (baseline["kind"], baseline["rows"], done.rows_reference) == ("trailing", 100, 100)
    assert "a random sample of 100 of their 150 rows" in baseline["description"]
    assert done.results["dataset"]["columns"]["charges"]["drifted"] is True  # 420 is far above the earlier charges
    assert done.results["prediction_drift"]["test"]
