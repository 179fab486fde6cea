"""The drift table of a model's monitoring page: a thumbnail of each feature's reference and current
distributions (an SVG drawn on the server, which the Content-Security-Policy lets show without a script),
and what a browser needs to sort it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from monitoring import histograms
from monitoring.models import Report
from registry.models import RegisteredModel

VERDICTS = {
    "charges": {"test": "Wasserstein", "statistic": 0.42, "threshold": 0.1, "drifted": True, "kind": "numerical"},
    "contract": {"test": "chi-square", "statistic": 0.2, "threshold": 0.05, "drifted": False, "kind": "categorical"},
    "tenure": {"test": "K-S p_value", "statistic": 0.6, "threshold": 0.05, "drifted": False, "kind": "numerical"},
}
HISTOGRAMS = {
    "charges": {
        "kind": "numerical",
        "edges": [0, 100, 200, 300, 400, 500],
        "reference": [50, 30, 20, 0, 0],
        "current": [25, 15, 10, 0, 50],
    },
    "contract": {
        "kind": "categorical",
        "categories": ["monthly", "yearly"],
        "reference": [60, 40],
        "current": [90, 10],
    },
}  # none of tenure: a report keeps the histograms it could count


@pytest.fixture
def report(churn_model: RegisteredModel) -> Report:
    end = timezone.now()
    monthly = {
        "rows": 200,
        "too_small": False,
        "columns": VERDICTS,
        "histograms": {"charges": [0, 0, 0, 0, 10], "contract": [10, 0]},
    }
    return Report.objects.create(
        model=churn_model,
        window_start=end - timedelta(days=1),
        window_end=end,
        status=Report.Status.DONE,
        results={
            "columns": list(VERDICTS),
            "dataset": {"columns": VERDICTS},
            "histograms": HISTOGRAMS,
            "slices": {"contract=monthly": monthly},
        },
    )


def cell(page: str, column: str) -> str:
    table = page.split('id="drift-table"')[1].split("</table>")[0]
    found = re.search(rf'<tr data-column="{column}">(.*?)</tr>', table, re.S)
    assert found, f"no row for {column}"
    return found.group(1)


def test_each_row_shows_its_distributions_in_an_svg_with_a_title(report: Report, author: Any, client: Any) -> None:
    client.force_login(author)

    page = client.get(f"/models/churn/monitoring/?report={report.pk}").content.decode()

    table = page.split('id="drift-table"')[1].split("</table>")[0]
    assert "data-sortable" in page.split('id="drift-table"')[1].split(">")[0]
    assert "<th data-unsortable>Distributions</th>" in table
    assert '<th data-sort-type="number" aria-sort="ascending">Verdict</th>' in table  # as the server orders it
    assert " style=" not in table  # a style attribute would need 'unsafe-inline'
    charges = cell(page, "charges")
    assert '<svg class="thumbnail" width="120" height="28" viewBox="0 0 120 28" role="img">' in charges
    title = "charges: share of rows per bin, reference grey, current blue; largest change at 400 to 500: 0% to 50%"
    assert f"<title>{title}</title>" in charges
    assert charges.count('class="reference"') == 3 and charges.count('class="current"') == 4  # no empty bars
    assert 'data-sort="0.42"' in charges and 'data-sort="0"' in charges  # statistic; drifted sorts first
    contract = cell(page, "contract")
    title = "contract: share of rows per category, reference grey, current blue; largest change at monthly: 60% to 90%"
    assert f"<title>{title}</title>" in contract
    assert 'data-sort="1"' in contract
    assert "none stored" in cell(page, "tenure") and "<svg" not in cell(page, "tenure")


def test_a_slice_shows_its_own_current_distribution(report: Report, author: Any, client: Any) -> None:
    client.force_login(author)

    page = client.get(f"/models/churn/monitoring/?report={report.pk}&slice=contract%3Dmonthly").content.decode()

    assert "largest change at 400 to 500: 0% to 100%</title>" in cell(page, "charges")
    assert "largest change at monthly: 60% to 100%</title>" in cell(page, "contract")


def test_bars_are_shares_scaled_to_the_tallest_and_fit_the_thumbnail(report: Report) -> None:
    thumbnail = histograms.distribution_thumbnail(report, "charges")

    assert thumbnail is not None and (thumbnail.width, thumbnail.height) == (120, 28)
    bars = thumbnail.reference + thumbnail.current
    assert all(bar.x >= 0 and bar.x + bar.width <= 120 and bar.y + bar.height == 28 for bar in bars)
    # Current's 50% in the last bin is the largest share: full height; reference's 50% in the first too.
    assert [bar.height for bar in thumbnail.current] == [14.0, 8.4, 5.6, 28.0]
    assert [bar.height for bar in thumbnail.reference] == [28.0, 16.8, 11.2]
    # Side by side in each bin's slot of 24 px: reference left, current right.
    assert (thumbnail.reference[0].x, thumbnail.current[0].x) == (1.2, 12.0)
    assert histograms.distribution_thumbnail(report, "tenure") is None
    assert histograms.distribution_thumbnail(report, "charges", "contract=yearly") is None  # no such slice stored
