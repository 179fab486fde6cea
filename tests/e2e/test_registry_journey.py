from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import PASSWORD, notebook_json
from tests.registry.test_sanitising import HOSTILE_MARKDOWN, HOSTILE_OUTPUTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_it_logs_in_and_reads_a_version_with_its_notebook(
    live_server, page, screenshot, churn_model, author, reviewer, register
):
    register(churn_model, author)
    register(churn_model, author, metrics='{"auc": 0.93, "accuracy": 0.9}', parent="1")
    dialogs: list[str] = []

    def record(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)

    page.goto(f"{live_server.url}/models/churn/versions/2/")
    assert "/login/" in page.url
    page.fill("#id_username", "rita")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.wait_for_url("**/models/churn/versions/2/")
    assert page.locator(".pagehead h1").inner_text().startswith("Customer churn")
    assert page.locator("#notebook .notebook").inner_text().count("trained ok") == 1
    assert page.locator("#comparison").get_by_text("previous version").first.is_visible()
    screenshot("version-page")

    page.click("text=Models")
    page.click("text=Customer churn")
    page.wait_for_url("**/models/churn/")
    assert page.locator(".timeline li").count() == 2
    screenshot("model-page")
    assert dialogs == []


def test_it_runs_no_script_from_a_hostile_notebook(live_server, page, churn_model, author, register):
    register(
        churn_model,
        author,
        notebook=SimpleUploadedFile("evil.ipynb", notebook_json(HOSTILE_OUTPUTS)),
        release_notes=HOSTILE_MARKDOWN,
    )
    dialogs: list[str] = []

    def record(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    page.goto(f"{live_server.url}/login/?next=/models/churn/versions/1/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/models/churn/versions/1/")
    page.wait_for_timeout(500)
    assert page.locator(".notebook b").inner_text() == "bold"
    assert dialogs == []
