"""Hostile input to the API: whatever the body, path or query, a 4xx with a JSON body naming the problem,
never a 500 (nor Django's HTML 400 page).

First each case as it was reported: JSON nested 1,000 levels, an integer literal of 1e309 in a float
column, a path component of 256 characters, a body over DATA_UPLOAD_MAX_MEMORY_SIZE. Then the other
hostile values found by trying them on every endpoint: NUL characters, unpaired surrogates, NaN, numbers
past a float's or the database's range, YAML and JSON nested too deeply inside an upload. PostgreSQL
refuses NUL in text where SQLite does not: run this file on PostgreSQL too (DATABASE_URL).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from config.parsers import MAX_JSON_DEPTH
from registry.client import mlflow_directory_zip
from registry.models import ModelVersion, RegisteredModel
from scoring.models import SqlRun
from tests.conftest import customers

Api = Callable[[Any], APIClient]

DEEP_ARRAY = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000
# 1e309 written as an integer: more than a float holds (1e308 is the largest power of ten that fits).
INTEGER_1E309 = "1" + "0" * 309
INTEGER_1E308 = "1" + "0" * 308
ROW = {"tenure": 12, "charges": 70.5, "contract": "monthly"}


def refused(response: Any, status: int, *named: str) -> Any:
    """The response is `status` with a JSON body whose text contains every one of `named`."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    text = json.dumps(body, ensure_ascii=False)
    for name in named:
        assert name in text, body
    return body


def consumer_client(consumer_token: tuple[Any, str]) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {consumer_token[1]}")
    return client


def post_json(client: APIClient, url: str, text: str, method: str = "post") -> Any:
    return getattr(client, method)(url, data=text, content_type="application/json")


# --- JSON nested 1,000 levels --------------------------------------------------------------------

JSON_ENDPOINTS = [
    ("post", "/api/auth/token/"),
    ("post", "/api/models/"),
    ("patch", "/api/models/churn/"),
    ("post", "/api/models/churn/actuals/"),
    ("post", "/api/models/churn/alert-rules/"),
    ("put", "/api/models/churn/retraining/"),
    ("post", "/api/models/churn/batch-jobs/"),
    ("post", "/api/models/churn/consumers/"),
    ("post", "/api/models/churn/reports/"),
    ("post", "/api/models/churn/versions/"),
    ("post", "/api/notifications/"),
]


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["arrays", "objects"])
@pytest.mark.parametrize(("method", "url"), JSON_ENDPOINTS, ids=[f"{m} {u}" for m, u in JSON_ENDPOINTS])
def test_it_refuses_json_nested_1000_levels(
    api: Api, author: Any, churn_model: RegisteredModel, method: str, url: str, body: str
) -> None:
    client = api(None if url == "/api/auth/token/" else author)
    refused(post_json(client, url, body, method), 400, "JSON nested too deeply")


@pytest.mark.parametrize(
    "url", ["/api/models/churn/predict/", "/api/models/churn/invocations", "/api/models/churn/versions/1/predict/"]
)
def test_it_refuses_json_nested_1000_levels_to_score(
    production: ModelVersion, consumer_token: tuple[Any, str], url: str
) -> None:
    client = consumer_client(consumer_token)
    for body in (DEEP_ARRAY, DEEP_OBJECT, json.dumps({"dataframe_records": [ROW]})[:-1] + ', "x": ' + DEEP_ARRAY + "}"):
        refused(post_json(client, url, body), 400, "JSON nested too deeply")


def test_it_refuses_json_nested_deeper_than_it_can_keep_however_little_beyond(
    api: Api, author: Any, churn_model: RegisteredModel
) -> None:
    """Fewer levels than make the parser fail, but more than what reads them later (a query, the renderer)."""
    for depth in (MAX_JSON_DEPTH + 1, 900):
        owner = "[" * (depth - 1) + '"ada"' + "]" * (depth - 1)
        body = json.dumps({"name": "app", "owner": "OWNER"}).replace('"OWNER"', owner)
        refused(post_json(api(author), "/api/models/churn/consumers/", body), 400, "JSON nested too deeply")


