"""Stickiness and lifecycle of one event: how many persons did it on 1, 2, …, N days (weeks, months) of the
range, and per period how many of them were new, returning, resurrecting, or went dormant."""

from __future__ import annotations

from typing import Any, get_args

import panel as pn
import param
from bokeh.core.properties import value as fixed
from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Legend, LegendItem, NumeralTickFormatter
from bokeh.plotting import figure

from nexus.analyses.lifecycle import STATUSES
from nexus.analyses.periods import Period
from nexus.dashboard import charts
from nexus.dashboard.cards import card
from nexus.dashboard.pages.shared import ANY_EVENT, checked, event_names, event_options
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, empty, page

PERIODS = list(get_args(Period))
# Colour-blind-safe (charts.PALETTE), and the same meaning as PostHog's: green new, red dormant.
COLOURS = {"new": "#009E73", "returning": "#0072B2", "resurrecting": "#E69F00", "dormant": "#D55E00"}


class Settings(param.Parameterized):
    event = param.String(default="")  # empty: any event
    period = param.Selector(default="day", objects=PERIODS)


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    return page(dashboard, "stickiness", lambda ctx: body(ctx, settings), settings=settings,
                controls=lambda ctx: [builder(settings, event_names(ctx))], uses_interval=False)


def request(common: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The request both analyses (stickiness and lifecycle) get; `common` is `ctx.common(interval=False)`."""
    return {**({"event": settings.event} if settings.event else {}), **common, "period": settings.period}


def body(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    asked = checked("lifecycle", checked("stickiness", request(ctx.common(interval=False), settings)))
    return pn.Column(
        card(ctx, "Stickiness", "stickiness", asked, lambda result, _: draw_stickiness(ctx, result, "bar"),
             chart="bar", height=340),
        card(ctx, "Lifecycle", "lifecycle", asked, lambda result, _: draw_lifecycle(ctx, result, "stacked_bar"),
             chart="stacked_bar", height=340),
        sizing_mode="stretch_width")


def draw_stickiness(ctx: Context, result: Any, chart: str = "bar") -> pn.viewable.Viewable:
    """Persons by the number of periods they were active in (exactly k of the range's N)."""
    if not any(result.persons):
        return empty("Nobody did this event in this range.")
    unit = result.period
    labels = [f"{k} {unit}{'s' if k > 1 else ''}" for k in range(1, result.periods + 1)]
    return pn.pane.Bokeh(charts.bars(labels, result.persons, horizontal=False, height=300),
                         sizing_mode="stretch_width")


def draw_lifecycle(ctx: Context, result: Any, chart: str = "stacked_bar") -> pn.viewable.Viewable:
    if not any(any(getattr(result, s)) for s in STATUSES):
        return empty("Nobody did this event in this range.")
    return pn.pane.Bokeh(lifecycle_bars(result), sizing_mode="stretch_width")


def lifecycle_bars(result: Any, height: int = 320) -> figure:
    """New, returning and resurrecting persons stacked up from zero and the dormant ones down from it, per
    period (as PostHog draws lifecycle). `charts.time_series` stacks every series on one running base, so
    a negative series would be drawn over the positive ones: hence this builder."""
    fmt = "%b %Y" if result.period == "month" else "%d %b"
    names = [p.strftime(fmt) for p in result.periods]
    fig = figure(height=height, sizing_mode="stretch_width", tools=charts.TOOLS, toolbar_location="right",
                 x_range=FactorRange(*names))
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    fig.xgrid.visible = False
    fig.yaxis.formatter = NumeralTickFormatter(format="0,0")
    fig.yaxis.ticker.min_interval = 1  # persons: no ticks between whole numbers
    if len(names) > 16:
        fig.xaxis.major_label_orientation = 0.8
    up = [0] * len(names)
    items, drawn = [], []
    for status in STATUSES:
        counts = list(getattr(result, status))
        if status == "dormant":
            bottom, top = [0] * len(names), [-c for c in counts]
        else:
            bottom, top = list(up), [b + c for b, c in zip(up, counts)]
            up = top
        source = ColumnDataSource({"x": names, "bottom": bottom, "top": top, "status": [status] * len(names),
                                   "period": [p.strftime("%a %d %b %Y") for p in result.periods],
                                   "persons_text": [charts.format_number(c) for c in counts]})
        bars = fig.vbar(x="x", bottom="bottom", top="top", width=0.8, source=source, fill_color=COLOURS[status],
                        line_color=None, fill_alpha=0.9)
        drawn.append(bars)
        items.append(LegendItem(label=fixed(status), renderers=[bars]))
    fig.add_layout(Legend(items=items, click_policy="hide", orientation="horizontal", location="top_left"), "above")
    fig.add_tools(HoverTool(renderers=drawn, tooltips=[("Period", "@period"), ("Status", "@status"),
                                                       ("Persons", "@persons_text")]))
    return fig


def builder(settings: Settings, names: list[str]) -> pn.viewable.Viewable:
    event = pn.widgets.Select(label="Event", options=event_options(names, settings.event),
                              value=settings.event or ANY_EVENT, width=220)
    period = pn.widgets.Select(label="Active per", options=PERIODS, value=settings.period, width=100)
    event.param.watch(lambda e: setattr(settings, "event", "" if e.new == ANY_EVENT else e.new), "value")
    period.param.watch(lambda e: setattr(settings, "period", e.new), "value")
    return pn.Row(event, period, sizing_mode="stretch_width")
