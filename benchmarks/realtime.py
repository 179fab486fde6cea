"""Real-time scoring (issues 4 and 12): Model Factory against `mlflow models serve` of the same model.

Both servers get the same model (StandardScaler + a 100-tree random forest, trained here on
scikit-learn's breast-cancer data, saved by MLflow with its defaults: skops and the signature of
`infer_signature(X, model.predict(X))`), each server with its own defaults (Model Factory: the
Procfile's `web` command as `make run` starts it, 2 gunicorn processes; MLflow: 1 uvicorn worker;
`--web-workers 1` compares one process each), and the same one-row `dataframe_split` request, loaded
by wrk from this machine. Model Factory runs its real stack: a throw-away SQLite database and data
directory, the model put in production through review and the pre-deployment checks.

Cases (--case):
- `mlflow-dir` (default): MLflow's own directory, zipped and registered with no ONNX attached; Model
  Factory compiles it (MF_COMPILE_MODELS, on by default), the checks verify the graph, and it is
  called at `/api/models/{name}/predict/` with a user token. `--no-compile` switches compilation off
  (MF_COMPILE_MODELS=false): the native model serves.
- `skops`: the fitted pipeline registered as a skops file (compiled the same way), called at
  `/api/models/{name}/invocations` with a consumer token, as in the issue 4 benchmark (which attached
  a hand-made float32 ONNX export instead; that export no longer passes the 1e-6 check).

    .venv/bin/python benchmarks/realtime.py [--case mlflow-dir] [--no-compile] [--duration 20] [--warmup 5]
        [--connections 1,8]

MLflow lives in its own venv (--mlflow-python, default <repo>/.venv-mlflow); see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mf_setup
import pandas as pd
import requests
import skops.io as sio
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
MODEL_NAME = "breast-cancer-bench"
VERIFY_ROWS = 50  # checked on both servers before timing; also Model Factory's golden set
TICKS = os.sysconf("SC_CLK_TCK")

# wrk's Lua: the request, and one JSON line of results (latencies in microseconds) when done.
WRK_LUA = """wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d, "non_2xx": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


class BenchmarkError(RuntimeError):
    pass


@dataclass
class Model:
    pipeline: Pipeline
    features: pd.DataFrame
    target: pd.Series

    def body(self, rows: pd.DataFrame) -> str:
        columns = [str(column) for column in self.features.columns]
        return json.dumps({"dataframe_split": {"columns": columns, "data": rows.to_numpy().tolist()}})


def train() -> Model:
    data = load_breast_cancer(as_frame=True)
    features = data.data.rename(columns=lambda name: str(name).replace(" ", "_"))
    pipeline = Pipeline(
        [("scale", StandardScaler()), ("forest", RandomForestClassifier(n_estimators=100, random_state=0))]
    )
    return Model(pipeline=pipeline.fit(features, data.target), features=features, target=data.target)


