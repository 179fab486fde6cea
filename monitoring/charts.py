"""Plotly figures of the monitoring pages, built from stored reports.

Each function returns a figure as Plotly's JSON ({"data": [...], "layout": {...}}), which the page
embeds with json_script and static/monitoring/charts.js draws with plotly.js: no inline script (the
pages keep a Content-Security-Policy without 'unsafe-inline'), and plain dicts, because building
graph_objects costs milliseconds per figure and the dashboard draws a sparkline per model.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from monitoring import performance
from monitoring.models import Report

Figure = dict[str, Any]
GREEN, AMBER, RED, GREY, BLUE = "#1f7a4d", "#b7791f", "#c53030", "#a0aec0", "#2b6cb0"


def _layout(title: str = "", height: int = 320, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 14}},
        "height": height,
        "margin": {"l": 50, "r": 20, "t": 40 if title else 10, "b": 40},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "legend": {"orientation": "h", "y": -0.2},
        **extra,
    }


def _time_axis(x: Sequence[str], daily: bool = False) -> dict[str, Any]:
    """A date axis ticked in days: one window or one day alone would otherwise be ticked in milliseconds."""
    axis: dict[str, Any] = {"type": "date", "hoverformat": "%d %b %Y" if daily else "%d %b %Y %H:%M"}
    moments = sorted(datetime.fromisoformat(value) for value in x)
    if moments and moments[-1] - moments[0] < timedelta(days=2):
        axis["range"] = [(moments[0] - timedelta(days=1)).isoformat(), (moments[-1] + timedelta(days=1)).isoformat()]
    return axis


def sparkline(points: Sequence[tuple[Any, float | None]], color: str = BLUE) -> Figure:
    """A tiny line of drift share over time for a dashboard tile."""
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "x": [when.isoformat() for when, _ in points],
                "y": [value for _, value in points],
                "line": {"color": color, "width": 2},
                "hovertemplate": "%{x|%d %b}: %{y:.0%}<extra>drift share</extra>",
            }
        ],
        "layout": {
            "height": 72,
            "margin": {"l": 34, "r": 4, "t": 8, "b": 8},
            "xaxis": {"visible": False},
            # A scale, so that a flat line near zero does not read like one near the top.
            "yaxis": {
                "range": [0, 1],
                "tickvals": [0, 0.5, 1],
                "tickformat": ".0%",
                "tickfont": {"size": 9, "color": "#667085"},
                "gridcolor": "#eef0f4",
                "zeroline": False,
                "fixedrange": True,
            },
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "rgba(0,0,0,0)",
            "showlegend": False,
        },
    }


def performance_trend(reports: Sequence[Report], metrics: Sequence[str], registered: dict[str, Any]) -> Figure:
    """Each metric per window, with its value at registration as a dashed line of the same colour."""
    palette = [BLUE, GREEN, AMBER, RED, "#6b46c1", "#2c7a7b"]
    data: list[dict[str, Any]] = []
    x = [report.window_end.isoformat() for report in reports]
    for index, metric in enumerate(metrics):
        color = palette[index % len(palette)]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": metric,
                "x": x,
                "y": [report.performance.get(metric) for report in reports],
                "line": {"color": color},
                "hovertemplate": f"%{{x|%d %b %H:%M}}: %{{y:.3f}}<extra>{metric}</extra>",
            }
        )
        if isinstance(registered.get(metric), int | float) and x:
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{metric} at registration",
                    "x": [x[0], x[-1]],
                    "y": [registered[metric]] * 2,
                    "line": {"color": color, "dash": "dash", "width": 1},
                }
            )
    layout = _layout(
        "Performance against actuals",
        xaxis=_time_axis(x),
        yaxis={"rangemode": "tozero", "title": {"text": "metric value"}},
    )
    return {"data": data, "layout": layout}


def slice_performance_trend(reports: Sequence[Report], metric: str) -> Figure | None:
    """One line per slice of `metric` over windows, the whole window dashed; None when no slice has it."""
    slice_names = sorted({name for report in reports for name in (report.results.get("slices") or {})})
    x = [report.window_end.isoformat() for report in reports]
    palette = [BLUE, GREEN, AMBER, RED, "#6b46c1", "#2c7a7b", "#d53f8c", "#4a5568"]
    data: list[dict[str, Any]] = []
    for index, name in enumerate(slice_names):
        y = [
            ((report.results.get("slices") or {}).get(name) or {}).get("performance", {}).get(metric)
            for report in reports
        ]
        if any(value is not None for value in y):
            line = {"color": palette[index % len(palette)]}
            hover = f"%{{x|%d %b %H:%M}}: %{{y:.3f}}<extra>{name}</extra>"
            data.append(
                {"type": "scatter", "mode": "lines+markers", "name": name, "x": x, "y": y, "line": line,
                 "hovertemplate": hover}
            )  # fmt: skip
    if not data:
        return None
    whole = [report.performance.get(metric) for report in reports]
    dashed = {"color": GREY, "dash": "dash"}
    data.append({"type": "scatter", "mode": "lines", "name": "whole window", "x": x, "y": whole, "line": dashed})
    layout = _layout(
        f"{metric} per slice",
        height=360,
        xaxis=_time_axis(x),
        yaxis={"title": {"text": metric}},
    )
    return {"data": data, "layout": layout}


def drift_over_time(reports: Sequence[Report], columns: Sequence[str]) -> Figure:
    """Feature x window heatmap of drift verdicts (1 drifted, 0 not), the statistic on hover."""
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for column in columns:
        row: list[float | None] = []
        labels: list[str] = []
        for report in reports:
            judged = report.results.get("dataset", {}).get("columns", {}).get(column)
            row.append(None if judged is None else float(judged["drifted"]))
            labels.append("" if judged is None else f"{judged['test']}: {judged['statistic']:.4g}")
        z.append(row)
        text.append(labels)
    return _verdict_heatmap(
        "Drift per feature over time",
        # One column per report, named by it: as dates, one report alone was ticked in milliseconds.
        x=[f"#{report.pk} · {report.window_end:%d %b %H:%M}" for report in reports],
        y=list(columns),
        z=z,
        text=text,
        hover="%{y} · report %{x}<br>%{text}<extra></extra>",
        height=max(220, 28 * len(columns) + 80),
    )


def slice_heatmap(report: Report) -> Figure:
    """Slice x feature drift verdicts of one report; too-small slices are shown as gaps, not judged."""
    results = report.results
    columns: list[str] = [c for c in results.get("columns", []) if c in results.get("dataset", {}).get("columns", {})]
    slices = results.get("slices", {})
    names = sorted(slices)
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for name in names:
        piece = slices[name]
        row: list[float | None] = []
        labels: list[str] = []
        for column in columns:
            judged = None if piece.get("too_small") else piece.get("columns", {}).get(column)
            row.append(None if judged is None else float(judged["drifted"]))
            if piece.get("too_small"):
                labels.append(f"too small ({piece['rows']} rows)")
            elif judged is None:
                labels.append("not judged")
            else:
                labels.append(f"{judged['test']}: {judged['statistic']:.4g} (threshold {judged['threshold']})")
        z.append(row)
        text.append(labels)
    return _verdict_heatmap(
        "Drift by slice and feature",
        x=columns,
        y=names,
        z=z,
        text=text,
        hover="%{y} · %{x}<br>%{text}<extra></extra>",
        height=max(240, 26 * len(names) + 100),
    )


def _verdict_heatmap(
    title: str,
    *,
    x: list[str],
    y: list[str],
    z: list[list[float | None]],
    text: list[list[str]],
    hover: str,
    height: int,
) -> Figure:
    """Drift verdicts as cells: red drifted, pale green not, gaps where nothing was judged."""
    return {
        "data": [
            {
                "type": "heatmap",
                "x": x,
                "y": y,
                "z": z,
                "text": text,
                "zmin": 0,
                "zmax": 1,
                "colorscale": [[0, "#e6f4ea"], [1, RED]],
                "showscale": False,
                "hovertemplate": hover,
            }
        ],
        "layout": _layout(
            title, height=height, xaxis={"type": "category", "automargin": True}, yaxis={"automargin": True}
        ),
    }


def distributions(report: Report, column: str, slice_name: str = "") -> Figure | None:
    """Reference and current distribution of a column, overlaid (for the whole window or one slice)."""
    histogram = report.results.get("histograms", {}).get(column)
    if histogram is None:
        return None
    current = histogram["current"]
    if slice_name:
        current = report.results.get("slices", {}).get(slice_name, {}).get("histograms", {}).get(column)
        if current is None:
            return None
    reference = histogram["reference"]
    if histogram["kind"] == "numerical":
        edges = histogram["edges"]
        x: list[Any] = [(low + high) / 2 for low, high in itertools.pairwise(edges)]
    else:
        x = histogram["categories"]
    ref_total, cur_total = sum(reference) or 1, sum(current) or 1
    label = f"current ({slice_name})" if slice_name else "current"
    return {
        "data": [
            {
                "type": "bar",
                "name": "reference",
                "x": x,
                "y": [count / ref_total for count in reference],
                "marker": {"color": GREY},
                "opacity": 0.75,
            },
            {
                "type": "bar",
                "name": label,
                "x": x,
                "y": [count / cur_total for count in current],
                "marker": {"color": BLUE},
                "opacity": 0.6,
            },
        ],
        "layout": _layout(f"{column}: reference and current", barmode="overlay", yaxis={"tickformat": ".0%"}),
    }


def _note(text: str, *, x: float, y: float, color: str, xanchor: str, yref: str) -> dict[str, Any]:
    """A line of text on a chart (x across the plot, from 0 to 1)."""
    return {
        "xref": "paper",
        "yref": yref,
        "x": x,
        "y": y,
        "xanchor": xanchor,
        "yanchor": "bottom",
        "text": text,
        "showarrow": False,
        "font": {"color": color, "size": 11},
    }


def fairness_gaps(report: Report) -> Figure | None:
    """Largest gap between the groups of each sensitive column, per rate, against the threshold: a gap
    above it in red, each bar naming its two groups; rates that could not be measured are said so."""
    fairness: dict[str, Any] = report.results.get("fairness", {})
    if not fairness:
        return None
    data = []
    threshold = None
    unmeasured: set[str] = set()
    tops: list[float] = []
    for column, found in fairness.items():
        gaps = {measure: gap for measure, gap in found.get("gaps", {}).items() if gap is not None}
        unmeasured |= {measure for measure, gap in found.get("gaps", {}).items() if gap is None}
        threshold = found.get("threshold", threshold)
        tops += gaps.values()
        between = []
        for measure in gaps:
            extremes = performance.fairness_extremes(found, measure)
            between.append(f"{extremes[0]} {extremes[1]:.3f} vs {extremes[2]} {extremes[3]:.3f}" if extremes else "")
        limit = found.get("threshold")
        data.append(
            {
                "type": "bar",
                "name": column,
                "x": [measure.replace("_", " ") for measure in gaps],
                "y": list(gaps.values()),
                "text": [f"{gap:.3f}" for gap in gaps.values()],
                "textposition": "outside",
                "customdata": between,
                "marker": {"color": [RED if limit is not None and gap > limit else BLUE for gap in gaps.values()]},
                "hovertemplate": f"{column} · %{{x}}: gap %{{y:.3f}}<br>%{{customdata}}<extra></extra>",
            }
        )
    shapes, notes = [], []
    if threshold is not None:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": threshold,
                "y1": threshold,
                "line": {"color": RED, "dash": "dash"},
            }
        )
        notes.append(_note(f"threshold {threshold:g}", x=1, y=threshold, color=RED, xanchor="right", yref="y"))
    if unmeasured:
        names = ", ".join(sorted(measure.replace("_", " ") for measure in unmeasured))
        text = f"Not measured: {names} (they need actuals for at least two groups)"
        notes.append(_note(text, x=0, y=1.08, color="#667085", xanchor="left", yref="paper"))
    layout = _layout(
        "Fairness: largest gap between groups",
        shapes=shapes,
        annotations=notes,
        # Headroom above the tallest bar and the threshold, for the values written over the bars.
        yaxis={"title": {"text": "gap (difference of rates)"}, "range": [0, 1.25 * max([threshold or 0, *tops, 0.01])]},
    )
    return {"data": data, "layout": layout}


def volume_and_latency(days: Sequence[tuple[Any, int, int, float | None]]) -> Figure:
    """Requests and errors per day as bars, p99 latency as a line on a second axis."""
    x = [day.isoformat() for day, _, _, _ in days]
    return {
        "data": [
            {"type": "bar", "name": "requests", "x": x, "y": [r for _, r, _, _ in days], "marker": {"color": BLUE}},
            {"type": "bar", "name": "errors", "x": x, "y": [e for _, _, e, _ in days], "marker": {"color": RED}},
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "p99 latency (ms)",
                "x": x,
                "y": [p for _, _, _, p in days],
                "yaxis": "y2",
                "line": {"color": AMBER},
            },
        ],
        "layout": _layout(
            "Real-time predictions per day",
            barmode="stack",
            xaxis=_time_axis(x, daily=True),
            yaxis={"title": {"text": "requests"}, "rangemode": "tozero"},
            yaxis2={
                "overlaying": "y",
                "side": "right",
                "title": {"text": "p99 latency (ms)", "standoff": 8},
                "rangemode": "tozero",
                "automargin": True,
            },
        ),
    }


def traffic_trend(days: Sequence[tuple[Any, int, dict[str, int], float | None]]) -> Figure:
    """Predictions per day, stacked by predicted label when there are labels, with label coverage (the
    share whose actual is known) as a line on a second axis. Each day is (day, rows, labels, coverage)."""
    palette = [BLUE, GREEN, AMBER, "#6b46c1", "#2c7a7b", "#d53f8c", "#4a5568", RED]
    x = [day.isoformat() for day, _, _, _ in days]
    labels = sorted({label for _, _, counts, _ in days for label in counts})
    data: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": f"predicted {label}",
            "x": x,
            "y": [counts.get(label, 0) for _, _, counts, _ in days],
            "marker": {"color": palette[index % len(palette)]},
        }
        for index, label in enumerate(labels)
    ] or [
        {"type": "bar", "name": "predictions", "x": x, "y": [rows for _, rows, _, _ in days], "marker": {"color": BLUE}}
    ]
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "with actuals",
            "x": x,
            "y": [coverage for _, _, _, coverage in days],
            "yaxis": "y2",
            "line": {"color": GREY},
            "hovertemplate": "%{x|%d %b}: %{y:.1%}<extra>with actuals</extra>",
        }
    )
    return {
        "data": data,
        "layout": _layout(
            "Logged predictions per day",
            barmode="stack",
            xaxis=_time_axis(x, daily=True),
            yaxis={"title": {"text": "predictions"}, "rangemode": "tozero"},
            yaxis2={
                "overlaying": "y",
                "side": "right",
                "tickformat": ".0%",
                "range": [0, 1],
                "title": {"text": "with actuals", "standoff": 8},
                "automargin": True,
            },
        ),
    }
