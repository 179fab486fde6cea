"""Importing versions from a real MLflow tracking server (issue 12, part 2).

The server and the models registered on it with MLflow's own client come from tests/mlflow_tracking.py;
the predictions of an imported version are compared with those MLflow's own `pyfunc` loader gives.
"""

from __future__ import annotations

import re
import socket
from io import StringIO
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from config.env import env_hosts
from registry import mlflow_import, services
from registry.loading import load_version_model
from registry.mlflow_import import tracking_uri_check
from registry.models import ModelVersion
from tests.conftest import stored_files
from tests.mlflow_tracking import TrackingServer, free_port


@pytest.fixture
def mlflow_settings(settings: Any) -> Any:
    settings.MF_MLFLOW_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.MF_MLFLOW_TIMEOUT_SECONDS = 5
    return settings


@pytest.fixture
def post_import(api: Any, author: Any, churn_model: Any, tracking_server: TrackingServer, mlflow_settings: Any) -> Any:
    def post(user: Any = author, **body: Any) -> Any:
        payload = {"tracking_uri": tracking_server.uri, "model_name": tracking_server.answers["registered"], **body}
        payload = {key: value for key, value in payload.items() if value is not None}
        return api(user).post("/api/models/churn/versions/import-mlflow/", payload, format="json")

    return post


def _predictions(version: ModelVersion, rows: list[dict[str, Any]]) -> list[Any]:
    return np.asarray(load_version_model(version).predict(pd.DataFrame(rows))).tolist()


# --- importing ------------------------------------------------------------------------------------


def test_it_imports_a_version_with_its_run(post_import, tracking_server, reviewer, tmp_path):
    answers = tracking_server.answers
    expected = answers["versions"]["1"]
    response = post_import(version="1")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"] == 1
    assert body["format"] == "mlflow"
    assert body["params"] == {"max_depth": "4"}  # as MLflow keeps them: strings
    assert set(body["metrics"]) == {"accuracy", "auc"}
    assert body["metrics"]["auc"] == pytest.approx(0.91)
    assert body["code_uri"] == answers["repository"]
    assert body["code_commit"] == expected["commit"]
    assert [f["name"] for f in body["input_schema"]] == ["tenure", "charges", "contract"]
    imported = body["mlflow"]["import"]
    assert imported["tracking_uri"] == tracking_server.uri
    assert (imported["model_name"], imported["version"], imported["alias"]) == (answers["registered"], "1", None)
    assert imported["run_id"] == expected["run_id"]
    assert imported["run_name"] == "train-DecisionTreeClassifier"
    assert imported["tags"] == {"team": "retention"}
    assert imported["source"].startswith("models:/m-")  # MLflow 3: the version's source is a logged model
    assert imported["ui_url"] == f"{tracking_server.uri}/#/models/{answers['registered']}/versions/1"
    assert imported["run_url"].endswith(f"/runs/{expected['run_id']}")

    # A tree: skops' untrusted node type must be accepted by a reviewer before anything loads the model.
    version = ModelVersion.objects.get(model__name="churn", number=1)
    assert version.untrusted_types == ["sklearn.tree._tree.Tree"]
    services.version_accept_untrusted_types(actor=reviewer, version=version, reason="A tree from our MLflow.")
    version.refresh_from_db()
    assert _predictions(version, answers["rows"]) == answers["predictions"]["1"]


def test_it_imports_the_version_an_alias_points_to(post_import, tracking_server):
    answers = tracking_server.answers
    response = post_import(alias=answers["alias"])
    assert response.status_code == 201, response.json()
    body = response.json()
    imported = body["mlflow"]["import"]
    assert (imported["version"], imported["alias"]) == (answers["alias_version"], "champion")
    assert imported["run_id"] == answers["versions"][answers["alias_version"]]["run_id"]
    assert body["params"] == {"C": "0.5", "solver": "lbfgs"}
    assert body["release_notes"] == "Logistic regression, fewer false alarms."
    version = ModelVersion.objects.get(model__name="churn", number=body["number"])
    assert version.untrusted_types == []
    assert _predictions(version, answers["rows"]) == answers["predictions"][answers["alias_version"]]


def test_the_same_mlflow_version_is_imported_once(post_import, tracking_server):
    assert post_import(version="2").status_code == 201
    # By alias, the same MLflow version: refused before anything is downloaded.
    again = post_import(alias="champion")
    assert again.status_code == 409, again.json()
    assert "already imported as version 1 of churn" in again.json()["detail"]
    assert ModelVersion.objects.filter(model__name="churn").count() == 1


