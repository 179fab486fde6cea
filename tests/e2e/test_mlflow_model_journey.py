from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from registry import registration
from tests.conftest import PASSWORD
from tests.e2e.conftest import SCREENSHOTS
from tests.registry.test_mlflow_models import model_zip

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_reads_what_mlflow_wrote_and_still_accepts_the_types(
    live_server: Any, page: Any, screenshot: Any, settings: Any, churn_model: Any, author: Any, reviewer: Any
) -> None:
    settings.MF_COMPILE_MODELS = False
    registration.version_register(
        actor=author,
        model=churn_model,
        upload=registration.VersionUpload(artifact=SimpleUploadedFile("all_types.zip", model_zip("all_types"))),
    )
    page.goto(f"{live_server.url}/login/?next=/models/churn/versions/1/")
    page.fill("#id_username", reviewer.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/models/churn/versions/1/")

    card = page.locator("#mlflow")
    text = card.inner_text()
    assert "3.17.2" in text
    assert "sklearn.tree._tree.Tree" in text
    assert "skops" in text
    card.get_by_text("Signature as written by MLflow").click()
    assert "threshold" in card.inner_text()
    assert "MLflow signature" in page.locator("#schema-source").inner_text()
    screenshot("mlflow-model-version")
    card.screenshot(path=str(SCREENSHOTS / "mlflow-model-card.png"))

    trust = page.locator("#trust")
    trust.get_by_role("button", name="Accept these types").click()
    page.wait_for_load_state()
    assert "Accepted by" in page.locator("#trust").inner_text()
