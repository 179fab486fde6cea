"""The Spark entry point over a small archive gives DuckDB's numbers (Spark in local mode: ~20 s)."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from monitoring import spark_job
from registry.schema import parse_schema
from scoring.archive import format, store

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs a Java runtime (Java 17 in CI)")
# py4j logs its connection's close when the interpreter exits, after pytest has closed the streams.
logging.getLogger("py4j").setLevel(logging.WARNING)

FIELDS = parse_schema(
    [
        {"name": "tenure", "type": "integer"},
        {"name": "charges", "type": "float"},
        {"name": "contract", "type": "category", "categories": ["monthly", "yearly"]},
    ]
)


def archive_hours(root: Path, start: datetime) -> None:
    rng = np.random.default_rng(3)
    for offset, version in ((0, 1), (1, 1), (2, 2), (30, 2)):  # the last hour is outside the window
        hour = start + timedelta(hours=offset)
        rows = [
            {
                "id": f"{offset}-{index}",
                "at": hour + timedelta(seconds=index),
                "model_id": 7,
                "version_id": version,
                "version": version,
                "entity_id": f"e{index}",
                "input": {
                    "tenure": int(rng.integers(0, 72)),
                    "charges": None if index % 17 == 0 else float(rng.uniform(20, 120)),
                    "contract": str(rng.choice(["monthly", "yearly"])),
                }
                if index % 23
                else None,
                "input_sha256": "x",
                "output": index % 2,
                "probabilities": [0.5, 0.5],
                "latency_ms": 1.0,
            }
            for index in range(200)
        ]
        path = root / store.hour_path("predictions", 7, hour, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(format.predictions_table(rows, FIELDS), path)


def duckdb_figures(root: Path, start: datetime, end: datetime) -> dict[str, Any]:
    connection = duckdb.connect()
    connection.execute(
        f"""CREATE VIEW w AS SELECT * FROM read_parquet('{root}/predictions/model=7/**/*.parquet',
        union_by_name = true, hive_partitioning = false)
        WHERE __at >= $start AND __at < $end AND __input_kept""".replace(
            "$start", f"TIMESTAMPTZ '{start.isoformat()}'"
        ).replace("$end", f"TIMESTAMPTZ '{end.isoformat()}'")
    )
    (rows,) = connection.execute("SELECT count(*) FROM w").fetchone() or (0,)
    slices = dict(connection.execute("SELECT 'contract=' || contract, count(*) FROM w GROUP BY 1").fetchall())
    low, high = connection.execute("SELECT min(charges), max(charges) FROM w").fetchone() or (0.0, 1.0)
    scale = 20 / (high - low)
    charges = [0] * 20
    for index, count in connection.execute(
        f"SELECT least(floor((charges - {low!r}) * {scale!r}), 19), count(*) FROM w "
        "WHERE charges IS NOT NULL GROUP BY 1"
    ).fetchall():
        charges[int(index)] = count
    return {"rows": rows, "slices": slices, "charges": charges}


def test_the_spark_job_counts_what_duckdb_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = start + timedelta(days=1)
    archive_hours(tmp_path, start)

    assert (
        spark_job.main(
            [
                "--archive",
                str(tmp_path),
                "--model",
                "7",
                "--start",
                start.isoformat(),
                "--end",
                end.isoformat(),
                "--slice-column",
                "contract",
            ]
        )
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    expected = duckdb_figures(tmp_path, start, end)

    assert found["rows"] == expected["rows"] == 3 * (200 - 9)
    assert found["slices"] == expected["slices"]
    assert found["features"]["charges"]["counts"][spark_job.WHOLE] == expected["charges"]
    contract = found["features"]["contract"]["counts"][spark_job.WHOLE]
    assert sum(contract.values()) == expected["rows"] and set(contract) == {"monthly", "yearly"}
    assert sum(found["features"]["tenure"]["counts"]["contract=monthly"]) == expected["slices"]["contract=monthly"]