def test_a_lost_race_between_two_imports_is_the_same_409(post_import, monkeypatch):
    assert post_import(version="2").status_code == 201
    calls: list[Any] = []
    original = mlflow_import._already_imported

    def first_check_misses(*args: Any) -> Any:
        calls.append(args)
        # As if the other import committed just after this one looked.
        return None if len(calls) == 1 else original(*args)

    monkeypatch.setattr(mlflow_import, "_already_imported", first_check_misses)
    again = post_import(version="2")
    assert again.status_code == 409, again.json()
    assert "already imported as version 1 of churn" in again.json()["detail"]
    assert len(calls) == 2
    assert ModelVersion.objects.count() == 1


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"model_name": "no-such-model", "version": "1"}, "model_name", "has no model named 'no-such-model'"),
        ({"version": "99"}, "version", "has no version 99"),
        ({"alias": "no-such-alias"}, "alias", "has no alias 'no-such-alias'"),
    ],
)
def test_it_names_what_mlflow_does_not_know(post_import, tmp_path, body, field, words):
    response = post_import(**body)
    assert response.status_code == 400, response.json()
    assert words in " ".join(response.json()[field])
    assert not ModelVersion.objects.exists()
    assert not stored_files(tmp_path)


@pytest.mark.parametrize(
    ("registered", "words"),
    [
        ("without_mlmodel", "no MLmodel file"),
        ("on_s3", "s3://models-bucket/churn/model, which its tracking server does not serve"),
    ],
)
def test_a_version_without_model_files_is_refused(post_import, tracking_server, tmp_path, registered, words):
    response = post_import(model_name=tracking_server.answers[registered], version="1")
    assert response.status_code == 400, response.json()
    assert words in " ".join(response.json()["artifact"])
    assert not ModelVersion.objects.exists()
    assert not stored_files(tmp_path)


