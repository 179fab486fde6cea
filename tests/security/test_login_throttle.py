"""Failed logins are throttled (django-axes) on the login page, the admin and the API token endpoint:
after MF_LOGIN_FAILURE_LIMIT failures for a username from one address, that pair gets a clear 429
(a page, or JSON on the API) until the cool-off has passed, even with the right password."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

TOKEN = "/api/auth/token/"


def fail(client: Any, path: str, times: int, username: str = "ada", **extra: Any) -> list[int]:
    return [
        client.post(path, {"username": username, "password": f"wrong-{i}"}, **extra).status_code for i in range(times)
    ]


def test_the_login_page_locks_out_after_the_limit_with_a_clear_page(author: Any, settings: Any) -> None:
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT

    # The limit-th failure is the one that locks: the form errors before it, the lockout page on it.
    assert fail(client, "/login/", limit - 1) == [200] * (limit - 1)
    assert fail(client, "/login/", 1) == [429]
    locked = client.post("/login/", {"username": "ada", "password": PASSWORD})

    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert locked["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    assert "_auth_user_id" not in client.session
    # The lockout page is a normal page of the app, with the same headers.
    assert "script-src 'self'" in locked["Content-Security-Policy"]


def test_the_api_token_endpoint_answers_429_json(author: Any, settings: Any) -> None:
    client = APIClient()
    limit = settings.AXES_FAILURE_LIMIT

    assert fail(client, TOKEN, limit - 1) == [400] * (limit - 1)
    statuses = [*fail(client, TOKEN, 1), client.post(TOKEN, {"username": "ada", "password": PASSWORD}).status_code]
    locked = client.post(TOKEN, {"username": "ada", "password": PASSWORD}, format="json")

    assert statuses == [429, 429]
    assert locked.status_code == 429
    assert locked["Content-Type"] == "application/json"
    assert "Too many failed sign-ins" in locked.json()["detail"]
    assert locked.json()["retry_after_seconds"] == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert locked["Retry-After"]


def test_the_admin_login_counts_too(admin_user: Any, settings: Any) -> None:
    client = Client()
    fail(client, "/admin/login/", settings.AXES_FAILURE_LIMIT, username="alex")

    response = client.post("/admin/login/", {"username": "alex", "password": PASSWORD})

    assert response.status_code == 429


def test_failures_on_the_page_and_the_api_add_up(author: Any, settings: Any) -> None:
    half = settings.AXES_FAILURE_LIMIT // 2
    fail(Client(), "/login/", half)
    fail(APIClient(), TOKEN, settings.AXES_FAILURE_LIMIT - half)

    assert APIClient().post(TOKEN, {"username": "ada", "password": PASSWORD}).status_code == 429


def test_the_lockout_is_per_username_and_address(author: Any, reviewer: Any, settings: Any) -> None:
    fail(APIClient(), TOKEN, settings.AXES_FAILURE_LIMIT, REMOTE_ADDR="203.0.113.9")

    # The attacker's address is locked out for ada; ada at her desk and rita at the same address are not.
    from_desk = APIClient().post(TOKEN, {"username": "ada", "password": PASSWORD}, REMOTE_ADDR="198.51.100.7")
    rita = APIClient().post(TOKEN, {"username": "rita", "password": PASSWORD}, REMOTE_ADDR="203.0.113.9")

    assert from_desk.status_code == 200
    assert rita.status_code == 200


def test_a_forged_forwarded_for_header_does_not_buy_more_tries(author: Any, settings: Any) -> None:
    client = APIClient()
    for i in range(settings.AXES_FAILURE_LIMIT):
        client.post(TOKEN, {"username": "ada", "password": "wrong"}, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")

    response = client.post(TOKEN, {"username": "ada", "password": PASSWORD}, HTTP_X_FORWARDED_FOR="192.0.2.200")

    assert response.status_code == 429


def test_the_lockout_ends_after_the_cool_off(author: Any, settings: Any) -> None:
    fail(APIClient(), TOKEN, settings.AXES_FAILURE_LIMIT)
    assert APIClient().post(TOKEN, {"username": "ada", "password": PASSWORD}).status_code == 429

    # As if the cool-off had passed since the last failure.
    AccessAttempt.objects.update(
        attempt_time=datetime.datetime.now(tz=datetime.UTC) - settings.AXES_COOLOFF_TIME - datetime.timedelta(seconds=1)
    )

    assert APIClient().post(TOKEN, {"username": "ada", "password": PASSWORD}).status_code == 200


def test_a_successful_login_resets_the_count(author: Any, settings: Any) -> None:
    client = APIClient()
    fail(client, TOKEN, settings.AXES_FAILURE_LIMIT - 1)
    assert client.post(TOKEN, {"username": "ada", "password": PASSWORD}).status_code == 200

    assert fail(client, TOKEN, settings.AXES_FAILURE_LIMIT - 1) == [400] * (settings.AXES_FAILURE_LIMIT - 1)
    assert client.post(TOKEN, {"username": "ada", "password": PASSWORD}).status_code == 200
