"""Malformed files in every upload field: a clear 400 naming the field (API) or a form error (page),
never a 500, and nothing half-written (no version, no file in storage, no job, no actual, no audit row).

Upload fields covered: version registration (artifact, onnx, notebook, golden_set, reference_data,
training_data, documents, and a schema sent as a file), actuals (page upload and API), batch job input
(API and page).
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io as sio
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from monitoring.models import Actual
from registry.models import AuditEvent, ModelVersion, RegisteredModel, VersionFile
from registry.tables import MAX_CSV_LINE_BYTES
from scoring.models import BatchJob
from tests.conftest import customers, stored_files

# --- the bad files ------------------------------------------------------------------------------

HUGE_LINE_BYTES = 50 * 1024 * 1024


def _junk(size: int = 4096, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def bad_tables(frame: pd.DataFrame) -> dict[str, tuple[str, bytes]]:
    """(filename, content) of each kind of broken table, built from a good `frame` of the field."""
    text = frame.to_csv(index=False)
    parquet = _parquet(frame)
    first_text_column = next(c for c in frame.columns if frame[c].dtype == object)
    accented = frame.copy()
    accented[first_text_column] = "café-crème"
    return {
        "empty file": ("data.csv", b""),
        "only whitespace": ("data.csv", b"\n\n   \n"),
        "truncated Parquet": ("data.parquet", parquet[: len(parquet) // 2]),
        "Parquet magic then junk": ("data.parquet", b"PAR1" + _junk()),
        "UTF-16 CSV": ("data.csv", text.encode("utf-16")),
        "latin-1 CSV": ("data.csv", accented.to_csv(index=False).encode("latin-1")),
        "semicolon-delimited CSV": ("data.csv", text.replace(",", ";").encode()),
        "header only": ("data.csv", text.splitlines()[0].encode() + b"\n"),
        "binary junk": ("data.bin", _junk()),
        "NUL bytes in CSV": ("data.csv", text.encode().replace(b",", b"\x00", 3)),
        "ragged rows": ("data.csv", (text + "1,2,3,4,5,6,7,8,9\n").encode()),
    }


@pytest.fixture(scope="module")
def huge_line() -> bytes:
    """One 50 MB line after a normal header: a whole file that is a single row of one cell."""
    return b"a,b\n" + b"9" * HUGE_LINE_BYTES + b"\n"


def golden_frame(trained: Any) -> pd.DataFrame:
    pipeline, frame = trained
    golden = frame.head(5).copy()
    golden["expected"] = pipeline.predict(frame.head(5))
    return golden


BATCH_FRAME = customers(6).assign(customer_id=[f"c{i}" for i in range(6)])
ACTUALS_FRAME = pd.DataFrame({"entity_id": ["c1", "c2", "c3"], "actual": [1, 0, 1]})


def _no_trace(before: dict[str, int], tmp_path: Path) -> None:
    after = _counts()
    assert after == before, f"something was written: {before} -> {after}"
    assert stored_files(tmp_path) == [], "a refused upload left files in storage"


def _counts() -> dict[str, int]:
    return {
        "versions": ModelVersion.objects.count(),
        "files": VersionFile.objects.count(),
        "audit": AuditEvent.objects.count(),
        "jobs": BatchJob.objects.count(),
        "actuals": Actual.objects.count(),
    }


def _assert_field_error(response: Any, field: str) -> str:
    assert response.status_code == 400, (response.status_code, response.content[:500])
    body = response.json()
    assert field in body, body
    messages = _flatten(body[field])
    assert messages and all(isinstance(m, str) and m.strip() for m in messages), body
    return " ".join(messages)


def _flatten(errors: Any) -> list[Any]:
    """Messages of a field, also of a list field's items ({"0": ["..."]})."""
    if isinstance(errors, dict):
        return [message for value in errors.values() for message in _flatten(value)]
    if isinstance(errors, list):
        return [message for value in errors for message in _flatten(value)]
    return [errors]


# --- version registration (API) ------------------------------------------------------------------


@pytest.fixture
def post_registration(
    api: Any, author: Any, churn_model: RegisteredModel, version_files: Callable[..., dict[str, Any]]
) -> Callable[[str, Any], Any]:
    """POST Ada's registration of a churn version whose `field` is `upload`, every other file valid; the response."""

    def post(field: str, upload: Any) -> Any:
        return api(author).post("/api/models/churn/versions/", version_files(**{field: upload}), format="multipart")

    return post


