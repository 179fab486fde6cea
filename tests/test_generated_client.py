"""A client generated from our OpenAPI schema by an independent generator (openapi-python-client), through the
whole journey against a live server: tokens, a list, a model, a version uploaded, review, go-live, scoring by a
consumer application and a monitoring report.

The client is generated while the test runs, from the schema the server serves now, so a change that makes the
schema unusable to a generator (an operation it skips, a body it cannot send, an answer it cannot read or that
the schema does not declare) fails here. Every call goes through the generated operations and typed models.
"""

from __future__ import annotations

import importlib
import io
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pandas as pd
import pytest
import skops.io as sio
from django.test import Client
from django.utils import timezone
from sklearn.pipeline import Pipeline

from registry.models import RegisteredModel
from tests.conftest import INPUT_SCHEMA, PASSWORD, customers, notebook_json

pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = "model_factory_client"
# The generator would run ruff over what it writes (its default post hooks); the client's formatting is not
# under test, and ruff need not be on PATH.
GENERATOR_CONFIG = "post_hooks: []\n"
# Long enough for the requests whose (eager) tasks run inside them: the checks at submission, the report.
TIMEOUT = httpx.Timeout(120.0)


@pytest.fixture
def generated(tmp_path: Path, author: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The client package generated from /api/schema/ as a user downloads it (signed in: the schema is not
    public), importable as `model_factory_client`, every operation of it imported."""
    browser = Client()
    browser.force_login(author)
    served = browser.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert served.status_code == 200, served.content[:500]
    schema = tmp_path / "schema.json"
    schema.write_bytes(served.content)
    config = tmp_path / "generator.yaml"
    config.write_text(GENERATOR_CONFIG)
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(schema), "--meta", "none"]
    command += ["--output-path", str(tmp_path / PACKAGE), "--config", str(config)]
    # Each warning is an operation or a model that the generator left out or could not make sense of.
    result = subprocess.run([*command, "--fail-on-warning"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"openapi-python-client finds our schema unclear:\n{result.stdout}{result.stderr}"
    monkeypatch.syspath_prepend(str(tmp_path))
    package = importlib.import_module(PACKAGE)
    # A module that does not import is an operation a user of the client cannot call at all (e.g. a request
    # body the generator could not write code for), whether the journey below uses it or not.
    unusable = {}
    for module in pkgutil.walk_packages(importlib.import_module(f"{PACKAGE}.api").__path__, f"{PACKAGE}.api."):
        try:
            importlib.import_module(module.name)
        except Exception as error:  # any failure to import is the finding
            unusable[module.name.rsplit(".", 1)[-1]] = repr(error)
    assert not unusable, f"Generated operations that do not import: {unusable}"
    yield package
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


def operation(tag: str, operation_id: str) -> Any:
    """The generated module of one operation (its `sync_detailed`), by the schema's tag and operationId."""
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation_id}")


def answered(response: Any, status: int) -> Any:
    """The typed body of a generated `sync_detailed` call that answered `status`."""
    assert response.status_code == status, (response.status_code, response.content[:2000])
    return response.parsed


