"""Retention: of the persons who started (first time, or in every period they do it), how many came back
0, 1, …, N days, weeks or months later; a cohort table and the average curve, broken down by a property."""

from __future__ import annotations

from typing import Any, get_args

import panel as pn
import param
from bokeh.core.properties import value as fixed
from bokeh.models import ColumnDataSource, HoverTool, Legend, LegendItem, NumeralTickFormatter
from bokeh.plotting import figure

from nexus.analyses.periods import Period
from nexus.analyses.retention import MAX_PERIODS
from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages.persons import profile_link
from nexus.dashboard.pages.shared import (ANY_EVENT, Breakdowns, breakdown_controls, breakdown_of, checked,
                                          event_names, event_options, group_label, sharing)
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, empty, page

PERIODS = list(get_args(Period))
CELL_PAGE = 50
START_MODES = {"first_time": "First time", "recurring": "Every time"}


class Settings(Breakdowns):
    start = param.String(default="")  # an event name; empty: any event
    returning = param.String(default="")
    period = param.Selector(default="day", objects=PERIODS)
    periods = param.Integer(default=7, bounds=(0, MAX_PERIODS))
    start_mode = param.Selector(default="first_time", objects=list(START_MODES))


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    return page(dashboard, "retention", lambda ctx: body(ctx, settings), settings=settings,
                controls=lambda ctx: [builder(settings, event_names(ctx))], uses_interval=False)


