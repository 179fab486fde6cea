"""The plain-Python row check (small requests) and the vectorised one (tables) must agree exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from registry.schema import parse_schema, validate_records, validate_rows

FIELDS = parse_schema(
    [
        {"name": "tenure", "type": "integer", "minimum": 0, "maximum": 100},
        {"name": "charges", "type": "float", "minimum": 0, "maximum": 500},
        {"name": "contract", "type": "category", "categories": ["monthly", "yearly", "2"]},
        {"name": "note", "type": "string", "required": False},
        {"name": "paperless", "type": "boolean", "required": False},
        {"name": "signed_up", "type": "datetime", "required": False},
        {"name": "photo", "type": "binary", "required": False},
    ]
)
GOOD = {
    "tenure": 3,
    "charges": 99.5,
    "contract": "monthly",
    "note": "x",
    "paperless": True,
    "signed_up": "2024-01-02T03:04:05",
    "photo": "AAEC",
}
VALUES: dict[str, list[Any]] = {
    "tenure": [3, 0, 100, -1, 101, 3.5, 4.0, "7", "seven", True, None, float("nan"), [1], 1e12],
    "charges": [0.0, 499.99, 500.01, "12.5", "", None, False, {"a": 1}, -0.0],
    "contract": ["monthly", "weekly", 2, 2.0, None, True, ["monthly"], ""],
    "note": ["hello", "", 5, None],
    "paperless": [True, False, "yes", "no", 1, 0, "maybe", None, 2],
    "signed_up": [
        "2024-01-02",
        "2024-01-02T03:04:05.123456Z",
        "2024-01-02T03:04:05+02:00",
        " 2024-01-02 03:04 ",
        "yesterday",
        "",
        20240102,
        "0001-01-01",
        "9999-12-31T00:00:00",
        True,
        None,
    ],
    "photo": ["AAE=\n", "", "not base64!", "YQ", 5, None, ["AAEC"]],
}


def cases() -> list[list[dict[str, Any]]]:
    rows = []
    for field, values in VALUES.items():
        for value in values:
            rows.append([{**GOOD, field: value}])
    rows.append([{**GOOD, "extra": 1}])
    rows.append([{k: v for k, v in GOOD.items() if k != "charges"}])
    rows.append([GOOD, {k: v for k, v in GOOD.items() if k != "contract"}])  # missing in one row only
    rows.append([{**GOOD, "tenure": v} for v in VALUES["tenure"]])
    return rows


@pytest.mark.parametrize("policy", ["reject", "pass"])
@pytest.mark.parametrize("records", cases())
def test_both_checks_give_the_same_verdicts(records: list[dict[str, Any]], policy: str) -> None:
    small = validate_records(records, FIELDS, unknown_categories=policy)
    table = validate_rows(pd.DataFrame.from_records(records), FIELDS, unknown_categories=policy)
    assert [p.as_json() for p in small.problems] == [p.as_json() for p in table.problems]
    assert small.bad_rows.tolist() == table.bad_rows.tolist()
    good = ~small.bad_rows
    for field in FIELDS:
        left, right = small.frame[field.name][good].tolist(), table.frame[field.name][good].tolist()
        assert [None if v != v else v for v in left] == [None if v != v else v for v in right], field.name
    assert np.all(small.frame.columns == table.frame.columns)


def test_an_empty_row_is_a_row_with_everything_missing() -> None:
    # (pandas reads [{}] as a table of no rows, which is why the small check exists for JSON input.)
    validation = validate_records([{}], FIELDS)
    assert validation.bad_rows.tolist() == [True]
    assert {p.field for p in validation.problems} == {"tenure", "charges", "contract"}