def test_a_model_larger_than_the_zip_limit_is_refused(post_import, mlflow_settings, tmp_path):
    mlflow_settings.MF_ZIP_MAX_UNCOMPRESSED_BYTES = 1000
    response = post_import(version="2")
    assert response.status_code == 400, response.json()
    assert "MF_ZIP_MAX_UNCOMPRESSED_MB" in " ".join(response.json()["artifact"])
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize(
    ("allowed", "uri", "words"),
    [
        ([], "http://127.0.0.1:5000", "turned off"),
        (["mlflow.example.com"], "http://127.0.0.1:5000", "127.0.0.1:5000 is not an allowed"),
        (["127.0.0.1:5001"], "http://127.0.0.1:5000", "127.0.0.1:5000 is not an allowed"),
        (["127.0.0.1"], "http://ada:secret@127.0.0.1:5000", "Must not contain credentials"),
        (["127.0.0.1"], "file:///etc/passwd", "http:// or https://"),
        (["127.0.0.1"], "ftp://127.0.0.1/", "http:// or https://"),
    ],
)
def test_tracking_servers_not_allowed_are_refused_before_any_request(
    api, author, churn_model, settings, monkeypatch, allowed, uri, words
):
    settings.MF_MLFLOW_ALLOWED_HOSTS = allowed

    def no_request(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a request was made")

    monkeypatch.setattr(requests.Session, "request", no_request)
    monkeypatch.setattr(socket, "getaddrinfo", no_request)
    response = api(author).post(
        "/api/models/churn/versions/import-mlflow/",
        {"tracking_uri": uri, "model_name": "churn", "version": "1"},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert words in " ".join(response.json()["tracking_uri"])


@pytest.mark.parametrize(
    ("allowed", "uri", "spelled"),
    [
        (["mlflow.example.com"], "HTTPS://MLflow.Example.com:443/", "https://mlflow.example.com"),
        ([".example.com"], "http://mlflow.example.com:5000/mlflow/", "http://mlflow.example.com:5000/mlflow"),
        (["[::1]:5000"], "http://[::1]:5000", "http://[::1]:5000"),
    ],
)
def test_allowed_tracking_uris_are_spelled_one_way(settings, allowed, uri, spelled):
    settings.MF_MLFLOW_ALLOWED_HOSTS = allowed
    assert tracking_uri_check(uri) == spelled


@pytest.mark.parametrize("entry", ["http://mlflow.example.com", "mlflow.example.com/path", "ada@mlflow", "host:port"])
def test_a_misread_allowed_host_stops_the_start(monkeypatch, entry):
    monkeypatch.setenv("MF_MLFLOW_ALLOWED_HOSTS", f"mlflow.internal,{entry}")
    with pytest.raises(ImproperlyConfigured, match=re.escape(repr(entry))):
        env_hosts("MF_MLFLOW_ALLOWED_HOSTS")
    monkeypatch.setenv("MF_MLFLOW_ALLOWED_HOSTS", " MLflow.internal:5000, .Example.com ,[::1]")
    assert env_hosts("MF_MLFLOW_ALLOWED_HOSTS") == ["mlflow.internal:5000", ".example.com", "[::1]"]


def test_an_unreachable_tracking_server_is_a_502(api, author, churn_model, mlflow_settings):
    uri = f"http://127.0.0.1:{free_port()}"
    response = api(author).post(
        "/api/models/churn/versions/import-mlflow/",
        {"tracking_uri": uri, "model_name": "churn", "version": "1"},
        format="json",
    )
    assert response.status_code == 502, response.json()
    assert f"Could not reach the MLflow tracking server at {uri}" in response.json()["detail"]


def test_a_tracking_server_that_does_not_answer_is_a_502(api, author, churn_model, mlflow_settings):
    mlflow_settings.MF_MLFLOW_TIMEOUT_SECONDS = 1
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are accepted by the kernel, and never answered
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        response = api(author).post(
            "/api/models/churn/versions/import-mlflow/",
            {"tracking_uri": uri, "model_name": "churn", "alias": "champion"},
            format="json",
        )
    assert response.status_code == 502, response.json()
    assert f"{uri} did not answer within 1 s" in response.json()["detail"]


def test_credentials_come_from_settings(mlflow_settings, tracking_server, post_import, monkeypatch):
    sent: list[Any] = []
    original = requests.Session.request

    def spy(session: requests.Session, *args: Any, **kwargs: Any) -> Any:
        sent.append(session.auth or session.headers.get("Authorization"))
        return original(session, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    mlflow_settings.MLFLOW_TRACKING_TOKEN = "t0ken"
    post_import(version="99")
    assert sent
    assert set(sent) == {"Bearer t0ken"}
    sent.clear()
    mlflow_settings.MLFLOW_TRACKING_USERNAME, mlflow_settings.MLFLOW_TRACKING_PASSWORD = "ada", "pw"
    post_import(version="99")
    assert set(sent) == {("ada", "pw")}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": "1", "alias": "champion"}, "version"),
        ({}, "version"),
        ({"version": "one"}, "version"),
    ],
)
def test_it_wants_a_version_or_an_alias(post_import, body, field):
    response = post_import(**body)
    assert response.status_code == 400
    assert field in response.json()


def test_only_those_who_register_versions_may_import(post_import, manager, reviewer):
    for user in (manager, reviewer):
        response = post_import(user=user, version="1")
        assert response.status_code == 403
    # Permission comes before the body is read: no field errors for an empty body.
    assert post_import(user=manager, tracking_uri=None, model_name=None).status_code == 403
    assert not ModelVersion.objects.exists()


# --- the page and the command ----------------------------------------------------------------------


def test_the_model_page_imports_and_shows_where_it_came_from(
    client, author, churn_model, tracking_server, mlflow_settings
):
    client.force_login(author)
    page = client.get("/models/churn/")
    assert b"Import from MLflow" in page.content
    answers = tracking_server.answers
    response = client.post(
        "/models/churn/import-mlflow/",
        {"tracking_uri": tracking_server.uri, "model_name": answers["registered"], "alias": "champion"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/models/churn/versions/1/"
    version_page = client.get(response["Location"]).content.decode()
    assert "Imported from MLflow" in version_page
    assert answers["versions"][answers["alias_version"]]["run_id"] in version_page
    assert f"{tracking_server.uri}/#/models/{answers['registered']}/versions/2" in version_page


def test_the_model_page_shows_what_went_wrong(client, author, churn_model, tracking_server, mlflow_settings):
    client.force_login(author)
    response = client.post(
        "/models/churn/import-mlflow/",
        {"tracking_uri": tracking_server.uri, "model_name": tracking_server.answers["registered"], "version": "99"},
    )
    assert response.status_code == 400
    assert "has no version 99" in response.content.decode()
    assert not ModelVersion.objects.exists()


def test_the_model_page_names_the_version_already_imported(
    client, author, churn_model, tracking_server, mlflow_settings
):
    client.force_login(author)
    form = {"tracking_uri": tracking_server.uri, "model_name": tracking_server.answers["registered"], "version": "2"}
    assert client.post("/models/churn/import-mlflow/", form).status_code == 302
    again = client.post("/models/churn/import-mlflow/", {**form, "version": "", "alias": "champion"})
    assert again.status_code == 409
    assert "already imported as version 1 of churn" in again.content.decode()


def test_the_model_page_says_when_mlflow_cannot_be_reached(client, author, churn_model, mlflow_settings):
    client.force_login(author)
    uri = f"http://127.0.0.1:{free_port()}"
    response = client.post("/models/churn/import-mlflow/", {"tracking_uri": uri, "model_name": "churn", "version": "1"})
    assert response.status_code == 502
    assert f"Could not reach the MLflow tracking server at {uri}" in response.content.decode()


def test_the_model_page_form_is_for_those_who_register(client, manager, churn_model):
    client.force_login(manager)
    assert b"Import from MLflow" not in client.get("/models/churn/").content
    assert client.post("/models/churn/import-mlflow/", {}).status_code == 403


def test_the_command_imports(author, churn_model, tracking_server, mlflow_settings):
    answers = tracking_server.answers
    out = StringIO()
    arguments = ["--tracking-uri", tracking_server.uri, "--model-name", answers["registered"], "--user", "ada"]
    call_command("import_mlflow", "churn", *arguments, "--version", "2", stdout=out)
    assert "Imported churn v1 from MLflow model 'churn-mlflow' version 2" in out.getvalue()
    assert ModelVersion.objects.get(model__name="churn").mlflow["import"]["version"] == "2"
    with pytest.raises(CommandError, match="has no alias 'gone'"):
        call_command("import_mlflow", "churn", *arguments, "--alias", "gone")
