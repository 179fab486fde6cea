"""API tokens are stored hashed, expire and can be revoked: users' tokens (knox, POST /api/auth/token/)
and consumers' tokens (registry Consumer, used by applications to score)."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from config import authentication
from registry import tokens
from registry.models import AuditEvent, Consumer, ModelVersion, RegisteredModel
from tests.conftest import PASSWORD, customers

Api = Callable[[Any], APIClient]
MODELS = "/api/models/"
CONSUMER = "/api/models/churn/consumers/call-centre/"


def sign_in(client: APIClient, username: str = "ada") -> dict[str, Any]:
    response = client.post("/api/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


# --- user tokens ------------------------------------------------------------------------------


def test_it_stores_only_a_hash_of_a_user_token(author: Any) -> None:
    body = sign_in(APIClient())
    token = body["token"]

    assert token.startswith("mfu_")
    stored = AuthToken.objects.get(user=author)
    assert stored.digest == hashlib.sha512(token.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM knox_authtoken")
        rows = cursor.fetchall()
    assert rows and not any(token in str(value) for row in rows for value in row)
    assert with_token(token).get(MODELS).status_code == 200


def test_it_gives_each_login_its_own_token_that_expires(author: Any, settings: Any) -> None:
    first, second = sign_in(APIClient()), sign_in(APIClient())

    assert first["token"] != second["token"]
    expiry = datetime.datetime.fromisoformat(first["expiry"].replace("Z", "+00:00"))
    ttl = settings.REST_KNOX["TOKEN_TTL"]
    assert abs(expiry - (timezone.now() + ttl)) < datetime.timedelta(minutes=1)


def test_it_refuses_an_expired_user_token_and_says_why(author: Any) -> None:
    token = sign_in(APIClient())["token"]
    AuthToken.objects.filter(user=author).update(expiry=timezone.now() - datetime.timedelta(seconds=1))

    response = with_token(token).get(MODELS)

    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    # knox deletes an expired token when it meets it: nothing usable is left behind.
    assert not AuthToken.objects.filter(user=author).exists()


def test_it_revokes_the_token_in_use_and_only_that_one(author: Any) -> None:
    laptop, notebook = sign_in(APIClient())["token"], sign_in(APIClient())["token"]

    assert with_token(laptop).post("/api/auth/token/revoke/").status_code == 204

    refused = with_token(laptop).get(MODELS)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    assert with_token(notebook).get(MODELS).status_code == 200


def test_it_revokes_all_of_a_users_tokens_from_a_session(api: Api, author: Any, reviewer: Any) -> None:
    mine = [sign_in(APIClient())["token"] for _ in range(3)]
    theirs = sign_in(APIClient(), "rita")["token"]

    response = api(author).post("/api/auth/token/revoke-all/")

    assert response.status_code == 200
    assert response.json() == {"revoked": 3}
    assert all(with_token(token).get(MODELS).status_code == 401 for token in mine)
    assert with_token(theirs).get(MODELS).status_code == 200


def test_revoking_needs_a_token(client: Any, db: None) -> None:
    assert client.post("/api/auth/token/revoke/").status_code == 401
    assert client.post("/api/auth/token/revoke-all/").status_code in (401, 403)


def test_a_wrong_or_inactive_login_gets_no_token(author: Any) -> None:
    wrong = APIClient().post("/api/auth/token/", {"username": "ada", "password": "nope"}, format="json")
    missing = APIClient().post("/api/auth/token/", {"username": "ada"}, format="json")
    author.is_active = False
    author.save()
    inactive = APIClient().post("/api/auth/token/", {"username": "ada", "password": PASSWORD}, format="json")

    assert wrong.status_code == 400
    assert missing.status_code == 400
    assert missing.json() == {"password": ["This field is required."]}
    assert inactive.status_code == 400
    assert not AuthToken.objects.exists()


# --- consumer tokens ------------------------------------------------------------------------


def test_a_new_consumer_token_expires_by_default(consumer_token: tuple[Consumer, str], settings: Any) -> None:
    consumer, _ = consumer_token
    expected = timezone.now() + datetime.timedelta(days=settings.MF_CONSUMER_TOKEN_DAYS)

    assert consumer.token_expires_at is not None
    assert abs(consumer.token_expires_at - expected) < datetime.timedelta(minutes=1)
    assert consumer.token_hash == hashlib.sha256(consumer_token[1].encode()).hexdigest()


def test_an_application_is_refused_with_the_reason_once_its_token_is_revoked_or_expired(
    api: Api, production: ModelVersion, consumer_token: tuple[Consumer, str], author: Any
) -> None:
    consumer, token = consumer_token
    app = APIClient()
    app.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = {"dataframe_records": customers(2).to_dict("records")}
    predict = "/api/models/churn/predict/"
    assert app.post(predict, body, format="json").status_code == 200

    revoked = api(author).delete(f"{CONSUMER}token/", {"reason": "Leaked in a log"}, format="json")
    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["token_status"] == "revoked"
    refused = app.post(predict, body, format="json")
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]

    soon = timezone.now() + datetime.timedelta(days=30)
    rotated = api(author).post(f"{CONSUMER}token/", {"expires_at": soon.isoformat()}, format="json")
    assert rotated.status_code == 200, rotated.content
    assert rotated.json()["token_expires_at"] == soon.isoformat().replace("+00:00", "Z")
    app.credentials(HTTP_AUTHORIZATION=f"Bearer {rotated.json()['token']}")
    assert app.post(predict, body, format="json").status_code == 200

    Consumer.objects.filter(pk=consumer.pk).update(token_expires_at=timezone.now() - datetime.timedelta(seconds=1))
    expired = app.post(predict, body, format="json")
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]

    stale = APIClient()
    stale.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    unknown = stale.post(predict, body, format="json")
    assert unknown.status_code == 401
    assert "Unknown consumer token" in unknown.json()["detail"]


def test_an_owner_moves_the_expiry_and_it_is_audited(
    api: Api, consumer_token: tuple[Consumer, str], author: Any
) -> None:
    consumer, token = consumer_token
    when = (timezone.now() + datetime.timedelta(days=7)).replace(microsecond=0)

    response = api(author).patch(CONSUMER, {"token_expires_at": when.isoformat(), "reason": "Phase out"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["token_status"] == "active"
    consumer.refresh_from_db()
    assert consumer.token_expires_at == when
    event = AuditEvent.objects.get(action="consumer.token_expiry_changed")
    assert event.actor == author
    assert event.reason == "Phase out"
    assert event.new is not None
    assert event.new["token_expires_at"] == when.isoformat()
    assert token not in str(event.new) and consumer.token_hash not in str(event.new)


def test_an_expiry_in_the_past_is_a_clear_400(
    api: Api, churn_model: RegisteredModel, consumer_token: tuple[Consumer, str], author: Any
) -> None:
    past = (timezone.now() - datetime.timedelta(days=1)).isoformat()

    patched = api(author).patch(CONSUMER, {"token_expires_at": past}, format="json")
    rotated = api(author).post(f"{CONSUMER}token/", {"expires_at": past}, format="json")
    created = api(author).post(
        "/api/models/churn/consumers/", {"name": "billing", "token_expires_at": past}, format="json"
    )
    garbage = api(author).patch(CONSUMER, {"token_expires_at": "next tuesday"}, format="json")

    for response in (patched, rotated, created):
        assert response.status_code == 400, response.content
        assert response.json() == {"token_expires_at": ["Must be in the future."]}
    assert garbage.status_code == 400
    assert "token_expires_at" in garbage.json()
    assert not Consumer.objects.filter(name="billing").exists()


def test_only_an_owner_may_revoke_and_revoking_twice_is_one_event(
    api: Api, consumer_token: tuple[Consumer, str], author: Any, outsider: Any
) -> None:
    consumer, token = consumer_token

    assert api(outsider).delete(f"{CONSUMER}token/").status_code in (403, 404)
    assert tokens.consumer_for_token(token) == consumer

    assert api(author).delete(f"{CONSUMER}token/").status_code == 200
    assert api(author).delete(f"{CONSUMER}token/").status_code == 200
    assert tokens.consumer_for_token(token) is None
    assert AuditEvent.objects.filter(action="consumer.token_revoked").count() == 1
    listed = api(author).get("/api/models/churn/consumers/").json()["results"][0]
    assert listed["token_status"] == "revoked"
    assert listed["token_revoked_at"] is not None
    assert "token_hash" not in listed and "token" not in listed


def test_scoring_remembers_a_user_token_until_it_is_revoked(production: ModelVersion, settings: Any) -> None:
    settings.MF_USER_TOKEN_CACHE_SECONDS = 10
    token = sign_in(APIClient())["token"]
    client = with_token(token)
    row = customers(1).to_dict(orient="records")
    try:
        assert client.post("/api/models/churn/predict/", {"instances": row}, format="json").status_code == 200
        with CaptureQueriesContext(connection) as queries:
            assert client.post("/api/models/churn/predict/", {"instances": row}, format="json").status_code == 200
        # No token lookup, no clean-up of the user's other tokens, no permission queries.
        tables = " ".join(query["sql"] for query in queries.captured_queries)
        assert "knox_authtoken" not in tables
        assert "auth_permission" not in tables

        assert client.post("/api/auth/token/revoke/").status_code == 204
        assert client.post("/api/models/churn/predict/", {"instances": row}, format="json").status_code == 401
    finally:
        authentication._cache.clear()