def _table_cases() -> list[tuple[str, str]]:
    kinds = list(bad_tables(BATCH_FRAME))
    return [(field, kind) for field in ("golden_set", "reference_data", "training_data") for kind in kinds]


@pytest.mark.parametrize(("field", "kind"), _table_cases())
def test_it_refuses_a_malformed_table_in_a_registration(
    field: str, kind: str, post_registration: Callable[[str, Any], Any], trained: Any, tmp_path: Path
) -> None:
    good = golden_frame(trained) if field == "golden_set" else trained[1]
    filename, content = bad_tables(good)[kind]
    before = _counts()
    response = post_registration(field, SimpleUploadedFile(filename, content))
    _assert_field_error(response, field)
    _no_trace(before, tmp_path)


@pytest.mark.parametrize("field", ["golden_set", "reference_data", "training_data"])
def test_it_refuses_a_huge_line_in_a_registration_table(
    field: str, huge_line: bytes, post_registration: Callable[[str, Any], Any], tmp_path: Path
) -> None:
    before = _counts()
    response = post_registration(field, SimpleUploadedFile("huge.csv", huge_line))
    message = _assert_field_error(response, field)
    assert f"{MAX_CSV_LINE_BYTES // 1024 // 1024} MB" in message or "line" in message, message
    _no_trace(before, tmp_path)


def _truncated_skops(trained: Any) -> bytes:
    data = sio.dumps(trained[0])
    return data[: len(data) // 2]


NOTEBOOKS: dict[str, bytes] = {
    "empty file": b"",
    "binary junk": _junk(),
    "truncated JSON": b'{"nbformat": 4, "cells": [',
    "UTF-16 JSON": json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}).encode("utf-16"),
    "latin-1 JSON": '{"nbformat": 4, "nbformat_minor": 5, "metadata": {"a": "café"}, "cells": []}'.encode("latin-1"),
    "JSON list": b"[1, 2, 3]",
    "not a notebook": b'{"nbformat": 4, "cells": "none"}',
}


def _other_file_cases() -> list[tuple[str, str]]:
    cases = [("notebook", kind) for kind in NOTEBOOKS]
    cases += [("artifact", kind) for kind in ("empty file", "binary junk", "truncated skops", "text file")]
    cases += [("onnx", kind) for kind in ("empty file", "binary junk", "truncated skops")]
    cases += [("input_schema", kind) for kind in ("empty file", "binary junk", "UTF-16 JSON")]
    cases += [("documents", kind) for kind in ("empty file",)]
    return cases


@pytest.mark.parametrize(("field", "kind"), _other_file_cases())
def test_it_refuses_a_malformed_artifact_notebook_or_schema_file(
    field: str, kind: str, post_registration: Callable[[str, Any], Any], trained: Any, tmp_path: Path
) -> None:
    contents = {
        **NOTEBOOKS,
        "truncated skops": _truncated_skops(trained),
        "text file": b"this is not a model\n",
    }
    upload = SimpleUploadedFile(f"{field}.bin", contents[kind])
    before = _counts()
    response = post_registration(field, [upload] if field == "documents" else upload)
    _assert_field_error(response, field)
    _no_trace(before, tmp_path)


# --- batch job input (API and page) --------------------------------------------------------------


def _batch_cases() -> list[str]:
    return list(bad_tables(BATCH_FRAME))


@pytest.mark.parametrize("kind", _batch_cases())
def test_it_refuses_a_malformed_batch_input_through_the_api(
    kind: str, api: Any, author: Any, churn_model: RegisteredModel, tmp_path: Path
) -> None:
    filename, content = bad_tables(BATCH_FRAME)[kind]
    before = _counts()
    response = api(author).post(
        "/api/models/churn/batch-jobs/",
        {
            "name": "nightly",
            "input_kind": "upload",
            "entity_column": "customer_id",
            "input_file": SimpleUploadedFile(filename, content),
        },
        format="multipart",
    )
    _assert_field_error(response, "input_file")
    _no_trace(before, tmp_path)


