"""Where archive files live: a directory of the artifact store by default, any filesystem pyarrow or
fsspec knows when MF_ARCHIVE_URL is set (s3://bucket/prefix, with credentials from the environment as
for any AWS client; gs://, abfs:// and others through fsspec's packages).

Paths are Hive-style so that DuckDB, Spark and pyarrow read the partitions as columns:
    predictions/model=<id>/version=<number>/day=<YYYY-MM-DD>/hour=<HH>.parquet
    actuals/model=<id>/day=<YYYY-MM-DD>/hour=<HH>.parquet
A file is written under a temporary name and then moved over its final one, so a reader never sees a
half-written file, and writing the same hour again replaces it (compaction is idempotent).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from django.conf import settings

PREDICTIONS = "predictions"
ACTUALS = "actuals"
# zstd with dictionaries keeps a logged prediction of 25 features under 100 bytes (benchmarks/README.md).
COMPRESSION = "zstd"
ROW_GROUP_ROWS = 256 * 1024


@lru_cache(maxsize=4)
def _filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in url:
        return pafs.LocalFileSystem(), url
    try:
        return pafs.FileSystem.from_uri(url)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import fsspec  # only for schemes pyarrow has no native filesystem for

        filesystem, root = fsspec.core.url_to_fs(url)
        return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), root


def filesystem() -> tuple[pafs.FileSystem, str]:
    """The archive's filesystem and its root path on it."""
    filesystem_, root = _filesystem(str(settings.MF_ARCHIVE_URL))
    return filesystem_, root.rstrip("/")


def hour_path(kind: str, model_id: int, hour: datetime, version: int | None = None) -> str:
    """The path of one hour's file, relative to the archive's root."""
    parts = [kind, f"model={model_id}"]
    if version is not None:
        parts.append(f"version={version}")
    parts += [f"day={hour:%Y-%m-%d}", f"hour={hour:%H}.parquet"]
    return "/".join(parts)


def write(relative_path: str, table: pa.Table) -> int:
    """Write a table to its path, replacing any file there; returns the bytes written."""
    return write_tables(relative_path, table.schema, [table])[1]


def write_tables(relative_path: str, schema: pa.Schema, tables: Iterable[pa.Table]) -> tuple[int, int]:
    """Write tables one after the other into one file (each in its own row groups), replacing any file
    there; returns the rows and bytes written. Only one table is in memory at a time, so an hour of any
    size is written in bounded memory."""
    filesystem_, root = filesystem()
    final = f"{root}/{relative_path}"
    directory = final.rsplit("/", 1)[0]
    filesystem_.create_dir(directory, recursive=True)
    temporary = f"{directory}/.{uuid.uuid4().hex}.tmp"
    rows = 0
    try:
        with pq.ParquetWriter(temporary, schema, filesystem=filesystem_, compression=COMPRESSION) as writer:
            for table in tables:
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                rows += table.num_rows
        filesystem_.move(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            filesystem_.delete_file(temporary)
        raise
    return rows, int(filesystem_.get_file_info(final).size or 0)


def read(relative_path: str, columns: list[str] | None = None) -> pa.Table:
    filesystem_, root = filesystem()
    return pq.read_table(f"{root}/{relative_path}", filesystem=filesystem_, columns=columns)


def dataset(relative_paths: list[str], schema: pa.Schema | None = None) -> ds.Dataset:
    """Several files as one dataset (DuckDB scans it with projection and filters pushed down)."""
    filesystem_, root = filesystem()
    return ds.dataset(
        [f"{root}/{path}" for path in relative_paths], schema=schema, format="parquet", filesystem=filesystem_
    )


def delete(relative_path: str) -> None:
    filesystem_, root = filesystem()
    with contextlib.suppress(FileNotFoundError):
        filesystem_.delete_file(f"{root}/{relative_path}")
