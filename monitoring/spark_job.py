"""The window's per-slice counts and histograms computed by Spark from the Parquet archive, for windows
one machine cannot hold (pure PySpark, no Django: the archive's layout is its whole input).

    python -m monitoring.spark_job --archive DIR --model ID --start 2026-11-01T00:00:00Z \
        --end 2026-11-08T00:00:00Z --slice-column region [--slice-column plan] [--master local[2]]

prints JSON: the window's rows, the rows of each slice ("column=value", as reports name them), and per
feature of the archive files either value counts (text and flag columns) or a histogram of
`--bins` equal-width bins between the window's minimum and maximum (number columns), for the whole
window (key "") and each slice. `DIR` is the archive root (MF_ARCHIVE_URL; any URL Spark reads,
s3a:// included); files are read by their Hive-style partitions, predictions/model=ID/version=…/day=…/.
The same figures come from DuckDB on the same files (tests/monitoring/test_spark_job.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

AT, INPUT_KEPT = "__at", "__input_kept"  # scoring.archive.format's names, without importing Django
WHOLE = ""
DEFAULT_BINS = 20


def summarise(
    spark: Any, archive: str, model: int, start: datetime, end: datetime, slice_columns: list[str], bins: int
) -> dict[str, Any]:
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own spelling

    frame = (
        spark.read.option("mergeSchema", "true")
        .option("basePath", f"{archive.rstrip('/')}/predictions/model={model}")
        .parquet(f"{archive.rstrip('/')}/predictions/model={model}")
        .where((F.col(AT) >= F.lit(start)) & (F.col(AT) < F.lit(end)) & F.col(INPUT_KEPT))
    )
    features = [
        field.name
        for field in frame.schema.fields
        if not field.name.startswith("__") and field.name not in ("version", "day", "hour")
    ]
    kinds = {field.name: field.dataType.typeName() for field in frame.schema.fields}
    frame = frame.select(*features).cache()
    rows = frame.count()
    slices: dict[str, int] = {}
    for column in slice_columns:
        for value, count in frame.where(F.col(column).isNotNull()).groupBy(column).count().collect():
            slices[f"{column}={_text(value)}"] = int(count)
    result: dict[str, Any] = {"rows": rows, "slices": slices, "features": {}}
    for feature in features:
        if kinds[feature] in ("double", "float", "long", "integer", "short"):
            result["features"][feature] = _histogram(frame, feature, slice_columns, bins)
        else:
            result["features"][feature] = _value_counts(frame, feature, slice_columns)
    frame.unpersist()
    return result


def _text(value: Any) -> str:
    return str(value)


def _histogram(frame: Any, feature: str, slice_columns: list[str], bins: int) -> dict[str, Any]:
    from pyspark.sql import functions as F  # noqa: N812

    present = frame.where(F.col(feature).isNotNull() & ~F.isnan(F.col(feature).cast("double")))
    low, high = present.agg(F.min(feature), F.max(feature)).first()
    if low is None:
        return {"kind": "numerical", "edges": [], "counts": {}}
    low, high = float(low), float(high)
    if low == high:
        low, high = low - 0.5, high + 0.5
    scale = bins / (high - low)
    binned = present.withColumn(
        "__bin", F.least(F.floor((F.col(feature).cast("double") - F.lit(low)) * F.lit(scale)), F.lit(bins - 1))
    )
    counts: dict[str, list[int]] = {WHOLE: [0] * bins}
    for index, count in binned.groupBy("__bin").count().collect():
        counts[WHOLE][int(index)] = int(count)
    for column in slice_columns:
        if column == feature:
            continue
        for value, index, count in binned.where(F.col(column).isNotNull()).groupBy(column, "__bin").count().collect():
            counts.setdefault(f"{column}={_text(value)}", [0] * bins)[int(index)] = int(count)
    edges = [low + (high - low) * i / bins for i in range(bins + 1)]
    return {"kind": "numerical", "edges": edges, "counts": counts}


def _value_counts(frame: Any, feature: str, slice_columns: list[str]) -> dict[str, Any]:
    from pyspark.sql import functions as F  # noqa: N812

    present = frame.where(F.col(feature).isNotNull())
    counts: dict[str, dict[str, int]] = {
        WHOLE: {_text(value): int(count) for value, count in present.groupBy(feature).count().collect()}
    }
    for column in slice_columns:
        if column == feature:
            continue
        for value, category, count in (
            present.where(F.col(column).isNotNull()).groupBy(column, feature).count().collect()
        ):
            counts.setdefault(f"{column}={_text(value)}", {})[_text(category)] = int(count)
    return {"kind": "categorical", "counts": counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", required=True, help="the archive's root (MF_ARCHIVE_URL)")
    parser.add_argument("--model", required=True, type=int, help="the model's id")
    parser.add_argument("--start", required=True, type=datetime.fromisoformat, help="ISO-8601, with its offset")
    parser.add_argument("--end", required=True, type=datetime.fromisoformat, help="ISO-8601, with its offset")
    parser.add_argument("--slice-column", action="append", default=[], dest="slice_columns")
    parser.add_argument("--bins", type=int, default=DEFAULT_BINS)
    parser.add_argument("--master", default="local[2]", help="Spark master (local[2] runs on this machine)")
    options = parser.parse_args(argv)
    if options.start.tzinfo is None or options.end.tzinfo is None:
        parser.error("--start and --end need a UTC offset, e.g. 2026-11-01T00:00:00+00:00")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(options.master)
        .appName("model-factory-window")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    try:
        result = summarise(
            spark, options.archive, options.model, options.start, options.end, options.slice_columns, options.bins
        )
    finally:
        spark.stop()
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
