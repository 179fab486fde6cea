"""Property-based fuzzing of the scoring, actuals, registration and workflow endpoints from the API's
own OpenAPI schema (schemathesis): whatever the request, no 5xx, and every answer is one the schema
declares, in the shape it declares.

The number of examples per operation is bounded (MF_FUZZ_EXAMPLES, default 20) and the generation is
derandomised, so CI runs the same few hundred requests every time in well under two minutes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from registry.models import ModelVersion, RegisteredModel
from tests.conftest import PASSWORD

EXAMPLES = int(os.environ.get("MF_FUZZ_EXAMPLES", "20"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# (method, path) of the fuzzed operations, and who calls each: the persona whose role the endpoint is for.
OPERATIONS: dict[tuple[str, str], str] = {
    ("POST", "/api/models/{name}/predict/"): "consumer",
    ("POST", "/api/models/{name}/versions/{number}/predict/"): "consumer",
    ("POST", "/api/models/{name}/invocations"): "consumer",
    ("POST", "/api/models/{name}/actuals/"): "consumer",
    ("POST", "/api/models/"): "author",
    ("POST", "/api/models/{name}/versions/"): "author",
    ("POST", "/api/models/{name}/versions/import-mlflow/"): "author",
    ("POST", "/api/models/{name}/versions/{number}/transitions/"): "reviewer",
    ("POST", "/api/models/{name}/batch-jobs/"): "author",
    ("PATCH", "/api/models/{name}/"): "author",
    ("POST", "/api/models/{name}/versions/{number}/comments/"): "reviewer",
    ("GET", "/api/models/{name}/production-at/"): "reviewer",
    ("POST", "/api/models/{name}/reports/"): "author",
    ("POST", "/api/models/{name}/alert-rules/"): "author",
}


def _token(user: Any) -> str:
    """An API token, obtained as an application would: POST /api/auth/token/."""
    response = Client().post("/api/auth/token/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return str(response.json()["token"])


@contextlib.contextmanager
def _in_test_transaction() -> Iterator[None]:
    """Requests go through the real WSGI handler, in this thread and this test's transaction.

    Django's handler closes the database connection after each request; the test client switches
    that off, and so must we, or the first request would end the test's transaction.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(
    production: ModelVersion,
    register: Callable[..., ModelVersion],
    churn_model: RegisteredModel,
    author: Any,
    reviewer: Any,
    consumer_token: Any,
) -> dict[str, Any]:
    """Version 1 of churn in production (so predict is reachable), version 2 a draft to move through review."""
    draft = register(churn_model, author)
    return {
        "headers": {
            "author": {"Authorization": f"Token {_token(author)}"},
            "reviewer": {"Authorization": f"Token {_token(reviewer)}"},
            "consumer": {"Authorization": f"Bearer {consumer_token[1]}"},
        },
        "path": {"name": churn_model.name, "number": production.number, "draft": draft.number},
    }


def _schema() -> Any:
    schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    schema.app = WSGIHandler()
    return schema


def _point_at_real_objects(case: Any, world: dict[str, Any]) -> None:
    """Path parameters name real objects, so requests reach the views' parsing and services
    rather than stopping at a 404 for a random model name."""
    parameters = dict(case.path_parameters or {})
    if "name" in parameters:
        parameters["name"] = world["path"]["name"]
    if "number" in parameters:
        parameters["number"] = world["path"]["draft" if case.path.endswith("/transitions/") else "number"]
    case.path_parameters = parameters


def _fuzz(operation: Any, mode: GenerationMode, world: dict[str, Any], persona: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        _point_at_real_objects(case, world)
        caller = persona
        if caller == "reviewer" and isinstance(case.body, dict) and case.body.get("action") == "submit":
            caller = "author"  # only the author submits; a reviewer would always get 403
        case.call_and_validate(headers=world["headers"][caller], checks=CHECKS)

    run()


def test_it_answers_every_generated_request_with_a_declared_non_5xx_response(fuzz_world: dict[str, Any]) -> None:
    """Valid (positive) and invalid (negative) requests for each operation; all failures reported together."""
    schema = _schema()
    failures = []
    for (method, path), persona in OPERATIONS.items():
        operation = schema[path][method]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            started = time.monotonic()
            try:
                with _in_test_transaction():
                    _fuzz(operation, mode, fuzz_world, persona)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
                failures.append(f"--- {method} {path} ({mode.value}):\n{exc}")
            finally:
                print(f"{method} {path} ({mode.value}): {time.monotonic() - started:.1f} s")  # shown with -s
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("t", ["3711-05-27T00:39:28-21:28", "0001-01-01T00:00:00+05:00"])
def test_it_answers_400_or_200_for_times_at_the_edges(t: str, api: Any, reviewer: Any, churn_model: Any) -> None:
    """Found by fuzzing: PostgreSQL refuses a -21:28 offset that Python accepts (was a 500)."""
    response = api(reviewer).get("/api/models/churn/production-at/", {"t": t})
    assert response.status_code in (200, 400, 404), response.content
