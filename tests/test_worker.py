"""A task queued by the web side runs in a real Celery worker process over the configured broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app
from registry.models import ModelVersion
from scoring.batch import runs
from scoring.models import BatchChunk, BatchRun, BatchScore
from tests.scoring.batch_support import customer_table, nightly_job, use_input_dir, write_input

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def start_worker(tmp_path):
    """Start worker processes consuming a queue of this test's own, so no other worker takes its tasks."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    started: list[tuple[subprocess.Popen, Any]] = []

    def start(name: str = "worker", **env_overrides: str) -> tuple[subprocess.Popen, Path]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DATABASE_URL": _database_url(),
            "MF_ARTIFACT_DIR": str(settings.MEDIA_ROOT),
            "MF_DATA_DIR": str(settings.DATA_DIR),
            "MF_BATCH_INPUT_DIR": str(settings.MF_BATCH_INPUT_DIR),
            "MF_CELERY_QUEUE": queue,  # tasks a task queues stay on this test's queue too
            **env_overrides,
        }
        log_path = tmp_path / f"{name}.log"
        log = log_path.open("w")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "--hostname",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((worker, log))
        return worker, log_path

    eager, default_queue = app.conf.task_always_eager, app.conf.task_default_queue
    app.conf.task_always_eager, app.conf.task_default_queue = False, queue
    try:
        yield start
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = eager, default_queue
        for worker, log in started:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
            log.close()


def wait_for(condition: Callable[[], bool], seconds: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def test_it_profiles_reference_data_in_a_worker_process(start_worker, churn_model, author, register):
    worker, log = start_worker()
    version = register(churn_model, author)

    def profiled() -> bool:
        version.refresh_from_db()
        return version.reference_profile is not None or worker.poll() is not None

    wait_for(profiled, 90, interval=0.5)
    assert version.reference_profile is not None, log.read_text()[-3000:]
    assert version.reference_profile["rows"] == 200
    assert "profile_reference_data" in log.read_text()
    assert ModelVersion.objects.filter(reference_profile__isnull=True).count() == 0


@pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis"),
    reason="redelivery of a killed worker's task needs a broker with acknowledgements (Redis in CI)",
)
def test_a_batch_run_survives_a_worker_killed_mid_run_with_exactly_once_scores(
    production, author, start_worker, settings, tmp_path
):
    inputs = use_input_dir(settings, tmp_path)
    rows = 30_000
    write_input(inputs, customer_table(rows))
    job = nightly_job(production.model, author, chunk_rows=250)
    visibility = "3"
    first, first_log = start_worker("first", MF_BROKER_VISIBILITY_TIMEOUT_SECONDS=visibility)
    run = runs.run_start(job=job, actor=author)

    def some_chunks_done() -> bool:
        run.refresh_from_db()
        return run.chunks_done >= 3 or first.poll() is not None

    assert wait_for(some_chunks_done, 120, interval=0.02), first_log.read_text()[-3000:]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    run.refresh_from_db()
    assert run.chunks_done < run.chunks_total, "the worker finished before it could be killed"

    # Past the visibility timeout the next worker takes back what the killed one held unacknowledged.
    time.sleep(float(visibility) + 1)
    _, second_log = start_worker("second", MF_BROKER_VISIBILITY_TIMEOUT_SECONDS=visibility)

    def finished() -> bool:
        run.refresh_from_db()
        return run.status != BatchRun.Status.RUNNING

    assert wait_for(finished, 180, interval=0.5), second_log.read_text()[-3000:]
    assert run.status == BatchRun.Status.SUCCEEDED, run.error
    scores = BatchScore.objects.filter(run=run)
    assert (run.rows_scored, run.rows_rejected) == (rows, 0)
    assert scores.count() == rows
    assert scores.values("entity_id").distinct().count() == rows
    assert run.chunks.filter(status=BatchChunk.Status.DONE).count() == run.chunks_total
    assert "score_batch_chunk" in second_log.read_text()