def test_it_lists_registers_reviews_predicts_and_reports_through_the_generated_client(
    live_server: Any,
    generated: ModuleType,
    author: Any,
    reviewer: Any,
    second_reviewer: Any,
    trained: tuple[Pipeline, pd.DataFrame],
) -> None:
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")

    def authenticated(token: str, prefix: str) -> Any:
        # An answer whose status code the schema does not declare raises.
        return generated.AuthenticatedClient(
            base_url=live_server.url, token=token, prefix=prefix, timeout=TIMEOUT, raise_on_unexpected_status=True
        )

    def signed_in(username: str) -> Any:
        anonymous = generated.Client(base_url=live_server.url, timeout=TIMEOUT, raise_on_unexpected_status=True)
        body = models.TokenObtainInputRequest(username=username, password=PASSWORD)
        token = answered(operation("auth", "auth_token_create").sync_detailed(client=anonymous, body=body), 200)
        assert isinstance(token, models.UserTokenOutput)
        return authenticated(token.token, "Token")

    ada, rita, ravi = signed_in(author.username), signed_in(reviewer.username), signed_in(second_reviewer.username)
    list_models = operation("models", "models_list")

    # A high-risk model: its versions need two reviewers' approvals.
    new_model = models.ModelCreateInputRequest(
        name="churn", title="Customer churn", task=models.TaskEnum.CLASSIFICATION, tags=["high-risk"]
    )
    created = answered(operation("models", "models_create").sync_detailed(client=ada, body=new_model), 201)
    assert isinstance(created, models.ModelOutput)
    # The API sets no latency budgets, and the checks must not fail on a loaded CI machine's timing.
    RegisteredModel.objects.filter(name="churn").update(latency_budget_ms=5_000, batch_latency_budget_ms=120_000)
    page = answered(list_models.sync_detailed(client=ada), 200)
    assert isinstance(page, models.PaginatedModelOutputList)
    assert (page.count, [model.name for model in page.results]) == (1, ["churn"])

    pipeline, frame = trained
    golden = frame.head(5).copy()
    golden["expected"] = pipeline.predict(frame.head(5))
    reference = io.BytesIO()
    frame.to_parquet(reference, index=False)
    upload = models.VersionCreateInputRequest(
        artifact=types.File(payload=io.BytesIO(sio.dumps(pipeline)), file_name="model.skops"),
        notebook=types.File(payload=io.BytesIO(notebook_json()), file_name="analysis.ipynb"),
        golden_set=types.File(payload=io.BytesIO(golden.to_csv(index=False).encode()), file_name="golden.csv"),
        reference_data=types.File(payload=reference, file_name="reference.parquet"),
        # A JSON text field is typed Any in the schema, and the generator sends str() of it: give it the text.
        input_schema=json.dumps(INPUT_SCHEMA),
        release_notes="First churn model, from a generated client.",
    )
    register = operation("models", "models_versions_create")
    version = answered(register.sync_detailed("churn", client=ada, body=upload), 201)
    assert isinstance(version, models.VersionOutput)
    assert (version.number, version.status) == (1, models.VersionStatusEnum.DRAFT)
    assert version.format_ == models.FormatEnum.SKOPS

    def take(client: Any, action: str, comment: str = "") -> Any:
        body = models.TransitionInputRequest(action=models.ActionEnum(action), comment=comment)
        moved = operation("models", "models_versions_transitions_create").sync_detailed(
            "churn", 1, client=client, body=body
        )
        assert isinstance(answered(moved, 200), models.TransitionOutput)
        return moved.parsed

    # Submitting starts the pre-deployment checks: a task queued after commit, run eagerly by the test settings.
    assert take(ada, "submit").status == "in_review"
    first = take(rita, "approve", "Reads well.")
    assert (first.status, first.approvals, first.approvals_needed) == ("in_review", 1, 2)
    # The quorum reached, the checks that ran at submission decide.
    assert take(ravi, "approve", "Agreed.").status == "checks_passed"
    read = answered(operation("models", "models_versions_retrieve").sync_detailed("churn", 1, client=rita), 200)
    assert read.status == models.VersionStatusEnum.CHECKS_PASSED
    assert take(ravi, "go_live", "Ship it.").status == "production"
    live = answered(list_models.sync_detailed(client=rita, status=models.ModelsListStatus.PRODUCTION), 200)
    assert [model.name for model in live.results] == ["churn"]

    new_consumer = models.ConsumerCreateInputRequest(name="call-centre", contact_email="cc@example.com")
    consumer = answered(
        operation("models", "models_consumers_create").sync_detailed("churn", client=ada, body=new_consumer), 201
    )
    assert isinstance(consumer, models.ConsumerCreatedOutput)
    application = authenticated(consumer.token, "Bearer")
    rows = customers(20, seed=11)
    split = models.ModelsPredictCreateBodyDataframeSplit(columns=list(rows.columns), data=rows.to_numpy().tolist())
    request = models.ModelsPredictCreateBody(dataframe_split=split, entity_ids=[f"c{i}" for i in range(len(rows))])
    scored = answered(
        operation("models", "models_predict_create").sync_detailed("churn", client=application, body=request), 200
    )
    assert isinstance(scored, models.PredictOutput)
    assert (scored.model, scored.version) == ("churn", 1)
    assert scored.predictions == pipeline.predict(rows).tolist()
    assert len(scored.prediction_ids) == len(rows)

    # The report's task runs after its request commits, eagerly, before the answer.
    now = timezone.now()
    window = models.ReportRequestInputRequest(start=now - timedelta(hours=1), end=now + timedelta(minutes=1))
    requested = answered(
        operation("models", "models_reports_create").sync_detailed("churn", client=ada, body=window), 202
    )
    assert isinstance(requested, models.ReportSummaryOutput)
    report = answered(operation("reports", "reports_retrieve").sync_detailed(requested.id, client=rita), 200)
    assert isinstance(report, models.ReportOutput)
    assert (report.model, report.version, report.status) == ("churn", 1, models.ReportStatusEnum.DONE)
    assert report.rows_current == len(rows)

    # The README's example, as a reader copies it.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("\n## REST API\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"TOKEN": ada.token}
    exec(example.replace("http://127.0.0.1:8000", live_server.url), namespace)  # noqa: S102
    assert [model.name for model in namespace["page"].results] == ["churn"]