def request(common: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The retention request the page sends; `common` is the shell's `ctx.common(interval=False)`."""
    body: dict[str, Any] = {
        "start": {"event": settings.start} if settings.start else {},
        "returning": {"event": settings.returning} if settings.returning else {},
        **common, "period": settings.period, "periods": settings.periods, "start_mode": settings.start_mode}
    breakdown = breakdown_of(settings)
    if breakdown:
        body["breakdown"] = breakdown
    return body


def body(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    ctx = sharing(ctx)
    asked = checked("retention", request(ctx.common(interval=False), settings))
    return pn.Column(
        card(ctx, "Retention by cohort", "retention", asked,
             lambda result, _: pn.Column(draw(ctx, result, "heatmap"), cell_picker(ctx, asked, result),
                                         sizing_mode="stretch_width"), chart="heatmap", height=200),
        card(ctx, "Average retention", "retention", asked, lambda result, _: draw(ctx, result, "curve"),
             chart="curve", height=300),
        sizing_mode="stretch_width")


def draw(ctx: Context, result: Any, chart: str = "heatmap") -> pn.viewable.Viewable:
    """A retention result as the cohort table (`heatmap`) or the average curves (`curve`)."""
    if not any(c.persons for c in result.cohorts):
        return empty("Nobody started in this range.")
    if chart == "curve":
        return pn.pane.Bokeh(curve(result), sizing_mode="stretch_width")
    groups = {group_label(None): result.cohorts, **{group_label(b.breakdown): b.cohorts for b in result.breakdowns}}
    if len(groups) == 1:
        return cohort_table(result.period, result.cohorts)
    pick = pn.widgets.Select(label="Cohorts of", options=list(groups), value=group_label(None), width=220)
    return pn.Column(pick, pn.bind(lambda group: cohort_table(result.period, groups[group]), pick),
                     sizing_mode="stretch_width")


def cell_picker(ctx: Context, asked: dict[str, Any], result: Any) -> pn.viewable.Viewable:
    """Pick a cell (a cohort, and the period after its start, or the whole cohort) to list its persons, each a
    link to their profile."""
    cohorts = [c.period.isoformat() for c in result.cohorts if c.persons]
    if not cohorts:
        return pn.Spacer(height=0)
    offsets = {"the whole cohort": "all", **{f"{result.period} {k}": str(k) for k in range(len(result.average))}}
    cohort = pn.widgets.Select(label="Persons of the cohort of", options=cohorts, value=cohorts[0], width=170)
    later = pn.widgets.Select(label="back in", options=offsets, value="0", width=150)
    show = pn.widgets.Button(label="List persons", width=110, margin=(23, 5, 5, 5))
    holder = pn.Column(sizing_mode="stretch_width")

    def list_cell(_: Any) -> None:
        holder.objects = [cell_card(ctx, asked, cohort.value, None if later.value == "all" else int(later.value),
                                    0, holder)]

    show.on_click(list_cell)
    return pn.Column(pn.Row(cohort, later, show), holder, sizing_mode="stretch_width")


def cell_card(ctx: Context, asked: dict[str, Any], cohort: str, k: int | None, offset: int,
              holder: pn.Column) -> pn.viewable.Viewable:
    """A page of a cell's persons as links to their profiles, with the pages before and after."""
    def page_at(at: int) -> None:
        holder.objects = [cell_card(ctx, asked, cohort, k, at, holder)]

    def drawn(result: Any, _: Any) -> pn.viewable.Viewable:
        if not result.persons:
            return empty("Nobody.")
        earlier = pn.widgets.Button(label=f"← Previous {CELL_PAGE}", width=130, disabled=offset == 0)
        more = pn.widgets.Button(label=f"Next {CELL_PAGE} →", width=130, disabled=not result.has_more)
        earlier.on_click(lambda _: page_at(max(offset - CELL_PAGE, 0)))
        more.on_click(lambda _: page_at(offset + CELL_PAGE))
        return pn.Column(draw_cell_persons(ctx, result), pn.Row(earlier, more), sizing_mode="stretch_width")

    title = f"Cohort of {cohort}" + (" (everyone)" if k is None else f", back {k} {asked['period']}s later")
    request = {"retention": asked, "cohort": cohort, "k": k, "limit": CELL_PAGE, "offset": offset}
    return card(ctx, title, "retention_persons", request, drawn, chart="table", height=120)


def draw_cell_persons(ctx: Context, result: Any, chart: str = "table") -> pn.viewable.Viewable:
    """A page of a retention cell's persons, each a link to their profile (as a pinned tile draws it too)."""
    if not result.persons:
        return empty("Nobody.")
    links = "".join(f"<li>{profile_link(ctx, p.person)}</li>" for p in result.persons)
    return theme.html(f"<ul class='nx-cell-persons' data-role='cell-persons'>{links}</ul>")


def cohort_table(period: str, cohorts: list[Any]) -> pn.viewable.Viewable:
    """One row per cohort: the share of it back after k periods. A cohort nobody started in has no shares
    (blank, rather than a row of 0% that reads as "everyone left")."""
    columns = [f"{period.title()} {k}" for k in range(len(cohorts[0].counts))] if cohorts else []
    rows = [c.period.strftime("%b %Y" if period == "month" else "%a %d %b %Y") for c in cohorts]
    shares = [c.percentages if c.persons else [None] * len(c.percentages) for c in cohorts]
    heatmap = charts.heatmap(rows, columns, shares, sizes=[c.persons for c in cohorts],
                             counts=[c.counts for c in cohorts])
    return pn.pane.Bokeh(heatmap, sizing_mode="stretch_width")


def curve(result: Any, height: int = 320) -> figure:
    """The average share retained after k periods, one line for everyone and one per breakdown value.
    Labels reach the browser only as legend labels and data values (drawn as text), as in `charts`."""
    lines = [(group_label(None), result.average),
             *((group_label(b.breakdown), b.average) for b in result.breakdowns)]
    colours = charts.colours_for(label for label, _ in lines)
    unit = result.period
    fig = figure(height=height, sizing_mode="stretch_width", tools=charts.TOOLS, toolbar_location="right",
                 x_range=(-0.3, max(len(result.average) - 0.7, 1)), y_range=(0, 1.05))
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    fig.xaxis.axis_label = f"{unit}s after the start"
    fig.xaxis.ticker = list(range(len(result.average)))
    fig.yaxis.formatter = NumeralTickFormatter(format="0%")
    items, hovered = [], []
    for label, values in lines:
        points = [(k, v) for k, v in enumerate(values) if v is not None]
        data = ColumnDataSource({
            "x": [k for k, _ in points], "y": [v for _, v in points], "label": [label] * len(points),
            "period": [f"{unit} {k}" for k, _ in points],
            "value_text": [charts.format_number(v, percent=True) for _, v in points]})
        drawn = [fig.line("x", "y", source=data, line_width=2, color=colours[label]),
                 fig.scatter("x", "y", source=data, size=6, color=colours[label])]
        hovered.append(drawn[-1])
        items.append(LegendItem(label=fixed(label), renderers=drawn))
    fig.add_layout(Legend(items=items, click_policy="hide", orientation="horizontal", location="top_left",
                          ncols=min(len(items), 4)), "above")
    fig.add_tools(HoverTool(renderers=hovered, tooltips=[("Group", "@label"), ("Period", "@period"),
                                                         ("Retained", "@value_text")]))
    return fig


def builder(settings: Settings, names: list[str]) -> pn.viewable.Viewable:
    """Start and return events, the period and how many, first-time or recurring, and the breakdown."""
    def picker(label: str, name: str) -> pn.widgets.Select:
        current = getattr(settings, name)
        widget = pn.widgets.Select(label=label, options=event_options(names, current), value=current or ANY_EVENT,
                                   width=200)
        widget.param.watch(lambda e: setattr(settings, name, "" if e.new == ANY_EVENT else e.new), "value")
        return widget

    period = pn.widgets.Select(label="Period", options=PERIODS, value=settings.period, width=90)
    count = pn.widgets.IntInput(label="Periods after", value=settings.periods, start=0, end=MAX_PERIODS, width=100)
    mode = pn.widgets.Select(label="Cohort by", options={v: k for k, v in START_MODES.items()},
                             value=settings.start_mode, width=120)
    period.param.watch(lambda e: setattr(settings, "period", e.new), "value")
    count.param.watch(lambda e: setattr(settings, "periods", e.new) if e.new is not None else None, "value")
    mode.param.watch(lambda e: setattr(settings, "start_mode", e.new), "value")
    return pn.Row(picker("Started with", "start"), picker("Came back with", "returning"), period, count, mode,
                  *breakdown_controls(settings), sizing_mode="stretch_width")
