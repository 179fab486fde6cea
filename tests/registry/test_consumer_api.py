"""The consumers and notifications API, through HTTP.

The routes are declared here (this module is the URLconf of its tests) so the API is exercised as
it will be mounted under /api/, before the project's URLconf includes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import path
from rest_framework.test import APIClient

from registry import consumer_api, notifications, tokens
from registry.choices import VersionStatus
from registry.models import Consumer, ModelVersion, Notification, RegisteredModel

urlpatterns = [
    path("api/models/<slug:name>/consumers/", consumer_api.ConsumerListApi.as_view()),
    path("api/models/<slug:name>/consumers/<slug:consumer>/", consumer_api.ConsumerDetailApi.as_view()),
    path("api/models/<slug:name>/consumers/<slug:consumer>/token/", consumer_api.ConsumerTokenApi.as_view()),
    path(
        "api/models/<slug:name>/consumers/<slug:consumer>/deliveries/",
        consumer_api.ConsumerDeliveryListApi.as_view(),
    ),
    path("api/notifications/", consumer_api.NotificationListApi.as_view()),
]

pytestmark = pytest.mark.urls(__name__)

Api = Callable[[Any], APIClient]
CONSUMERS = "/api/models/churn/consumers/"
BILLING = {"name": "billing", "contact_email": "billing@example.com", "webhook_url": "https://billing.example.com/hook"}


def create(api: Api, user: Any, **overrides: Any) -> Any:
    return api(user).post(CONSUMERS, {**BILLING, **overrides}, format="json")


def test_it_shows_the_token_and_secret_once(api: Api, churn_model: RegisteredModel, author: Any) -> None:
    response = create(api, author, description="Monthly invoices")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "billing"
    assert body["model"] == "churn"
    assert body["owner"] == "ada"
    assert body["token"].startswith("mfc_")
    assert body["token_prefix"] == body["token"][:12]
    assert len(body["webhook_secret"]) == 64
    assert body["has_webhook_secret"] is True
    assert "token_hash" not in body
    consumer = Consumer.objects.get()
    assert tokens.consumer_for_token(body["token"]) == consumer
    assert consumer.webhook_secret == body["webhook_secret"]

    client = api(author)
    for url in (CONSUMERS, f"{CONSUMERS}billing/"):
        shown = client.get(url)
        assert shown.status_code == 200
        text = shown.content.decode()
        assert body["token"] not in text
        assert body["webhook_secret"] not in text
        assert consumer.token_hash not in text
        assert '"webhook_secret"' not in text
    listed = client.get(CONSUMERS).json()
    assert listed["count"] == 1
    assert listed["results"][0]["token_prefix"] == body["token_prefix"]


def test_it_returns_no_secret_for_an_email_only_consumer(api: Api, churn_model: RegisteredModel, author: Any) -> None:
    body = create(api, author, webhook_url="").json()

    assert body["webhook_secret"] == ""
    assert body["has_webhook_secret"] is False


def test_it_refuses_a_duplicate_name_with_the_field(api: Api, churn_model: RegisteredModel, author: Any) -> None:
    assert create(api, author).status_code == 201

    response = create(api, author, contact_email="other@example.com")

    assert response.status_code == 400
    assert response.json() == {"name": ["churn already has a consumer named 'billing'."]}


def test_it_refuses_a_consumer_nobody_can_reach(api: Api, churn_model: RegisteredModel, author: Any) -> None:
    response = create(api, author, contact_email="", webhook_url="")

    assert response.status_code == 400
    assert response.json() == {
        "contact_email": ["Give a contact email or a webhook URL, so the consumer can be notified."]
    }
    assert not Consumer.objects.exists()


@pytest.mark.parametrize("persona", ["manager", "outsider", "reviewer"])
def test_it_refuses_registration_to_others_than_the_owner(
    api: Api, churn_model: RegisteredModel, persona: str, request: pytest.FixtureRequest
) -> None:
    response = create(api, request.getfixturevalue(persona))

    assert response.status_code == 403
    assert not Consumer.objects.exists()


def test_it_hides_consumers_from_outsiders(api: Api, churn_model: RegisteredModel, author: Any, outsider: Any) -> None:
    create(api, author)

    assert api(outsider).get(CONSUMERS).status_code == 403
    assert api(outsider).get(f"{CONSUMERS}billing/").status_code == 403
    assert api(None).get(CONSUMERS).status_code == 401


def test_it_answers_404_for_unknown_models_and_consumers(api: Api, author: Any, churn_model: RegisteredModel) -> None:
    client = api(author)
    assert client.get("/api/models/nope/consumers/").status_code == 404
    assert client.post("/api/models/nope/consumers/", BILLING, format="json").status_code == 404
    assert client.get(f"{CONSUMERS}nobody/").status_code == 404


def test_it_refuses_to_pin_a_deprecated_version_and_names_the_one_to_use(
    api: Api, churn_model: RegisteredModel, author: Any, register: Callable[..., ModelVersion]
) -> None:
    old, current = register(churn_model, author), register(churn_model, author)
    ModelVersion.objects.filter(pk=old.pk).update(status=VersionStatus.DEPRECATED)
    ModelVersion.objects.filter(pk=current.pk).update(status=VersionStatus.PRODUCTION)

    refused = create(api, author, pinned_version=1)

    assert refused.status_code == 400
    assert refused.json() == {
        "pinned_version": ["Version 1 is deprecated and must not be used. Pin version 2, the version in production."]
    }
    assert create(api, author, pinned_version=9).json() == {"pinned_version": ["churn has no version 9."]}
    pinned = create(api, author, pinned_version=2)
    assert pinned.status_code == 201
    assert pinned.json()["pinned_version"] == 2


def test_it_updates_a_consumer_and_shows_a_new_secret_once(
    api: Api, churn_model: RegisteredModel, author: Any, manager: Any
) -> None:
    create(api, author, webhook_url="")
    detail = f"{CONSUMERS}billing/"

    assert api(manager).patch(detail, {"description": "hijacked"}, format="json").status_code == 403
    response = api(author).patch(
        detail, {"webhook_url": "https://billing.example.com/v2/hook", "description": "Invoices"}, format="json"
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["webhook_url"] == "https://billing.example.com/v2/hook"
    assert body["description"] == "Invoices"
    assert len(body["webhook_secret"]) == 64
    again = api(author).patch(detail, {"active": False}, format="json").json()
    assert again["active"] is False
    assert "webhook_secret" not in again
    assert api(author).patch(detail, {"webhook_url": "ftp://x.example.com"}, format="json").status_code == 400


def test_it_rotates_the_token(
    api: Api, churn_model: RegisteredModel, author: Any, outsider: Any, admin_user: Any
) -> None:
    old_token = create(api, author).json()["token"]
    url = f"{CONSUMERS}billing/token/"

    assert api(outsider).post(url, {}, format="json").status_code == 403
    response = api(admin_user).post(url, {"reason": "Token leaked in a log"}, format="json")

    assert response.status_code == 200
    new_token = response.json()["token"]
    assert new_token != old_token
    assert response.json()["token_prefix"] == new_token[:12]
    assert tokens.consumer_for_token(old_token) is None
    assert tokens.consumer_for_token(new_token) == Consumer.objects.get()


def test_it_lists_deliveries_newest_first(api: Api, churn_model: RegisteredModel, author: Any) -> None:
    create(api, author)
    for version in (1, 2):
        # Not committed in a test, so the deliveries stay pending: the list shows them as queued.
        notifications.notify_consumers(
            model=churn_model, event="version.deployed", subject="s", message="m", payload={"version": version}
        )

    response = api(author).get(f"{CONSUMERS}billing/deliveries/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [delivery["payload"]["version"] for delivery in body["results"]] == [2, 1]
    assert {delivery["status"] for delivery in body["results"]} == {"pending"}
    assert body["results"][0]["attempts"] == []


def test_it_lists_my_notifications_unread_first_and_marks_them_read(api: Api, author: Any, reviewer: Any) -> None:
    for text in ("first", "second", "third"):
        notifications.notify_users(users=[author], message=text, url="/models/churn/")
    notifications.notify_users(users=[reviewer], message="for rita")
    third = Notification.objects.get(message="third")
    rita_note = Notification.objects.get(message="for rita")
    client = api(author)

    marked = client.post("/api/notifications/", {"ids": [third.pk, rita_note.pk]}, format="json")
    assert marked.json() == {"marked_read": 1, "unread": 2}

    listed = client.get("/api/notifications/").json()
    assert [note["message"] for note in listed["results"]] == ["second", "first", "third"]
    assert listed["results"][0]["read_at"] is None
    assert listed["results"][2]["read_at"] is not None
    assert [note["message"] for note in client.get("/api/notifications/", {"unread": "true"}).json()["results"]] == [
        "second",
        "first",
    ]

    assert client.post("/api/notifications/", {}, format="json").json() == {"marked_read": 2, "unread": 0}
    assert Notification.objects.get(pk=rita_note.pk).read_at is None
