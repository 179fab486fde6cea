"""A prediction whose hot row is gone is still shown and reproduced, from the archive file of its hour."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from registry import consumers
from registry.models import Consumer, ModelVersion
from scoring.archive import compaction
from scoring.ids import uuid7
from scoring.models import Prediction, ScoringPolicy
from tests.scoring.archive_support import client_for, later, score


@pytest.fixture
def archived(production: ModelVersion, consumer_token: tuple[Consumer, str]) -> list[str]:
    """Predictions scored, then archived and deleted from the hot table."""
    ids = score(consumer_token[1], 20)
    summary = compaction.archive_run(now=later(days=15))
    assert summary.pruned_rows == 20 and not Prediction.objects.exists()
    return ids


def test_an_archived_prediction_is_shown_and_reproduced(
    archived: list[str], consumer_token: tuple[Consumer, str]
) -> None:
    app = client_for(consumer_token[1])
    shown = app.get(f"/api/predictions/{archived[3]}/")
    assert shown.status_code == 200, shown.content
    body = shown.json()
    assert (body["id"], body["model"], body["version"], body["consumer"]) == (archived[3], "churn", 1, "call-centre")
    assert body["entity_id"] == "c1-3"
    assert set(body["input"]) == {"tenure", "charges", "contract"}

    reproduced = app.post(f"/api/predictions/{archived[3]}/reproduce/")

    assert reproduced.status_code == 200, reproduced.content
    assert reproduced.json()["identical"] is True
    assert reproduced.json()["logged_output"] == body["output"]


def test_archived_predictions_stay_private_to_their_consumer(
    archived: list[str], churn_model: Any, author: Any, manager: Any, api: Any
) -> None:
    _, other_token = consumers.consumer_create(
        actor=author, model=churn_model, name="crm", contact_email="crm@example.com"
    )
    assert client_for(other_token).get(f"/api/predictions/{archived[0]}/").status_code == 404
    assert api(manager).get(f"/api/predictions/{archived[0]}/").status_code == 200


def test_an_unknown_id_is_not_found(archived: list[str], manager: Any, api: Any) -> None:
    # A UUIDv7 of an archived hour that names no prediction, and one of an hour never archived.
    assert api(manager).get(f"/api/predictions/{uuid7()}/").status_code == 404
    assert api(manager).post(f"/api/predictions/{uuid7(later(days=-30))}/reproduce/").status_code == 404


def test_a_uuid4_id_is_found_only_in_the_hot_table(
    production: ModelVersion, consumer_token: tuple[Consumer, str], manager: Any, api: Any
) -> None:
    prediction_id = score(consumer_token[1], 1)[0]
    old_style = uuid.uuid4()
    Prediction.objects.filter(pk=prediction_id).update(id=old_style)  # as logged before ids were UUIDv7
    assert api(manager).get(f"/api/predictions/{old_style}/").status_code == 200

    compaction.archive_run(now=later(days=15))

    assert not Prediction.objects.exists()
    assert api(manager).get(f"/api/predictions/{old_style}/").status_code == 404  # its hour cannot be known


@pytest.mark.parametrize("input_logging", ["full", "hash"])
def test_the_archive_answers_exactly_what_the_hot_table_did(
    production: ModelVersion, consumer_token: tuple[Consumer, str], input_logging: str
) -> None:
    # With the input kept, its sha256 is not archived but computed again from it: it must be the same.
    ScoringPolicy.objects.update_or_create(model=production.model, defaults={"input_logging": input_logging})
    app = client_for(consumer_token[1])
    ids = score(consumer_token[1], 5)
    hot = [app.get(f"/api/predictions/{prediction_id}/").json() for prediction_id in ids]

    compaction.archive_run(now=later(days=15))

    assert not Prediction.objects.exists()
    archived = [app.get(f"/api/predictions/{prediction_id}/").json() for prediction_id in ids]
    for old, new in zip(hot, archived, strict=True):
        assert {k: v for k, v in new.items() if v != old[k]} == {}
