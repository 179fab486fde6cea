"""Property-based fuzzing of every operation of the API from its own OpenAPI schema (schemathesis), as
each role calls it: whatever the request, no 5xx, and every answer is one the schema declares, with the
content type and in the shape it declares.

Each operation is called as an admin, a data scientist, a reviewer, a manager and a consumer token,
with valid (positive) and invalid (negative) requests whose path parameters name real objects of
tests/world.py, so requests reach the views' parsing, permissions and services rather than stopping at
a 404 for a random name. Every request runs in a savepoint rolled back after it: each meets the same
world.

The number of examples per operation, role and mode is MF_FUZZ_EXAMPLES (default 2, what `make test`
runs); .ci/run's PostgreSQL pass runs more. Generation is derandomised: a run repeats exactly.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client
from django.urls import URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from knox.models import AuthToken
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.world import World, module_world

EXAMPLES = int(os.environ.get("MF_FUZZ_EXAMPLES", "2"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ROLES = ["admin", "ds", "rev", "mgr", "cons"]


def _schema_dict() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


OPERATIONS = [
    (method.upper(), path)
    for path, methods in _schema_dict()["paths"].items()
    for method in methods
    if method in ("get", "post", "put", "patch", "delete")
]


@pytest.fixture(scope="module")
def world(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with module_world(django_db_blocker, tmp_path_factory.mktemp("fuzz-artifacts")) as built:
        yield built


@pytest.fixture(autouse=True)
def _isolated_files() -> None:
    """Replaces the suite's per-test artifact folder: the module's world keeps its files for every test."""


@pytest.fixture(scope="module")
def schema() -> Any:
    loaded = schemathesis.openapi.from_dict(_schema_dict())
    loaded.app = WSGIHandler()
    return loaded


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


def _headers(world: World) -> dict[str, dict[str, str]]:
    headers = {
        role: {"Authorization": f"Token {AuthToken.objects.create(user=world.users[role])[1]}"} for role in ROLES[:-1]
    }
    headers["cons"] = {"Authorization": f"Bearer {world.tokens['cons']}"}
    return headers


def _path_parameters(path: str, world: World) -> dict[str, Any]:
    """The real object each path parameter of `path` names."""
    ids = world.ids
    number = 1  # churn's production version
    if path.endswith("/transitions/"):
        number = 2  # in review
    elif path.endswith("/accept-untrusted-types/"):
        number = 3  # untrusted types
    run_id = (
        ids["sql_run"]
        if path.startswith("/api/sql-runs/")
        else ids["failed_run"]
        if path.endswith("/resume/")
        else ids["done_run"]
    )
    known = {
        "name": "churn",
        "number": number,
        "file_id": ids["artifact"],
        "consumer": "call-centre",
        "job": ids["job"],
        "run_id": run_id,
        "report_id": ids["report"],
        "prediction_id": ids["own_prediction"],
        "entity_id": "c1",
    }
    return {name: value for name, value in known.items() if "{" + name + "}" in path}


def _fuzz(operation: Any, mode: GenerationMode, path_parameters: dict[str, Any], headers: dict[str, str]) -> None:
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
        case.path_parameters = path_parameters
        with transaction.atomic():
            case.call_and_validate(headers=headers, checks=CHECKS)
            transaction.set_rollback(True)

    run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_answers_every_role_as_its_schema_declares(
    world: World, schema: Any, db: None, method: str, path: str
) -> None:
    """All failures of one operation, over the roles and both modes, are reported together."""
    operation = schema[path][method]
    headers = _headers(world)
    failures = []
    for role in ROLES:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                with _in_test_transaction():
                    _fuzz(operation, mode, _path_parameters(path, world), headers[role])
            except (KeyboardInterrupt, SystemExit):
                raise
            except Unsatisfiable:
                # Nothing of it can be invalid: its only parameters are in the path, which names real objects.
                assert mode is GenerationMode.NEGATIVE, f"{method} {path}: no valid request could be generated"
            except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
                failures.append(f"--- as {role} ({mode.value}):\n{exc}")
    assert not failures, "\n\n".join(failures)


def _api_routes(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _api_routes(pattern.url_patterns, route)
        elif route.startswith("api/") and route not in ("api/schema/", "api/docs/"):
            yield "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def test_every_api_route_is_in_the_schema_and_so_fuzzed() -> None:
    assert sorted(set(_api_routes(get_resolver().url_patterns)) - {path for _method, path in OPERATIONS}) == []


@pytest.mark.parametrize("t", ["3711-05-27T00:39:28-21:28", "0001-01-01T00:00:00+05:00"])
def test_it_answers_400_or_200_for_times_at_the_edges(t: str, world: World, db: None) -> None:
    """Found by fuzzing: PostgreSQL refuses a -21:28 offset that Python accepts (was a 500)."""
    client = Client()
    client.force_login(world.users["rev"])
    response = client.get("/api/models/churn/production-at/", {"t": t})
    assert response.status_code in (200, 400), response.content
