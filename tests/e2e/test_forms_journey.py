"""A data scientist creates a model, registers its first version by upload and adds a consumer, all in the
browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline

from registry.models import Consumer, ModelVersion
from tests.e2e.test_review_journey import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_model_its_first_version_and_a_consumer_through_the_pages(
    live_server: Any, page: Any, author: Any, trained: tuple[Pipeline, pd.DataFrame], tmp_path: Path, screenshot: Any
) -> None:
    pipeline, frame = trained
    artifact = tmp_path / "model.skops"
    artifact.write_bytes(sio.dumps(pipeline))
    golden = frame.head(5).assign(expected=pipeline.predict(frame.head(5)))
    golden.to_csv(tmp_path / "golden.csv", index=False)

    sign_in(page, live_server, author.username)
    page.click("#new-model")
    page.fill("#id_name", "upsell")
    page.fill("#id_title", "Upsell propensity")
    page.select_option("#id_task", "classification")
    page.fill("#id_tags", "marketing")
    page.click("#model-form button[type=submit]")
    page.wait_for_selector("text=Model upsell created")

    page.set_input_files("#up-artifact", str(artifact))
    page.set_input_files("#up-golden", str(tmp_path / "golden.csv"))
    page.fill("#up-notes", "First **upsell** model.")
    page.fill("#up-metrics", '{"roc_auc": 0.84}')
    screenshot("register-version-form")
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("text=Registered upsell v1")
    version = ModelVersion.objects.get(model__name="upsell")
    assert (version.metrics, version.status) == ({"roc_auc": 0.84}, "draft")
    assert "First upsell model." in page.inner_text("main")

    page.goto(f"{live_server.url}/models/upsell/")
    page.fill("#consumer-name", "crm")
    page.fill("#consumer-email", "crm@example.com")
    page.click("#add-consumer button[type=submit]")
    token = page.inner_text("#token").strip()
    screenshot("consumer-token")
    assert Consumer.objects.get(name="crm").token_prefix == token[: len(Consumer.objects.get().token_prefix)]
    page.goto(f"{live_server.url}/models/upsell/")
    assert token not in page.content()
