"""Plotly figures of the monitoring pages, built from stored reports.

Each function returns a figure as Plotly's JSON ({"data": [...], "layout": {...}}), which the page
embeds with json_script and static/monitoring/charts.js draws with plotly.js: no inline script (the
pages keep a Content-Security-Policy without 'unsafe-inline'), and plain dicts, because building
graph_objects costs milliseconds per figure and the dashboard draws a sparkline per model.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from monitoring import histograms, performance
from monitoring.models import Report
from scoring.recorder import BUCKETS

Figure = dict[str, Any]
GREEN, AMBER, RED, GREY, BLUE = "#1f7a4d", "#b7791f", "#c53030", "#a0aec0", "#2b6cb0"
MUTED = "#667085"
# A moment on a time axis and what happened then (e.g. "v3 live").
Marker = tuple[datetime, str]


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


def _time_axis(x: Sequence[str], markers: Sequence[Marker] = (), daily: bool = False) -> dict[str, Any]:
    """A date axis ticked in days (one window or one day alone would otherwise be ticked in milliseconds),
    with a dotted line and its label at each marker inside the axis' range: the layout's `xaxis`, `shapes`
    and `annotations`."""
    axis: dict[str, Any] = {"type": "date", "hoverformat": "%d %b %Y" if daily else "%d %b %Y %H:%M"}
    moments = sorted(datetime.fromisoformat(value) for value in x)
    if not moments:
        return {"xaxis": axis}
    first, last = moments[0], moments[-1]
    if last - first < timedelta(days=2):
        first, last = first - timedelta(days=1), last + timedelta(days=1)
        axis["range"] = [first.isoformat(), last.isoformat()]

    def position(when: datetime) -> datetime:
        # A day's bar stands on its midnight: on a daily chart a marker goes through the bar of its (UTC)
        # day, which held traffic of both versions, rather than between two bars.
        return datetime.combine(when.astimezone(UTC).date(), time()) if daily else when

    placed = [(position(when), label) for when, label in markers]
    shown = [(when.isoformat(), label) for when, label in placed if first <= when <= last]
    line = {"color": MUTED, "width": 1, "dash": "dot"}
    return {
        "xaxis": axis,
        "shapes": [
            {"type": "line", "xref": "x", "yref": "paper", "x0": at, "x1": at, "y0": 0, "y1": 1, "line": line}
            for at, _ in shown
        ],
        "annotations": [
            {
                "xref": "x",
                "yref": "paper",
                "x": at,
                "y": 1,
                "xanchor": "left",
                "yanchor": "top",
                "xshift": 2,
                "text": label,
                "showarrow": False,
                "bgcolor": "rgba(255,255,255,0.8)",
                "font": {"color": MUTED, "size": 10},
            }
            for at, label in shown
        ],
    }


def sparkline(points: Sequence[tuple[Any, float | None]], color: str = BLUE) -> Figure:
    """A tiny line of drift share over time for a dashboard tile."""
    return {
        "data": [
            {
                "type": "scatter",
                # Markers too: one report alone is a point, which a line alone does not draw.
                "mode": "lines+markers",
                "x": [when.isoformat() for when, _ in points],
                "y": [value for _, value in points],
                "line": {"color": color, "width": 2},
                "marker": {"color": color, "size": 4},
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


def performance_trend(
    reports: Sequence[Report],
    metrics: Sequence[str],
    registered: dict[str, Any],
    *,
    markers: Sequence[Marker] = (),
) -> Figure | None:
    """Each metric per window, with its value at registration as a dashed line of the same colour; None
    when no window had a value of any of them (no actuals yet). A metric without a value in any window
    is left out, so that the legend names only lines that are drawn."""
    palette = [BLUE, GREEN, AMBER, RED, "#6b46c1", "#2c7a7b"]
    data: list[dict[str, Any]] = []
    x = [report.window_end.isoformat() for report in reports]
    for index, metric in enumerate(metrics):
        y = [report.performance.get(metric) for report in reports]
        if all(value is None for value in y):
            continue
        color = palette[index % len(palette)]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": metric,
                "x": x,
                "y": y,
                "line": {"color": color},
                "hovertemplate": f"%{{x|%d %b %H:%M}}: %{{y:.3f}}<extra>{metric}</extra>",
            }
        )
        if isinstance(registered.get(metric), int | float):
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
    if not data:
        return None
    layout = _layout(
        "Performance against actuals",
        **_time_axis(x, markers),
        yaxis={"rangemode": "tozero", "title": {"text": "metric value"}},
    )
    return {"data": data, "layout": layout}


def slice_performance_trend(reports: Sequence[Report], metric: str, *, markers: Sequence[Marker] = ()) -> Figure | None:
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
    if any(value is not None for value in whole):
        dashed = {"color": GREY, "dash": "dash"}
        data.append({"type": "scatter", "mode": "lines", "name": "whole window", "x": x, "y": whole, "line": dashed})
    layout = _layout(
        f"{metric} per slice",
        height=360,
        **_time_axis(x, markers),
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
    shares = histograms.histogram_shares(report, column, slice_name)
    if shares is None:
        return None
    label = f"current ({slice_name})" if slice_name else "current"
    return {
        "data": [
            {
                "type": "bar",
                "name": "reference",
                "x": shares.bins,
                "y": shares.reference,
                "marker": {"color": GREY},
                "opacity": 0.75,
            },
            {
                "type": "bar",
                "name": label,
                "x": shares.bins,
                "y": shares.current,
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
        if not gaps:  # nothing to draw: a bar series without bars would still have its name in the legend
            continue
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


def volume_and_latency(days: Sequence[tuple[Any, int, int, float | None]], *, markers: Sequence[Marker] = ()) -> Figure:
    """Requests and errors per day as bars, p99 latency as a line on a second axis (left out, with its
    axis, when no day has a latency)."""
    x = [day.isoformat() for day, _, _, _ in days]
    latency = [p for _, _, _, p in days]
    # A p99 beyond the largest latency bucket is infinite, which JSON cannot carry (the page's JSON would
    # not parse, and no chart after it would be drawn): drawn at that bound, and said "above" on hover.
    slowest = float(BUCKETS[-1])
    data: list[dict[str, Any]] = [
        {"type": "bar", "name": "requests", "x": x, "y": [r for _, r, _, _ in days], "marker": {"color": BLUE}},
        {"type": "bar", "name": "errors", "x": x, "y": [e for _, _, e, _ in days], "marker": {"color": RED}},
    ]
    second_axis: dict[str, Any] = {}
    if any(value is not None for value in latency):
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "p99 latency (ms)",
                "x": x,
                "y": [None if value is None else min(value, slowest) for value in latency],
                "customdata": ["above " if value is not None and value > slowest else "" for value in latency],
                "hovertemplate": "%{x|%d %b}: %{customdata}%{y} ms<extra>p99 latency</extra>",
                "yaxis": "y2",
                "line": {"color": AMBER},
            }
        )
        second_axis["yaxis2"] = {
            "overlaying": "y",
            "side": "right",
            "title": {"text": "p99 latency (ms)", "standoff": 8},
            "rangemode": "tozero",
            "automargin": True,
        }
    return {
        "data": data,
        "layout": _layout(
            "Real-time predictions per day",
            barmode="stack",
            **_time_axis(x, markers, daily=True),
            yaxis={"title": {"text": "requests"}, "rangemode": "tozero"},
            **second_axis,
        ),
    }


def traffic_trend(
    days: Sequence[tuple[Any, int, dict[str, int], float | None]], *, markers: Sequence[Marker] = ()
) -> Figure:
    """Predictions per day, stacked by predicted label when there are labels, with label coverage (the
    share whose actual is known) as a line on a second axis, left out when no day has one. Each day is
    (day, rows, labels, coverage)."""
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
    coverage = [share for _, _, _, share in days]
    second_axis: dict[str, Any] = {}
    if any(share is not None for share in coverage):
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "with actuals",
                "x": x,
                "y": coverage,
                "yaxis": "y2",
                "line": {"color": GREY},
                "hovertemplate": "%{x|%d %b}: %{y:.1%}<extra>with actuals</extra>",
            }
        )
        second_axis["yaxis2"] = {
            "overlaying": "y",
            "side": "right",
            "tickformat": ".0%",
            "range": [0, 1],
            "title": {"text": "with actuals", "standoff": 8},
            "automargin": True,
        }
    return {
        "data": data,
        "layout": _layout(
            "Logged predictions per day",
            barmode="stack",
            **_time_axis(x, markers, daily=True),
            yaxis={"title": {"text": "predictions"}, "rangemode": "tozero"},
            **second_axis,
        ),
    }
