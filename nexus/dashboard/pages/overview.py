"""Overview, the page a newcomer sees first (Plausible's): the headline numbers beside the previous period
with a sparkline each, the main trend, and the top events, pages, entry pages, referrers, countries,
browsers, systems and devices, where a click on a row filters the whole page by it; and a live panel.

Everything but the live panel is one answer of the `overview` analysis (one statement): the page costs
one query, and its "Show me the SQL" is that statement. Top lists and sparklines are plain markup (no
chart library per row), which keeps a page of eight lists and six numbers quick to draw.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

import panel as pn

from nexus.analyses.overview import MAX_GOALS
from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages import live
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, page

KPI_LABELS = {"events": "Events", "persons": "Unique persons", "sessions": "Sessions", "bounce_rate": "Bounce rate",
              "avg_session_duration": "Avg. session", "revenue": "Revenue"}
LIST_LABELS = {"events": "Top events", "pages": "Top pages", "entry_pages": "Entry pages", "referrers": "Referrers",
               "countries": "Countries", "browsers": "Browsers", "os": "Operating systems", "devices": "Devices"}


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    return page(dashboard, "overview", body)


def body(ctx: Context) -> pn.viewable.Viewable:
    asked = ctx.common()
    goal_ids = [g.goal_id for g in ctx.reader.goals()][:MAX_GOALS]  # the project's goals join the KPI row
    if goal_ids:
        asked["goals"] = goal_ids
    return pn.Column(
        card(ctx, "Overview", "overview", asked, lambda result, _: draw(ctx, result, "overview"),
             chart="overview", height=900),
        live.panel(ctx), sizing_mode="stretch_width")


def draw(ctx: Context, result: Any, chart: str) -> pn.viewable.Viewable:
    kpis = theme.html("<div class='nx-kpis'>" + "".join(_kpi(k) for k in result.kpis)
                      + "".join(_goal_kpi(g) for g in result.goals) + "</div>")
    if not any(k.value for k in result.kpis if k.name == "events"):
        return pn.Column(kpis, theme.html("<div class='nx-notice'>No events in this range.</div>"),
                         sizing_mode="stretch_width")
    series = [charts.SeriesData(label=KPI_LABELS[k.name], times=[p.t for p in k.series], values=[p.value for p in k.series])
              for k in result.kpis if k.name in ("events", "persons")]
    trend = pn.pane.Bokeh(charts.time_series(series, kind="line", timezone=result.timezone, height=300),
                          sizing_mode="stretch_width")
    lists = theme.html("<div class='nx-lists'>" + "".join(_top(ctx, t) for t in result.top) + "</div>")
    return pn.Column(kpis, trend, lists, sizing_mode="stretch_width")


def _kpi(kpi: Any) -> str:
    percent, duration = kpi.name == "bounce_rate", kpi.name == "avg_session_duration"
    change = charts.format_change(kpi.value, kpi.previous, percent=percent)
    better = None if kpi.value is None or kpi.previous is None or kpi.value == kpi.previous else \
        (kpi.value > kpi.previous) != (kpi.name == "bounce_rate")  # a falling bounce rate is good news
    tone = "nx-flat" if better is None else "nx-up" if better else "nx-down"
    previous = charts.format_number(kpi.previous, percent=percent, duration=duration)
    return (f"<div class='nx-kpi-card' data-kpi='{kpi.name}'><div class='nx-kpi-label'>{KPI_LABELS[kpi.name]}</div>"
            f"<div class='nx-kpi'>{escape(charts.format_number(kpi.value, percent=percent, duration=duration))}</div>"
            f"<div class='{tone}' title='previous period: {escape(previous, quote=True)}'>{escape(change)}"
            f" <span class='nx-muted'>vs previous</span></div>{_sparkline([p.value for p in kpi.series])}</div>")


def _goal_kpi(goal: Any) -> str:
    """A goal's conversions as a KPI card, labelled with the goal's name (a user's text: escaped)."""
    kpi = goal.conversions
    change = charts.format_change(kpi.value, kpi.previous)
    tone = "nx-flat" if kpi.value == kpi.previous or kpi.previous is None else \
        "nx-up" if (kpi.value or 0) > kpi.previous else "nx-down"
    previous = charts.format_number(kpi.previous)
    return (f"<div class='nx-kpi-card' data-goal='{escape(goal.goal_id, quote=True)}'><div class='nx-kpi-label'>"
            f"{escape(goal.name)} · conversions</div>"
            f"<div class='nx-kpi'>{escape(charts.format_number(kpi.value))}</div>"
            f"<div class='{tone}' title='previous period: {escape(previous, quote=True)}'>{escape(change)}"
            f" <span class='nx-muted'>vs previous</span></div>{_sparkline([p.value for p in kpi.series])}</div>")


def _sparkline(values: list[float | None], width: int = 160, height: int = 36) -> str:
    """An inline SVG line of the values (numbers only: no user text reaches it)."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(points) < 2:
        return ""
    low, high = min(v for _, v in points), max(v for _, v in points)
    span, last = (high - low) or 1.0, max(len(values) - 1, 1)
    path = " ".join(f"{i / last * width:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in points)
    return (f"<svg class='nx-spark' viewBox='0 0 {width} {height}' width='{width}' height='{height}' aria-hidden='true'>"
            f"<polyline fill='none' stroke='currentColor' stroke-width='1.5' points='{path}'/></svg>")


def _top(ctx: Context, top: Any) -> str:
    """A top list as rows with a bar behind each; a row is a link to this page filtered by its value."""
    if not top.rows:
        rows = "<div class='nx-muted'>Nothing in this range.</div>"
    else:
        most = max(r.persons for r in top.rows) or 1
        rows = "".join(
            f"<a class='nx-top-row' href='{escape(_filtered(ctx, top, r.value), quote=True)}' "
            f"title='Filter by {escape(r.label, quote=True)}'>"
            f"<span class='nx-top-bar' style='width:{r.persons / most * 100:.1f}%'></span>"
            f"<span class='nx-top-label'>{escape(r.label)}</span>"
            f"<span class='nx-top-count'>{r.persons:,}</span><span class='nx-top-events'>{r.events:,}</span></a>"
            for r in top.rows)
    return (f"<section class='nx-top' data-list='{escape(top.dimension, quote=True)}'><h3>{LIST_LABELS.get(top.dimension, top.dimension)}"
            f"<span>persons</span><span>events</span></h3>{rows}</section>")


def _filtered(ctx: Context, top: Any, value: str) -> str:
    item = {"key": top.filter.key, "op": "eq", "value": value, "source": top.filter.source}
    filters = ctx.view.filter_list()
    if item not in filters:
        filters = [*filters, item]
    return ctx.link("overview", filters=json.dumps(filters, separators=(",", ":")))