@pytest.mark.parametrize("field", ["params", "metrics", "environment", "input_schema", "output_schema"])
def test_it_refuses_json_nested_1000_levels_in_a_multipart_field(
    api: Api, author: Any, churn_model: RegisteredModel, version_files: Callable[..., dict[str, Any]], field: str
) -> None:
    for body in (DEEP_ARRAY, DEEP_OBJECT):
        response = api(author).post("/api/models/churn/versions/", version_files(**{field: body}), format="multipart")
        refused(response, 400, field, "JSON nested too deeply")
    assert ModelVersion.objects.count() == 0


def test_it_refuses_a_notebook_nested_1000_levels(
    api: Api, author: Any, churn_model: RegisteredModel, version_files: Callable[..., dict[str, Any]]
) -> None:
    notebook = '{"nbformat": 4, "nbformat_minor": 5, "cells": [], "metadata": ' + DEEP_OBJECT + "}"
    upload = SimpleUploadedFile("analysis.ipynb", notebook.encode())
    response = api(author).post("/api/models/churn/versions/", version_files(notebook=upload), format="multipart")
    refused(response, 400, "notebook", "nested too deeply")


def test_it_stores_and_shows_params_nested_as_deep_as_it_accepts(
    api: Api, author: Any, churn_model: RegisteredModel, version_files: Callable[..., dict[str, Any]]
) -> None:
    deepest = '{"a":' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH
    response = api(author).post("/api/models/churn/versions/", version_files(params=deepest), format="multipart")
    assert response.status_code == 201, response.content
    for url in ("/api/models/churn/versions/1/", "/api/models/churn/versions/"):
        shown = api(author).get(url)
        assert shown.status_code == 200, shown.content[:300]
    assert ModelVersion.objects.get().params == json.loads(deepest)
    page = Client()
    page.force_login(author)
    assert page.get("/models/churn/versions/1/").status_code == 200
    one_more = "[" + deepest + "]"
    response = api(author).post("/api/models/churn/versions/", version_files(params=one_more), format="multipart")
    refused(response, 400, "params", "JSON nested too deeply")


# --- an integer of 1e309 in a float column -------------------------------------------------------

# NUMBER stands for the literal under test, written into the JSON text as it is.
PREDICT_BODIES = {
    "dataframe_records": '{"dataframe_records": [{"tenure": 12, "charges": NUMBER, "contract": "monthly"}]}',
    "dataframe_split": (
        '{"dataframe_split": {"columns": ["tenure", "charges", "contract"], "data": [[12, NUMBER, "monthly"]]}}'
    ),
    "instances": '{"instances": [[12, NUMBER, "monthly"]]}',
    "inputs": '{"inputs": {"tenure": [12], "charges": [NUMBER], "contract": ["monthly"]}}',
}
SCORING_URLS = ["/api/models/churn/predict/", "/api/models/churn/invocations", "/api/models/churn/versions/1/predict/"]


def _charges_error(body: Any, row: int = 0, field: str = "charges") -> str:
    errors = [error for error in body["errors"] if error["row"] == row and error["field"] == field]
    assert errors, body
    return str(errors[0]["error"])


def test_it_refuses_an_integer_of_1e309_in_a_float_column_by_row_and_column(
    production: ModelVersion, consumer_token: tuple[Any, str]
) -> None:
    client = consumer_client(consumer_token)
    for url in SCORING_URLS:
        for format_name, template in PREDICT_BODIES.items():
            for number in (INTEGER_1E309, "-" + INTEGER_1E309, "1" + "0" * 400):
                body = refused(post_json(client, url, template.replace("NUMBER", number)), 400)
                assert "not a finite number" in _charges_error(body), (url, format_name, body)
            # The largest power of ten a float holds: refused as any number above the column's maximum.
            body = refused(post_json(client, url, template.replace("NUMBER", INTEGER_1E308)), 400)
            assert "above the maximum" in _charges_error(body), (url, format_name, body)


def test_it_refuses_an_integer_of_1e309_among_many_rows(
    production: ModelVersion, consumer_token: tuple[Any, str]
) -> None:
    """Past 200 rows the rows are checked with pandas, which raises OverflowError on such an integer."""
    rows = [json.dumps(ROW)] * 250
    rows[150] = json.dumps({**ROW, "charges": "HUGE"}).replace('"HUGE"', INTEGER_1E309)
    rows[200] = json.dumps({**ROW, "tenure": "HUGE"}).replace('"HUGE"', INTEGER_1E309)
    response = post_json(
        consumer_client(consumer_token), SCORING_URLS[0], '{"dataframe_records": [' + ",".join(rows) + "]}"
    )
    body = refused(response, 400)
    assert "not a finite number" in _charges_error(body, row=150)
    assert "not a finite number" in _charges_error(body, row=200, field="tenure")


