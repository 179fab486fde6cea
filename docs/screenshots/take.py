"""Screenshots of the demo for the README, in this folder: with `make run` serving (here on port 8765,
`MF_BIND=127.0.0.1:8765 make run`), run `.venv/bin/python docs/screenshots/take.py`."""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8765"
HERE = Path(__file__).resolve().parent
PAGES = [
    ("manager", "maya", "/monitoring/"),
    ("monitoring", "maya", "/models/customer-churn/monitoring/"),
    ("review", "rita", "/models/customer-churn/versions/3/"),
]
SIZES = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}


def main() -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        for device, size in SIZES.items():
            for name, user, path in PAGES:
                context = browser.new_context(viewport=size)  # type: ignore[arg-type]
                page = context.new_page()
                page.goto(f"{BASE}/login/")
                page.fill("#id_username", user)
                page.fill("#id_password", "factory-demo")
                page.click("button[type=submit]")
                page.wait_for_selector(".usermenu")
                page.goto(BASE + path)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(1500)  # Plotly draws after the page settles
                page.screenshot(path=str(HERE / f"{name}-{device}.png"))
                context.close()
        browser.close()


if __name__ == "__main__":
    main()
