"""Monitoring at production volume (issue 14): reports over 1M to 50M logged predictions, time and peak memory.

A fresh Model Factory on PostgreSQL (a database created for the run and dropped after it). A scikit-learn
pipeline over 25 features plus a `segment` column of 20 values (the slices) is registered and put in
production through the product's services. Then:

1. **Traffic through the product's own path.** `--base-rows` predictions (default 1,000,000) spread over one
   7-day window are logged by `scoring.recorder` (the code real-time scoring calls), inputs kept in full;
   half of them get an actual through `monitoring.services.actuals_ingest` (the API's service). Some
   segments drift, by amounts near Evidently's thresholds (benchmarks/drift.py's generator).
2. **Compaction** into the Parquet archive, timed; storage per archived prediction from the manifest.
   The actuals are archived as the run an hour later would (they were all posted in the hour still open,
   which a report would otherwise read from the database, at about 50 µs a row).
3. **Larger windows.** For each larger size, a model of its own (same artifact) gets the base window's
   archive files replicated k times per hour (each copy's ids new UUIDv7s of the same millisecond, the
   same in predictions and actuals; model rewritten; actuals in prediction id order) with their manifest
   entries: the files are what compaction would write for k times the traffic.
4. **Reports.** `monitoring.reports.compute` runs in a child process per window; wall time and the child's
   peak RSS (its own VmHWM). False-discovery correction is off, as Evidently has none.
5. **Evidently** on the same rows exported to a DataFrame (time excludes reading): its own
   `Report([DataDriftPreset()])` over each window of `--evidently-sizes`, in a child process, and per
   segment on the base window for the verdict agreement of every (slice, feature) pair.

    .venv/bin/python benchmarks/monitoring_scale.py      # --base-rows 1000000 --sizes 1,5,10,50 --evidently-sizes 1,5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mf_setup
import numpy as np
import pandas as pd
from batch import fresh_database
from drift import CATEGORIES, FEATURES, NUMERICAL, evidently_verdicts, features

SEGMENTS = 20
REFERENCE_ROWS = 200_000
BATCH = 2_000  # predictions per recorder call, as a busy server's buffer holds
WINDOW = timedelta(days=7)
DATABASE = "mf_bench_monitoring"


def segmented(rows: int, rng: np.random.Generator, drifting: bool) -> pd.DataFrame:
    """Rows in 20 segments of equal size; with `drifting`, segments 5-19 move more and more features."""
    size = rows // SEGMENTS
    parts = []
    for index in range(SEGMENTS):
        shift = np.zeros(len(FEATURES))
        if drifting and index >= 5:
            moved = np.random.default_rng(index).choice(len(FEATURES), size=index - 4, replace=False)
            shift[moved] = np.random.default_rng(100 + index).uniform(0.05, 0.2, size=moved.size)
        part = features(size, rng, shift)
        part[NUMERICAL[0]] = part[NUMERICAL[0]].fillna(0.0)  # the model takes no missing values
        # Numbers as applications send them: amounts and measurements with two decimals, not 17 digits.
        part[NUMERICAL] = part[NUMERICAL].round(2)
        part["segment"] = f"s{index:02d}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def input_schema() -> list[dict[str, Any]]:
    schema: list[dict[str, Any]] = [{"name": c, "type": "float", "required": True} for c in NUMERICAL]
    for name, values in {**CATEGORIES, "segment": [f"s{i:02d}" for i in range(SEGMENTS)]}.items():
        schema.append({"name": name, "type": "category", "required": True, "categories": list(values)})
    return schema


def train(reference: pd.DataFrame, workdir: Path) -> Any:
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    target = (reference[NUMERICAL[1]] + reference[NUMERICAL[2]] / 2 > 2.5).astype(int)
    pipeline = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [("numbers", "passthrough", NUMERICAL), ("categories", OneHotEncoder(), [*CATEGORIES, "segment"])]
                ),
            ),
            ("classify", LogisticRegression(max_iter=500)),
        ]
    ).fit(reference, target)
    reference.to_parquet(workdir / "reference.parquet", index=False)
    golden = reference.iloc[:50].assign(expected=pipeline.predict(reference.iloc[:50]))
    golden.to_csv(workdir / "golden_set.csv", index=False)
    (workdir / "model.skops").write_bytes(sio.dumps(pipeline))
    return pipeline


def log_traffic(production: Any, pipeline: Any, rows: int, start: datetime, seed: int) -> list[tuple[str, int]]:
    """Log `rows` predictions through the recorder; returns (id, label) of every other one, for actuals."""
    from scoring.archive.format import input_digest
    from scoring.ids import uuid7
    from scoring.models import Prediction
    from scoring.recorder import recorder

    rng = np.random.default_rng(seed)
    frame = segmented(rows, rng, drifting=True)
    seconds = rng.uniform(0, WINDOW.total_seconds() - 3600, len(frame))
    labelled: list[tuple[str, int]] = []
    for offset in range(0, len(frame), BATCH):
        chunk = frame.iloc[offset : offset + BATCH]
        probabilities = pipeline.predict_proba(chunk)
        records = chunk.to_dict("records")
        batch = []
        for position, (record, proba) in enumerate(zip(records, probabilities, strict=True)):
            at = start + timedelta(seconds=float(seconds[offset + position]))
            output = int(proba[1] >= 0.5)
            prediction = Prediction(
                id=uuid7(at),  # as real-time scoring makes it: the id names the archive hour that holds it
                at=at,
                model=production.model,
                version=production.version,
                entity_id=f"c{offset + position}",
                input=record,
                input_sha256=input_digest({str(name): value for name, value in record.items()}),
                output=output,
                probabilities=[float(proba[0]), float(proba[1])],
                latency_ms=2.0,
                engine="onnx",
            )
            batch.append(prediction)
            if (offset + position) % 2 == 0:
                truth = output if rng.random() < 0.85 else 1 - output
                labelled.append((str(prediction.id), truth))
        recorder.record(version_id=production.version.pk, rows=batch, latency_ms=2.0)
    recorder.flush()
    return labelled


def record_actuals(production: Any, labelled: list[tuple[str, int]]) -> None:
    from monitoring.services import actuals_ingest

    for offset in range(0, len(labelled), 5_000):
        rows = [{"prediction_id": pid, "actual": value} for pid, value in labelled[offset : offset + 5_000]]
        actuals_ingest(actor=production.author, model=production.model, rows=rows)


def copied_ids(ids: Any, copy: int) -> Any:
    """Copy `copy`'s prediction ids: each id's random bits drawn again from a hash of the id and the copy.
    Still UUIDv7s of their prediction's millisecond, the same on both sides, so that actuals join as in
    production; and as random as new ids, so that files compress no better than compaction's."""
    import duckdb
    import pyarrow as pa

    connection = duckdb.connect()
    connection.register("originals", pa.table({"id": ids}))
    # Kept: the millisecond and version ("0190a1b2-c3d4-7"), and the variant (the fourth group's first digit).
    copied = connection.sql(
        """SELECT substr(id, 1, 15) || substr(h, 1, 3) || '-' || substr(id, 20, 1) || substr(h, 4, 3) || '-'
            || substr(h, 7, 12) AS id FROM (SELECT id, md5(id || '/' || CAST(? AS VARCHAR)) AS h FROM originals)""",
        params=[copy],
    )
    assert copied is not None
    return copied.to_arrow_table()["id"].combine_chunks()


