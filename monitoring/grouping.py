"""One DuckDB scan that aggregates the window for every slice at once.

Each slice column is one grouping key (its values are its slices), each named expression another
(true on its rows), and the empty grouping set is the whole window (slice None). Results come back as
a small DataFrame of groups with a "slice" column, so that no row of the window ever reaches Python.
Aggregates must add up (counts and sums): groups of several slices are summed into each.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from monitoring.columnar import TRAFFIC, Window
from monitoring.slicing import Slice

SLICE = "slice"
# Rows fetched by one scan for exact tests: a million rows of a few columns, tens of megabytes.
FETCH_ROWS = 1_000_000
# Slices whose keys combine into at most this many groups (per value of the extra keys) are counted by
# one GROUP BY of all keys; more, by GROUPING SETS.
ROLLED_UP_COMBINATIONS = 256


class Grouping:
    """The grouping keys of a set of slices (plus the whole window)."""

    def __init__(self, slices: Sequence[Slice]):
        self.keys: list[str] = []  # SQL expression of each key
        self.names: list[dict[Any, str]] = []  # per key: grouped value -> slice name
        self.members: list[list[Slice]] = []  # per key: its slices
        by_column: dict[str, int] = {}
        for piece in slices:
            if piece.column is not None:
                if piece.column not in by_column:
                    by_column[piece.column] = len(self.keys)
                    self.keys.append(f'"{piece.column.replace(chr(34), chr(34) * 2)}"')
                    self.names.append({})
                    self.members.append([])
                self.names[by_column[piece.column]][piece.value] = piece.name
                self.members[by_column[piece.column]].append(piece)
            else:
                self.keys.append(f"CASE WHEN {piece.condition} THEN TRUE END")
                self.names.append({True: piece.name})
                self.members.append([piece])

    def codes(self) -> list[str]:
        """Per key, SQL numbering a row's slice of that key from 1 (0: in none of them), for counting
        in numpy (`split_codes`); the whole window alone has one key, 0 for every row."""
        if not self.keys:
            return ["0"]
        return [
            "CASE "
            + " ".join(f"WHEN {piece.condition} THEN {code}" for code, piece in enumerate(pieces, 1))
            + " ELSE 0 END"
            for pieces in self.members
        ]

    def sizes(self) -> list[int]:
        """How many codes each of `codes()` takes."""
        return [len(pieces) + 1 for pieces in self.members] or [1]

    def split_codes(self, counts: list[np.ndarray]) -> dict[str | None, np.ndarray]:
        """Counts by (code, bin) of each key, as counts by bin per slice name (None: the whole window,
        the sum over the first key's codes, which holds every row once)."""
        split: dict[str | None, np.ndarray] = {None: counts[0].sum(axis=0)}
        for pieces, by_code in zip(self.members, counts, strict=False):
            split.update({piece.name: by_code[code] for code, piece in enumerate(pieces, 1)})
        return split

    def query(
        self,
        window: Window,
        extra: Sequence[tuple[str, str]],
        aggregates: Sequence[tuple[str, str]],
        where: str = "TRUE",
        source: str = TRAFFIC,
    ) -> pd.DataFrame:
        """Groups of (slice, *extra) with the aggregates; `extra` and `aggregates` are (alias, SQL) pairs.

        Extra aliases start with "__" (as no feature does); aggregates read them and the source's columns.
        """
        keys = [f"{sql} AS __k{index}" for index, sql in enumerate(self.keys)]
        extras = [f"{sql} AS {alias}" for alias, sql in extra]
        inner = ", ".join([*keys, *extras, "*"])
        rows = f"SELECT {inner} FROM {source} WHERE {where}"
        extra_aliases = [alias for alias, _ in extra]
        key_aliases = [f"__k{index}" for index in range(len(self.keys))]
        aggregated = [f"{sql} AS {alias}" for alias, sql in aggregates]
        if math.prod(len(names) + 1 for names in self.names) <= ROLLED_UP_COMBINATIONS:
            # One hash aggregation by every key at once, rolled up per slice here: a third of the work
            # of grouping sets, whose every set hashes every row again.
            by = [*key_aliases, *extra_aliases]
            group = f"GROUP BY {', '.join(by)}" if by else ""
            frame = window.connection.execute(f"SELECT {', '.join([*by, *aggregated])} FROM ({rows}) {group}").df()
            return self._rolled_up(frame, extra_aliases, [alias for alias, _ in aggregates])
        sets = [f"({', '.join(extra_aliases)})"] + [
            f"({', '.join([f'__k{index}', *extra_aliases])})" for index in range(len(self.keys))
        ]
        grouping = f"GROUPING({', '.join(key_aliases)})" if key_aliases else "0"
        selected = ", ".join([f"{grouping} AS __grouping", *key_aliases, *extra_aliases, *aggregated])
        frame = window.connection.execute(
            f"SELECT {selected} FROM ({rows}) GROUP BY GROUPING SETS ({', '.join(sets)})"
        ).df()
        return self._named(frame, extra_aliases, [alias for alias, _ in aggregates])

    def _rolled_up(self, frame: pd.DataFrame, extra: list[str], aggregates: list[str]) -> pd.DataFrame:
        def total(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
            if not by:
                return rows[aggregates].sum().to_frame().T
            return rows.groupby(by, dropna=False, sort=False)[aggregates].sum().reset_index()

        parts = [total(frame, extra).assign(**{SLICE: None})]
        for index in range(len(self.keys)):
            key = f"__k{index}"
            mine = total(frame[frame[key].notna()], [key, *extra])
            names = mine[key].map(lambda value, table=self.names[index]: table.get(value))  # one call per group
            parts.append(mine.assign(**{SLICE: names})[names.notna()])
        return pd.concat(parts, ignore_index=True)[[SLICE, *extra, *aggregates]]

    def _named(self, frame: pd.DataFrame, extra: list[str], aggregates: list[str]) -> pd.DataFrame:
        count = len(self.keys)
        everything = (1 << count) - 1
        parts = [frame[frame["__grouping"] == everything].assign(**{SLICE: None})]
        for index in range(count):
            mine = frame[frame["__grouping"] == everything & ~(1 << (count - 1 - index))]
            key = mine[f"__k{index}"]
            names = key.map(lambda value, table=self.names[index]: table.get(value))  # one call per group
            parts.append(mine.assign(**{SLICE: names})[names.notna()])
        result = pd.concat(parts, ignore_index=True) if parts else frame.iloc[0:0]
        return result[[SLICE, *extra, *aggregates]]


def by_slice(groups: pd.DataFrame) -> dict[str | None, pd.DataFrame]:
    """The groups of a `Grouping.query` result split by slice (None: the whole window), in one pass:
    comparing the slice column with each name in turn took seconds per report."""
    split: dict[str | None, pd.DataFrame] = {None: groups[groups[SLICE].isna()]}
    named = groups[groups[SLICE].notna()]
    split.update({str(name): rows for name, rows in named.groupby(SLICE, sort=False)})
    return split


def slice_rows(
    window: Window,
    names: Sequence[str | None],
    conditions: dict[str, str],
    sizes: dict[str | None, int],
    columns: Sequence[str],
    where: str = "TRUE",
    source: str = TRAFFIC,
) -> Iterator[tuple[str | None, pd.DataFrame]]:
    """The rows (`columns`, those matching `where`) of each named slice, None being the whole window.

    Slices are fetched together, a few per scan, up to FETCH_ROWS rows a scan: one scan of the
    columns costs about as much as one slice's, however many slices it serves.
    """
    batches: list[list[str | None]] = [[]]
    total = 0
    for name in names:
        if batches[-1] and total + sizes[name] > FETCH_ROWS:
            batches.append([])
            total = 0
        batches[-1].append(name)
        total += sizes[name]
    selected = ", ".join(f'"{column.replace(chr(34), chr(34) * 2)}"' for column in columns)
    for batch in (batch for batch in batches if batch):
        flags = [f"({conditions[name]}) AS __in{index}" for index, name in enumerate(batch) if name is not None]
        wanted = "TRUE" if None in batch else " OR ".join(f"({conditions[name]})" for name in batch if name is not None)
        frame = window.query(f"SELECT {', '.join([selected, *flags])} FROM {source} WHERE ({where}) AND ({wanted})")
        for index, name in enumerate(batch):
            mine = frame if name is None else frame[frame[f"__in{index}"].fillna(False).astype(bool)]
            yield name, mine[list(columns)]
