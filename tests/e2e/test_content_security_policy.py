"""Every page works under the Content-Security-Policy in a real Chromium: no violation is reported in
the console, no page error, and the hostile Markdown and notebook of a version run no script."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from scoring.models import BatchJob
from tests.conftest import PASSWORD, notebook_json

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOSTILE = (
    "# Notes\n<script>alert('md')</script>\n<img src=x onerror=\"alert('img')\">\n"
    "<a href=\"javascript:alert('link')\">click</a>\n<svg onload=\"alert('svg')\"></svg>"
)


def watch(page: Any) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {"violations": [], "errors": [], "dialogs": []}

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            seen["violations"].append(f"{page.url}: {message.text} at {message.location}")

    def on_dialog(dialog: Any) -> None:
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("dialog", on_dialog)
    return seen


def test_pages_render_without_csp_violations(
    live_server: Any,
    page: Any,
    screenshot: Any,
    churn_model: Any,
    author: Any,
    admin_user: Any,
    register: Any,
    traffic: Any,
) -> None:
    register(
        churn_model,
        author,
        release_notes=HOSTILE,
        notebook=SimpleUploadedFile("analysis.ipynb", notebook_json(markdown=HOSTILE)),
    )
    job = BatchJob.objects.first()
    seen = watch(page)

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "alex")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector(".usermenu")

    paths = [
        "/",
        "/models/churn/",
        "/models/churn/versions/2/",
        "/models/churn/monitoring/",
        "/monitoring/",
        "/audit/",
        "/admin/",
        "/admin/registry/consumer/",
        "/admin/django_celery_beat/periodictask/add/",
    ]
    if job is not None:
        paths.append(f"/models/churn/batch/{job.name}/")
    for path in paths:
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        screenshot(f"csp{path.strip('/').replace('/', '-') or '-home'}")

    # The charts were drawn by plotly.js (static files only): an SVG per chart.
    page.goto(f"{live_server.url}/models/churn/monitoring/")
    page.wait_for_load_state("networkidle")
    charts = page.locator("[data-chart]")
    assert charts.count() >= 1
    page.wait_for_selector("[data-chart] .main-svg", state="attached")

    # Swagger UI starts from its own script file and lists the API.
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock", timeout=20_000)
    screenshot("csp-api-docs")

    assert seen == {"violations": [], "errors": [], "dialogs": []}
