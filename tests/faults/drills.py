"""Restart drills (issue 6): stop Redis, then PostgreSQL, then start them again, under load.

The app runs as in production (the Procfile's gunicorn and Celery worker) against a PostgreSQL
cluster and a Redis server of the drill's own, started here on loopback ports 5440 and 6390 in a
temporary directory (never the shared ones on 5432/6379). While a consumer calls predict at a steady
rate, /healthz is polled and a batch run is in progress, the drill goes through:

    redis down -> both down (PostgreSQL stopped too) -> postgres down (Redis back) -> all up

and asks the app to queue work (a drift report) while the broker is down. It then checks:
- while a dependency is down, every request answers within --max-seconds and never with a 500:
  predict gets 200 (it needs no broker) or 503 with Retry-After, /healthz 503 naming what is down;
- after the restart the app recovers by itself (no process restarted), within --recover-seconds;
- the batch run completes with exactly one score per input row;
- the prediction log has exactly one row per successful prediction, the ids the clients were given;
- no audit row was lost: every row from before is still there, and the run's own rows were written.

    .venv/bin/python tests/faults/drills.py [--outage 8] [--rows 150000] [--keep]   (or: make drills)

Redis runs with its append-only file on, as a broker must: a broker that forgets its queue on a
restart loses queued tasks (`--broker-persistence none` shows what happens then). The worker's
visibility timeout is set to --visibility seconds so that tasks it held when the broker went away
come back within the drill (production's default is 65 minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import mf_setup  # noqa: E402  (benchmarks/ is not a package)
import realtime  # noqa: E402
import soak  # noqa: E402

PG_PORT = 5440
REDIS_PORT = 6390
MODEL_NAME = "drill-model"


class DrillError(RuntimeError):
    pass


# --- private servers ------------------------------------------------------------------------------


def _as_postgres(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PrivatePostgres:
    def __init__(self, root: Path, port: int) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            raise DrillError("No PostgreSQL server binaries under /usr/lib/postgresql/*/bin.")
        self.bin = bins[-1].parent
        self.root, self.port = root, port
        self.data, self.log = root / "data", root / "postgres.log"

    def init(self) -> None:
        self.root.mkdir(mode=0o755)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        command = [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
        subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w"]
        subprocess.run(_as_postgres([*command, "-t", "60", "start"]), check=True, capture_output=True, timeout=90)

    def stop(self) -> None:
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"]
        subprocess.run(_as_postgres(command), check=False, capture_output=True, timeout=90)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"


class PrivateRedis:
    def __init__(self, root: Path, port: int, persistent: bool) -> None:
        self.root, self.port, self.persistent = root, port, persistent
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir(exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--dir", str(self.root), "--daemonize", "no"]
        command += ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.process = realtime.spawn(command, log=self.root / "redis.log", env=dict(os.environ), cwd=self.root)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                ping = ["redis-cli", "-p", str(self.port), "ping"]
                if subprocess.run(ping, capture_output=True, text=True, timeout=5).stdout.strip() == "PONG":
                    return
            time.sleep(0.2)
        raise DrillError("Redis did not start: " + (self.root / "redis.log").read_text()[-2000:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # redis shuts down cleanly on SIGTERM (flushing its append-only file)
            self.process.wait(timeout=30)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


# --- load -------------------------------------------------------------------------------------------


@dataclass
class Call:
    at: float  # seconds since the drill started
    seconds: float
    status: int  # 0: no answer (timeout, connection refused)
    phase: str
    retry_after: str | None = None
    prediction_ids: list[str] = field(default_factory=list)
    body: str = ""


class Phases:
    """The current phase, set by the drill's timeline and read by the load threads."""

    def __init__(self) -> None:
        self.name = "warm-up"
        self.started = time.monotonic()
        self.marks: list[tuple[float, str]] = [(0.0, self.name)]

    def enter(self, name: str) -> None:
        self.name = name
        self.marks.append((self.elapsed(), name))
        print(f"  [{self.elapsed():6.1f} s] {name}", flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def call(session: requests.Session, method: str, url: str, phases: Phases, timeout: float, **kwargs: Any) -> Call:
    phase, started = phases.name, time.monotonic()
    try:
        response = session.request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        return Call(phases.elapsed(), time.monotonic() - started, 0, phase, body=type(exc).__name__)
    ids: list[str] = []
    if response.status_code == 200 and "prediction_ids" in response.text:
        ids = response.json()["prediction_ids"]
    return Call(
        at=phases.elapsed(),
        seconds=time.monotonic() - started,
        status=response.status_code,
        phase=phase,
        retry_after=response.headers.get("Retry-After"),
        prediction_ids=ids,
        body=response.text[:300],
    )


class Load:
    """`threads` clients, each sending one request every 1/rate seconds until stopped."""

    def __init__(self, phases: Phases, timeout: float) -> None:
        self.phases, self.timeout = phases, timeout
        self.calls: dict[str, list[Call]] = {}
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, name: str, rate: float, method: str, url: str, **kwargs: Any) -> None:
        calls: list[Call] = []
        self.calls.setdefault(name, calls)

        def loop() -> None:
            session = requests.Session()
            next_at = time.monotonic()
            while not self.stopping.is_set():
                calls.append(call(session, method, url, self.phases, self.timeout, **kwargs))
                next_at = max(next_at + 1 / rate, time.monotonic() - 1)
                self.stopping.wait(max(0.0, next_at - time.monotonic()))

        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=self.timeout + 5)

    def all(self, prefix: str) -> list[Call]:
        return [c for name, calls in self.calls.items() if name.startswith(prefix) for c in calls]


