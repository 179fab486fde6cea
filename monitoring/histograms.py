"""A report's reference and current histograms of a column, as shares of rows: read once for the
distribution chart (charts.distributions) and for the drift table's thumbnails, bars in a small SVG the
page draws without a script (the Content-Security-Policy allows no inline script or style)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from monitoring.models import Report


@dataclass(frozen=True)
class Shares:
    """A column's reference and current histograms on the same bins, each as shares of its own rows."""

    kind: str  # "numerical": bins between edges; "categorical": a bin per category
    bins: list[Any]  # where each bin's bar stands: its midpoint (numerical) or its category
    names: list[str]  # each bin in words
    reference: list[float]
    current: list[float]


def histogram_shares(report: Report, column: str, slice_name: str = "") -> Shares | None:
    """The reference and current distribution of a column in a report, the current one of `slice_name`
    if given (a slice stores only its current counts, on the whole window's bins); None when the report
    stored none (a slice too small to judge)."""
    histogram = report.results.get("histograms", {}).get(column)
    if histogram is None:
        return None
    current = histogram["current"]
    if slice_name:
        current = report.results.get("slices", {}).get(slice_name, {}).get("histograms", {}).get(column)
    reference = histogram["reference"]
    if not current or len(current) != len(reference):
        return None
    if histogram["kind"] == "numerical":
        pairs = list(itertools.pairwise(histogram["edges"]))
        bins: list[Any] = [(low + high) / 2 for low, high in pairs]
        names = [f"{low:.4g} to {high:.4g}" for low, high in pairs]
    else:
        bins = list(histogram["categories"])
        names = [str(category) for category in bins]
    ref_total, cur_total = sum(reference) or 1, sum(current) or 1
    return Shares(
        kind=histogram["kind"],
        bins=bins,
        names=names,
        reference=[count / ref_total for count in reference],
        current=[count / cur_total for count in current],
    )


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Thumbnail:
    """Reference and current shares of a column as bars side by side in each bin, in SVG pixels."""

    title: str
    reference: list[Bar]
    current: list[Bar]
    width: int
    height: int


def distribution_thumbnail(
    report: Report, column: str, slice_name: str = "", *, width: int = 120, height: int = 28
) -> Thumbnail | None:
    """charts.distributions in a table cell: bars scaled to the largest share of either series, the bin that
    changed most named in the title (what a screen reader says of it)."""
    shares = histogram_shares(report, column, slice_name)
    if shares is None:
        return None
    slot = width / len(shares.bins)
    bar = slot * 0.45  # two bars and a gap in each bin's slot
    top = max([*shares.reference, *shares.current]) or 1

    def bars(values: list[float], offset: float) -> list[Bar]:
        # A share too small for a pixel still shows as one: "none" and "a few" must look different.
        heights = [(index, max(1.0, round(value / top * height, 1))) for index, value in enumerate(values) if value]
        return [
            Bar(x=round(index * slot + offset, 2), y=round(height - tall, 1), width=round(bar, 2), height=tall)
            for index, tall in heights
        ]

    changed = max(range(len(shares.bins)), key=lambda index: abs(shares.current[index] - shares.reference[index]))
    title = (
        f"{column}: share of rows per {'bin' if shares.kind == 'numerical' else 'category'}, reference grey, "
        f"current blue; largest change at {shares.names[changed]}: "
        f"{shares.reference[changed]:.0%} to {shares.current[changed]:.0%}"
    )
    return Thumbnail(
        title=title,
        reference=bars(shares.reference, slot * 0.05),
        current=bars(shares.current, slot * 0.5),
        width=width,
        height=height,
    )
