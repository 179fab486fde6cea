"""Real-time scoring: request formats, validation by row and field, hot swap, logging, reproduction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient
from skl2onnx import to_onnx

from registry import consumers, workflow
from registry.models import Consumer, ModelVersion, RegisteredModel
from scoring import runtime
from scoring.models import Prediction, ScoringPolicy, ScoringStats
from scoring.recorder import percentile

ROWS = [
    {"tenure": 3, "charges": 99.5, "contract": "monthly"},
    {"tenure": 60, "charges": 25.0, "contract": "yearly"},
]


def client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def app(production: ModelVersion, consumer_token: tuple[Consumer, str]) -> APIClient:
    return client_for(consumer_token[1])


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_records": ROWS},
        {
            "dataframe_split": {
                "columns": ["tenure", "charges", "contract"],
                "data": [[3, 99.5, "monthly"], [60, 25.0, "yearly"]],
            }
        },
        {"instances": ROWS},
        {"instances": [[3, 99.5, "monthly"], [60, 25.0, "yearly"]]},
        {"inputs": {"tenure": [3, 60], "charges": [99.5, 25.0], "contract": ["monthly", "yearly"]}},
        {"inputs": ROWS},
    ],
    ids=["records", "split", "instances", "instances-lists", "inputs-columns", "inputs-rows"],
)
def test_every_mlflow_request_format_gives_the_same_answer(
    app: APIClient, body: dict[str, Any], trained: tuple[Any, Any]
) -> None:
    import pandas as pd

    pipeline, _ = trained
    expected = pipeline.predict(pd.DataFrame(ROWS)).tolist()

    native = app.post("/api/models/churn/predict/", body, format="json")
    assert native.status_code == 200, native.json()
    answer = native.json()
    assert answer["model"] == "churn"
    assert answer["version"] == 1
    assert answer["predictions"] == expected
    assert len(answer["probabilities"]) == 2
    assert np.allclose([sum(p) for p in answer["probabilities"]], 1)
    assert len(answer["prediction_ids"]) == 2

    mlflow = app.post("/api/models/churn/invocations", body, format="json")
    assert mlflow.json() == {"predictions": expected}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([{"tenure": 3, "charges": 99.5}], [{"row": None, "field": "contract", "error": "is required but missing"}]),
        (
            [{"tenure": "three", "charges": 99.5, "contract": "monthly"}],
            [{"row": 0, "field": "tenure", "error": "'three' is not a number"}],
        ),
        (
            [{"tenure": 3.5, "charges": 99.5, "contract": "monthly"}],
            [{"row": 0, "field": "tenure", "error": "3.5 is not a whole number"}],
        ),
        (
            [{"tenure": 3, "charges": 9999, "contract": "monthly"}],
            [{"row": 0, "field": "charges", "error": "9999 is above the maximum 500"}],
        ),
        (
            [{"tenure": -1, "charges": 20, "contract": "monthly"}],
            [{"row": 0, "field": "tenure", "error": "-1 is below the minimum 0"}],
        ),
        (
            [ROWS[0], {"tenure": 3, "charges": 20, "contract": "weekly"}],
            [{"row": 1, "field": "contract", "error": "'weekly' is not one of ['monthly', 'yearly']"}],
        ),
        (
            [{**ROWS[0], "age": 40}],
            [{"row": None, "field": "age", "error": "is not in the input schema"}],
        ),
        (
            [{"tenure": True, "charges": None, "contract": 7}],
            [
                {"row": 0, "field": "charges", "error": "is required but missing"},
                {"row": 0, "field": "contract", "error": "7 is not one of ['monthly', 'yearly']"},
                {"row": 0, "field": "tenure", "error": "True is not a number"},
            ],
        ),
    ],
)
def test_bad_rows_get_a_400_naming_every_row_and_field(app: APIClient, rows: list[Any], expected: list[Any]) -> None:
    response = app.post("/api/models/churn/predict/", {"dataframe_records": rows}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == expected
    assert response.json()["error_count"] == len(expected)
    assert Prediction.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Send exactly one of"),
        ({"dataframe_records": ROWS, "instances": ROWS}, "got dataframe_records, instances"),
        ({"dataframe_split": {"data": "x"}}, "dataframe_split"),
        ({"instances": [[1, 2]]}, "must have 3 values"),
        ({"instances": ["a", "b"]}, "every row must be"),
        ({"inputs": {"tenure": [1, 2], "charges": [1]}}, "same number of values"),
        ({"dataframe_records": []}, "no rows"),
        ({"dataframe_records": ROWS, "entity_ids": ["a"]}, "entity_ids has 1 values for 2 rows"),
        ([1, 2], "JSON object"),
    ],
)
def test_malformed_bodies_are_explained(app: APIClient, body: Any, message: str) -> None:
    response = app.post("/api/models/churn/predict/", body, format="json")
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_invalid_json_and_mlflow_error_shape(app: APIClient) -> None:
    response = app.post("/api/models/churn/predict/", "{not json", content_type="application/json")
    assert response.status_code == 400
    mlflow = app.post("/api/models/churn/invocations", {"dataframe_records": [{"tenure": 1}]}, format="json")
    assert mlflow.status_code == 400
    assert mlflow.json()["error_code"] == "BAD_REQUEST"
    assert mlflow.json()["errors"][0]["field"] == "charges"


def test_unknown_categories_can_be_passed_per_model(app: APIClient, churn_model: RegisteredModel) -> None:
    ScoringPolicy.objects.update_or_create(model=churn_model, defaults={"unknown_categories": "pass"})
    runtime.model_cache.clear()
    response = app.post(
        "/api/models/churn/predict/",
        {"dataframe_records": [{"tenure": 3, "charges": 20, "contract": "weekly"}]},
        format="json",
    )
    # This pipeline's encoder refuses unseen categories: the model's own error, as a 400, not a 500.
    assert response.status_code == 400
    assert "The model could not score these rows" in response.json()["detail"]
    # In scikit-learn's words or onnxruntime's, as the engine that serves (the compiled graph here) puts it.
    assert "Unknown Category" in response.json()["detail"]


def test_predictions_are_logged_and_reproducible(app: APIClient, production: ModelVersion) -> None:
    answer = app.post(
        "/api/models/churn/predict/", {"dataframe_records": ROWS, "entity_ids": ["c-1", "c-2"]}, format="json"
    ).json()
    first = answer["prediction_ids"][0]
    logged = app.get(f"/api/predictions/{first}/").json()
    assert logged["version"] == 1
    assert logged["consumer"] == "call-centre"
    assert logged["entity_id"] == "c-1"
    assert logged["input"] == {"tenure": 3.0, "charges": 99.5, "contract": "monthly"}
    assert logged["output"] == answer["predictions"][0]

    reproduced = app.post(f"/api/predictions/{first}/reproduce/").json()
    assert reproduced["identical"] is True
    assert reproduced["reproduced_output"] == answer["predictions"][0]

    stats = ScoringStats.objects.get(version=production)
    assert (stats.requests, stats.rows, stats.errors) == (1, 2, 0)
    assert percentile(stats.latency_histogram, 0.5) is not None


def test_a_hash_only_model_keeps_no_input_and_cannot_reproduce(app: APIClient, churn_model: RegisteredModel) -> None:
    ScoringPolicy.objects.update_or_create(model=churn_model, defaults={"input_logging": "hash"})
    runtime.model_cache.clear()
    prediction_id = app.post("/api/models/churn/predict/", {"dataframe_records": ROWS}, format="json").json()[
        "prediction_ids"
    ][0]
    logged = Prediction.objects.get(pk=prediction_id)
    assert logged.input is None
    assert len(logged.input_sha256) == 64
    response = app.post(f"/api/predictions/{prediction_id}/reproduce/")
    assert response.status_code == 409
    assert "sha256" in response.json()["detail"]


def test_consumers_see_only_their_own_predictions_and_model(
    app: APIClient, churn_model: RegisteredModel, author: Any, register: Callable[..., ModelVersion]
) -> None:
    prediction_id = app.post("/api/models/churn/predict/", {"dataframe_records": ROWS}, format="json").json()[
        "prediction_ids"
    ][0]
    _, other_token = consumers.consumer_create(
        actor=author, model=churn_model, name="crm", contact_email="crm@example.com"
    )
    other = client_for(other_token)
    assert other.get(f"/api/predictions/{prediction_id}/").status_code == 404
    fraud = RegisteredModel.objects.create(name="fraud", title="Fraud", task="classification", owner=author)
    _, fraud_token = consumers.consumer_create(actor=author, model=fraud, name="x", contact_email="x@example.com")
    assert (
        client_for(fraud_token)
        .post("/api/models/churn/predict/", {"dataframe_records": ROWS}, format="json")
        .status_code
        == 403
    )
    assert client_for("mfc_not-a-token").post("/api/models/churn/predict/", {}, format="json").status_code == 401
    assert APIClient().post("/api/models/churn/predict/", {}, format="json").status_code == 401


def test_data_scientists_and_reviewers_may_score_and_managers_and_outsiders_may_not(
    production: ModelVersion, api: Callable[[Any], APIClient], author: Any, reviewer: Any, manager: Any, outsider: Any
) -> None:
    def status(user: Any) -> int:
        return api(user).post("/api/models/churn/predict/", {"dataframe_records": ROWS}, format="json").status_code

    assert [status(user) for user in (author, reviewer, manager, outsider)] == [200, 200, 403, 403]


def test_a_production_change_swaps_the_model_without_a_restart(
    app: APIClient,
    production: ModelVersion,
    churn_model: RegisteredModel,
    author: Any,
    register: Callable[..., ModelVersion],
    go_live: Callable[[ModelVersion], ModelVersion],
) -> None:
    assert app.post("/api/models/churn/predict/", {"instances": ROWS}, format="json").json()["version"] == 1
    go_live(register(churn_model, author))
    # The cache is not cleared: the process notices the new production version by itself.
    assert app.post("/api/models/churn/predict/", {"instances": ROWS}, format="json").json()["version"] == 2


def test_pinned_versions(
    app: APIClient,
    production: ModelVersion,
    churn_model: RegisteredModel,
    author: Any,
    reviewer: Any,
    register: Callable[..., ModelVersion],
) -> None:
    assert app.post("/api/models/churn/versions/1/predict/", {"instances": ROWS}, format="json").status_code == 200
    register(churn_model, author)  # a draft
    response = app.post("/api/models/churn/versions/2/predict/", {"instances": ROWS}, format="json")
    assert response.status_code == 409
    assert "only approved versions serve" in response.json()["detail"]
    assert app.post("/api/models/churn/versions/9/predict/", {"instances": ROWS}, format="json").status_code == 404

    workflow.version_transition(actor=reviewer, version=production, action="deprecate", comment="Leaky.")
    response = app.post("/api/models/churn/versions/1/predict/", {"instances": ROWS}, format="json")
    assert response.status_code == 410
    assert "marked do not use" in response.json()["detail"]
    response = app.post("/api/models/churn/predict/", {"instances": ROWS}, format="json")
    assert response.status_code == 404
    assert "no version in production" in response.json()["detail"]


def test_a_consumer_pinned_to_a_deprecated_version_is_told_where_to_go(
    production: ModelVersion,
    churn_model: RegisteredModel,
    author: Any,
    reviewer: Any,
    register: Callable[..., ModelVersion],
    go_live: Callable[[ModelVersion], ModelVersion],
) -> None:
    _, token = consumers.consumer_create(
        actor=author, model=churn_model, name="legacy", contact_email="l@example.com", pinned_version=production
    )
    go_live(register(churn_model, author))
    workflow.version_transition(actor=reviewer, version=production, action="deprecate", comment="Leaky.")
    response = client_for(token).post("/api/models/churn/predict/", {"instances": ROWS}, format="json")
    assert response.status_code == 410
    assert response.json()["use_version"] == 2
    assert "Use version 2 instead" in response.json()["detail"]


def test_consumers_are_rate_limited(app: APIClient, consumer_token: tuple[Consumer, str]) -> None:
    Consumer.objects.filter(pk=consumer_token[0].pk).update(rate_limit="2/min")
    from scoring import authentication

    authentication._cache.clear()
    codes = [app.post("/api/models/churn/predict/", {"instances": ROWS}, format="json").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_a_verified_onnx_export_is_served(
    churn_model: RegisteredModel,
    author: Any,
    register: Callable[..., ModelVersion],
    go_live: Callable[[ModelVersion], ModelVersion],
    trained: tuple[Any, Any],
    consumer_token: tuple[Consumer, str],
) -> None:
    pipeline, frame = trained
    sample = frame.head(1).astype({"tenure": np.float32, "charges": np.float32})
    exported = to_onnx(pipeline, sample, options={id(pipeline.steps[-1][1]): {"zipmap": False}})
    version = go_live(register(churn_model, author, onnx=SimpleUploadedFile("m.onnx", exported.SerializeToString())))
    assert runtime.model_cache.loaded_version(version.pk).engine == "onnx"
    answer = client_for(consumer_token[1]).post("/api/models/churn/predict/", {"instances": ROWS}, format="json").json()
    assert answer["predictions"] == pipeline.predict(frame.head(0).__class__(ROWS)).tolist()


def test_usage_counters_reach_the_version_page(app: APIClient, client: Any, manager: Any) -> None:
    app.post("/api/models/churn/predict/", {"instances": ROWS}, format="json")
    app.post("/api/models/churn/predict/", {"instances": [{"tenure": "x"}]}, format="json")
    client.force_login(manager)
    page = client.get("/models/churn/versions/1/").content.decode()
    assert "<dt>Requests</dt><dd>2</dd>" in page
    assert "<dt>Errors</dt><dd>1 (50%)</dd>" in page


def test_an_entity_id_longer_than_the_store_allows_is_a_400(production: ModelVersion, consumer_token: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {consumer_token[1]}")
    rows = [{"tenure": 3, "charges": 99.5, "contract": "monthly"}] * 2
    response = client.post(
        "/api/models/churn/predict/", {"dataframe_records": rows, "entity_ids": ["c-1", "x" * 201]}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "entity_ids" in response.content.decode() and "longer than 200" in response.content.decode()
    assert not Prediction.objects.exists()