def test_it_refuses_numbers_past_a_floats_range_written_as_floats(
    production: ModelVersion, consumer_token: tuple[Any, str]
) -> None:
    client = consumer_client(consumer_token)
    for literal in ("1e309", "-1e400", "1" + "0" * 400 + ".5"):
        refused(
            post_json(client, SCORING_URLS[0], PREDICT_BODIES["dataframe_records"].replace("NUMBER", literal)),
            400,
            "too large",
        )
    for constant in ("NaN", "Infinity", "-Infinity"):
        refused(
            post_json(client, SCORING_URLS[0], PREDICT_BODIES["instances"].replace("NUMBER", constant)), 400, constant
        )
    # As text, infinity parses as a float: refused by the schema, not handed to the model and the log.
    body = refused(post_json(client, SCORING_URLS[0], PREDICT_BODIES["instances"].replace("NUMBER", '"inf"')), 400)
    assert "not a finite number" in _charges_error(body)


def test_it_refuses_an_actual_of_1e309(api: Api, author: Any, churn_model: RegisteredModel) -> None:
    body = '{"rows": [{"entity_id": "c1", "actual": NUMBER}]}'.replace("NUMBER", INTEGER_1E309)
    refused(post_json(api(author), "/api/models/churn/actuals/", body), 400, "actual", "too large")


def test_it_refuses_numbers_past_their_range_in_alert_rules_and_batch_jobs(
    api: Api, author: Any, churn_model: RegisteredModel
) -> None:
    rule = {"name": "r", "metric": "prediction_volume", "comparison": "<", "threshold": "NUMBER"}
    body = json.dumps(rule).replace('"NUMBER"', INTEGER_1E309)
    refused(post_json(api(author), "/api/models/churn/alert-rules/", body), 400, "threshold")
    for field in ("pinned_version", "chunk_rows"):
        job = {"name": "j", "input_kind": "path", "entity_column": "id", "input_path": "x.csv", field: "NUMBER"}
        body = json.dumps(job).replace('"NUMBER"', INTEGER_1E309)
        refused(post_json(api(author), "/api/models/churn/batch-jobs/", body), 400, field)


def test_it_refuses_a_report_window_past_the_dates_it_can_hold(
    api: Api, author: Any, churn_model: RegisteredModel
) -> None:
    window = {"start": "0001-01-01T00:00:00+05:00", "end": "9999-12-31T23:59:59-05:00"}
    refused(post_json(api(author), "/api/models/churn/reports/", json.dumps(window)), 400, "start", "end")


# --- a path component of 256 characters ------------------------------------------------------------


@pytest.fixture
def batch_inputs(settings: Any, tmp_path: Path) -> Path:
    settings.MF_BATCH_INPUT_DIR = tmp_path
    customers(5).assign(customer_id=[f"c{i}" for i in range(5)]).to_csv(tmp_path / "customers.csv", index=False)
    return tmp_path


def test_it_refuses_a_retraining_data_path_with_a_component_of_256_characters(
    api: Api, author: Any, churn_model: RegisteredModel, batch_inputs: Path
) -> None:
    recipe = {"callable_path": "tests.monitoring.test_actuals_alerts:train_churn", "data_path": "a" * 256}
    body = refused(post_json(api(author), "/api/models/churn/retraining/", json.dumps(recipe), "put"), 400)
    assert "cannot name a file" in " ".join(body["data_path"]), body
    recipe["data_path"] = "a" * 255
    body = refused(post_json(api(author), "/api/models/churn/retraining/", json.dumps(recipe), "put"), 400)
    assert "There is no file" in " ".join(body["data_path"]), body
    recipe["data_path"] = "customers.csv"
    assert post_json(api(author), "/api/models/churn/retraining/", json.dumps(recipe), "put").status_code == 200


