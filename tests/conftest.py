"""Personas, artifacts and helpers shared by the whole suite."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from registry import consumers, registration, roles, workflow
from registry.models import Consumer, ModelVersion, RegisteredModel
from tests.factories import RegisteredModelFactory, UserFactory
from tests.mlflow_tracking import tracking_server  # noqa: F401 - the session's MLflow server, for any test

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _isolated_files(settings: Any, tmp_path: Path) -> None:
    """Each test stores artifacts in its own folder, so orphan-file checks see only its files."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "artifacts"},
        },
    }
    settings.MEDIA_ROOT = tmp_path / "artifacts"
    settings.MF_ARCHIVE_URL = str(tmp_path / "archive")


# --- personas ---------------------------------------------------------------------------------


@pytest.fixture
def author(db: None) -> Any:
    """Ada, a data scientist who registers versions."""
    return UserFactory(username="ada", first_name="Ada", role=roles.DATA_SCIENTIST)


@pytest.fixture
def reviewer(db: None) -> Any:
    return UserFactory(username="rita", first_name="Rita", role=roles.REVIEWER)


@pytest.fixture
def second_reviewer(db: None) -> Any:
    return UserFactory(username="ravi", first_name="Ravi", role=roles.REVIEWER)


@pytest.fixture
def manager(db: None) -> Any:
    return UserFactory(username="maya", first_name="Maya", role=roles.MANAGER)


@pytest.fixture
def admin_user(db: None) -> Any:
    return UserFactory(username="alex", is_staff=True, is_superuser=True, role=roles.ADMIN)


@pytest.fixture
def outsider(db: None) -> Any:
    """Signed in, but in no role."""
    return UserFactory(username="otto")


@pytest.fixture
def api() -> Callable[[Any], APIClient]:
    def client_for(user: Any | None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


# --- a small model and its files ---------------------------------------------------------------

FEATURES = ["tenure", "charges", "contract"]


def customers(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n),
            "charges": rng.uniform(20, 120, n).round(2),
            "contract": rng.choice(["monthly", "yearly"], n),
        }
    )


@pytest.fixture(scope="session")
def trained() -> tuple[Pipeline, pd.DataFrame]:
    return train_churn_pipeline()


def train_churn_pipeline() -> tuple[Pipeline, pd.DataFrame]:
    """The suite's churn classifier and the customers it was trained on."""
    frame = customers()
    labels = ((frame["contract"] == "monthly") & (frame["tenure"] < 24)).astype(int)
    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [("numbers", StandardScaler(), ["tenure", "charges"]), ("contract", OneHotEncoder(), ["contract"])]
                ),
            ),
            ("classify", LogisticRegression()),
        ]
    ).fit(frame, labels)
    return pipeline, frame


INPUT_SCHEMA = [
    {"name": "tenure", "type": "integer", "minimum": 0, "maximum": 100},
    {"name": "charges", "type": "float", "minimum": 0, "maximum": 500},
    {"name": "contract", "type": "category", "categories": ["monthly", "yearly"]},
]


def notebook_json(outputs: list[dict[str, Any]] | None = None, markdown: str = "# Churn model") -> bytes:
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {"language_info": {"name": "python"}},
            "cells": [
                {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": markdown},
                {
                    "cell_type": "code",
                    "id": "train",
                    "metadata": {},
                    "execution_count": 1,
                    "source": "model.fit(X, y)",
                    "outputs": outputs or [{"output_type": "stream", "name": "stdout", "text": "trained ok\n"}],
                },
            ],
        }
    ).encode()


@pytest.fixture
def version_files(trained: tuple[Pipeline, pd.DataFrame]) -> Callable[..., dict[str, Any]]:
    """Multipart fields for a complete, valid registration; override any to make it bad."""
    pipeline, frame = trained

    def build(**overrides: Any) -> dict[str, Any]:
        golden = frame.head(5).copy()
        golden["expected"] = pipeline.predict(frame.head(5))
        reference = io.BytesIO()
        frame.to_parquet(reference, index=False)
        fields: dict[str, Any] = {
            "artifact": SimpleUploadedFile("model.skops", sio.dumps(pipeline)),
            "release_notes": "First **churn** model.",
            "notebook": SimpleUploadedFile("analysis.ipynb", notebook_json()),
            "golden_set": SimpleUploadedFile("golden.csv", golden.to_csv(index=False).encode()),
            "reference_data": SimpleUploadedFile("reference.parquet", reference.getvalue()),
            "input_schema": json.dumps(INPUT_SCHEMA),
            "params": json.dumps({"C": 1.0, "penalty": "l2"}),
            "metrics": json.dumps({"auc": 0.91, "accuracy": 0.88}),
            "environment": json.dumps({"python": "3.11.7", "libraries": {"scikit-learn": "1.9.1"}}),
            "training_data_uri": "s3://bucket/train.parquet",
            "code_uri": "https://git.example.com/churn",
            "code_commit": "abc123",
        }
        fields.update(overrides)
        return {key: value for key, value in fields.items() if value is not None}

    return build