# --- servers --------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str  # the scoring endpoint
    headers: dict[str, str]

    def wait_ready(self, health_url: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchmarkError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(health_url, timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        raise BenchmarkError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        # Each server runs in its own process group: the CLI and the workers it forked stop together.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spawn(command: list[str], *, log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def run(command: list[str], *, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"{command[:4]} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
    return done.stdout


def start_mlflow(
    model: Model, mlflow_python: Path, workdir: Path, *, workers: int
) -> Server:  # saves workdir/mlflow-model
    """Save the model with MLflow (in MLflow's venv, from a pickle) and serve it with `workers` workers."""
    if not mlflow_python.exists():
        raise BenchmarkError(f"No MLflow venv at {mlflow_python}: see benchmarks/README.md.")
    (workdir / "model.pkl").write_bytes(pickle.dumps(model.pipeline))
    model.features.assign(target=model.target).to_csv(workdir / "training.csv", index=False)
    # The CLI starts its server by name: the venv's bin must be on PATH.
    env = {**os.environ, "PATH": f"{mlflow_python.parent}:{os.environ['PATH']}"}
    save = [str(mlflow_python), str(BENCHMARKS / "mlflow_save.py"), "--model", str(workdir / "model.pkl")]
    save += ["--data", str(workdir / "training.csv"), "--out", str(workdir / "mlflow-model")]
    versions = run(save, env=env, cwd=workdir)
    print(f"  MLflow venv: {versions.strip()}")
    port = free_port()
    command = [str(mlflow_python), "-m", "mlflow", "models", "serve", "-m", str(workdir / "mlflow-model")]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "--workers", str(workers)]
    log = workdir / "mlflow.log"
    server = Server(
        "MLflow", spawn(command, log=log, env=env, cwd=workdir), log, f"http://127.0.0.1:{port}/invocations", {}
    )
    server.wait_ready(f"http://127.0.0.1:{port}/ping")
    return server


def start_model_factory(
    model: Model, workdir: Path, *, case: str = "skops", compile_models: bool = True, web_workers: int
) -> Server:
    """A fresh Model Factory (SQLite) with the model in production, served by the Procfile's web command."""
    env = {
        "MF_DATA_DIR": str(workdir / "mf-data"),
        "DATABASE_URL": "",  # the embedded defaults: SQLite and a file-system broker in MF_DATA_DIR
        "CELERY_BROKER_URL": "filesystem://",
        "MF_CONSUMER_RATE_LIMIT": "1000000/s",  # the throttle runs on every request, but must not cap it
        "MF_LOG_LEVEL": "WARNING",
        "MF_COMPILE_MODELS": "true" if compile_models else "false",
    }
    mf_setup.configure(env)
    from registry import selectors

    golden = model.features.iloc[:VERIFY_ROWS]
    golden.assign(expected=model.pipeline.predict(golden)).to_csv(workdir / "golden_set.csv", index=False)
    if case == "mlflow-dir":
        # The directory `mlflow models serve` serves, as MLflow wrote it; the reference data are the training rows.
        artifact = Path(shutil.make_archive(str(workdir / "mlflow-model"), "zip", workdir, "mlflow-model"))
        model.features.to_csv(workdir / "reference.csv", index=False)
        production = mf_setup.register_in_production(
            name=MODEL_NAME,
            title="Breast cancer, random forest (benchmark)",
            artifact=artifact,
            golden_set=workdir / "golden_set.csv",
            reference_data=workdir / "reference.csv",
            columns=None,  # from MLflow's signature
        )
        path, headers = f"/api/models/{MODEL_NAME}/predict/", {"Authorization": f"Token {production.user_token}"}
    else:
        (workdir / "model.skops").write_bytes(sio.dumps(model.pipeline))
        production = mf_setup.register_in_production(
            name=MODEL_NAME,
            title="Breast cancer, random forest (benchmark)",
            artifact=workdir / "model.skops",
            golden_set=workdir / "golden_set.csv",
            columns=[str(column) for column in model.features.columns],
        )
        path, headers = f"/api/models/{MODEL_NAME}/invocations", {"Authorization": f"Bearer {production.token}"}
    serving = selectors.serving_engine(version=production.version)
    print(f"  Model Factory: {production.version} is in production, served by {serving.engine}: {serving.reason}")

    port = free_port()
    web = next(line for line in (REPO / "Procfile").read_text().splitlines() if line.startswith("web:"))
    path_env = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    process_env = {**os.environ, "MF_BIND": f"127.0.0.1:{port}", "MF_WEB_WORKERS": str(web_workers), "PATH": path_env}
    log = workdir / "model-factory.log"
    process = spawn(["bash", "-c", "exec " + web.removeprefix("web:").strip()], log=log, env=process_env, cwd=REPO)
    server = Server("Model Factory", process, log, f"http://127.0.0.1:{port}{path}", headers)
    server.wait_ready(f"http://127.0.0.1:{port}/healthz")
    return server


def verify(server: Server, model: Model) -> None:
    """The server must predict exactly what the trained model predicts, before anything is timed."""
    rows = model.features.iloc[:VERIFY_ROWS]
    headers = {"Content-Type": "application/json", **server.headers}
    response = requests.post(server.url, data=model.body(rows), headers=headers, timeout=60)
    if response.status_code != 200:
        raise BenchmarkError(f"{server.name} answered {response.status_code}: {response.text[:500]}")
    got = [int(label) for label in response.json()["predictions"]]
    if got != [int(label) for label in model.pipeline.predict(rows)]:
        raise BenchmarkError(f"{server.name} predicts differently from the trained model: {got}")


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Result:
    server: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, timeouts and non-2xx answers
    other_cpu_percent: float  # CPU used by processes other than this server and wrk: noise


def busy_seconds() -> float:
    """CPU seconds all cores have been busy since boot."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS


def group_seconds(group: int) -> float:
    """CPU seconds used by the live processes of a process group."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group:
                total += int(fields[11]) + int(fields[12])
    return total / TICKS


def wrk(server: Server, script: Path, connections: int, duration: float) -> tuple[dict[str, int], float]:
    """Run wrk; its results and the CPU seconds it used."""
    command = ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    command += ["--timeout", "10s", "-s", str(script), server.url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the servers, not yet reaped, are not in it
    if done.returncode != 0 or done.stderr.strip():  # a Lua error only goes to stderr
        raise BenchmarkError(f"wrk failed: {done.stderr or done.stdout}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return json.loads(done.stdout.strip().splitlines()[-1]), cpu


def measure(server: Server, script: Path, connections: int, duration: float) -> Result:
    busy, own = busy_seconds(), group_seconds(server.process.pid)
    started = time.monotonic()
    stats, wrk_cpu = wrk(server, script, connections, duration)
    elapsed = time.monotonic() - started
    other = busy_seconds() - busy - (group_seconds(server.process.pid) - own) - wrk_cpu
    return Result(
        server=server.name,
        connections=connections,
        requests_per_second=stats["requests"] / (stats["duration_us"] / 1e6),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        errors=stats["errors"] + stats["non_2xx"],
        other_cpu_percent=max(0.0, 100 * other / (elapsed * (os.cpu_count() or 1))),
    )


def report(results: list[Result]) -> None:
    print(f"\n{'server':<14} {'conn':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'other CPU':>9}")
    for r in results:
        print(
            f"{r.server:<14} {r.connections:>4} {r.requests_per_second:>9.1f} {r.p50_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {r.errors:>6} {r.other_cpu_percent:>8.0f}%"
        )
    print("\nModel Factory / MLflow:")
    by_key = {(r.server, r.connections): r for r in results}
    for connections in sorted({r.connections for r in results}):
        ours, theirs = by_key[("Model Factory", connections)], by_key[("MLflow", connections)]
        print(
            f"  {connections} connection(s): throughput {ours.requests_per_second / theirs.requests_per_second:.1f}x, "
            f"p50 {ours.p50_ms / theirs.p50_ms:.2f}x, p99 {ours.p99_ms / theirs.p99_ms:.2f}x"
        )


@contextlib.contextmanager
def stopped_on_exit(servers: list[Server]) -> Iterator[None]:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # SIGTERM too runs the cleanup below
    try:
        yield
    finally:
        for server in servers:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per measurement")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of untimed load per server first")
    parser.add_argument("--connections", default="1,8", help="comma-separated wrk connection counts")
    parser.add_argument("--case", choices=["mlflow-dir", "skops"], default="mlflow-dir")
    parser.add_argument("--no-compile", action="store_true", help="MF_COMPILE_MODELS=false: the native model serves")
    parser.add_argument("--mlflow-python", type=Path, default=REPO / ".venv-mlflow" / "bin" / "python")
    # Each server's own default: the Procfile's web command runs 2 gunicorn processes (MF_WEB_WORKERS, as
    # `make run` does), `mlflow models serve` 1 uvicorn worker. --web-workers 1 compares one process each.
    parser.add_argument("--web-workers", type=int, default=2, help="Model Factory's gunicorn processes")
    parser.add_argument("--mlflow-workers", type=int, default=1, help="`mlflow models serve --workers`")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    args = parser.parse_args()
    connection_counts = [int(part) for part in args.connections.split(",")]
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install -y wrk")

    workdir = Path(tempfile.mkdtemp(prefix="mf-realtime-"))
    servers: list[Server] = []
    try:
        with stopped_on_exit(servers):
            print(f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; work dir {workdir}")
            model = train()
            print("Starting `mlflow models serve` and Model Factory...")
            servers.append(start_mlflow(model, args.mlflow_python, workdir, workers=args.mlflow_workers))
            servers.append(
                start_model_factory(
                    model, workdir, case=args.case, compile_models=not args.no_compile, web_workers=args.web_workers
                )
            )
            body = model.body(model.features.iloc[:1])
            scripts = {}
            for server in servers:
                verify(server, model)
                headers = {"Content-Type": "application/json", **server.headers}
                lines = "\n".join(f'wrk.headers["{key}"] = "{value}"' for key, value in headers.items())
                scripts[server.name] = workdir / f"{server.name.replace(' ', '-')}.lua"
                scripts[server.name].write_text(WRK_LUA.format(body=body, headers=lines))
                wrk(server, scripts[server.name], max(connection_counts), args.warmup)
            print(f"Both servers give the trained model's predictions on {VERIFY_ROWS} rows; measuring...")
            results = []
            for connections in connection_counts:
                for server in servers:  # alternating, so that other load on the machine hits both alike
                    results.append(measure(server, scripts[server.name], connections, args.duration))
                    print(f"  {server.name}, {connections} connection(s): {results[-1].requests_per_second:.1f} req/s")
    except BenchmarkError as exc:
        print(f"ERROR: {exc}\n(work dir kept: {workdir})", file=sys.stderr)
        return 1
    report(results)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
