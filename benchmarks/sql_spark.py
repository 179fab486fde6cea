"""The Spark half of sql.py, run by MLflow's venv (its Python is also the executors'): Model Factory's UDF
and `mlflow.pyfunc.spark_udf` on the same MLflow directory, DataFrame and session, with the peak memory of
the whole process tree (this driver's JVM and the Python workers) during each run. Prints one JSON line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.functions import PandasUDFType, col, expr, pandas_udf, struct

from registry.client import ModelFactory
from registry.predictors import OnnxPredictor


def tree_rss_mb(root: int) -> float:
    """The resident memory of `root` and every process under it (Spark's JVM, its Python workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    tree, grown = {root}, True
    while grown:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grown = bool(found)
    pages = 0
    for pid in tree:
        with contextlib.suppress(OSError):
            pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@contextlib.contextmanager
def peak_rss(into: list[float]) -> Iterator[None]:
    """Samples the tree's memory every 0.2 s while the block runs; appends the highest."""
    done, peak = threading.Event(), [tree_rss_mb(os.getpid())]

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], tree_rss_mb(os.getpid()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()
        into.append(peak[0])


# --- the model in the JVM, without Python workers (--jvm) ------------------------------------------------
# The two ways Spark can score a forest without Python, measured to see whether either beats the Python
# workers' floor: the fitted pipeline compiled to one Spark SQL expression (labels checked identical; its
# generated code outgrows Java's 64 KB method limit, and Spark falls back to evaluating it without
# whole-stage code generation), and Spark ML's own RandomForestClassificationModel of the same size.


def _ordered(x: float) -> int:
    """A double as an integer of the same order, so that a binary search can step through every double."""
    bits = int(np.array([x], dtype=np.float64).view(np.int64)[0])
    return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)


def _double(key: int) -> float:
    bits = key if key >= 0 else (-key) | (1 << 63)
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def raw_threshold(mean: float, scale: float, threshold: float) -> float:
    """The largest double x that scikit-learn sends left at `threshold` after scaling: the tree compares
    float32((x - mean) / scale) <= threshold, which grows with x, so that x <= the result is the same test."""

    def left(key: int) -> bool:
        return bool(np.float32((np.float64(_double(key)) - mean) / scale) <= threshold)

    low, high = _ordered(-1.7e308), _ordered(1.7e308)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if left(middle) else (low, middle)
    return _double(low)


def forest_sql(pipeline: Any, columns: list[str]) -> str:
    """StandardScaler + RandomForestClassifier (binary) as one SQL expression giving scikit-learn's label: each
    tree's class fractions summed in the forest's order, divided by the number of trees, the first maximum."""
    scaler, forest = pipeline[0], pipeline[-1]

    def literal(value: float) -> str:
        return f"CAST('{float(value)!r}' AS DOUBLE)"

    def tree(estimator: Any, k: int) -> str:
        nodes = estimator.tree_

        def node(i: int) -> str:
            if nodes.children_left[i] == -1:
                values = nodes.value[i][0]
                return literal(values[k] / (values.sum() or 1.0))
            j = nodes.feature[i]
            limit = raw_threshold(scaler.mean_[j], scaler.scale_[j], nodes.threshold[i])
            left, right = node(nodes.children_left[i]), node(nodes.children_right[i])
            return f"IF(`{columns[j]}` <= {literal(limit)}, {left}, {right})"

        return node(0)

    n = literal(len(forest.estimators_))
    p0, p1 = (" + ".join(tree(e, k) for e in forest.estimators_) for k in (0, 1))
    return f"IF(({p1}) / {n} > ({p0}) / {n}, {forest.classes_[1]}L, {forest.classes_[0]}L)"


