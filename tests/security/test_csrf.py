"""CSRF: every form posts a token, and a signed-in browser's POST without one is refused everywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_VALUES = {"slug": "churn", "int": "1", "str": "x", "path": "x", "uuid": "00000000-0000-0000-0000-000000000000"}


def _paths(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    """Every route with sample values in its parameters (the admin, Django's own, is left out)."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if pattern.namespace != "admin":
                yield from _paths(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield "/" + re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLE_VALUES[m.group(1) or "str"], route)


PATHS = sorted(set(_paths(get_resolver().url_patterns)))
PAGES = [path for path in PATHS if not path.startswith("/api/")]
# Exchanges a username and password for a token in the body: no cookie is read or set, so nothing to forge.
CREDENTIALS_ONLY = {"/api/auth/token/"}
API = [path for path in PATHS if path.startswith("/api/") and path not in CREDENTIALS_ONLY]


def test_every_post_form_in_the_templates_carries_a_csrf_token() -> None:
    missing = []
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        for form in re.findall(r"<form\b[^>]*>.*?</form>", text, flags=re.DOTALL | re.IGNORECASE):
            if re.search(r'method="post"', form, flags=re.IGNORECASE) and "{% csrf_token %}" not in form:
                missing.append(f"{template.relative_to(ROOT)}: {form[:80]}")
    assert not missing, missing


@pytest.mark.parametrize("path", PAGES)
def test_a_page_post_without_a_token_is_refused(path: str, admin_user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(path, {"anything": "1"})
    assert response.status_code == 403, (path, response.status_code)
    assert b"CSRF" in response.content


@pytest.mark.parametrize("path", API)
def test_an_api_call_with_the_session_cookie_and_no_token_is_refused(path: str, admin_user: Any) -> None:
    """A browser's session is enough to call the API, so the API needs the CSRF token too (DRF's
    SessionAuthentication); token-authenticated programs send no cookie and need none."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(path, {}, content_type="application/json")
        # 405: the route does not take this method; 401: the route does not accept a session at all.
        # Every other answer must be the refusal for the missing token.
        assert response.status_code in (401, 403, 405), (method, path, response.status_code)
        if response.status_code == 403 and response["Content-Type"].startswith("application/json"):
            assert "CSRF" in response.json()["detail"], (method, path)  # (the docs page answers in HTML)