def replicate(base: Any, target: Any, copies: int) -> int:
    """Copy the base model's archived hours to `target`, each hour `copies` times over; returns its rows."""
    import pyarrow as pa

    from scoring.archive import format as fmt
    from scoring.archive import store
    from scoring.models import ArchivedHour

    total = 0
    for entry in ArchivedHour.objects.filter(model=base.model).order_by("kind", "hour"):
        files = []
        for file in entry.files:
            table = store.read(file["path"])
            parts = []
            for copy in range(copies):
                part = table.set_column(
                    table.schema.get_field_index(fmt.MODEL_ID),
                    fmt.MODEL_ID,
                    pa.array(np.full(len(table), target.model.pk), pa.int64()),
                )
                ids = copied_ids(part[fmt.ID], copy)
                part = part.set_column(part.schema.get_field_index(fmt.ID), fmt.ID, ids)
                if fmt.VERSION_ID in part.column_names:
                    part = part.set_column(
                        part.schema.get_field_index(fmt.VERSION_ID),
                        fmt.VERSION_ID,
                        pa.array(np.full(len(part), target.version.pk), pa.int64()),
                    )
                parts.append(part)
            replicated = pa.concat_tables(parts)
            if entry.kind == ArchivedHour.Kind.ACTUALS:  # as compaction writes them: in prediction id order
                replicated = replicated.sort_by(fmt.ID)
            path = store.hour_path(entry.kind, target.model.pk, entry.hour, file.get("version"))
            size = store.write(path, replicated)
            files.append({**file, "path": path, "rows": len(replicated), "bytes": size})
            if entry.kind == ArchivedHour.Kind.PREDICTIONS:
                total += len(replicated)
        ArchivedHour.objects.create(
            model=target.model,
            kind=entry.kind,
            hour=entry.hour,
            rows=sum(f["rows"] for f in files),
            bytes=sum(f["bytes"] for f in files),
            files=files,
        )
    return total


