import hashlib
from pathlib import Path

import pytest

from registry.models import ModelVersion
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_version_page_shows_the_verified_compiled_engine_and_downloads_it(
    live_server, page, screenshot, production: ModelVersion, tmp_path: Path
):
    compilation = production.compilation
    page.goto(f"{live_server.url}/login/?next=/models/churn/versions/1/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/models/churn/versions/1/")

    card = page.locator("#serving-engine")
    assert card.locator("h2").inner_text().startswith("Serving engine: compiled ONNX graph")
    assert "Verified by check run" in card.inner_text()
    assert compilation.sha256 in card.inner_text()
    card.scroll_into_view_if_needed()
    screenshot("version-serving-engine")
    with page.expect_download() as download:
        card.get_by_role("link", name="churn-v1.onnx").click()
    saved = tmp_path / "churn-v1.onnx"
    download.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == compilation.sha256
