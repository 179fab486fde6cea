"""Inputs and shortcuts shared by the batch scoring tests (plain helpers: usable from tests/e2e too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from registry import workflow
from registry.models import ModelVersion, RegisteredModel
from scoring.batch import runs, services
from scoring.models import BatchJob
from tests.conftest import customers


def customer_table(n: int, *, seed: int = 0, start: int = 0) -> pd.DataFrame:
    """n valid customers, identified by customer_id c<start>…"""
    frame = customers(n, seed=seed)
    frame.insert(0, "customer_id", [f"c{i}" for i in range(start, start + n)])
    return frame


def write_input(directory: Path, frame: pd.DataFrame, name: str = "customers.csv") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def nightly_job(model: RegisteredModel, actor: Any, **fields: Any) -> BatchJob:
    """The batch job "nightly" of `model`, scoring customers.csv of the batch input folder by customer_id;
    `fields` add to or replace these (another input_path, chunk_rows, write_parquet, …)."""
    defaults: dict[str, Any] = {
        "name": "nightly",
        "input_kind": "path",
        "input_path": "customers.csv",
        "entity_column": "customer_id",
    }
    return services.job_create(actor=actor, model=model, **{**defaults, **fields})


def put_in_production(version: ModelVersion, author: Any, reviewer: Any, second_reviewer: Any) -> ModelVersion:
    """Review and go live, for tests whose database commits (on_commit callbacks run at once)."""
    workflow.version_transition(actor=author, version=version, action="submit")
    workflow.version_transition(actor=reviewer, version=version, action="approve")
    return workflow.version_transition(actor=second_reviewer, version=version, action="go_live")


def use_input_dir(settings: Any, tmp_path: Path) -> Path:
    """Point MF_BATCH_INPUT_DIR at a fresh folder of this test."""
    directory = tmp_path / "batch-inputs"
    directory.mkdir(parents=True, exist_ok=True)
    settings.MF_BATCH_INPUT_DIR = directory
    return directory


def run_now(job: Any, actor: Any, capture: Any, **kwargs: Any) -> Any:
    """Start a run and let its (eager) tasks run, as after a real commit; the run, re-read."""
    with capture(execute=True):
        run = runs.run_start(job=job, actor=actor, **kwargs)
    run.refresh_from_db()
    return run
