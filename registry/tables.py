"""Reading uploaded and referenced tables (CSV and Parquet) with bounded memory and clear errors; used by
registration, the checks, batch scoring, monitoring and retraining alike."""

import codecs
import contextlib
import csv
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MAX_CSV_LINE_BYTES = 1024 * 1024
_SCAN_CHUNK = 4 * 1024 * 1024
_DELIMITERS = (";", "\t", "|")


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:g} MB" if count >= 1024 * 1024 else f"{count:,} bytes"


def _check_csv_bytes(handle: BinaryIO, max_line_bytes: int) -> None:
    """ValueError unless the bytes look like a UTF-8 CSV with lines of at most `max_line_bytes`."""
    start = handle.read(4)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValueError("the file is UTF-16 text: save it as UTF-8 CSV (or Parquet)")
    handle.seek(0)
    run = 0  # length of the line still open at the end of the previous chunk
    while chunk := handle.read(_SCAN_CHUNK):
        # pandas' parser stops a cell at a NUL byte and silently drops what follows.
        if b"\x00" in chunk:
            raise ValueError("the file contains NUL bytes: is it a binary file rather than UTF-8 CSV?")
        newlines = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n"))
        if len(newlines) == 0:
            run += len(chunk)
            longest = run
        else:
            between = int(np.diff(newlines).max(initial=1)) - 1
            longest = max(run + int(newlines[0]), between)
            run = len(chunk) - int(newlines[-1]) - 1
            longest = max(longest, run)
        if longest > max_line_bytes:
            raise ValueError(
                f"the file has a line longer than {_size(max_line_bytes)}: "
                "is it really a CSV file with one row per line?"
            )
    handle.seek(0)


def read_csv(
    source: str | Path | BinaryIO, *, max_line_bytes: int = MAX_CSV_LINE_BYTES, **options: Any
) -> pd.DataFrame:
    """A UTF-8, comma-separated file as a DataFrame; ValueError with a readable reason otherwise.

    `source` is a path or a binary file (an upload); `options` go to pandas.read_csv.
    """
    with contextlib.ExitStack() as stack:
        handle: BinaryIO = stack.enter_context(Path(source).open("rb")) if isinstance(source, str | Path) else source
        handle.seek(0)
        _check_csv_bytes(handle, max_line_bytes)
        try:
            frame = pd.read_csv(handle, encoding="utf-8", encoding_errors="strict", **options)
        except UnicodeDecodeError as exc:
            raise ValueError("the file is not UTF-8 text: save it as UTF-8 CSV (or Parquet)") from exc
        except pd.errors.EmptyDataError as exc:
            raise ValueError("the file has no header and no rows") from exc
        except (pd.errors.ParserError, csv.Error, OSError) as exc:
            raise ValueError(f"the file could not be read as CSV: {str(exc).strip()}") from exc
    if len(frame.columns) == 1:
        header = str(frame.columns[0])
        for delimiter in _DELIMITERS:
            if delimiter in header:
                shown = "tab" if delimiter == "\t" else repr(delimiter)
                raise ValueError(f"the file seems separated by {shown}, not commas: save it as comma-separated CSV")
    return frame


def is_parquet(path: Path) -> bool:
    """Whether the file starts like Parquet; ValueError if it is empty (or only whitespace)."""
    with path.open("rb") as handle:
        magic = handle.read(4)
    if not magic.strip():
        with path.open("rb") as handle:
            if not handle.read(_SCAN_CHUNK).strip():
                raise ValueError("the file is empty")
    return magic == b"PAR1"


def read_parquet(path: Path) -> pa.Table:
    """A Parquet file as an Arrow table; ValueError with a readable reason otherwise."""
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ValueError(f"the file is not a readable Parquet file (truncated or corrupt?): {exc}") from exc


def read_table(path: Path, *, max_line_bytes: int = MAX_CSV_LINE_BYTES) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame; ValueError with a readable reason otherwise."""
    if is_parquet(path):
        table = read_parquet(path)
        try:
            return table.to_pandas()
        except (pa.ArrowException, ValueError) as exc:
            raise ValueError(f"the Parquet file's columns could not be read into a table: {exc}") from exc
    return read_csv(path, max_line_bytes=max_line_bytes)
