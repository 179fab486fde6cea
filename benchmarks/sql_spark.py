"""The Spark half of sql.py, run by MLflow's venv (its Python is also the executors'): Model Factory's UDF
and `mlflow.pyfunc.spark_udf` on the same MLflow directory, DataFrame and session. Prints one JSON line."""

from __future__ import annotations

import argparse
import json
import time
import warnings
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.functions import PandasUDFType, col, pandas_udf, struct

from registry.client import ModelFactory
from registry.predictors import OnnxPredictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--url", "--token", "--table", "--mlflow-model", "--model", "--graph-url"):
        parser.add_argument(name, required=True)
    parser.add_argument("--repeat", type=int, default=2)
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

    def timed(udf: object) -> float:
        started = time.perf_counter()
        table.select(udf(inputs).alias("label")).write.format("noop").mode("overwrite").save()  # type: ignore[operator]
        return time.perf_counter() - started

    udfs = {"floor": floor_udf, "bare": bare_udf, "mlflow": mlflow_udf, "mf": mf_udf}
    for udf in udfs.values():  # untimed first runs: the executors' Python workers start and load each model
        timed(udf)
    times: dict[str, list[float]] = {name: [] for name in udfs}
    for _ in range(args.repeat):  # alternated, so that other load on the machine hits all alike
        for name, udf in udfs.items():
            times[name].append(timed(udf))
    both = table.select(mf_udf(inputs).alias("a"), mlflow_udf(inputs).alias("b"))
    differing = both.filter(col("a") != col("b")).count()
    if differing:
        raise SystemExit(f"{differing} labels differ between the two UDFs")
    spark.stop()
    print(
        json.dumps(
            {
                "rows": rows,
                **{f"{name}_seconds": min(spent) for name, spent in times.items()},
                "speedup": min(times["mlflow"]) / min(times["mf"]),
            }
        )
    )


if __name__ == "__main__":
    main()