def spark_ml_forest(spark: Any, table: Any, pipeline: Any, training: str) -> Any:
    """Spark ML's forest of the pipeline's size (100 trees grown as deep as the data allows), fitted on the
    same training rows: Spark cannot load scikit-learn's trees, so its labels are its own."""
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.feature import VectorAssembler

    forest = pipeline[-1]
    frame = pd.read_csv(training)
    features = VectorAssembler(inputCols=list(frame.columns[:-1]), outputCol="features")
    fitted = RandomForestClassifier(numTrees=len(forest.estimators_), maxDepth=30, labelCol="target", seed=0).fit(
        features.transform(spark.createDataFrame(frame.assign(target=frame["target"].astype(float))))
    )
    return fitted.transform(features.transform(table)).select(col("prediction").alias("label"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--url", "--token", "--table", "--mlflow-model", "--model", "--graph-url"):
        parser.add_argument(name, required=True)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--jvm", action="store_true", help="also the forest as a SQL expression and Spark ML's")
    parser.add_argument("--training", default="training.csv", help="for --jvm: the features and 'target'")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("model-factory-sql-benchmark")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    table = spark.read.parquet(args.table)
    columns = table.columns
    rows = table.count()
    mf = ModelFactory(args.url, token=args.token)
    mf_udf = mf.spark_udf(spark, args.model, name="score", sample_rows=100)
    mlflow_udf = mlflow.pyfunc.spark_udf(spark, args.mlflow_model, result_type="long", env_manager="local")
    inputs = struct(*[col(f"`{name}`") for name in columns])
    # Where the time goes: Spark's own cost of a pandas UDF over these columns (one that returns zeros), and
    # the compiled graph alone in a UDF (no schema, no counts, no sample).
    graph = spark.sparkContext.broadcast(mf.session.get(args.graph_url).content)

    def zeros(batches: Any) -> Any:
        for batch in batches:
            yield pd.Series(np.zeros(len(batch), dtype=np.int64))

    def bare(batches: Any) -> Any:
        predictor = OnnxPredictor(graph.value)
        for batch in batches:
            yield pd.Series(predictor.score({name: batch[name].to_numpy() for name in batch.columns})[0])

    floor_udf = pandas_udf(zeros, "long", PandasUDFType.SCALAR_ITER)
    bare_udf = pandas_udf(bare, "long", PandasUDFType.SCALAR_ITER)

    peaks: dict[str, list[float]] = {}

    def timed(name: str, label: Any) -> float:
        started = time.perf_counter()
        with peak_rss(peaks.setdefault(name, [])):
            label.write.format("noop").mode("overwrite").save()
        return time.perf_counter() - started

    udfs = {"floor": floor_udf, "bare": bare_udf, "mlflow": mlflow_udf, "mf": mf_udf}
    labels = {name: table.select(udf(inputs).alias("label")) for name, udf in udfs.items()}
    compared = {"mf": mf_udf(inputs)}
    if args.jvm:
        pipeline = mlflow.sklearn.load_model(args.mlflow_model)
        compared["sql_expression"] = expr(forest_sql(pipeline, columns))
        labels["sql_expression"] = table.select(compared["sql_expression"].alias("label"))
        labels["spark_ml"] = spark_ml_forest(spark, table, pipeline, args.training)
    for name, label in labels.items():  # untimed first runs: the executors' Python workers start and load each model
        timed(name, label)
    times: dict[str, list[float]] = {name: [] for name in labels}
    for _ in range(args.repeat):  # alternated, so that other load on the machine hits all alike
        for name, label in labels.items():
            times[name].append(timed(name, label))
    for name, scored in compared.items():
        differing = table.filter(scored != mlflow_udf(inputs)).count()
        if differing:
            raise SystemExit(f"{differing} labels differ between {name} and MLflow's UDF")
    spark.stop()
    print(
        json.dumps(
            {
                "rows": rows,
                **{f"{name}_seconds": min(spent) for name, spent in times.items()},
                **{f"{name}_peak_mb": max(peak) for name, peak in peaks.items()},
                "speedup": min(times["mlflow"]) / min(times["mf"]),
            }
        )
    )


if __name__ == "__main__":
    main()
