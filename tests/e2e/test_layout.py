"""Every page fits a phone: nothing wider than the viewport at 390 px, and no word broken inside a table
cell (tables scroll sideways instead)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from monitoring import services
from monitoring.models import MonitoringConfig
from registry.models import ModelVersion
from tests.e2e.test_review_journey import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAGES = [
    "/",
    "/monitoring/",
    "/models/churn/",
    "/models/churn/versions/1/",
    "/models/churn/monitoring/",
    "/models/churn/batch/",
    "/models/churn/production-at/",
    "/reviews/",
    "/audit/",
    "/notifications/",
]

# Per page: how far it is wider than the window, the words of table cells that wrap onto two lines (a
# break after a hyphen or a slash is a line break, not a broken word), and the last elements reaching
# past the window's right edge (what to fix when it is too wide).
MEASURE = """() => {
  const broken = [];
  for (const cell of document.querySelectorAll("td, th")) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.textContent.matchAll(/[^\\s\\-\\/]+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const lines = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (lines.size > 1) broken.push(match[0]);
      }
    }
  }
  const wide = Array.from(document.querySelectorAll("body *"))
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
    .slice(-3).map(e => e.tagName + "." + e.className + "#" + e.id);
  return {overflow: document.documentElement.scrollWidth - window.innerWidth, broken: broken.slice(0, 5), wide};
}"""


@pytest.mark.parametrize("width", [390, 1440])
def test_every_page_fits_the_window_and_keeps_words_whole(
    live_server: Any, page: Any, production: ModelVersion, traffic: list[str], author: Any, screenshot: Any, width: int
) -> None:
    MonitoringConfig.objects.update_or_create(
        model=production.model, defaults={"slice_columns": ["contract"], "min_slice_rows": 50}
    )
    now = timezone.now()
    services.report_request(actor=author, model=production.model, start=now - timedelta(hours=1), end=now)
    page.set_viewport_size({"width": width, "height": 844 if width < 800 else 900})
    sign_in(page, live_server, author.username)

    found = {}
    for path in PAGES:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        measured = page.evaluate(MEASURE)
        screenshot(f"layout-{width}{path.rstrip('/').replace('/', '-') or '-models'}")
        if measured["overflow"] > 0 or measured["broken"]:
            found[path] = measured
    assert not found
    nav = page.locator(".topbar").bounding_box()
    signout = page.locator(".usermenu button").bounding_box()
    assert nav is not None and signout is not None
    assert signout["x"] + signout["width"] <= width and signout["y"] + signout["height"] <= nav["y"] + nav["height"]