def child(arguments: list[str]) -> tuple[float, dict[str, Any]]:
    """Run this script with `arguments` in a child process: (seconds, the JSON its last line printed)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, *arguments], stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{arguments} failed ({done.returncode}):\n{done.stdout}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def peak_gb() -> float:
    """This process's peak resident memory. Not the rusage a parent reads when the child ends: Linux
    counts in it the parent's resident memory at the fork, which made every child look like 2.08 GB."""
    status = Path("/proc/self/status").read_text()
    kilobytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kilobytes) / 1024 / 1024


def compute_report(report_id: int) -> None:
    """Child: one report, as the worker's task runs it."""
    from monitoring import reports

    started = time.perf_counter()
    report = reports.compute(report_id=report_id)
    assert report is not None
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "status": report.status, "error": report.error, "peak_gb": peak_gb()}))


def window_frame(model_id: int, start: datetime, end: datetime, columns: list[str]) -> pd.DataFrame:
    """The window's rows as a DataFrame, read from the archive (what an analyst would export for Evidently)."""
    import pyarrow.dataset as ds

    from scoring.archive import format as fmt
    from scoring.archive import store
    from scoring.models import ArchivedHour

    paths = [
        file["path"]
        for entry in ArchivedHour.objects.filter(
            model_id=model_id, kind=ArchivedHour.Kind.PREDICTIONS, hour__gte=start, hour__lt=end
        )
        for file in entry.files
    ]
    return store.dataset(paths).to_table(columns=columns, filter=ds.field(fmt.INPUT_KEPT)).to_pandas()


def evidently_run(model_id: int, start: str, end: str, reference_path: str) -> None:
    """Child: Evidently's DataDriftPreset over the window, timed without the reading."""
    from evidently import DataDefinition

    from monitoring import drift

    reference = pd.read_parquet(reference_path)
    current = window_frame(model_id, datetime.fromisoformat(start), datetime.fromisoformat(end), [*FEATURES, "segment"])
    kinds = {column: drift.column_kind(reference[column]) for column in FEATURES}
    definition = DataDefinition(
        numerical_columns=[c for c in FEATURES if kinds[c] == drift.NUMERICAL],
        categorical_columns=[c for c in FEATURES if kinds[c] == drift.CATEGORICAL],
    )
    started = time.perf_counter()
    evidently_verdicts(reference[FEATURES], current[FEATURES], definition)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": len(current), "peak_gb": peak_gb()}))