def test_it_refuses_a_batch_input_path_of_256_characters(
    api: Api, author: Any, churn_model: RegisteredModel, batch_inputs: Path
) -> None:
    job = {"name": "nightly", "input_kind": "path", "entity_column": "customer_id", "input_path": "a" * 256}
    body = refused(post_json(api(author), "/api/models/churn/batch-jobs/", json.dumps(job)), 400)
    assert "cannot name a file" in " ".join(body["input_path"]), body
    job["input_path"] = "/".join(["b" * 200] * 30)  # every part fits, the whole path does not
    body = refused(post_json(api(author), "/api/models/churn/batch-jobs/", json.dumps(job)), 400)
    assert "cannot name a file" in " ".join(body["input_path"]), body
    job["input_path"] = "customers.csv"
    assert post_json(api(author), "/api/models/churn/batch-jobs/", json.dumps(job)).status_code == 201


# --- a body over Django's limits: 413 --------------------------------------------------------------


def test_it_answers_413_naming_the_limit_for_a_body_over_it(
    api: Api, author: Any, churn_model: RegisteredModel, settings: Any
) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    over = "x" * (limit + 1)
    named = f"the limit is {limit} bytes"
    refused(post_json(api(None), "/api/auth/token/", json.dumps({"username": over, "password": "x"})), 413, named)
    refused(post_json(api(author), "/api/models/", json.dumps({"name": "m", "description": over})), 413, named)
    form = api(author).post(
        "/api/models/", f"name=m&description={over}", content_type="application/x-www-form-urlencoded"
    )
    refused(form, 413, named)
    multipart = api(author).post("/api/models/churn/versions/", {"release_notes": over}, format="multipart")
    refused(multipart, 413, named)