# --- the app ----------------------------------------------------------------------------------------


@dataclass
class App:
    web: realtime.Server
    worker: realtime.Server
    base_url: str
    consumer_token: str
    user_token: str
    production: mf_setup.Production


def train_model() -> realtime.Model:
    """A small, fast model on the real-time benchmark's data: the drills test the plumbing, not the model."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    features = data.data.rename(columns=lambda name: str(name).replace(" ", "_"))
    pipeline = Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(max_iter=1000))])
    return realtime.Model(pipeline=pipeline.fit(features, data.target), features=features, target=data.target)


def user_token(user: Any) -> str:
    try:
        from knox.models import AuthToken

        return str(AuthToken.objects.create(user=user)[1])
    except ImportError:  # DRF's own tokens, where knox is not installed
        from rest_framework.authtoken.models import Token

        return str(Token.objects.create(user=user).key)


def start_app(workdir: Path, database_url: str, broker_url: str, visibility: int) -> App:
    import skops.io as sio

    env = {
        "MF_DATA_DIR": str(workdir / "mf-data"),
        "MF_BATCH_INPUT_DIR": str(workdir / "inputs"),
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "MF_BROKER_VISIBILITY_TIMEOUT_SECONDS": str(visibility),
        "MF_CONSUMER_RATE_LIMIT": "1000000/s",
        "MF_LOG_LEVEL": "WARNING",
        "DJANGO_DEBUG": "false",
    }
    (workdir / "inputs").mkdir()
    mf_setup.configure(env)
    model = train_model()
    golden = model.features.iloc[:20]
    golden.assign(expected=model.pipeline.predict(golden)).to_csv(workdir / "golden_set.csv", index=False)
    (workdir / "model.skops").write_bytes(sio.dumps(model.pipeline))
    production = mf_setup.register_in_production(
        name=MODEL_NAME,
        title="Restart drill model",
        artifact=workdir / "model.skops",
        golden_set=workdir / "golden_set.csv",
        columns=[str(column) for column in model.features.columns],
    )

    procfile = {
        line.partition(":")[0]: line.partition(":")[2].strip()
        for line in (REPO / "Procfile").read_text().splitlines()
        if ":" in line
    }
    port = realtime.free_port()
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    process_env = {**os.environ, "MF_BIND": f"127.0.0.1:{port}", "MF_WEB_WORKERS": "2", "PATH": path}
    process_env["MF_LOG_LEVEL"] = "WARNING"
    process_env["MF_ACCESS_LOG"] = "-"  # requests answered are counted in the web server's log
    web_log, worker_log = workdir / "web.log", workdir / "worker.log"
    web = realtime.Server(
        "web",
        realtime.spawn(["bash", "-c", "exec " + procfile["web"]], log=web_log, env=process_env, cwd=REPO),
        web_log,
        f"http://127.0.0.1:{port}",
        {},
    )
    worker_env = {**process_env, "MF_LOG_LEVEL": "INFO", "MF_WORKER_CONCURRENCY": "2"}
    worker = realtime.Server(
        "worker",
        realtime.spawn(["bash", "-c", "exec " + procfile["worker"]], log=worker_log, env=worker_env, cwd=REPO),
        worker_log,
        "",
        {},
    )
    web.wait_ready(f"{web.url}/healthz")
    return App(
        web=web,
        worker=worker,
        base_url=web.url,
        consumer_token=production.token,
        user_token=user_token(production.author),
        production=production,
    )


def write_batch_input(workdir: Path, model: realtime.Model, rows: int) -> None:
    import numpy as np

    repeats = -(-rows // len(model.features))
    frame = model.features.loc[np.tile(model.features.index.to_numpy(), repeats)[:rows]].reset_index(drop=True)
    frame.insert(0, "customer_id", [f"c{i:07d}" for i in range(rows)])
    frame.to_parquet(workdir / "inputs" / "customers.parquet", index=False)


# --- the drill --------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def wait_until(condition: Any, seconds: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return True
        time.sleep(interval)
    return False


def summarise(calls: list[Call]) -> str:
    statuses = Counter(c.status for c in calls)
    slowest = max((c.seconds for c in calls), default=0.0)
    return ", ".join(f"{status or 'no answer'}: {n}" for status, n in sorted(statuses.items())) + (
        f"; slowest {slowest:.2f} s"
    )


def drill(args: argparse.Namespace, workdir: Path, pg: PrivatePostgres, redis: PrivateRedis) -> list[Check]:
    app = start_app(workdir, pg.url, redis.url, args.visibility)  # sets Django up: imports come after
    from django.db import close_old_connections, connection

    from monitoring.models import Report
    from registry.models import AuditEvent
    from scoring.batch.runs import run_start
    from scoring.batch.services import job_create
    from scoring.models import BatchChunk, BatchRun, BatchScore, Prediction

    started = time.monotonic()
    try:
        model = train_model()
        write_batch_input(workdir, model, args.rows)
        job = job_create(
            actor=app.production.author,
            model=app.production.model,
            name="drill",
            input_kind="path",
            input_path="customers.parquet",
            entity_column="customer_id",
            chunk_rows=args.chunk_rows,
        )
        second_job = job_create(
            actor=app.production.author,
            model=app.production.model,
            name="drill-run-now",
            input_kind="path",
            input_path="customers.parquet",
            entity_column="customer_id",
            chunk_rows=args.rows,  # one chunk: it only has to start and finish
        )
        predict_url = f"{app.base_url}/api/models/{MODEL_NAME}/predict/"
        predict_path = predict_url.removeprefix(app.base_url)
        headers = {"Authorization": f"Bearer {app.consumer_token}"}
        row = model.features.iloc[:1].to_dict("records")
        # Each web process loads the model on its first request: done before anything is measured.
        for _ in range(8):
            requests.post(predict_url, json={"dataframe_records": row}, headers=headers, timeout=120)
        time.sleep(2)  # their prediction log is written within a second
        audit_before = set(AuditEvent.objects.values_list("pk", flat=True))
        predictions_before = Prediction.objects.count()
        served_before, _ = soak.served(app.web.log, predict_path)
        connection.close()  # the drill's own connection must not be the one that notices the outage

        phases = Phases()
        load = Load(phases, timeout=args.max_seconds * 3)
        for index in range(args.clients):
            load.start(
                f"predict-{index}",
                args.rate / args.clients,
                "POST",
                predict_url,
                json={"dataframe_records": row},
                headers=headers,
            )
        load.start("healthz", 4, "GET", f"{app.base_url}/healthz")
        time.sleep(3)

        run = run_start(job=job, actor=app.production.author)
        phases.enter("batch running")

        def chunks_done() -> bool:
            run.refresh_from_db()
            return run.status == BatchRun.Status.RUNNING and run.chunks_done >= 1

        if not wait_until(chunks_done, 180, 0.2):
            raise DrillError(f"The batch run did not start: {run.status} {run.error}")
        print(f"  batch run {run.pk}: {run.chunks_total} chunks of {args.chunk_rows} rows", flush=True)
        connection.close()

        report_url = f"{app.base_url}/api/models/{MODEL_NAME}/reports/"
        run_now_url = f"{app.base_url}/api/models/{MODEL_NAME}/batch-jobs/{second_job.name}/runs/"
        user_headers = {"Authorization": f"Token {app.user_token}"}
        queued: list[Call] = []

        def ask_for_work() -> None:
            """Work that must be queued: a drift report, and a batch run ("run now")."""
            window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
            with requests.Session() as session:
                for url, body in ((report_url, window), (run_now_url, {})):
                    answer = call(session, "POST", url, phases, args.max_seconds * 3, json=body, headers=user_headers)
                    answer.body = f"{url.split('/')[-2]}: {answer.body}"
                    queued.append(answer)

        progress: dict[str, int] = {}

        time.sleep(2)
        run.refresh_from_db()
        progress["when Redis stopped"] = run.chunks_done
        connection.close()
        phases.enter("redis down")
        redis.stop()
        time.sleep(1)
        ask_for_work()
        time.sleep(args.outage)
        phases.enter("both down")
        pg.stop()
        time.sleep(args.outage)
        phases.enter("postgres down")
        redis.start()
        time.sleep(1)
        ask_for_work()
        time.sleep(args.outage)
        pg.start()
        phases.enter("recovering")
        recovered_at = phases.elapsed()

        def healthy_again() -> bool:
            recent = [c for c in load.all("predict") + load.all("healthz") if c.at > recovered_at + 0.5]
            ok_predict = any(c.status == 200 for c in recent if c.prediction_ids)
            ok_health = any(c.status == 200 and c.body.startswith('{"status": "ok"') for c in recent)
            return ok_predict and ok_health

        recovered = wait_until(healthy_again, args.recover_seconds, 0.2)
        recovery_seconds = phases.elapsed() - recovered_at
        phases.enter("recovered" if recovered else "not recovered")
        with contextlib.suppress(Exception):
            run.refresh_from_db()
            progress["when PostgreSQL was back"] = run.chunks_done
        time.sleep(5)
        ask_for_work()
        time.sleep(5)
        phases.enter("load stopped")
        load.stop()

        close_old_connections()

        def run_finished() -> bool:
            run.refresh_from_db()
            return run.status not in (BatchRun.Status.PENDING, BatchRun.Status.RUNNING)

        finished = wait_until(run_finished, args.batch_seconds, 1)
        run.refresh_from_db()
        active = (BatchRun.Status.PENDING, BatchRun.Status.RUNNING)
        wait_until(lambda: not BatchRun.objects.filter(job=second_job, status__in=active).exists(), 60, 1)
        time.sleep(3)  # the web processes' prediction log flushes every second

        checks: list[Check] = []
        predict_calls = load.all("predict")
        health_calls = load.all("healthz")
        outage = ("redis down", "both down", "postgres down")
        for phase in ("batch running", *outage, "recovering", "recovered"):
            in_phase = [c for c in predict_calls if c.phase == phase]
            health = [c for c in health_calls if c.phase == phase]
            print(f"  predict {phase:>14}: {summarise(in_phase)}")
            print(f"  healthz {phase:>14}: {summarise(health)}")
        for q in queued:
            print(f"  queue work during {q.phase}: {q.status} in {q.seconds:.2f} s ({q.body[:120]})")

        print(f"  batch run {run.pk}: chunks done " + ", ".join(f"{n} {when}" for when, n in progress.items()))
        watched = [c for c in predict_calls + health_calls + queued if c.phase in (*outage, "recovering", "recovered")]
        bad = [c for c in watched if c.status not in (200, 201, 202, 503)]
        checks.append(
            Check(
                "no 500s or unanswered requests, from the outage on",
                not bad,
                f"{len(bad)} of {len(watched)}"
                + (f", e.g. {bad[0].status} during {bad[0].phase}: {bad[0].body[:200]}" if bad else ""),
            )
        )
        slow = [c for c in watched if c.seconds > args.max_seconds]
        slowest = max((c.seconds for c in watched), default=0)
        checks.append(
            Check(
                f"every answer within {args.max_seconds:g} s, from the outage on",
                not slow,
                f"slowest {slowest:.2f} s, {len(slow)} over",
            )
        )
        unavailable = [c for c in predict_calls + health_calls + queued if c.status == 503]
        checks.append(
            Check(
                "503s carry Retry-After",
                bool(unavailable) and all(c.retry_after for c in unavailable),
                f"{len(unavailable)} answers 503, {sum(1 for c in unavailable if not c.retry_after)} without",
            )
        )
        pg_down = [c for c in predict_calls if c.phase in ("both down", "postgres down")]
        checks.append(
            Check(
                "predict answers 503 while PostgreSQL is down (after its cached second)",
                any(c.status == 503 for c in pg_down) and all(c.status in (200, 503) for c in pg_down),
                summarise(pg_down),
            )
        )
        redis_only = [c for c in predict_calls if c.phase == "redis down"]
        checks.append(
            Check(
                "predict keeps serving while only Redis is down",
                all(c.status == 200 for c in redis_only),
                summarise(redis_only),
            )
        )
        health_down = [c for c in health_calls if c.phase in outage and c.at > phases_mark(phases, c.phase) + 1.5]
        checks.append(
            Check(
                "/healthz answers 503 while a dependency is down",
                all(c.status == 503 for c in health_down),
                summarise(health_down),
            )
        )
        checks.append(
            Check(
                "recovers by itself (no process restarted)",
                recovered and app.web.process.poll() is None and app.worker.process.poll() is None,
                f"predict and /healthz answer 200 {recovery_seconds:.1f} s after PostgreSQL started",
            )
        )
        scores = BatchScore.objects.filter(run=run)
        score_count, distinct = scores.count(), scores.values("entity_id").distinct().count()
        checks.append(
            Check(
                "the batch run completes with exactly one score per row",
                finished and run.status == BatchRun.Status.SUCCEEDED and score_count == distinct == args.rows,
                f"run {run.status} ({run.error[:200] or 'no error'}), {score_count} scores, {distinct} entities, "
                f"{args.rows} rows; chunks done {run.chunks.filter(status=BatchChunk.Status.DONE).count()}"
                f"/{run.chunks_total}; attempts {sum(run.chunks.values_list('attempts', flat=True))}",
            )
        )
        given = {pid for c in predict_calls for pid in c.prediction_ids}
        successes = sum(1 for c in predict_calls if c.status == 200)
        served_after, _ = soak.served(app.web.log, predict_path)
        served_ok = served_after - served_before  # also counts answers a client gave up waiting for
        logged = Prediction.objects.count() - predictions_before
        missing = len(given) - Prediction.objects.filter(pk__in=list(given)).count()
        checks.append(
            Check(
                "prediction log: one row per successful prediction",
                logged == served_ok and missing == 0,
                f"{served_ok} answered 200 (access log), {successes} received by the clients, {logged} rows logged, "
                f"{missing} of the clients' prediction ids missing",
            )
        )
        audit_after = set(AuditEvent.objects.values_list("pk", flat=True))
        new_actions = Counter(
            AuditEvent.objects.filter(pk__in=audit_after - audit_before).values_list("action", flat=True)
        )
        runs = Counter(BatchRun.objects.values_list("status", flat=True))  # every run was created in the drill
        checks.append(
            Check(
                "no audit row lost",
                audit_before <= audit_after
                and new_actions["batch_run.requested"] == sum(runs.values())
                and new_actions["batch_run.succeeded"] == runs[BatchRun.Status.SUCCEEDED]
                and new_actions["batch_run.failed"] == runs[BatchRun.Status.FAILED],
                f"{len(audit_before)} rows before, all still there: {audit_before <= audit_after}; "
                f"new: {dict(new_actions)} for runs {dict(runs)}",
            )
        )
        reports = Report.objects.filter(model__name=MODEL_NAME)
        stuck = reports.filter(status=Report.Status.RUNNING).count()
        refused = reports.filter(status=Report.Status.FAILED, error__startswith="Could not be queued").count()
        checks.append(
            Check(
                "a report asked for while the broker is down is not left running with no task",
                stuck == 0,
                f"{reports.count()} stored: {refused} failed as not queued, {stuck} still running, others: "
                + "; ".join(
                    f"{r.status} {r.error[:80]}" for r in reports.exclude(error__startswith="Could not be queued")
                ),
            )
        )
        later_runs = BatchRun.objects.filter(job=second_job).order_by("pk")
        last_ask = [q for q in queued if q.body.startswith("runs:")][-1]
        checks.append(
            Check(
                "a run asked for while the broker is down does not block the job's later runs",
                not later_runs.filter(status__in=active).exists() and last_ask.status == 202,
                f"runs of the second job: {[r.status for r in later_runs]}; "
                f"after recovery, run now answered {last_ask.status}",
            )
        )
        print(
            f"  drill took {time.monotonic() - started:.0f} s; phase marks: "
            + ", ".join(f"{name} at {at:.1f} s" for at, name in phases.marks)
        )
        return checks
    finally:
        app.web.stop()
        app.worker.stop()


def phases_mark(phases: Phases, name: str) -> float:
    return next((at for at, mark in phases.marks if mark == name), 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage", type=float, default=8.0, help="seconds each phase of the outage lasts")
    parser.add_argument("--rate", type=float, default=30.0, help="predict requests per second")
    parser.add_argument("--clients", type=int, default=3, help="client threads sending predict requests")
    parser.add_argument("--rows", type=int, default=150_000, help="rows in the batch run")
    parser.add_argument("--chunk-rows", type=int, default=1000)
    parser.add_argument("--visibility", type=int, default=20, help="the broker's visibility timeout (s)")
    parser.add_argument("--max-seconds", type=float, default=5.0, help="slowest acceptable answer while down")
    parser.add_argument("--recover-seconds", type=float, default=60.0)
    parser.add_argument("--batch-seconds", type=float, default=300.0, help="how long the batch run may take to finish")
    parser.add_argument("--broker-persistence", choices=("aof", "none"), default="aof")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    args = parser.parse_args()
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")

    workdir = Path(tempfile.mkdtemp(prefix="mf-drills-"))
    workdir.chmod(0o755)  # the private cluster's owner (postgres) must reach its folder inside
    pg = PrivatePostgres(workdir / "postgres", PG_PORT)
    redis = PrivateRedis(workdir / "redis", REDIS_PORT, persistent=args.broker_persistence == "aof")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; work dir {workdir}")
    print(f"Private PostgreSQL on 127.0.0.1:{PG_PORT}, Redis on 127.0.0.1:{REDIS_PORT} ({args.broker_persistence})")
    checks: list[Check] = []
    try:
        pg.init()
        pg.start()
        redis.start()
        checks = drill(args, workdir, pg, redis)
    except (DrillError, realtime.BenchmarkError, subprocess.CalledProcessError) as exc:
        print(f"ERROR: {exc}\n(work dir kept: {workdir})", file=sys.stderr)
        return 1
    finally:
        redis.stop()
        pg.stop()
    print("\nSummary")
    for check in checks:
        print(f"  {'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed")
    if args.keep or failed:
        print(f"(work dir kept: {workdir})")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