def agreement(report: Any, model_id: int, reference: pd.DataFrame) -> tuple[int, int, list[str]]:
    """Our per-segment verdicts against Evidently's on each segment (against the same segment of the reference)."""
    from evidently import DataDefinition

    from monitoring import drift

    current = window_frame(model_id, report.window_start, report.window_end, [*FEATURES, "segment"])
    kinds = {column: drift.column_kind(reference[column]) for column in FEATURES}
    definition = DataDefinition(
        numerical_columns=[c for c in FEATURES if kinds[c] == drift.NUMERICAL],
        categorical_columns=[c for c in FEATURES if kinds[c] == drift.CATEGORICAL],
    )
    same, total, differing = 0, 0, []
    for name, ours in report.results["slices"].items():
        value = name.partition("=")[2]
        theirs = evidently_verdicts(
            reference.loc[reference["segment"] == value, FEATURES],
            current.loc[current["segment"] == value, FEATURES],
            definition,
        )
        for column, verdict in ours["columns"].items():
            total += 1
            if verdict["drifted"] == theirs[column]:
                same += 1
            else:
                differing.append(f"{name}/{column} ({verdict['test']} {verdict['statistic']:.4f})")
    return same, total, differing


def reused(sizes: list[int]) -> tuple[dict[int, Any], datetime, dict[int, int]]:
    """The models, window start and window rows that an earlier run with --keep left."""
    from django.db.models import Min, Sum

    from registry.models import RegisteredModel
    from scoring.models import ArchivedHour

    productions, rows = {}, {}
    for size in sizes:
        model = RegisteredModel.objects.get(name=f"scale-{size}x")
        version = model.versions.get(number=1)
        productions[size] = mf_setup.Production(model, version, version.author, token="", user_token="")
        archived = ArchivedHour.objects.filter(model=model, kind=ArchivedHour.Kind.PREDICTIONS)
        rows[size] = int(archived.aggregate(rows=Sum("rows"))["rows"])
    first = ArchivedHour.objects.filter(model=productions[1].model).aggregate(first=Min("hour"))["first"]
    return productions, first, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-rows", type=int, default=1_000_000)
    parser.add_argument("--sizes", default="1,5,10,50", help="window sizes, in multiples of the base window")
    parser.add_argument("--evidently-sizes", default="1,5")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and the database (printed)")
    parser.add_argument(
        "--reuse", metavar="DIRECTORY", help="measure the reports again on the data and database --keep left"
    )
    parser.add_argument("--compute", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--evidently", nargs=4, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.compute is not None or arguments.evidently:
        mf_setup.configure({})  # the parent's environment, inherited
        if arguments.compute is not None:
            compute_report(arguments.compute)
        else:
            evidently_run(int(arguments.evidently[0]), *arguments.evidently[1:])
        return 0

    sizes = [int(size) for size in arguments.sizes.split(",")]
    evidently_sizes = {int(size) for size in arguments.evidently_sizes.split(",")}
    workdir = Path(arguments.reuse) if arguments.reuse else Path(tempfile.mkdtemp(prefix="mf-monitoring-scale-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    database = (
        contextlib.nullcontext(f"postgresql://postgres@127.0.0.1:5432/{DATABASE}")
        if arguments.reuse
        else fresh_database(DATABASE, keep=arguments.keep)
    )
    with database as url:
        mf_setup.configure(
            {
                "DATABASE_URL": url,
                "MF_DATA_DIR": str(workdir / "data"),
                "MF_PREDICTION_LOG": "sync",
                "MF_CELERY_EAGER": "1",
            }
        )
        from monitoring.archiving import compact_actuals
        from monitoring.models import MonitoringConfig, Report
        from scoring.archive import compaction
        from scoring.models import ArchivedHour

        reference = segmented(REFERENCE_ROWS, np.random.default_rng(1), drifting=False)
        if arguments.reuse:
            productions, start, rows = reused(sizes)
            end = start + WINDOW
            base = productions[1]
        else:
            pipeline = train(reference, workdir)
            productions = {}
            for size in sizes:
                productions[size] = mf_setup.register_in_production(
                    name=f"scale-{size}x",
                    title=f"Monitoring at scale, {size}x the base window",
                    artifact=workdir / "model.skops",
                    golden_set=workdir / "golden_set.csv",
                    columns=None,
                    input_schema=input_schema(),
                    reference_data=workdir / "reference.parquet",
                )
                MonitoringConfig.objects.update_or_create(
                    model=productions[size].model,
                    defaults={"slice_columns": ["segment"], "fdr_correction": False, "min_slice_rows": 100},
                )
            base = productions[1]
            start = (datetime.now(UTC) - timedelta(days=9)).replace(minute=0, second=0, microsecond=0)
            end = start + WINDOW

            started = time.perf_counter()
            labelled = log_traffic(base, pipeline, arguments.base_rows, start, seed=2)
            logged = time.perf_counter() - started
            record_actuals(base, labelled)
            print(
                f"logged {arguments.base_rows:,} predictions through the recorder in {logged:.0f} s, "
                f"{len(labelled):,} actuals through the API service in {time.perf_counter() - started - logged:.0f} s"
            )

            started = time.perf_counter()
            compaction.compact()
            # As the archive stands an hour later: the actuals just posted are in the hour still open.
            compact_actuals(now=datetime.now(UTC) + timedelta(hours=2))
            compacted = time.perf_counter() - started
            entries = ArchivedHour.objects.filter(model=base.model, kind=ArchivedHour.Kind.PREDICTIONS)
            archived_rows = sum(e.rows for e in entries)
            archived_bytes = sum(e.bytes for e in entries)
            print(
                f"compaction: {archived_rows:,} predictions in {compacted:.1f} s "
                f"({archived_rows / compacted:,.0f} rows/s), {archived_bytes / archived_rows:.1f} bytes per prediction"
            )

            rows = {1: archived_rows}
            for size in sizes:
                if size != 1:
                    started = time.perf_counter()
                    rows[size] = replicate(base, productions[size], size)
                    print(f"replicated {rows[size]:,} rows for {size}x in {time.perf_counter() - started:.0f} s")

        results: dict[int, dict[str, Any]] = {}
        for size in sizes:
            report = Report.objects.create(
                model=productions[size].model, window_start=start, window_end=end, requested_by=base.author
            )
            seconds, inner = child(["--compute", str(report.pk)])
            peak = inner["peak_gb"]
            report.refresh_from_db()
            results[size] = {"rows": rows[size], "seconds": seconds, "inner": inner["seconds"], "peak_gb": peak}
            print(
                f"report {size}x ({rows[size]:,} rows): {seconds:.1f} s in a new process "
                f"({inner['seconds']:.1f} s in compute), peak RSS {peak:.2f} GB, {inner['status']} {inner['error']}",
                flush=True,
            )
            if size in evidently_sizes:
                _ev_seconds, evidently = child(
                    [
                        "--evidently",
                        str(productions[size].model.pk),
                        start.isoformat(),
                        end.isoformat(),
                        str(workdir / "reference.parquet"),
                    ]
                )
                ev_peak = evidently["peak_gb"]
                results[size]["evidently"] = evidently["seconds"]
                print(
                    f"  evidently DataDriftPreset on the same {evidently['rows']:,} rows: {evidently['seconds']:.1f} s "
                    f"(reading excluded), process peak RSS {ev_peak:.2f} GB -> ours is "
                    f"{evidently['seconds'] / inner['seconds']:.1f}x faster",
                    flush=True,
                )
            if size == 1:
                same, total, differing = agreement(report, productions[1].model.pk, reference)
                print(
                    f"  verdicts identical to Evidently's on {same} of {total} (slice, feature) pairs "
                    f"({same / total:.1%}); differing: {differing[:10]}",
                    flush=True,
                )

        first = results[sizes[0]]
        for size in sizes[1:]:
            ratio = (results[size]["inner"] / first["inner"]) / (results[size]["rows"] / first["rows"])
            print(f"{size}x: time per row {ratio:.2f}x the {sizes[0]}x window's")
    if arguments.keep or arguments.reuse:
        print(f"data kept in {workdir}, database {DATABASE}")
    else:
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
