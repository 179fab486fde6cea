"""A real MLflow tracking server for the tests of the MLflow import, started once per test session.

`tracking_server` (imported into tests/conftest.py) starts `mlflow server` from the MLflow venv (SQLite
backend, a temporary artifact root, artifacts served through the server) and registers models on it
with MLflow's own client (tests/mlflow/log_registered_models.py). Without the MLflow venv
(`make mlflow-venv`) the tests using it are skipped, except in CI, where that is a failure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
MLFLOW_PYTHON = Path(os.environ.get("MF_TEST_MLFLOW_PYTHON", REPOSITORY_ROOT / ".venv-mlflow" / "bin" / "python"))
LOG_SCRIPT = REPOSITORY_ROOT / "tests" / "mlflow" / "log_registered_models.py"
START_SECONDS = 90


@dataclass(frozen=True)
class TrackingServer:
    uri: str
    answers: dict[str, Any]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_health(process: subprocess.Popen[bytes], uri: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited with status {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{uri}/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    pytest.fail(f"mlflow server did not answer /health within {START_SECONDS} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    """A real MLflow tracking server with registered models, started once per test session."""
    if not MLFLOW_PYTHON.is_file():
        message = f"MLflow's venv is missing ({MLFLOW_PYTHON}): run `make mlflow-venv`."
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = directory / "server.log"
    # The server starts uvicorn as a program found on PATH: the venv's bin must be on it.
    environment = {**os.environ, "PATH": f"{MLFLOW_PYTHON.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [
        str(MLFLOW_PYTHON.parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{directory / 'db.sqlite'}",
        "--artifacts-destination",
        str(directory / "artifacts"),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with log.open("wb") as output:
        # A session of its own, so that stopping it stops the uvicorn worker it starts too.
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
    try:
        _wait_for_health(process, uri, log)
        answers_path = directory / "answers.json"
        logged = subprocess.run(
            [str(MLFLOW_PYTHON), str(LOG_SCRIPT), uri, str(answers_path)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if logged.returncode != 0:
            pytest.fail(f"Logging the models with MLflow failed:\n{logged.stderr[-3000:]}")
        yield TrackingServer(uri=uri, answers=json.loads(answers_path.read_text()))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
