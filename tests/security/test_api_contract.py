"""The OpenAPI schema says what the server does: the mismatches an outside schemathesis run found, each
kept as a regression test (the fuzzing in test_api_fuzz.py checks every operation more broadly)."""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from registry.choices import FileKind
from registry.models import ModelVersion, RegisteredModel


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _response_schema(schema: dict[str, Any], path: str, method: str, code: str) -> dict[str, Any]:
    answer = schema["paths"][path][method]["responses"][code]
    found: dict[str, Any] = answer["content"]["application/json"]["schema"]
    if "$ref" in found:
        found = schema["components"]["schemas"][found["$ref"].rsplit("/", 1)[1]]
    return found


PAGINATED = [
    "/api/alerts/",
    "/api/audit/",
    "/api/models/",
    "/api/notifications/",
    "/api/batch-runs/{run_id}/rejects/",
    "/api/models/{name}/versions/",
    "/api/models/{name}/batch-jobs/",
    "/api/models/{name}/consumers/",
    "/api/models/{name}/reports/",
]


@pytest.mark.parametrize("path", PAGINATED)
def test_lists_are_documented_as_the_pages_they_answer(schema: dict[str, Any], path: str) -> None:
    page = _response_schema(schema, path, "get", "200")
    assert page["type"] == "object"
    assert {"count", "next", "previous", "results"} <= set(page["properties"])
    assert page["properties"]["results"]["type"] == "array"
    assert "page" in {parameter["name"] for parameter in schema["paths"][path]["get"]["parameters"]}


def test_a_list_answers_the_documented_page(api: Any, author: Any, churn_model: RegisteredModel) -> None:
    body = api(author).get("/api/models/").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [model["name"] for model in body["results"]] == ["churn"]


def test_a_consumer_without_a_pinned_version_is_documented_as_such(schema: dict[str, Any]) -> None:
    created = _response_schema(schema, "/api/models/{name}/consumers/", "post", "201")
    assert created["properties"]["pinned_version"].get("nullable") is True


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("/api/models/?task=0", "/api/models/"),
        ("/api/alerts/?status=0", "/api/alerts/"),
        ("/api/audit/?until=0", "/api/audit/"),
        ("/api/notifications/?unread=2", "/api/notifications/"),
        ("/api/models/?page=99", "/api/models/"),
    ],
)
def test_bad_filters_answer_a_documented_json_4xx(
    schema: dict[str, Any], api: Any, reviewer: Any, url: str, path: str
) -> None:
    response = api(reviewer).get(url)
    assert response.status_code in (400, 404), response.content
    assert response["Content-Type"] == "application/json"
    assert str(response.status_code) in schema["paths"][path]["get"]["responses"]


def test_the_token_endpoint_documents_its_refusals(schema: dict[str, Any]) -> None:
    assert {"200", "400", "413", "415", "429"} <= set(schema["paths"]["/api/auth/token/"]["post"]["responses"])


def test_every_operation_naming_an_object_documents_its_json_404(schema: dict[str, Any]) -> None:
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        if "{" in path
        for method, operation in operations.items()
        if "404" not in operation["responses"]
    ]
    assert undocumented == []


def test_every_write_documents_bad_input_oversized_bodies_and_content_types(schema: dict[str, Any]) -> None:
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in ("post", "put", "patch") and not {"400", "413", "415"} <= set(operation["responses"])
    ]
    assert undocumented == []


def test_an_api_url_no_route_matches_answers_a_json_404(api: Any, reviewer: Any) -> None:
    response = api(reviewer).get("/api/models/churn/versions/abc/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No such endpoint or object: /api/models/churn/versions/abc/"}


def test_a_file_download_answers_the_documented_content_type(api: Any, author: Any, production: ModelVersion) -> None:
    """Found from the outside: a golden set downloaded as text/csv, which the schema does not declare."""
    golden = production.files.get(kind=FileKind.GOLDEN_SET)
    response = api(author).get(f"/api/models/churn/versions/{production.number}/files/{golden.pk}/download/")
    assert (response.status_code, response["Content-Type"]) == (200, "application/octet-stream")
