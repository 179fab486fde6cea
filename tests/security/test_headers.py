"""Security headers on every response, a Content-Security-Policy that lets no inline script run, and
production settings that `manage.py check --deploy` finds nothing to warn about."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.conftest import notebook_json

ROOT = Path(__file__).resolve().parents[2]
HOSTILE_MARKDOWN = (
    '# Notes\n<script>alert("md")</script>\n<img src=x onerror="alert(1)">\n<a href="javascript:alert(2)">x</a>'
)


def policy(response: Any) -> dict[str, list[str]]:
    return parse_policy(response["Content-Security-Policy"])


def parse_policy(header: str) -> dict[str, list[str]]:
    # django-csp walks a set of directive names, so their order changes with the hash seed.
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def assert_hardened(response: Any) -> None:
    csp = policy(response)
    assert csp["script-src"] == ["'self'"], csp
    # Only style attributes (plotly.js sets them; they cannot run script) may be inline.
    assert csp["style-src-attr"] == ["'unsafe-inline'"], csp
    for name, values in csp.items():
        assert "'unsafe-eval'" not in values, name
        assert "'unsafe-inline'" not in values or name == "style-src-attr", name
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def assert_no_inline_script(html: str) -> None:
    # Scripts come only from files (src=) or are JSON data blocks that never execute.
    for tag in re.findall(r"<script\b[^>]*>", html, flags=re.IGNORECASE):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\son[a-z]+\s*=", html, flags=re.IGNORECASE), "inline event handler"
    assert not re.search(r"<style\b", html, flags=re.IGNORECASE), "inline <style>"
    assert not re.search(r"\sstyle\s*=", html, flags=re.IGNORECASE), "inline style attribute"
    assert "javascript:" not in html.lower()


@pytest.fixture
def signed_in(author: Any) -> Client:
    client = Client()
    client.force_login(author)
    return client


@pytest.mark.parametrize("path", ["/login/", "/healthz", "/api/models/", "/no-such-page/"])
def test_anonymous_responses_are_hardened(client: Any, db: None, path: str) -> None:
    assert_hardened(client.get(path))


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/models/churn/",
        "/models/churn/versions/1/",
        "/monitoring/",
        "/models/churn/monitoring/",
        "/reviews/",
        "/audit/",
        "/notifications/",
        "/api/models/churn/versions/1/",
    ],
)
def test_pages_and_api_are_hardened_and_have_no_inline_script(
    signed_in: Client, churn_model: Any, author: Any, register: Any, path: str
) -> None:
    register(
        churn_model,
        author,
        release_notes=HOSTILE_MARKDOWN,
        notebook=SimpleUploadedFile("analysis.ipynb", notebook_json(markdown=HOSTILE_MARKDOWN)),
    )

    response = signed_in.get(path)

    assert response.status_code == 200, (path, response.status_code)
    assert_hardened(response)
    if response["Content-Type"].startswith("text/html"):
        assert_no_inline_script(response.content.decode())


def test_the_api_docs_page_needs_no_inline_script(signed_in: Client) -> None:
    page = signed_in.get("/api/docs/")
    assert page.status_code == 200
    assert_hardened(page)
    html = page.content.decode()
    assert_no_inline_script(html)

    # Swagger UI's start-up script is served as a file of its own, from the same origin.
    script_url = re.search(r'<script src="(/api/docs/\?[^"]*script=[^"]*)"', html)
    assert script_url, html
    script = signed_in.get(script_url.group(1).replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_the_admin_is_hardened(admin_user: Any) -> None:
    client = Client()
    client.force_login(admin_user)

    for path in ("/admin/", "/admin/registry/consumer/", "/admin/axes/accessattempt/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_hardened(response)


def _production_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="models.example.com",
        **extra,
    )
    return env


def test_check_deploy_is_clean_with_production_settings(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(MF_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


_PRODUCTION_PROBE = """
import json
import django
django.setup()
from django.conf import settings
from django.test import Client
names = ["SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SECURE",
         "CSRF_COOKIE_SAMESITE", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_SSL_REDIRECT",
         "SECURE_CONTENT_TYPE_NOSNIFF", "X_FRAME_OPTIONS", "DEBUG"]
# A real request through the production middleware stack, over "https" as the proxy header says.
response = Client().get("/api/models/", HTTP_X_FORWARDED_PROTO="https", HTTP_HOST="models.example.com")
print(json.dumps({
    "settings": {name: getattr(settings, name) for name in names},
    "status": response.status_code,
    "hsts": response.headers.get("Strict-Transport-Security"),
    "csp": response.headers.get("Content-Security-Policy"),
}))
"""


def test_production_cookies_transport_and_headers(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PRODUCTION_PROBE],
        cwd=ROOT,
        env=_production_env(MF_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["settings"] == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_SAMESITE": "Lax",
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "X_FRAME_OPTIONS": "DENY",
        "DEBUG": False,
    }
    assert probe["status"] == 401
    assert probe["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert parse_policy(probe["csp"])["script-src"] == ["'self'"]


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    env = _production_env(MF_DATA_DIR=str(tmp_path))
    del env["DJANGO_SECRET_KEY"]

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set in production" in result.stderr
