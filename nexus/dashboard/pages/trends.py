"""Trends: series of an event and a metric (count, unique persons, sum/avg/min/max/percentiles of a numeric
property), a breakdown, the previous period beside, as lines, bars, stacked bars, areas or one number."""

from __future__ import annotations

from html import escape
from typing import Any

import panel as pn
import param

from nexus.analyses.metric_catalogue import CATALOGUE
from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, page
from nexus.dashboard.url_state import dumps, json_list

CHARTS = ["line", "bar", "stacked_bar", "area", "number", "pie"]
ALL_EVENTS = "(all events)"


class Settings(param.Parameterized):
    series = param.String(default=dumps([{"event": None, "metric": "events"}]))
    breakdown = param.String(default="")  # a property key; empty: none
    breakdown_source = param.Selector(default="event", objects=["event", "person", "column"])
    compare = param.Boolean(default=False)
    chart = param.Selector(default="line", objects=CHARTS)


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    return page(dashboard, "trends", lambda ctx: body(ctx, settings), settings=settings,
                controls=lambda ctx: [builder(ctx, settings)])


def request(ctx: Context, settings: Settings) -> dict[str, Any]:
    series = [{k: v for k, v in s.items() if v not in (None, "")} for s in json_list(settings.series)]
    body: dict[str, Any] = {"series": series or [{"metric": "events"}], **ctx.common(), "compare": settings.compare}
    if settings.breakdown:
        body["breakdown"] = {"key": settings.breakdown, "source": settings.breakdown_source}
    return body


def body(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    return card(ctx, "Trend", "trends", request(ctx, settings), lambda result, _: draw(ctx, result, settings.chart),
                chart=settings.chart, height=420)


def draw(ctx: Context, result: Any, chart: str) -> Any:
    """A trends result as `chart`: time series, or the totals as big numbers."""
    if not result.lines or all(not any(v for v in line.values if v) for line in result.lines):
        return theme.html("<div class='nx-notice'>No events in this range.</div>")
    if chart == "number":
        return pn.Row(*[big_number(_label(line), line.total) for line in result.lines], sizing_mode="stretch_width")
    if chart == "pie" or (chart == "bar" and any(line.breakdown is not None for line in result.lines)):
        # Shares of the range's totals: a breakdown's values (or the series) as slices, or as a top list.
        labels, totals = [_label(line) for line in result.lines], [line.total for line in result.lines]
        figure = charts.pie(labels, totals) if chart == "pie" else charts.bars(labels, totals)
        return pn.pane.Bokeh(figure, sizing_mode="stretch_width")
    series = [charts.SeriesData(label=_label(line), times=list(result.buckets), values=list(line.values))
              for line in result.lines]
    for line in result.previous or []:
        series.append(charts.SeriesData(label=_label(line) + " (previous period)", times=list(result.buckets),
                                        values=list(line.values), dashed=True, colour_of=_label(line)))
    figure = charts.time_series(series, kind=chart, timezone=result.timezone)
    return pn.pane.Bokeh(figure, sizing_mode="stretch_width")


def _label(line: Any) -> str:
    return line.label + (f" · {line.breakdown}" if line.breakdown is not None else "")


def big_number(label: str, value: float | None) -> pn.viewable.Viewable:
    shown = charts.format_number(value)
    return theme.html(f"<div class='nx-kpi-card'><div class='nx-kpi-label'>{escape(label)}</div>"
                      f"<div class='nx-kpi' data-total>{escape(shown)}</div></div>", width=240, sizing_mode="fixed")


def builder(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    """The series builder: one row per series (event, metric, property), plus breakdown, compare and chart."""
    names = [ALL_EVENTS] + [e.name for e in ctx.reader.event_names()[:500]]
    rows = pn.Column()

    def current() -> list[dict[str, Any]]:
        return json_list(settings.series) or [{"event": None, "metric": "events"}]

    def redraw(*_: object) -> None:
        widgets = []
        for index, item in enumerate(current()):
            event = pn.widgets.Select(label=f"Series {index + 1}: event", options=names,
                                      value=item.get("event") if item.get("event") in names else ALL_EVENTS, width=200)
            metric = pn.widgets.Select(label="Metric", options=list(CATALOGUE), value=item.get("metric", "events"), width=130)
            prop = pn.widgets.TextInput(label="Property (numeric metrics)", value=item.get("property") or "", width=170,
                                        visible=CATALOGUE.get(item.get("metric", "events"), CATALOGUE["events"]).needs_property)
            remove = pn.widgets.Button(label="✕", width=40, margin=(23, 5, 5, 5), disabled=len(current()) == 1)

            def changed(_: object, i: int = index, e: Any = event, m: Any = metric, p: Any = prop) -> None:
                items = current()
                needs = CATALOGUE[m.value].needs_property
                items[i] = {"event": None if e.value == ALL_EVENTS else e.value, "metric": m.value,
                            **({"property": p.value.strip()} if needs and p.value.strip() else {})}
                if needs and not p.value.strip():
                    p.visible = True
                    return  # wait for the property
                settings.series = dumps(items)

            for widget in (event, metric, prop):
                widget.param.watch(changed, "value")
            remove.on_click(lambda _, i=index: setattr(settings, "series", dumps([s for j, s in enumerate(current()) if j != i])))
            widgets.append(pn.Row(event, metric, prop, remove))
        rows.objects = widgets

    add = pn.widgets.Button(label="+ Series", button_type="light", width=90)
    add.on_click(lambda _: setattr(settings, "series", dumps(current() + [{"event": None, "metric": "persons"}])))
    breakdown = pn.widgets.TextInput(label="Breakdown by", value=settings.breakdown, placeholder="$browser", width=150)
    source = pn.widgets.Select(label="of", options=["event", "person", "column"], value=settings.breakdown_source, width=90)
    compare = pn.widgets.Checkbox(label="Compare to the previous period", value=settings.compare, margin=(30, 5, 5, 5))
    chart = pn.widgets.Select(label="Chart", options=CHARTS, value=settings.chart, width=120)
    breakdown.param.watch(lambda e: setattr(settings, "breakdown", e.new.strip()), "value")
    source.param.watch(lambda e: setattr(settings, "breakdown_source", e.new), "value")
    compare.param.watch(lambda e: setattr(settings, "compare", e.new), "value")
    chart.param.watch(lambda e: setattr(settings, "chart", e.new), "value")
    settings.param.watch(redraw, "series")
    redraw()
    return pn.Column(rows, pn.Row(add, breakdown, source, compare, chart), sizing_mode="stretch_width")
