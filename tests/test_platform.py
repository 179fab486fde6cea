"""Authentication, roles, health, the OpenAPI documentation and the web server's command."""

import os
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from registry import roles


def test_it_issues_tokens_that_authenticate_api_calls(client, author):
    response = client.post("/api/auth/token/", {"username": "ada", "password": "correct horse battery staple"})
    assert response.status_code == 200
    token = response.json()["token"]
    assert client.get("/api/models/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    assert client.get("/api/models/", HTTP_AUTHORIZATION="Token wrong").status_code == 401


def test_it_refuses_a_token_for_a_wrong_password(client, author):
    response = client.post("/api/auth/token/", {"username": "ada", "password": "nope"})
    assert response.status_code == 400
    assert "Unable to log in" in response.json()["non_field_errors"][0]


def test_it_creates_the_roles_with_their_permissions(db):
    data_scientists = Group.objects.get(name=roles.DATA_SCIENTIST)
    assert data_scientists.permissions.filter(codename="add_modelversion").exists()
    assert not data_scientists.permissions.filter(codename="upload_pickle").exists()
    assert Group.objects.get(name=roles.REVIEWER).permissions.filter(codename="review_version").exists()
    assert not Group.objects.get(name=roles.MANAGER).permissions.filter(codename="add_modelversion").exists()
    assert Group.objects.get(name=roles.ADMIN).permissions.filter(codename="upload_pickle").exists()


def test_it_reports_health_without_login(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_it_names_the_broker_when_it_is_down(client, db, monkeypatch):
    from config.celery import app

    dead = "redis://127.0.0.1:1/0"
    # Celery lets the CELERY_BROKER_URL variable win over its configuration, so set both.
    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    original = app.conf.broker_url
    app.conf.update(broker_url=dead)
    try:
        response = client.get("/healthz")
    finally:
        app.conf.update(broker_url=original)
    assert response.status_code == 503
    assert response.json()["database"] == "ok"
    assert response.json()["broker"].startswith("down:")


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_it_documents_the_api_for_signed_in_users(client, manager, path):
    assert client.get(path).status_code in (401, 403)
    client.force_login(manager)
    response = client.get(path)
    assert response.status_code == 200


def test_it_describes_the_registration_endpoint_in_openapi(client, manager):
    client.force_login(manager)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/models/{name}/versions/"]["post"]
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert "/api/models/{name}/versions/{number}/files/{file_id}/download/" in schema["paths"]


def test_it_serves_the_admin_to_admins(client, admin_user, churn_model, register):
    from django.contrib import admin

    register(churn_model, admin_user)
    client.force_login(admin_user)
    for model in admin.site._registry:
        meta = model._meta
        assert client.get(f"/admin/{meta.app_label}/{meta.model_name}/").status_code == 200, meta.label
    version = churn_model.versions.get()
    page = client.get(f"/admin/registry/modelversion/{version.pk}/change/")
    assert page.status_code == 200
    assert b'name="status"' not in page.content  # statuses change through the workflow only


def test_the_openapi_schema_is_valid_and_unambiguous(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert "/api/models/{name}/versions/{number}/transitions/" in (tmp_path / "schema.yml").read_text()


@pytest.mark.parametrize(
    ("access_log", "arguments"),
    [
        ("", []),
        ("-", ["--access-logfile", "-"]),
        ("/var/log/mf/access.log", ["--access-logfile", "/var/log/mf/access.log"]),
    ],
)
def test_the_web_server_logs_requests_only_when_asked(access_log, arguments):
    procfile = Path(__file__).resolve().parents[1] / "Procfile"
    web = next(line for line in procfile.read_text().splitlines() if line.startswith("web:"))
    # honcho runs the line with sh; printf shows the words gunicorn would get.
    words = subprocess.run(
        ["sh", "-c", "printf '%s\\n' " + web.removeprefix("web:")],
        env={"PATH": os.environ["PATH"], "MF_ACCESS_LOG": access_log},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()

    assert words[:2] == ["gunicorn", "config.wsgi"]
    assert words[words.index("300") + 1 :] == arguments
