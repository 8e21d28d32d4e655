"""Sessions: how many, how long, how deep and how often bounced, over time and broken down by a property,
and the pages sessions start and end on."""

from __future__ import annotations

from html import escape
from typing import Any

import panel as pn
import param

from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages.shared import (Breakdowns, breakdown_controls, breakdown_of, checked, group_label,
                                          html_table, sharing)
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, empty, page

# chart name → (card title, measure of the result's lines)
SERIES = {"sessions": ("Sessions", "sessions"), "duration": ("Session duration (minutes)", "median_duration"),
          "pages": ("Pages per session", "pages_per_session"), "bounce_rate": ("Bounce rate", "bounce_rate")}
PAGES = {"entry_pages": "Entry pages", "exit_pages": "Exit pages"}
TOTALS = [("sessions", "Sessions", {}), ("avg_duration", "Average duration", {"duration": True}),
          ("median_duration", "Median duration", {"duration": True}), ("pages_per_session", "Pages per session", {}),
          ("bounce_rate", "Bounce rate", {"percent": True})]


class Settings(Breakdowns):
    gap_minutes = param.Integer(default=30, bounds=(1, 24 * 60))


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    return page(dashboard, "sessions", lambda ctx: body(ctx, settings), settings=settings,
                controls=lambda ctx: [builder(settings)])


def request(common: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The sessions request the page sends; `common` is the shell's `ctx.common()` (with the interval)."""
    body: dict[str, Any] = {**common, "gap_minutes": settings.gap_minutes}
    breakdown = breakdown_of(settings)
    if breakdown:
        body["breakdown"] = breakdown
    return body


def body(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    ctx = sharing(ctx)  # seven cards, one query
    asked = checked("sessions", request(ctx.common(), settings))

    def one(title: str, chart: str, height: int = 320) -> pn.viewable.Viewable:
        return card(ctx, title, "sessions", asked, lambda result, _: draw(ctx, result, chart), chart=chart,
                    height=height)

    titles = {**{chart: title for chart, (title, _) in SERIES.items()}, **PAGES}
    pairs = [("sessions", "duration"), ("pages", "bounce_rate"), ("entry_pages", "exit_pages")]
    return pn.Column(one("Sessions in this range", "totals", height=110),
                     *(pn.Row(one(titles[a], a), one(titles[b], b), sizing_mode="stretch_width") for a, b in pairs),
                     sizing_mode="stretch_width")


def draw(ctx: Context, result: Any, chart: str = "sessions") -> pn.viewable.Viewable:
    """One view of a sessions result: `totals` (the range's numbers), a measure over time (`sessions`,
    `duration`, `pages`, `bounce_rate`: a line per breakdown group) or the top `entry_pages`/`exit_pages`."""
    if not any(sum(line.sessions) for line in result.lines):
        return empty("No sessions in this range.")
    kind = chart if chart in ("line", "bar", "stacked_bar", "area") else "line"
    if chart not in (*SERIES, *PAGES, "totals"):
        chart = "sessions"  # a tile saved with a chart type shows the sessions, drawn that way
    if chart == "totals":
        return totals(result)
    if chart in PAGES:
        pages = getattr(result, chart)
        if not pages:
            return empty("No page views in these sessions.")
        return pn.pane.Bokeh(charts.bars([p.path for p in pages], [p.sessions for p in pages]),
                             sizing_mode="stretch_width")
    series = []
    for line in result.lines:
        label = group_label(line.breakdown) if line.breakdown is not None else ""
        if chart == "duration":
            # Minutes read better than seconds on an axis; both the median and the mean without a breakdown.
            for name, measure in (("median", "median_duration"), ("average", "avg_duration")):
                if name == "average" and line.breakdown is not None:
                    continue
                values = [None if v is None else v / 60 for v in getattr(line, measure)]
                series.append(charts.SeriesData(label=_label(name, label), times=list(result.buckets), values=values,
                                                colour_of=label or None))
        else:
            measure = SERIES[chart][1]
            series.append(charts.SeriesData(label=_label(SERIES[chart][0].lower(), label), times=list(result.buckets),
                                            values=list(getattr(line, measure)), colour_of=label or None))
    figure = charts.time_series(series, kind=kind, timezone=result.timezone, percent=chart == "bounce_rate",
                                height=280)
    return pn.pane.Bokeh(figure, sizing_mode="stretch_width")


def _label(measure: str, group: str) -> str:
    return f"{measure} · {group}" if group else measure


def totals(result: Any) -> pn.viewable.Viewable:
    """The range's sessions, durations, depth and bounce rate: big numbers, or a row per breakdown group."""
    if len(result.lines) == 1 and result.lines[0].breakdown is None:
        total = result.lines[0].total
        return pn.Row(*[_number(label, total.get(name), **style) for name, label, style in TOTALS],
                      sizing_mode="stretch_width")
    rows = [[group_label(line.breakdown), *(charts.format_number(line.total.get(name), **style)
                                            for name, _, style in TOTALS)] for line in result.lines]
    return html_table(["Group", *(label for _, label, _ in TOTALS)], rows)


def _number(label: str, value: float | None, **style: bool) -> pn.viewable.Viewable:
    shown = charts.format_number(value, **style)
    return theme.html(f"<div class='nx-kpi-label'>{escape(label)}</div><div class='nx-kpi'>{escape(shown)}</div>",
                      width=200, sizing_mode="fixed", margin=(5, 10))


def builder(settings: Settings) -> pn.viewable.Viewable:
    gap = pn.widgets.IntInput(label="New session after (minutes idle)", value=settings.gap_minutes, start=1,
                              end=24 * 60, width=200)
    gap.param.watch(lambda e: setattr(settings, "gap_minutes", e.new) if e.new else None, "value")
    return pn.Row(*breakdown_controls(settings), gap, sizing_mode="stretch_width")
