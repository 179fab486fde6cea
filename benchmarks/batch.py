"""Batch scoring (issue 4): a million rows scored into PostgreSQL by Model Factory's batch runner.

A StandardScaler + HistGradientBoostingClassifier pipeline (100 trees) is registered as skops and
put in production in a fresh Model Factory on PostgreSQL (a database created for the run and
dropped after it) with Redis as the broker. A batch job reads a Parquet file of N rows x F features;
each run goes end to end through the product: `scoring.batch.runs.run_start` → the start task snapshots
the input and queues one task per chunk → Celery worker processes (each `--concurrency 1`) score
the chunks and COPY the scores into PostgreSQL → the last chunk marks the run succeeded. The run is
timed from `run_start` until its status is succeeded, once per worker count.

The limit is the bare `pipeline.predict` on the same rows, in memory, on one thread (as each
worker process runs it).

    .venv/bin/python benchmarks/batch.py [--rows 1000000] [--features 30] [--workers 1,2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mf_setup
import numpy as np
import pandas as pd
import psycopg
import redis
import skops.io as sio
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

MODEL_NAME = "batch-bench"
TRAIN_ROWS = 100_000
CHECK_ROWS = 2_000  # scores read back from PostgreSQL and compared with the pipeline's predictions


@dataclass
class Timing:
    workers: int
    total: float  # run_start → succeeded, seconds
    snapshot: float  # created → running: the start task read the input and wrote the snapshot
    chunks: float  # running → succeeded: the chunks scored and written


def make_data(rows: int, features: int) -> tuple[pd.DataFrame, Pipeline]:
    x, y = make_classification(n_samples=rows, n_features=features, n_informative=12, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i:02d}" for i in range(features)])
    model = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0)
    pipeline = Pipeline([("scale", StandardScaler()), ("model", model)])
    return frame, pipeline.fit(frame.iloc[:TRAIN_ROWS], y[:TRAIN_ROWS])


def time_limit(pipeline: Pipeline, frame: pd.DataFrame, repeat: int) -> tuple[list[float], float]:
    """Seconds for the bare predict (the limit; each of `repeat` tries) and predict_proba, one thread, in memory."""
    with threadpool_limits(1):
        predicts = []
        for _ in range(repeat):
            started = time.perf_counter()
            pipeline.predict(frame)
            predicts.append(time.perf_counter() - started)
        started = time.perf_counter()
        pipeline.predict_proba(frame)
    return predicts, time.perf_counter() - started


@contextlib.contextmanager
def fresh_database(name: str, keep: bool = False) -> Iterator[str]:
    """A new PostgreSQL database on the local server, dropped on the way out unless `keep`; yields its URL."""
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:  # FORCE also ends the connections still open to it (this process's own, Django's)
        if not keep:
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def celery_workers(count: int, workdir: Path) -> Iterator[None]:
    """`count` Celery worker processes of the app, each with one pool process; ready when yielded."""
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    processes, logs = [], []
    for index in range(count):
        command = ["celery", "-A", "config", "worker", "--loglevel", "INFO", "--concurrency", "1"]
        command += ["--hostname", f"bench{index}@%h", "--without-gossip", "--without-mingle"]
        logs.append(workdir / f"worker-{count}-{index}.log")
        with logs[-1].open("wb") as log:
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=mf_setup.REPO,
                    env={**os.environ, "PATH": path},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        deadline = time.monotonic() + 120
        while not all(" ready." in log.read_text() for log in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError("A Celery worker did not start:\n" + "\n".join(log.read_text() for log in logs))
            time.sleep(0.2)
        yield
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)


def timed_run(job: Any, author: Any) -> Timing:
    from scoring.batch.runs import run_start
    from scoring.models import BatchRun

    started = time.perf_counter()
    run = run_start(job=job, actor=author)
    while run.status not in BatchRun.Status.TERMINAL:
        time.sleep(0.1)
        run.refresh_from_db()
    total = time.perf_counter() - started
    if run.status != BatchRun.Status.SUCCEEDED:
        raise RuntimeError(f"Run {run.pk} {run.status}: {run.error}")
    assert run.started_at is not None
    assert run.finished_at is not None
    return Timing(
        workers=0,
        total=total,
        snapshot=(run.started_at - run.created_at).total_seconds(),
        chunks=(run.finished_at - run.started_at).total_seconds(),
    )


def check_scores(run_id: int, frame: pd.DataFrame, pipeline: Pipeline, rows: int) -> None:
    """Every row scored once, and a sample of the stored predictions equal to the pipeline's own."""
    from scoring.models import BatchScore

    scores = BatchScore.objects.filter(run_id=run_id)
    if scores.count() != rows:
        raise RuntimeError(f"Run {run_id} stored {scores.count()} scores for {rows} rows.")
    sample = np.random.default_rng(0).choice(rows, size=min(CHECK_ROWS, rows), replace=False)
    stored = dict(scores.filter(entity_id__in=[str(i) for i in sample]).values_list("entity_id", "prediction"))
    expected = pipeline.predict(frame.iloc[sample])
    wrong = [i for i, label in zip(sample, expected, strict=True) if stored[str(i)] != int(label)]
    if wrong:
        raise RuntimeError(f"Run {run_id}: stored predictions differ from the pipeline's for rows {wrong[:10]}.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--chunk-rows", type=int, default=50_000, help="the job's chunk size (the product default)")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker process counts to measure")
    parser.add_argument("--database", default="mf_bench", help="PostgreSQL database to create and drop")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13", help="Redis database, flushed before use")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per worker count (and tries of the limit); medians are compared"
    )
    args = parser.parse_args()
    worker_counts = [int(part) for part in args.workers.split(",")]

    print(f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"Making {args.rows:,} rows x {args.features} features and training on {TRAIN_ROWS:,}...")
    frame, pipeline = make_data(args.rows, args.features)
    limits, proba = time_limit(pipeline, frame, args.repeat)
    limit = statistics.median(limits)
    shown = ", ".join(f"{seconds:.2f}" for seconds in limits)
    print(f"  bare pipeline.predict (one thread): median {limit:.2f} s ({shown}); predict_proba: {proba:.2f} s")

    workdir = Path(tempfile.mkdtemp(prefix="mf-batch-"))
    timings: list[Timing] = []
    broker = redis.Redis.from_url(args.broker)
    try:
        with fresh_database(args.database) as database_url:
            mf_setup.configure(
                {
                    "MF_DATA_DIR": str(workdir / "mf-data"),
                    "DATABASE_URL": database_url,
                    "CELERY_BROKER_URL": args.broker,
                    "MF_LOG_LEVEL": "WARNING",
                }
            )
            from django.db import connection

            from scoring.batch.services import job_create
            from scoring.batch.sources import batch_input_dir

            golden = frame.iloc[:50].assign(expected=pipeline.predict(frame.iloc[:50]))
            golden.to_csv(workdir / "golden_set.csv", index=False)
            (workdir / "model.skops").write_bytes(sio.dumps(pipeline))
            production = mf_setup.register_in_production(
                name=MODEL_NAME,
                title="Synthetic classification, histogram gradient boosting (benchmark)",
                artifact=workdir / "model.skops",
                golden_set=workdir / "golden_set.csv",
                columns=list(frame.columns),
            )
            print(f"  Model Factory on {database_url}: {production.version} is in production")
            batch_input_dir().mkdir(parents=True, exist_ok=True)
            frame.assign(entity_id=np.arange(args.rows)).to_parquet(batch_input_dir() / "input.parquet")
            job = job_create(
                actor=production.author,
                model=production.model,
                name="bench",
                input_kind="path",
                input_path="input.parquet",
                entity_column="entity_id",
                chunk_rows=args.chunk_rows,
            )
            for workers in worker_counts:
                for attempt in range(args.repeat):
                    with connection.cursor() as cursor:  # every run starts from an empty score table
                        cursor.execute("TRUNCATE scoring_batchscore")
                    broker.flushdb()
                    with celery_workers(workers, workdir):  # fresh processes for every run
                        print(f"Scoring with {workers} worker process(es), run {attempt + 1}...", flush=True)
                        timing = timed_run(job, production.author)
                    timing.workers = workers
                    timings.append(timing)
                    run_id = job.runs.order_by("-pk").values_list("pk", flat=True)[0]
                    check_scores(run_id, frame, pipeline, args.rows)
                    print(f"  {timing.total:.1f} s; {args.rows:,} scores in PostgreSQL, {CHECK_ROWS} checked")
    finally:
        broker.flushdb()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{args.rows:,} rows x {args.features} features, chunks of {args.chunk_rows:,}; medians of {args.repeat}")
    print(f"{'':<22} {'seconds':>8} {'rows/s':>10} {'x limit':>8} {'snapshot':>9} {'chunks':>8}  runs (s)")
    print(f"{'limit: bare predict':<22} {limit:>8.1f} {args.rows / limit:>10,.0f} {1:>8.2f}  {'':>18}  {shown}")
    medians: dict[int, float] = {}
    for workers in worker_counts:
        runs = [t for t in timings if t.workers == workers]
        total = medians[workers] = statistics.median(t.total for t in runs)
        snapshot = statistics.median(t.snapshot for t in runs)
        chunks = statistics.median(t.chunks for t in runs)
        label = f"end to end, {workers} worker{'s' if workers > 1 else ''}"
        each = ", ".join(f"{t.total:.1f}" for t in runs)
        print(
            f"{label:<22} {total:>8.1f} {args.rows / total:>10,.0f} {total / limit:>8.2f} "
            f"{snapshot:>9.1f} {chunks:>8.1f}  {each}"
        )
    if 1 in medians and 2 in medians:
        print(f"\nTwo workers / one worker: {medians[1] / medians[2]:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
