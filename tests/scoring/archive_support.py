"""Helpers of the archive tests: predictions scored through the API, and what the archive holds."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient

from scoring.archive import format, store
from scoring.models import ArchivedHour
from tests.conftest import customers


def client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def score(token: str, n: int = 20, seed: int = 1) -> list[str]:
    """Score n customers as an application does; returns the prediction ids."""
    frame = customers(n, seed=seed)
    answer = client_for(token).post(
        "/api/models/churn/predict/",
        {"dataframe_records": frame.to_dict("records"), "entity_ids": [f"c{seed}-{i}" for i in range(n)]},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    ids: list[str] = answer.json()["prediction_ids"]
    return ids


def later(**delta: Any) -> datetime:
    return timezone.now() + timedelta(**delta)


def archived_rows(kind: str = ArchivedHour.Kind.PREDICTIONS) -> list[dict[str, Any]]:
    """Every row the manifest's files hold, in file order."""
    rows = []
    for entry in ArchivedHour.objects.filter(kind=kind).order_by("hour", "model_id"):
        for file in entry.files:
            rows += store.read(file["path"]).to_pylist()
    return rows


def archived_ids(kind: str = ArchivedHour.Kind.PREDICTIONS) -> list[str]:
    return [row[format.ID] for row in archived_rows(kind)]