def test_it_answers_413_naming_the_limit_for_too_many_fields_or_files(
    api: Api, author: Any, churn_model: RegisteredModel, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    fields = {f"field{i}": "1" for i in range(11)}
    refused(api(author).post("/api/models/", fields, format="multipart"), 413, "the limit is 10 fields")
    form = "&".join(f"field{i}=1" for i in range(11))
    response = api(author).post("/api/models/", form, content_type="application/x-www-form-urlencoded")
    refused(response, 413, "the limit is 10 fields")
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    documents = [SimpleUploadedFile(f"doc{i}.md", b"# notes") for i in range(3)]
    response = api(author).post("/api/models/churn/versions/", {"documents": documents}, format="multipart")
    refused(response, 413, "the limit is 2 files")


def test_a_page_still_answers_a_form_over_the_limit_with_a_bad_request(
    author: Any, churn_model: RegisteredModel, settings: Any
) -> None:
    client = Client()
    client.force_login(author)
    over = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    assert client.post("/new-model/", {"name": "m", "description": over}).status_code == 400
    assert client.post("/login/", {"username": over, "password": "x"}).status_code == 400


def test_it_names_the_field_of_a_batch_input_over_the_upload_limit(
    api: Api, author: Any, churn_model: RegisteredModel, settings: Any
) -> None:
    settings.MF_MAX_UPLOAD_BYTES = 1024
    csv = SimpleUploadedFile("customers.csv", b"customer_id,tenure\n" + b"c1,1\n" * 1000)
    job = {"name": "j", "input_kind": "upload", "entity_column": "customer_id", "input_file": csv}
    response = api(author).post("/api/models/churn/batch-jobs/", job, format="multipart")
    refused(response, 400, "input_file", "larger than the upload limit")


# --- NUL characters and unpaired surrogates --------------------------------------------------------


def test_it_refuses_nul_characters_in_json_form_fields_and_urls(
    api: Api, author: Any, production: ModelVersion, consumer_token: tuple[Any, str]
) -> None:
    client = api(author)
    refused(
        post_json(client, "/api/models/", '{"name": "m", "task": "classification", "title": "a\\u0000"}'), 400, "NUL"
    )
    refused(post_json(client, "/api/models/churn/consumers/", '{"name": "app", "owner": "ada\\u0000"}'), 400, "NUL")
    refused(
        post_json(client, "/api/models/churn/actuals/", '{"rows": [{"entity_id": "c\\u0000", "actual": 1}]}'),
        400,
        "NUL",
    )
    scored = PREDICT_BODIES["dataframe_records"].replace("NUMBER", "70.5").replace("monthly", "month\\u0000ly")
    refused(post_json(consumer_client(consumer_token), SCORING_URLS[0], scored), 400, "NUL")
    # A slug of a related object is looked up as it is: PostgreSQL refused the NUL with a 500.
    multipart = client.post("/api/models/churn/consumers/", {"name": "app", "owner": "ada\x00"}, format="multipart")
    refused(multipart, 400, "NUL")
    form = "name=app&owner=ada%00"
    refused(
        client.post("/api/models/churn/consumers/", form, content_type="application/x-www-form-urlencoded"), 400, "NUL"
    )
    # No object has a NUL in its name; a query parameter is refused by the view's serializer, by name.
    refused(client.get("/api/models/churn/scores/c%00/"), 404)
    refused(client.get("/api/models/", {"q": "a\x00"}), 400, "q", "Null characters are not allowed")


def test_a_page_answers_a_nul_character_in_its_url_with_a_bad_request(author: Any, churn_model: Any) -> None:
    client = Client()
    client.force_login(author)
    assert client.get("/", {"q": "a\x00"}).status_code == 400
    assert client.get("/audit/", {"model": "a\x00"}).status_code == 400
    assert client.get("/models/churn%00/").status_code == 404


def test_it_refuses_unpaired_surrogates(
    api: Api, author: Any, production: ModelVersion, consumer_token: tuple[Any, str]
) -> None:
    client = api(author)
    for body in ('{"name": "m", "task": "\\ud800"}', '{"name": "m", "task": "classification", "\\udfff": 1}'):
        refused(post_json(client, "/api/models/", body), 400, "unpaired surrogate")
    scored = json.dumps({"dataframe_records": [ROW], "entity_ids": ["SURROGATE"]}).replace("SURROGATE", "\\ud800")
    refused(post_json(consumer_client(consumer_token), SCORING_URLS[0], scored), 400, "unpaired surrogate")
    # A pair is one character: accepted.
    pair = post_json(client, "/api/models/", '{"name": "m", "task": "classification", "title": "\\ud83d\\ude00"}')
    assert pair.status_code == 201, pair.content
    assert pair.json()["title"] == "\U0001f600"
    # Another encoding than UTF-8 may decode to a surrogate without an escape: "+2AA-" is \ud800 in UTF-7.
    utf7 = b'{"name": "m2", "task": "classification", "title": "+2AA-"}'
    response = client.post("/api/models/", data=utf7, content_type="application/json; charset=utf-7")
    refused(response, 400, "JSON parse error", "surrogates not allowed")


# --- paths with names and numbers no object can have -----------------------------------------------


def test_it_answers_404_for_names_and_numbers_no_object_can_have(api: Api, author: Any, churn_model: Any) -> None:
    client = api(author)
    for url in (
        "/api/models/" + "a" * 10_000 + "/",
        "/api/models/" + "a" * 10_000 + "/versions/",
        "/api/models/churn/versions/99999999999999999999/",
        "/api/models/churn/versions/99999999999999999999/comments/",
        "/api/models/churn/batch-jobs/" + "a" * 10_000 + "/",
        "/api/batch-runs/99999999999999999999/",
        "/api/reports/99999999999999999999/",
        "/api/sql-runs/99999999999999999999/usage/",
    ):
        response = client.post(url, {}, format="json") if url.endswith("/usage/") else client.get(url)
        refused(response, 404)


def test_it_refuses_ids_past_the_databases_range_in_a_body(api: Api, author: Any, churn_model: Any) -> None:
    response = post_json(api(author), "/api/notifications/", json.dumps({"ids": [2**63]}))
    refused(response, 400, "ids")
    upload = api(author).post("/api/models/churn/versions/", {"training_data_rows": str(2**63)}, format="multipart")
    refused(upload, 400, "training_data_rows")


def test_it_refuses_sql_run_counts_past_their_range_and_skips_sample_rows_without_output(
    api: Api, author: Any, production: ModelVersion
) -> None:
    run = SqlRun.objects.create(
        model=production.model, version=production, engine="duckdb", function_name="f", user=author
    )
    url = f"/api/sql-runs/{run.pk}/usage/"
    report = {"rows_scored": 1, "rows_rejected": 0, "seconds": 0.1, "engine": production.format}
    too_many = {**report, "rows_scored": 2**63}
    refused(post_json(api(author), url, json.dumps(too_many)), 400, "rows_scored")
    # The client sends the output None for a NaN prediction: it is counted, but there is no prediction to log.
    sample = [{"inputs": ROW, "output": None}, {"inputs": ROW, "output": 1, "probabilities": [0.4, 0.6]}]
    response = post_json(api(author), url, json.dumps({**report, "rows_scored": 2, "sample": sample}))
    assert response.status_code == 200, response.content
    assert response.json()["rows_logged"] == 1


def test_it_refuses_a_username_longer_than_any(api: Api, author: Any) -> None:
    """django-axes stores a failed attempt's username in 255 characters: a longer one was a 500 on PostgreSQL."""
    response = post_json(api(None), "/api/auth/token/", json.dumps({"username": "a" * 300, "password": "x"}))
    refused(response, 400, "username")


# --- bodies of the wrong shape or type ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "status", "named"),
    [
        ("[1, 2]", "application/json", 400, "Invalid data"),
        ("42", "application/json", 400, "Invalid data"),
        ("", "application/json", 400, "required"),
        ("{", "application/json", 400, "JSON parse error"),
        (b'{"name": "\xff"}', "application/json", 400, "JSON parse error"),
        ("name=m", "text/plain", 415, "Unsupported media type"),
    ],
    ids=["array", "number", "empty", "truncated", "not UTF-8", "text"],
)
def test_it_refuses_bodies_of_the_wrong_shape_or_type(
    api: Api, author: Any, body: Any, content_type: str, status: int, named: str
) -> None:
    refused(api(author).post("/api/models/", data=body, content_type=content_type), status, named)


