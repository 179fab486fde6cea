from typing import Any

import pytest

from tests.conftest import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_it_imports_a_version_from_mlflow_on_the_model_page(
    live_server: Any, page: Any, screenshot: Any, settings: Any, churn_model: Any, author: Any, tracking_server: Any
) -> None:
    settings.MF_MLFLOW_ALLOWED_HOSTS = ["127.0.0.1"]
    answers = tracking_server.answers
    page.goto(f"{live_server.url}/login/?next=/models/churn/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/models/churn/")

    form = page.locator("#import-mlflow")
    form.locator("#id_tracking_uri").fill(tracking_server.uri)
    form.locator("#id_model_name").fill(answers["registered"])
    form.locator("#id_version").fill("99")
    form.get_by_role("button", name="Import").click()
    page.wait_for_load_state()
    assert "has no version 99" in form.inner_text()
    screenshot("mlflow-import-refused")

    form.locator("#id_version").fill("")
    form.locator("#id_alias").fill(answers["alias"])
    form.get_by_role("button", name="Import").click()
    page.wait_for_url("**/models/churn/versions/1/")
    imported = page.locator("#mlflow-import")
    assert answers["versions"][answers["alias_version"]]["run_id"] in imported.inner_text()
    assert imported.get_by_role("link", name=f"version {answers['alias_version']}").get_attribute("href") == (
        f"{tracking_server.uri}/#/models/{answers['registered']}/versions/{answers['alias_version']}"
    )
    screenshot("mlflow-imported-version")
