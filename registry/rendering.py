"""Markdown and notebooks as HTML that is safe to put in a reviewer's page.

Everything goes through nh3 with an allow-list: no scripts, no event handlers, no styles, no
iframes or forms, and `data:` URLs only as raster images. Rendering is cached by the sha256 of
the source, which is immutable once registered.
"""

from __future__ import annotations

import hashlib
import re
import warnings

import markdown
import nbformat
import nh3
from django.core.cache import cache
from django.utils.safestring import SafeString, mark_safe
from nbconvert import HTMLExporter

_TAGS = set(nh3.ALLOWED_TAGS) | {"input"} - {"map", "area"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attributes) for tag, attributes in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"class", "title"},
    "input": {"type", "checked", "disabled"},
}
_RASTER_DATA_URL = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*$")
_CACHE_SECONDS = 7 * 24 * 3600


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "type" and tag == "input":
        return value if value == "checkbox" else None
    if value.strip().lower().startswith("data:"):
        return value if tag == "img" and attribute == "src" and _RASTER_DATA_URL.match(value) else None
    return value


def sanitize_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        attribute_filter=_filter_attribute,
        url_schemes={"http", "https", "mailto", "data"},
    )


def render_markdown(text: str) -> SafeString:
    html = markdown.markdown(text, extensions=["extra", "sane_lists"])
    return mark_safe(sanitize_html(html))  # noqa: S308 - sanitised just above


def render_notebook(source: bytes) -> SafeString:
    """A notebook as a sanitised HTML fragment (nbconvert's basic template, no JavaScript)."""
    key = f"notebook-html:{hashlib.sha256(source).hexdigest()}"
    html = cache.get(key)
    if html is None:
        notebook = nbformat.reads(source.decode("utf-8"), as_version=4)
        exporter = HTMLExporter(template_name="basic")
        with warnings.catch_warnings():
            # nbconvert warns when the IPython lexer is missing and falls back to Python's.
            warnings.simplefilter("ignore", UserWarning)
            body, _ = exporter.from_notebook_node(notebook)
        html = sanitize_html(body)
        cache.set(key, html, _CACHE_SECONDS)
    return mark_safe(html)  # noqa: S308 - sanitised above