def test_it_refuses_bodies_of_the_wrong_shape_to_score(
    production: ModelVersion, consumer_token: tuple[Any, str]
) -> None:
    client = consumer_client(consumer_token)
    for body in ("[1, 2]", "42", '"rows"', "null", "{}"):
        refused(post_json(client, SCORING_URLS[0], body), 400, "dataframe_split")


# --- MLflow model zips: YAML and JSON nested too deeply, values that cannot be kept --------------------

MLFLOW_MODEL = Path(__file__).parent.parent / "mlflow" / "fixtures" / "classifier" / "model"


def _mlflow_zip(tmp_path: Path, change: Callable[[Path], object]) -> SimpleUploadedFile:
    directory = tmp_path / "model"
    shutil.copytree(MLFLOW_MODEL, directory)
    change(directory)
    return SimpleUploadedFile("model.zip", mlflow_directory_zip(directory))


def _append(name: str, text: str) -> Callable[[Path], object]:
    return lambda directory: (directory / name).write_text((directory / name).read_text() + text)


def _replace(name: str, text: str) -> Callable[[Path], object]:
    return lambda directory: (directory / name).write_text(text)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_append("MLmodel", "extra: " + "[" * 1000 + "]" * 1000 + "\n"), "nested too deeply"),
        (_append("MLmodel", "extra: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n"), "nested too deeply"),
        (_append("python_env.yaml", "extra: " + "[" * 1000 + "]" * 1000 + "\n"), "nested too deeply"),
        (_replace("input_example.json", DEEP_ARRAY), "nested too deeply"),
        (_replace("input_example.json", '{"columns": ["tenure"], "data": [["\\ud800"]]}'), "unpaired surrogate"),
    ],
    ids=["MLmodel arrays", "MLmodel mappings", "python_env.yaml", "input example", "surrogate in the example"],
)
def test_it_refuses_an_mlflow_model_it_could_not_read_or_keep(
    api: Api, author: Any, churn_model: RegisteredModel, tmp_path: Path, change: Callable[[Path], object], named: str
) -> None:
    upload = _mlflow_zip(tmp_path, change)
    response = api(author).post("/api/models/churn/versions/", {"artifact": upload}, format="multipart")
    refused(response, 400, "artifact", named)
    assert ModelVersion.objects.count() == 0


def test_it_keeps_an_mlflow_input_example_with_nan_and_huge_integers(
    api: Api, author: Any, churn_model: RegisteredModel, tmp_path: Path
) -> None:
    """MLflow writes NaN for a missing value; an integer past a float's range is refused by the checks later."""
    columns = '["tenure", "monthly_charges", "contract", "internet"]'
    example = '{"columns": COLUMNS, "data": [[1, NaN, "month-to-month", "fiber"], [NUMBER, 1.5, "x", "y"]]}'
    example = example.replace("COLUMNS", columns).replace("NUMBER", INTEGER_1E309)
    upload = _mlflow_zip(tmp_path, _replace("input_example.json", example))
    response = api(author).post("/api/models/churn/versions/", {"artifact": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert api(author).get("/api/models/churn/versions/1/").status_code == 200