@pytest.fixture
def churn_model(author: Any) -> RegisteredModel:
    # Budgets a loaded CI machine always meets: go-live must not fail on timing in tests about other things.
    return RegisteredModelFactory.create(
        name="churn", title="Customer churn", owner=author, latency_budget_ms=5_000, batch_latency_budget_ms=120_000
    )


@pytest.fixture
def register(version_files: Callable[..., dict[str, Any]]) -> Callable[..., ModelVersion]:
    """Register a version through the service, as the API does."""

    def do(model: RegisteredModel, actor: Any, **overrides: Any) -> ModelVersion:
        fields = version_files(**overrides)
        files = {key: fields.pop(key) for key in list(fields) if hasattr(fields[key], "read")}
        return registration.version_register(
            actor=actor,
            model=model,
            upload=registration.VersionUpload(**files, **fields),
        )

    return do


def stored_files(root: Path) -> list[Path]:
    return [path for path in (root / "artifacts").rglob("*") if path.is_file()] if (root / "artifacts").exists() else []


# --- a version in production, and a consumer of its model ------------------------------------


@pytest.fixture
def go_live(
    author: Any, reviewer: Any, second_reviewer: Any, django_capture_on_commit_callbacks: Any
) -> Callable[[ModelVersion], ModelVersion]:
    """Take a version through review, real checks and go-live."""

    def promote(version: ModelVersion) -> ModelVersion:
        workflow.version_transition(actor=author, version=version, action="submit")
        with django_capture_on_commit_callbacks(execute=True):
            workflow.version_transition(actor=reviewer, version=version, action="approve")
        with django_capture_on_commit_callbacks(execute=True):
            return workflow.version_transition(actor=second_reviewer, version=version, action="go_live")

    return promote


@pytest.fixture
def production(
    churn_model: RegisteredModel, author: Any, register: Callable[..., ModelVersion], go_live: Any
) -> ModelVersion:
    return go_live(register(churn_model, author))


@pytest.fixture
def consumer_token(churn_model: RegisteredModel, author: Any) -> tuple[Consumer, str]:
    return consumers.consumer_create(
        actor=author, model=churn_model, name="call-centre", contact_email="cc@example.com"
    )


@pytest.fixture
def traffic(production: ModelVersion, consumer_token: Any) -> list[str]:
    """300 customers scored in production, one in three of them with a much higher price than in training."""
    frame = customers(300, seed=7)
    frame.loc[frame.index % 3 == 0, "charges"] = 420.0
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {consumer_token[1]}")
    answer = client.post(
        "/api/models/churn/predict/",
        {"dataframe_records": frame.to_dict("records"), "entity_ids": [f"c{i}" for i in range(300)]},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    ids: list[str] = answer.json()["prediction_ids"]
    actuals = [{"prediction_id": pid, "actual": int(i % 2)} for i, pid in enumerate(ids)]
    posted = client.post("/api/models/churn/actuals/", {"rows": actuals}, format="json")
    assert posted.status_code in (200, 201), posted.content
    return ids


@pytest.fixture
def training_file(settings: Any, tmp_path: Any) -> str:
    """Training data under the batch input folder, where recipes read their files."""
    settings.MF_BATCH_INPUT_DIR = tmp_path
    data = customers(300, seed=3)
    data["churned"] = ((data["contract"] == "monthly") & (data["tenure"] < 30)).astype(int)
    data.to_parquet(tmp_path / "train.parquet")
    return "train.parquet"


@pytest.fixture(autouse=True)
def _fresh_process_state() -> None:
    """Model cache and rate-limit counters live in the process, and tests reuse primary keys."""
    from django.core.cache import caches

    from scoring import runtime

    runtime.model_cache.clear()
    caches["throttle"].clear()