@pytest.mark.parametrize("kind", [*_batch_cases(), "huge line"])
def test_it_shows_a_form_error_for_a_malformed_batch_input_on_the_page(
    kind: str, client: Client, author: Any, churn_model: RegisteredModel, huge_line: bytes, tmp_path: Path
) -> None:
    filename, content = ("huge.csv", huge_line) if kind == "huge line" else bad_tables(BATCH_FRAME)[kind]
    client.force_login(author)
    before = _counts()
    response = client.post(
        "/models/churn/batch/",
        {
            "name": "nightly",
            "input_kind": "upload",
            "entity_column": "customer_id",
            "chunk_rows": 1000,
            "input_file": SimpleUploadedFile(filename, content),
        },
    )
    assert response.status_code == 400, response.status_code
    errors = response.context["form"].errors
    assert errors.get("input_file"), errors
    assert all(message.strip() for message in errors["input_file"])
    _no_trace(before, tmp_path)


# --- actuals (page upload and API) ---------------------------------------------------------------


@pytest.mark.parametrize("kind", [*list(bad_tables(ACTUALS_FRAME)), "huge line"])
def test_it_shows_an_error_for_a_malformed_actuals_file_on_the_page(
    kind: str, client: Client, author: Any, churn_model: RegisteredModel, huge_line: bytes, tmp_path: Path
) -> None:
    filename, content = ("huge.csv", huge_line) if kind == "huge line" else bad_tables(ACTUALS_FRAME)[kind]
    client.force_login(author)
    before = _counts()
    response = client.post(
        "/models/churn/monitoring/actuals/", {"file": SimpleUploadedFile(filename, content)}, follow=True
    )
    assert response.status_code == 200, response.status_code
    shown = [str(message) for message in response.context["messages"]]
    errors = [m for m in shown if m.startswith(("file:", "rows:"))]
    assert errors, shown
    _no_trace(before, tmp_path)


ACTUALS_BODIES: dict[str, tuple[bytes, str]] = {
    "invalid JSON": (b'{"rows": [', "application/json"),
    "UTF-16 JSON": (json.dumps({"rows": [{"entity_id": "c1", "actual": 1}]}).encode("utf-16"), "application/json"),
    "binary junk": (_junk(), "application/json"),
    "empty body": (b"", "application/json"),
    "rows not a list": (b'{"rows": "c1,1"}', "application/json"),
    "rows of junk": (b'{"rows": [1, "x", null, [], {}]}', "application/json"),
    "CSV sent as the body": (ACTUALS_FRAME.to_csv(index=False).encode(), "text/csv"),
}


@pytest.mark.parametrize("kind", list(ACTUALS_BODIES))
def test_it_refuses_malformed_actuals_through_the_api(
    kind: str, api: Any, author: Any, churn_model: RegisteredModel, tmp_path: Path
) -> None:
    content, content_type = ACTUALS_BODIES[kind]
    before = _counts()
    response = api(author).generic("POST", "/api/models/churn/actuals/", content, content_type=content_type)
    assert response.status_code in (400, 415), (response.status_code, response.content[:500])
    assert response.json(), response.content
    _no_trace(before, tmp_path)


def test_it_refuses_an_actuals_file_posted_to_the_api_naming_the_field(
    api: Any, author: Any, churn_model: RegisteredModel, tmp_path: Path
) -> None:
    before = _counts()
    response = api(author).post(
        "/api/models/churn/actuals/",
        {"file": SimpleUploadedFile("actuals.csv", ACTUALS_FRAME.to_csv(index=False).encode())},
        format="multipart",
    )
    _assert_field_error(response, "rows")
    _no_trace(before, tmp_path)


# --- a well-formed upload in an unusual format must not break the pages showing it -------------


def test_a_golden_set_in_parquet_is_previewed_on_the_version_page(
    client: Client,
    author: Any,
    churn_model: RegisteredModel,
    register: Callable[..., ModelVersion],
    trained: Any,
) -> None:
    golden = golden_frame(trained)
    version = register(churn_model, author, golden_set=SimpleUploadedFile("golden.parquet", _parquet(golden)))
    client.force_login(author)
    response = client.get(f"/models/churn/versions/{version.number}/")
    assert response.status_code == 200
    assert "expected" in response.content.decode()
