"""Hostile Markdown and notebooks render as inert HTML."""

import base64
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from registry.rendering import render_markdown, render_notebook
from tests.conftest import notebook_json

HOSTILE_MARKDOWN = """# Release
<script>alert('md')</script>
<img src=x onerror="alert('img')">
[click](javascript:alert('link'))
<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data link</a>
<iframe src="https://evil.example"></iframe>
<div style="background:url(javascript:alert(1))" onclick="alert(2)">styled</div>
<svg><script>alert('svg')</script></svg>
<form action="/logout"><button>Go</button></form>
| metric | value |
|---|---|
| auc | 0.9 |
"""

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
HOSTILE_OUTPUTS: list[dict[str, Any]] = [
    {"output_type": "display_data", "metadata": {}, "data": {"text/html": "<script>alert('html')</script><b>bold</b>"}},
    {"output_type": "display_data", "metadata": {}, "data": {"text/html": '<img src="x" onerror="alert(\'img\')">'}},
    {"output_type": "display_data", "metadata": {}, "data": {"application/javascript": "alert('js')"}},
    {
        "output_type": "display_data",
        "metadata": {},
        "data": {"image/svg+xml": "<svg onload=\"alert('svg')\"><script>alert('svg')</script></svg>"},
    },
    {"output_type": "display_data", "metadata": {}, "data": {"image/png": PNG}},
    {"output_type": "stream", "name": "stdout", "text": "<script>alert('stream')</script>\n"},
]

FORBIDDEN = ("<script", "onerror", "onload", "onclick", "javascript:", "<iframe", "<form", "style=", "data:text")


def _assert_inert(html: str) -> None:
    lowered = html.lower()
    for marker in FORBIDDEN:
        assert marker not in lowered, f"{marker!r} survived sanitising"


def test_it_renders_markdown_without_active_content():
    html = render_markdown(HOSTILE_MARKDOWN)
    _assert_inert(html)
    assert "<h1>Release</h1>" in html
    assert "<table>" in html
    assert 'rel="noopener noreferrer"' in html


def test_it_renders_a_notebook_without_scripts_or_handlers():
    html = render_notebook(notebook_json(HOSTILE_OUTPUTS, markdown="# Hi <script>alert('md')</script>"))
    _assert_inert(html)
    assert "<b>bold</b>" in html
    assert f'src="data:image/png;base64,{PNG}"' in html
    assert "&lt;script&gt;alert('stream')" in html  # shown as text, not run


@pytest.mark.parametrize("payload", ["not json", json.dumps({"cells": "oops"})])
def test_it_raises_on_a_broken_notebook_rather_than_rendering_it(payload):
    with pytest.raises(Exception):  # noqa: B017, PT011 - registration refuses these earlier
        render_notebook(payload.encode())


def test_it_serves_a_version_page_with_a_hostile_notebook_inert(client, churn_model, author, register):
    register(
        churn_model,
        author,
        notebook=SimpleUploadedFile("evil.ipynb", notebook_json(HOSTILE_OUTPUTS)),
        release_notes=HOSTILE_MARKDOWN,
    )
    client.force_login(author)
    page = client.get("/models/churn/versions/1/").content.decode()
    # From the release notes to the end of the notebook: the parts authors write (the review forms
    # after them are the page's own).
    body = page[page.index("<h2>Release notes</h2>") : page.index('<section class="card" id="review">')]
    _assert_inert(body)
    assert "<b>bold</b>" in body
