"""Actuals name their prediction by id: checked on the way in, kept when the prediction leaves the hot table."""

from __future__ import annotations

import uuid
from typing import Any

from rest_framework.test import APIClient

from monitoring.models import Actual
from registry import consumers
from registry.models import ModelVersion
from scoring.models import Prediction
from scoring.selectors import known_prediction_ids

ROWS = [{"tenure": 3, "charges": 99.5, "contract": "monthly"}, {"tenure": 60, "charges": 25.0, "contract": "yearly"}]


def scored(token: str) -> tuple[APIClient, list[str]]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    answer = client.post("/api/models/churn/predict/", {"dataframe_records": ROWS}, format="json")
    assert answer.status_code == 200, answer.content
    return client, answer.json()["prediction_ids"]


def test_an_actual_outlives_its_prediction(production: ModelVersion, consumer_token: Any) -> None:
    client, ids = scored(consumer_token[1])
    posted = client.post(
        "/api/models/churn/actuals/", {"rows": [{"prediction_id": ids[0], "actual": 1}]}, format="json"
    )
    assert posted.status_code == 200, posted.content

    # As archiving does: the prediction leaves the hot table, its actual stays.
    Prediction.objects.filter(pk=ids[0]).delete()

    assert Actual.objects.get().prediction_id == uuid.UUID(ids[0])


def test_a_consumer_cannot_label_another_consumers_predictions(
    production: ModelVersion, consumer_token: Any, author: Any
) -> None:
    _, ids = scored(consumer_token[1])
    _, other_token = consumers.consumer_create(
        actor=author, model=production.model, name="web-shop", contact_email="shop@example.com"
    )
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_token}")

    refused = other.post(
        "/api/models/churn/actuals/", {"rows": [{"prediction_id": ids[0], "actual": 1}]}, format="json"
    )

    assert refused.status_code == 400
    assert refused.json()["rows"] == [f"row 0: prediction_id: no prediction {ids[0]} of churn"]
    assert not Actual.objects.exists()


def test_known_prediction_ids_are_found_among_more_ids_than_sqlite_takes_parameters(
    production: ModelVersion, consumer_token: Any
) -> None:
    _, ids = scored(consumer_token[1])
    asked = [uuid.uuid4() for _ in range(260_000)] + [uuid.UUID(ids[1])]

    assert known_prediction_ids(model=production.model, ids=asked) == {uuid.UUID(ids[1])}
    assert known_prediction_ids(model=production.model, ids=asked, consumer=consumer_token[0]) == {uuid.UUID(ids[1])}
