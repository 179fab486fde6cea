"""Scoring with SQL (issue 16): Model Factory's SQL functions against the bare compiled model (DuckDB) and
against `mlflow.pyfunc.spark_udf` on the same MLflow directory and Spark session (Spark, local[2]).

The model is realtime.py's: StandardScaler + a 100-tree random forest on scikit-learn's breast-cancer data,
saved by MLflow with its defaults and registered from that directory in a fresh Model Factory (SQLite), put
in production through review and the checks; Model Factory compiles it, and the checks verify the graph.
The table is --rows rows drawn with replacement from the data set's 569, as Parquet.

- DuckDB: `SELECT score(<30 columns>) FROM t` through `mf.sql_function` (schema validation, counts and
  the sample reported to the server included), against onnxruntime's run of the same graph on the same rows
  in memory, 100,000 rows a call. The labels must be identical.
- Spark: `mf.spark_udf` and `mlflow.pyfunc.spark_udf(..., env_manager="local")` on the same DataFrame, each
  timed writing every row's label to Spark's noop sink, alternated --repeat times; the labels must be
  identical. Runs in MLflow's venv (its Python is the executors'), which needs pyspark, onnxruntime,
  pyarrow and requests besides MLflow: see benchmarks/README.md.

- Spark, with --jvm: also the two ways to score the forest in Spark's JVM, without Python workers: the fitted
  pipeline compiled to one Spark SQL expression (labels checked identical), and Spark ML's own forest of the
  same size fitted on the same rows.

    .venv/bin/python benchmarks/sql.py [--rows 10000000] [--repeat 2] [--jvm] [--skip-spark] [--skip-duckdb]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import realtime
import requests

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path.insert(0, str(REPO))

from registry.client import ModelFactory  # noqa: E402 - the repository is on the path from here on
from registry.predictors import OnnxPredictor  # noqa: E402

BARE_CHUNK = 100_000


def write_table(model: realtime.Model, rows: int, path: Path) -> list[str]:
    """`rows` rows drawn with replacement from the training features, as Parquet in row groups of 1M."""
    rng = np.random.default_rng(0)
    features = model.features.reset_index(drop=True)
    columns = [str(column) for column in features.columns]
    with pq.ParquetWriter(path, pa.Schema.from_pandas(features, preserve_index=False)) as writer:
        for start in range(0, rows, 1_000_000):
            picked = features.iloc[rng.integers(0, len(features), min(1_000_000, rows - start))]
            writer.write_table(pa.Table.from_pandas(picked, preserve_index=False))
    return columns


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def duckdb_case(url: str, token: str, table: Path, columns: list[str]) -> dict[str, float]:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)", [str(table)])
    mf = ModelFactory(url, token=token)
    scorer = mf.sql_function(con, realtime.MODEL_NAME, name="score", sample_rows=100)
    if scorer.loaded.engine != "onnx":
        raise SystemExit(f"The version serves with {scorer.loaded.engine}, not its compiled graph")
    arguments = ", ".join(f'"{column}"' for column in columns)

    # The bare graph: the same bytes the function loaded, on the same rows, in memory.
    data = con.sql("SELECT * FROM t").fetchnumpy()
    inputs = {column: np.asarray(data[column]) for column in columns}
    bare = OnnxPredictor(mf.session.get(scorer.run["served"]["compiled"]["download_url"]).content)
    rows = len(inputs[columns[0]])
    started = time.perf_counter()
    expected = np.concatenate(
        [
            bare.score({name: values[i : i + BARE_CHUNK] for name, values in inputs.items()})[0]
            for i in range(0, rows, BARE_CHUNK)
        ]
    )
    bare_seconds = time.perf_counter() - started

    started = time.perf_counter()
    got = con.sql(f"SELECT score({arguments}) AS label FROM t").fetchnumpy()["label"]  # noqa: S608 - our columns
    sql_seconds = time.perf_counter() - started
    if not np.array_equal(np.asarray(got, dtype=expected.dtype), expected):
        raise SystemExit("The SQL function's labels differ from the bare graph's")
    answer = scorer.report()
    return {
        "rows": rows,
        "bare_seconds": bare_seconds,
        "sql_seconds": sql_seconds,
        "ratio": sql_seconds / bare_seconds,
        "reported_rows": answer["rows_scored"],
        "peak_mb": peak_mb(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="Spark: timed runs of each UDF, alternated")
    parser.add_argument("--mlflow-python", type=Path, default=REPO / ".venv-mlflow" / "bin" / "python")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--jvm", action="store_true", help="Spark: also the forest scored in the JVM, two ways")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mf-sql-"))
    servers: list[realtime.Server] = []
    print(f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; work dir {workdir}")
    with realtime.stopped_on_exit(servers):
        model = realtime.train()
        # MLflow's own directory of the model (workdir/mlflow-model), then Model Factory serving it.
        (workdir / "model.pkl").write_bytes(__import__("pickle").dumps(model.pipeline))
        model.features.assign(target=model.target).to_csv(workdir / "training.csv", index=False)
        env = {**os.environ, "PATH": f"{args.mlflow_python.parent}:{os.environ['PATH']}"}
        save = [str(args.mlflow_python), str(BENCHMARKS / "mlflow_save.py"), "--model", str(workdir / "model.pkl")]
        save += ["--data", str(workdir / "training.csv"), "--out", str(workdir / "mlflow-model")]
        print(f"  MLflow venv: {realtime.run(save, env=env, cwd=workdir).strip()}")
        servers.append(realtime.start_model_factory(model, workdir, case="mlflow-dir", web_workers=2))
        server = servers[0]
        base = server.url.split("/api/")[0]
        token = server.headers["Authorization"].removeprefix("Token ")
        table = workdir / "table.parquet"
        started = time.perf_counter()
        columns = write_table(model, args.rows, table)
        size = table.stat().st_size / 1e6
        print(f"  {args.rows:,} rows written in {time.perf_counter() - started:.1f} s ({size:.0f} MB)")

        if not args.skip_duckdb:
            result = duckdb_case(base, token, table, columns)
            print(
                f"DuckDB, {result['rows']:,} rows: bare compiled graph {result['bare_seconds']:.1f} s, "
                f"score(...) {result['sql_seconds']:.1f} s: {result['ratio']:.2f}x the bare graph's time "
                f"(labels identical; {result['reported_rows']:,} rows reported; peak RSS {result['peak_mb']:,.0f} MB)"
            )
        if not args.skip_spark:
            command = [str(args.mlflow_python), str(BENCHMARKS / "sql_spark.py"), "--url", base, "--token", token]
            command += ["--table", str(table), "--mlflow-model", str(workdir / "mlflow-model")]
            command += ["--model", realtime.MODEL_NAME, "--repeat", str(args.repeat)]
            command += ["--graph-url", f"{base}/api/models/{realtime.MODEL_NAME}/versions/1/compiled/download/"]
            command += ["--jvm"] if args.jvm else []
            spark_env = {**env, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": str(args.mlflow_python)}
            done = subprocess.run(command, env=spark_env, cwd=workdir, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print((done.stdout + done.stderr)[-6000:], file=sys.stderr)
                return 1
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"Spark local[2], {result['rows']:,} rows: mlflow.pyfunc.spark_udf {result['mlflow_seconds']:.1f} s, "
                f"Model Factory's UDF {result['mf_seconds']:.1f} s: {result['speedup']:.2f}x faster "
                f"(best of {args.repeat}; labels identical on every row). Spark's own floor (a UDF returning "
                f"zeros) {result['floor_seconds']:.1f} s; the compiled graph alone in a UDF "
                f"{result['bare_seconds']:.1f} s"
            )
            cases = {
                "floor": "a UDF returning zeros",
                "bare": "the compiled graph alone",
                "mlflow": "mlflow.pyfunc.spark_udf",
                "mf": "Model Factory's UDF",
                "sql_expression": "the forest as one SQL expression (JVM)",
                "spark_ml": "Spark ML's forest of the same size (JVM)",
            }
            for case, title in cases.items():
                if f"{case}_seconds" in result:
                    print(
                        f"  {title}: {result[f'{case}_seconds']:.1f} s "
                        f"({result['mlflow_seconds'] / result[f'{case}_seconds']:.2f}x MLflow's speed), "
                        f"peak RSS of Spark's processes {result[f'{case}_peak_mb']:,.0f} MB"
                    )
        requests.get(f"{base}/healthz", timeout=5)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
