"""The reviewer's day in a real browser: submit, two approvals, checks, go-live, do-not-use, consumers told."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core import mail

from registry import consumers
from registry.models import ModelVersion
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"headers": dict(self.headers), "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/model-factory", received
    server.shutdown()


def sign_in(page: Any, live_server: Any, username: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector(".usermenu")


def press(page: Any, action: str, comment: str = "") -> None:
    if comment:
        page.fill("#review-comment", comment)
    page.click(f"button[name=action][value={action}]")
    page.wait_for_selector(".message")


def test_a_version_earns_its_way_into_production_and_out_again(
    live_server: Any,
    page: Any,
    screenshot: Any,
    churn_model: Any,
    author: Any,
    reviewer: Any,
    second_reviewer: Any,
    register: Any,
    webhook_receiver: tuple[str, list[dict[str, Any]]],
) -> None:
    url, received = webhook_receiver
    churn_model.required_approvals = 2
    churn_model.save()
    register(churn_model, author)
    consumer, _token = consumers.consumer_create(
        actor=author, model=churn_model, name="call-centre", contact_email="cc@example.com", webhook_url=url
    )
    secret = consumer.webhook_secret
    version_url = f"{live_server.url}/models/churn/versions/1/"

    sign_in(page, live_server, "ada")
    page.goto(version_url)
    assert page.locator("button[value=approve]").count() == 0
    press(page, "submit")
    assert "is now in review" in page.locator(".message").inner_text()

    sign_in(page, live_server, "rita")
    page.goto(f"{live_server.url}/reviews/")
    screenshot("review-inbox")
    page.click("text=churn v1")
    # The evidence before the decision: the checks ran at submission, and come first on the page.
    assert "Passed" in page.locator("#checks").inner_text()
    assert page.evaluate(
        "document.querySelector('#checks').compareDocumentPosition(document.querySelector('#review')) & 4"
    )
    press(page, "approve", "Metrics and notebook check out.")
    assert "1 of 2 approvals" in page.locator("#review").inner_text()
    message = page.locator(".message").inner_text()
    assert message.startswith("Approval recorded (1 of 2) for churn v1.") and "Ravi" in message, message
    approvers = page.locator("#approvers").inner_text()
    assert "Approved by Rita" in approvers and "May still approve: " in approvers and "Ravi" in approvers
    assert "Ada" not in approvers  # the author never approves

    sign_in(page, live_server, "ravi")
    page.goto(version_url)
    press(page, "approve", "Agreed.")
    # The submission's checks judged these very files in this environment: their outcome stands.
    page.goto(version_url)
    assert "Checks passed" in page.locator(".pagehead").inner_text()
    assert page.locator("#checks .check-failed").count() == 0
    screenshot("review-checks-passed")
    page.click("#go-live summary")  # the impact first: who is told
    impact = page.locator("#go-live").inner_text()
    assert "call-centre (email cc@example.com, webhook)" in impact, impact
    screenshot("review-go-live")
    press(page, "go_live", "Go.")
    assert ModelVersion.objects.get(model=churn_model, number=1).status == "production"

    sign_in(page, live_server, "rita")
    page.goto(version_url)
    press(page, "deprecate", "Trained on leaked labels.")
    page.goto(f"{live_server.url}/models/churn/")
    assert "Do not use version 1" in page.locator(".banner").inner_text()
    screenshot("model-deprecated")

    subjects = [m.subject for m in mail.outbox if m.to == ["cc@example.com"]]
    assert any("now in production" in s for s in subjects)
    assert any("Do not use" in s for s in subjects)
    events = [json.loads(r["body"])["event"] for r in received]
    assert events == ["model.production_changed", "model.production_changed", "version.deprecated"]
    for request in received:
        expected = "sha256=" + hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
        assert request["headers"]["X-ModelFactory-Signature"] == expected
