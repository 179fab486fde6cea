"""The model as a Spark UDF (local[2]), registered from the Python client against a running server: the
same labels as the server's, errors that carry our message through the JVM, and deprecation obeyed."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from registry import workflow
from registry.client import ModelFactory
from registry.models import ModelVersion
from scoring.models import SqlRun
from tests.conftest import PASSWORD, customers

pytestmark = [
    pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime (Java 17 in CI)"),
    pytest.mark.django_db(transaction=True),
]
logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    # The executors' Python must have the client's libraries: this one.
    previous = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("model-factory-sql-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()
    if previous is None:
        os.environ.pop("PYSPARK_PYTHON", None)
    else:
        os.environ["PYSPARK_PYTHON"] = previous


def test_spark_scores_as_the_server_and_stops_once_the_version_is_marked_do_not_use(
    live_server: Any, spark: Any, production: ModelVersion, author: Any, reviewer: Any, trained: Any
) -> None:
    from pyspark.sql.functions import struct

    pipeline, _ = trained
    frame = customers(3000, seed=5)
    table = spark.createDataFrame(frame).repartition(3)
    table.createOrReplaceTempView("customers")
    mf = ModelFactory.login(live_server.url, "ada", PASSWORD)

    udf = mf.spark_udf(spark, "churn", name="churn_score", sample_rows=10)
    by_struct = table.withColumn("label", udf(struct("tenure", "charges", "contract"))).toPandas()
    by_sql = spark.sql(
        "SELECT tenure, charges, contract, churn_score(tenure, charges, contract) AS label, "
        "churn_score_proba(tenure, charges, contract) AS p FROM customers"
    ).toPandas()

    for scored in (by_struct, by_sql):
        assert scored["label"].tolist() == pipeline.predict(scored[["tenure", "charges", "contract"]]).tolist()
    expected = pipeline.predict_proba(by_sql[["tenure", "charges", "contract"]])[:, 1]
    assert abs(by_sql["p"] - expected).max() < 1e-9
    run = SqlRun.objects.get()
    assert (run.engine, run.function_name, run.rows_scored, run.rows_rejected) == ("spark", "churn_score", 9000, 0)
    assert 0 < run.rows_logged <= 3 * 3 * 10  # each task's report carries up to 10 rows

    with pytest.raises(Exception, match=r"takes 3 columns, in this order: tenure, charges, contract"):
        spark.sql("SELECT churn_score(tenure, charges) FROM customers").collect()
    with pytest.raises(Exception, match=r"argument 1 is tenure, which takes a number; it was given struct"):
        spark.sql("SELECT churn_score(named_struct('t', tenure), charges, contract) FROM customers").collect()

    workflow.version_transition(actor=reviewer, version=production, action="deprecate", comment="Leaked labels.")
    with pytest.raises(Exception, match="churn_score no longer scores: churn version 1 is marked do not use"):
        spark.sql("SELECT churn_score(tenure, charges, contract) FROM customers").collect()
