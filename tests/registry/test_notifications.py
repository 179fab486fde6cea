"""Consumers, their tokens, and notifying them: emails, and webhooks POSTed to a real local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from registry import consumers, notifications, selectors, tokens, webhooks
from registry.choices import VersionStatus
from registry.models import AuditEvent, Consumer, ModelVersion, Notification, RegisteredModel, WebhookDelivery
from registry.tasks import WEBHOOK_MAX_RETRIES, deliver_webhook
from tests.factories import UserFactory

CaptureCallbacks = Callable[..., Any]


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 answering with scripted statuses (then 200), recording requests."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[ReceivedRequest] = field(default_factory=list)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    # A proxy configured in the environment must not intercept requests to the local receiver.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    state = WebhookReceiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.received.append(ReceivedRequest(path=self.path, headers=dict(self.headers), body=body))
                code = state.statuses.pop(0) if state.statuses else 200
            answer = b"ok" if code < 300 else b"receiver unavailable"
            self.send_response(code)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/model-factory"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _eager_retries(settings: Any) -> Iterator[None]:
    settings.MF_WEBHOOK_BACKOFF_SECONDS = 0
    # With propagation on, an eager task's first retry raises Retry out of .delay() instead of running;
    # off, Celery's eager apply() runs each retry in turn, as a worker would.
    conf = deliver_webhook.app.conf
    propagates = conf.task_eager_propagates
    conf.task_eager_propagates = False
    yield
    conf.task_eager_propagates = propagates


def make_consumer(model: RegisteredModel, actor: Any, name: str = "billing", **fields: Any) -> Consumer:
    fields.setdefault("contact_email", f"{name}-team@example.com")
    consumer, _token = consumers.consumer_create(actor=actor, model=model, name=name, **fields)
    return consumer


@pytest.fixture
def hooked_consumer(churn_model: RegisteredModel, author: Any, receiver: WebhookReceiver) -> Consumer:
    """The "billing" consumer of churn, its webhook the local receiver."""
    return make_consumer(churn_model, author, webhook_url=receiver.url)


def notify(model: RegisteredModel, **payload: Any) -> list[WebhookDelivery]:
    return notifications.notify_consumers(
        model=model,
        event="version.deployed",
        subject="churn v2 is in production",
        message="Version 2 of churn replaced version 1 in production.",
        payload=payload or {"version": 2},
    )


# --- signatures ------------------------------------------------------------------------------


def test_it_signs_with_hmac_sha256_of_the_exact_body() -> None:
    body = webhooks.webhook_body({"model": "churn", "event": "version.deployed", "version": 2})
    signature = webhooks.webhook_signature("s3cret", body)

    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, f"sha256={expected}")
    assert body == b'{"event":"version.deployed","model":"churn","version":2}'
    assert webhooks.webhook_signature("s3cret", body + b" ") != signature
    assert webhooks.webhook_signature("other", body) != signature


# --- notifying consumers ---------------------------------------------------------------------


def test_it_emails_every_contact_and_posts_a_signed_webhook(
    churn_model: RegisteredModel,
    author: Any,
    receiver: WebhookReceiver,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    hooked = make_consumer(churn_model, author, "billing", webhook_url=receiver.url)
    make_consumer(churn_model, author, "marketing", contact_email="marketing@example.com")
    retired = make_consumer(churn_model, author, "retired-job", contact_email="old@example.com")
    retired_hook = make_consumer(churn_model, author, "old-scorer", contact_email="", webhook_url=receiver.url)
    for consumer in (retired, retired_hook):
        consumers.consumer_deactivate(actor=author, consumer=consumer)

    with django_capture_on_commit_callbacks(execute=True):
        deliveries = notify(churn_model, version=2, previous_version=1)
        assert not mail.outbox, "emails leave only after commit"

    assert sorted(message.to[0] for message in mail.outbox) == ["billing-team@example.com", "marketing@example.com"]
    assert all(message.subject == "churn v2 is in production" for message in mail.outbox)
    assert "replaced version 1" in mail.outbox[0].body

    assert [delivery.consumer for delivery in deliveries] == [hooked]
    assert len(receiver.received) == 1
    request = receiver.received[0]
    assert request.path == "/hooks/model-factory"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-ModelFactory-Event"] == "version.deployed"
    assert request.headers["X-ModelFactory-Delivery"] == str(deliveries[0].pk)
    expected = "sha256=" + hmac.new(hooked.webhook_secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-ModelFactory-Signature"], expected)
    sent = json.loads(request.body)
    assert sent["event"] == "version.deployed"
    assert sent["model"] == "churn"
    assert sent["version"] == 2
    assert sent["previous_version"] == 1
    assert sent["sent_at"]

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert delivery.delivered_at is not None
    assert delivery.payload == sent
    [attempt] = delivery.attempts
    assert attempt["status_code"] == 200
    assert attempt["error"] == ""
    assert attempt["duration_ms"] >= 0
    assert attempt["at"]


def test_it_sends_nothing_when_the_change_rolls_back(
    churn_model: RegisteredModel,
    hooked_consumer: Consumer,
    receiver: WebhookReceiver,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    @transaction.atomic
    def deploy_then_fail() -> None:
        notify(churn_model)
        raise RuntimeError("the deployment failed after notifying")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        deploy_then_fail()

    assert not mail.outbox
    assert not receiver.received
    assert not WebhookDelivery.objects.exists()


def test_it_keeps_the_change_when_the_broker_refuses_the_webhook(
    churn_model: RegisteredModel,
    author: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    make_consumer(churn_model, author, webhook_url="https://billing.example.com/hook")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(deliver_webhook, "apply_async", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = notify(churn_model)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert [message.to for message in mail.outbox] == [["billing-team@example.com"]]
    assert "registry.tasks.deliver_webhook" in caplog.text
    assert "broker down" in caplog.text


def test_it_retries_until_the_receiver_accepts(
    churn_model: RegisteredModel,
    hooked_consumer: Consumer,
    receiver: WebhookReceiver,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    receiver.statuses = [500, 500, 200]

    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = notify(churn_model)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert [attempt["status_code"] for attempt in delivery.attempts] == [500, 500, 200]
    assert delivery.attempts[0]["error"] == "HTTP 500: receiver unavailable"
    assert len(receiver.received) == 3
    # A retry is the same delivery: same id and the same signed bytes, so receivers can de-duplicate.
    assert len({request.headers["X-ModelFactory-Delivery"] for request in receiver.received}) == 1
    assert len({request.body for request in receiver.received}) == 1


def test_it_gives_up_after_the_last_retry_and_keeps_every_attempt(
    churn_model: RegisteredModel,
    hooked_consumer: Consumer,
    receiver: WebhookReceiver,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    receiver.statuses = [500] * 50

    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = notify(churn_model)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.delivered_at is None
    assert len(delivery.attempts) == WEBHOOK_MAX_RETRIES + 1
    assert len(receiver.received) == WEBHOOK_MAX_RETRIES + 1
    assert all(attempt["status_code"] == 500 for attempt in delivery.attempts)


def test_it_records_a_receiver_that_cannot_be_reached(
    churn_model: RegisteredModel, author: Any, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    make_consumer(churn_model, author, webhook_url=f"http://127.0.0.1:{closed_port}/hook")

    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = notify(churn_model)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert len(delivery.attempts) == WEBHOOK_MAX_RETRIES + 1
    assert delivery.attempts[0]["status_code"] is None
    assert "ConnectionError" in delivery.attempts[0]["error"]


def test_it_does_not_send_a_delivered_delivery_again(
    churn_model: RegisteredModel,
    hooked_consumer: Consumer,
    receiver: WebhookReceiver,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        [delivery] = notify(churn_model)

    deliver_webhook.delay(delivery.pk)
    deliver_webhook.delay(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert len(delivery.attempts) == 1
    assert len(receiver.received) == 1


def test_it_fails_a_queued_delivery_once_its_consumer_is_deactivated(
    churn_model: RegisteredModel, author: Any, hooked_consumer: Consumer, receiver: WebhookReceiver
) -> None:
    [delivery] = notify(churn_model)  # no on-commit execution: the task is still "queued"
    consumers.consumer_deactivate(actor=author, consumer=hooked_consumer, reason="Job decommissioned")

    deliver_webhook.delay(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert len(delivery.attempts) == 1
    assert "inactive" in delivery.attempts[0]["error"]
    assert not receiver.received


# --- consumers and tokens --------------------------------------------------------------------


def test_it_stores_only_a_hash_of_the_token(churn_model: RegisteredModel, author: Any) -> None:
    consumer, token = consumers.consumer_create(
        actor=author, model=churn_model, name="billing", contact_email="billing@example.com"
    )

    assert token.startswith("mfc_")
    assert len(token) > 40
    consumer.refresh_from_db()
    assert consumer.token_prefix == token[:12]
    assert consumer.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = json.dumps(
        [Consumer.objects.values().get(), list(AuditEvent.objects.values("old", "new"))], cls=DjangoJSONEncoder
    )
    assert token not in stored
    assert tokens.consumer_for_token(token) == consumer
    assert tokens.consumer_for_token(token + "x") is None
    assert tokens.consumer_for_token("not-a-token") is None


def test_it_invalidates_the_old_token_on_rotation(churn_model: RegisteredModel, author: Any) -> None:
    consumer, old_token = consumers.consumer_create(
        actor=author, model=churn_model, name="billing", contact_email="billing@example.com"
    )

    new_token = tokens.consumer_rotate_token(actor=author, consumer=consumer)

    assert new_token != old_token
    assert tokens.consumer_for_token(old_token) is None
    assert tokens.consumer_for_token(new_token) == consumer
    event = AuditEvent.objects.get(action="consumer.token_rotated")
    assert event.actor == author
    consumer.refresh_from_db()
    assert consumer.token_expires_at is not None
    assert event.new == {
        "name": "billing",
        "token_prefix": new_token[:12],
        "token_expires_at": consumer.token_expires_at.isoformat(),
        "token_revoked_at": None,
    }
    assert new_token not in json.dumps(event.new)


def test_it_refuses_the_token_of_an_inactive_consumer(churn_model: RegisteredModel, author: Any) -> None:
    consumer, token = consumers.consumer_create(
        actor=author, model=churn_model, name="billing", contact_email="billing@example.com"
    )
    consumers.consumer_deactivate(actor=author, consumer=consumer)

    assert tokens.consumer_for_token(token) is None


def test_it_keeps_secrets_out_of_the_audit_trail(churn_model: RegisteredModel, author: Any) -> None:
    consumer = make_consumer(churn_model, author, webhook_url="https://billing.example.com/hook")

    assert len(consumer.webhook_secret) == 64
    event = AuditEvent.objects.get(action="consumer.created")
    assert event.model == churn_model
    assert event.new is not None
    assert event.new["webhook_url"] == "https://billing.example.com/hook"
    assert consumer.webhook_secret not in json.dumps(event.new)
    assert "token_hash" not in event.new


def test_it_checks_a_consumer_by_field(churn_model: RegisteredModel, author: Any) -> None:
    make_consumer(churn_model, author, "billing")

    with pytest.raises(ValidationError) as duplicate:
        make_consumer(churn_model, author, "billing")
    assert "already has a consumer named 'billing'" in duplicate.value.message_dict["name"][0]

    with pytest.raises(ValidationError) as unreachable:
        make_consumer(churn_model, author, "silent", contact_email="")
    assert unreachable.value.message_dict == {
        "contact_email": ["Give a contact email or a webhook URL, so the consumer can be notified."]
    }

    with pytest.raises(ValidationError) as bad_url:
        make_consumer(churn_model, author, "ftp-job", webhook_url="ftp://files.example.com/drop")
    assert set(bad_url.value.message_dict) == {"webhook_url"}
    assert Consumer.objects.count() == 1


def test_it_lets_only_the_owner_or_admins_register_consumers(
    churn_model: RegisteredModel, manager: Any, outsider: Any, admin_user: Any
) -> None:
    for actor in (manager, outsider):
        with pytest.raises(PermissionDenied):
            make_consumer(churn_model, actor, f"by-{actor.username}")

    assert make_consumer(churn_model, admin_user, "by-admin").owner == admin_user


def test_it_audits_only_what_an_update_changed(churn_model: RegisteredModel, author: Any, reviewer: Any) -> None:
    consumer = make_consumer(churn_model, author)

    with pytest.raises(PermissionDenied):
        consumers.consumer_update(actor=reviewer, consumer=consumer, description="hijacked")
    consumers.consumer_update(
        actor=author, consumer=consumer, contact_email="finance@example.com", description="", reason="Team moved"
    )

    event = AuditEvent.objects.get(action="consumer.updated")
    assert event.old == {"contact_email": "billing-team@example.com"}
    assert event.new == {"contact_email": "finance@example.com"}
    assert event.reason == "Team moved"


def test_it_checks_only_a_new_pin(
    churn_model: RegisteredModel, author: Any, register: Callable[..., ModelVersion]
) -> None:
    version = register(churn_model, author)
    consumer = make_consumer(churn_model, author, pinned_version=version)
    ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.DEPRECATED)
    version.refresh_from_db()
    consumer.refresh_from_db()

    # Still pinned to the deprecated version, the consumer may change its contact...
    consumers.consumer_update(actor=author, consumer=consumer, contact_email="finance@example.com")
    # ...but nobody may pin it anew.
    other = make_consumer(churn_model, author, "marketing")
    with pytest.raises(ValidationError) as error:
        consumers.consumer_update(actor=author, consumer=other, pinned_version=version)
    assert error.value.message_dict["pinned_version"] == [
        "Version 1 is deprecated and must not be used. No version is in production yet to pin instead."
    ]


# --- in-app notifications --------------------------------------------------------------------


def test_it_notifies_each_user_once_and_marks_only_their_own_read(author: Any, reviewer: Any) -> None:
    notifications.notify_users(users=[author, reviewer, author], message="churn v2 needs review", url="/models/churn/")
    notifications.notify_users(users=[author], message="x" * 800)

    assert Notification.objects.filter(user=author).count() == 2
    assert Notification.objects.filter(user=reviewer).count() == 1
    assert len(Notification.objects.get(user=author, message__startswith="xxx").message) == 500
    reviewers_note = Notification.objects.get(user=reviewer)

    assert notifications.notification_mark_read(user=author, notification_ids=[reviewers_note.pk]) == 0
    assert notifications.notification_mark_read(user=author) == 2
    assert not selectors.unread_notifications(author).exists()
    assert selectors.unread_notifications(reviewer).get() == reviewers_note


def test_it_lists_unread_notifications_first(author: Any) -> None:
    UserFactory(username="someone-else")
    for text in ("first", "second", "third"):
        notifications.notify_users(users=[author], message=text)
    newest = Notification.objects.get(message="third")
    notifications.notification_mark_read(user=author, notification_ids=[newest.pk])

    listed = [note.message for note in selectors.notification_list(user=author)]

    assert listed == ["second", "first", "third"]


def test_the_page_marks_notifications_read_only_when_asked(client: Any, manager: Any) -> None:
    notifications.notify_users(users=[manager], message="v3 is waiting for your review", url="/models/churn/")
    notifications.notify_users(users=[manager], message="v3 is in production")
    first, second = manager.notifications.order_by("pk")
    client.force_login(manager)

    page = client.get("/notifications/").content.decode()
    assert "2 unread" in page and "Mark all read" in page
    assert manager.notifications.filter(read_at=None).count() == 2  # looking is not reading

    response = client.post("/notifications/", {"id": first.pk}, follow=True)
    assert "1 notification marked read." in response.content.decode()
    assert list(manager.notifications.filter(read_at=None)) == [second]
    assert "id: choose a notification" in client.post("/notifications/", {"id": "x"}, follow=True).content.decode()
    client.post("/notifications/", {"id": "all"})
    assert not manager.notifications.filter(read_at=None).exists()


def test_a_review_request_closes_once_answered_and_once_the_review_is_over(
    churn_model: RegisteredModel, author: Any, reviewer: Any, second_reviewer: Any, register: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    from registry import workflow

    churn_model.required_approvals = 2
    churn_model.save()
    version = register(churn_model, author)
    workflow.version_transition(actor=author, version=version, action="submit")

    def waiting(user: Any) -> bool:
        return user.notifications.filter(message__contains="waiting for your review", read_at=None).exists()

    assert waiting(reviewer) and waiting(second_reviewer)
    workflow.version_transition(actor=reviewer, version=version, action="approve")
    assert not waiting(reviewer) and waiting(second_reviewer)  # Rita answered; Ravi is still asked
    with django_capture_on_commit_callbacks(execute=True):
        workflow.version_transition(actor=second_reviewer, version=version, action="approve")
    assert not waiting(second_reviewer)
    assert not Notification.objects.filter(topic=workflow.review_topic(version), read_at=None).exists()
