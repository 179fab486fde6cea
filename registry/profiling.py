"""Summary statistics of a table, shown on the version page and kept as the drift baseline."""

from typing import Any

import pandas as pd

TOP_CATEGORIES = 10


def profile_frame(frame: pd.DataFrame) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for name in frame.columns:
        column = frame[name]
        summary: dict[str, Any] = {
            "dtype": str(column.dtype),
            "missing_share": round(float(column.isna().mean()), 6) if len(column) else 0.0,
        }
        present = column.dropna()
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            if len(present):
                quantiles = present.quantile([0.05, 0.25, 0.5, 0.75, 0.95])
                summary.update(
                    kind="numeric",
                    mean=float(present.mean()),
                    std=float(present.std(ddof=0)),
                    min=float(present.min()),
                    max=float(present.max()),
                    quantiles={f"p{int(float(str(q)) * 100)}": float(v) for q, v in quantiles.items()},
                )
            else:
                summary["kind"] = "numeric"
        else:
            counts = present.astype(str).value_counts()
            summary.update(
                kind="categorical",
                distinct=int(counts.size),
                top={str(k): int(v) for k, v in counts.head(TOP_CATEGORIES).items()},
            )
        columns[str(name)] = summary
    return {"rows": len(frame), "columns": columns}


# A CSV line longer than this is refused before pandas parses it: a legitimate row is a few KB,
# while one huge line (a file with no newlines, or a header of millions of columns) would make
# pandas allocate far more than the file's size.
