"""Attribution: which channels (or sources, or campaigns) earn a conversion's credit under every model side by
side — grouped bars per label, the same numbers as a table, the top conversion paths — and the project's
channel rules, which any key reads here and an admin key edits (`channel_rules`), as /v1/channels does.

The numbers are one answer of the `attribution` analysis and one of `conversion_paths` (no SQL here). A
conversion is a saved goal, or an event (with the property holding its value) for a project without goals.
"""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.core.properties import value as fixed
from bokeh.models import (
    ColumnDataSource,
    FactorRange,
    HoverTool,
    Legend,
    LegendItem,
    NumeralTickFormatter,
)
from bokeh.plotting import figure

from nexus.analyses.attribution import MODELS
from nexus.analyses.breakdown import OTHER
from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages import channel_rules
from nexus.dashboard.pages.shared import checked, event_names, html_table, sharing
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, empty, page

MODEL_NAMES = {"first_touch": "First touch", "last_touch": "Last touch", "linear": "Linear",
               "time_decay": "Time decay", "position_based": "Position-based", "markov": "Markov chain",
               "shapley": "Shapley value"}
# (label, format) of what the bars and the table show per label and model
MEASURES = {"conversions": ("Credited conversions", {}), "value": ("Credited value", {}),
            "share": ("Share of conversions", {"percent": True}),
            "cost_per_conversion": ("Cost per conversion", {}), "roas": ("Return on ad spend", {})}
# Without saved goals, the first of these the project sends is the conversion (Segment's e-commerce spec
# names the first); else its most frequent event.
CONVERSION_EVENTS = ("Order Completed", "purchase", "Purchase", "order_completed", "checkout", "signup", "Signed Up")


class Settings(param.Parameterized):
    conversion = param.String(default="")  # "goal:<id>" or "event:<name>"; empty: the first goal, else an event
    value_property = param.String(default="")  # of an event conversion
    by = param.Selector(default="channel", objects=["channel", "source", "campaign"])
    lookback_days = param.Integer(default=30, bounds=(1, 365))
    half_life_days = param.Integer(default=7, bounds=(1, 365))  # whole days: a link's query keeps integers
    measure = param.Selector(default="conversions", objects=list(MEASURES))


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    return page(dashboard, "attribution", lambda ctx: body(ctx, settings), settings=settings,
                controls=lambda ctx: [builder(ctx, settings)], uses_interval=False)


def conversion_of(ctx: Context, settings: Settings) -> str | dict[str, Any] | None:
    """The request's `conversion`: the chosen goal's id or event (with its value property), else the
    project's first goal, else a conversion event it sends; None for a project without events."""
    kind, _, name = settings.conversion.partition(":")
    saved = ctx.reader.goals()
    if kind == "goal" and any(goal.goal_id == name for goal in saved):
        return name
    if kind != "event" or not name:
        if saved:
            return saved[0].goal_id
        names = event_names(ctx)
        name = next((event for event in CONVERSION_EVENTS if event in names), names[0] if names else "")
    if not name:
        return None
    value = settings.value_property.strip()
    return {"event": name, **({"value_property": value} if value else {})}


def requests(ctx: Context, settings: Settings, conversion: str | dict[str, Any]) -> tuple[dict, dict]:
    """The attribution and conversion_paths requests of the page (the global filters are not theirs: a
    journey is whole sessions)."""
    common = {"conversion": conversion, "date_range": ctx.view.date_range(), "timezone": ctx.timezone,
              "by": settings.by, "lookback_days": settings.lookback_days}
    return ({**common, "half_life_days": settings.half_life_days}, {**common, "limit": 20})


def body(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    conversion = conversion_of(ctx, settings)
    if conversion is None:
        return empty("No events in this project yet: attribution needs conversions and the visits before them.")
    ctx = sharing(ctx)  # the KPI row, the bars and the table: one query
    attribution, paths = requests(ctx, settings, conversion)
    asked = checked("attribution", attribution)
    measure = settings.measure
    # The titles leave the measure out (the axis and the table say it): a pinned tile shows conversions.
    cards = [card(ctx, "Conversions in this range", "attribution", asked,
                  lambda result, _: draw(ctx, result, "totals"), chart="totals", height=110),
             card(ctx, f"Credit by {settings.by}, per model", "attribution", asked,
                  lambda result, _: draw(ctx, result, "bar", measure), chart="bar", height=420),
             card(ctx, f"Credit by {settings.by}, per model (table)", "attribution", asked,
                  lambda result, _: draw(ctx, result, "table", measure), chart="table", height=200),
             card(ctx, "Top conversion paths", "conversion_paths", checked("conversion_paths", paths),
                  lambda result, _: draw_paths(ctx, result), chart="table", height=200)]
    filtered = ("<div class='nx-muted'>The global filters do not apply here: a journey is a person's whole "
                "sessions.</div>") if ctx.view.where() else ""
    return pn.Column(theme.html(filtered, margin=(0, 10)), *cards, sizing_mode="stretch_width")


def draw(ctx: Context | None, result: Any, chart: str = "bar", measure: str = "conversions") -> pn.viewable.Viewable:
    """An attribution result as `totals` (its conversions, attributed, unattributed, lost journeys, value and
    spend), `table` (a row per label, a column per model) or grouped bars (a group per label, a bar per model),
    showing `measure` (a pinned tile shows credited conversions)."""
    if chart == "totals":
        return pn.Row(*_kpis(result), sizing_mode="stretch_width", css_classes=["nx-attribution-kpis"])
    if not result.attributed:
        return empty("No conversion in this range has a touch in its lookback.")
    if measure in ("value", "roas") and result.value is None:
        return empty("This conversion has no value: choose a goal with a value property, or name the event's.")
    if measure in ("cost_per_conversion", "roas") and result.cost is None:
        return empty("No ad spend for these labels: import a spend file (date, channel, campaign, cost) with "
                     "POST /v1/import?table=ad_spend; spend is kept per channel and campaign, not per source.")
    if chart in ("table", "number", "pie"):
        return _table(result, measure)
    return pn.pane.Bokeh(model_bars(result, measure), sizing_mode="stretch_width")


def shown(label: str) -> str:
    return "(other)" if label == OTHER else label or "(empty)"


def _credits(result: Any, measure: str) -> dict[tuple[str, str], float | None]:
    return {(row.model, row.label): getattr(row, measure) for row in result.rows}


def model_bars(result: Any, measure: str = "conversions", height: int = 380) -> figure:
    """A group of bars per label (in the result's order: most credited first), a bar per model in the
    colour of its model. Labels reach the browser as factors and data (Bokeh draws them as canvas text)."""
    credits = _credits(result, measure)
    percent = MEASURES[measure][1].get("percent", False)
    names = [MODEL_NAMES[model] for model in result.models]
    colours = {model: charts.PALETTE[MODELS.index(model) % len(charts.PALETTE)] for model in result.models}
    groups = _unique(shown(label) for label in result.labels)
    factors = [(group, name) for group in groups for name in names]
    values = [credits.get((model, label)) for label in result.labels for model in result.models]
    source = ColumnDataSource({
        "x": factors, "value": [np.nan if v is None else float(v) for v in values],
        "text": [charts.format_number(v, percent=percent) for v in values],
        "label": [shown(label) for label in result.labels for _ in result.models],
        "model": [MODEL_NAMES[model] for _ in result.labels for model in result.models],
        "colour": [colours[model] for _ in result.labels for model in result.models]})
    fig = figure(height=height, sizing_mode="stretch_width", x_range=FactorRange(*factors, group_padding=0.8),
                 tools="save,reset", toolbar_location="right")
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    bars = fig.vbar(x="x", top="value", width=0.85, source=source, fill_color="colour", line_color=None)
    fig.y_range.start = 0
    fig.xaxis.major_label_text_font_size = "0px"  # the models' names: the legend and the hover say them
    fig.xaxis.major_tick_line_color = None
    fig.xaxis.group_label_orientation = 0.6 if len(groups) > 6 else "horizontal"
    fig.yaxis.formatter = NumeralTickFormatter(format="0.[0]%" if percent else "0,0.[00]")
    fig.yaxis.axis_label = MEASURES[measure][0]
    fig.xgrid.visible = False
    # A legend item per model in the bars' order (a grouped legend would sort them by name), its colour taken
    # from the model's first bar.
    items = [LegendItem(label=fixed(name), renderers=[bars], index=i) for i, name in enumerate(names)]
    fig.add_layout(Legend(items=items, orientation="horizontal", location="top_left", label_text_font_size="12px",
                          click_policy="none"), "above")
    fig.add_tools(HoverTool(renderers=[bars], tooltips=[("Label", "@label"), ("Model", "@model"),
                                                        (MEASURES[measure][0], "@text")]))
    return fig


def _unique(labels: Any) -> list[str]:
    """Axis groups must differ: a label repeated after cutting (or '(other)' twice) is numbered."""
    seen: set[str] = set()
    found = []
    for label in labels:
        label = label if len(label) <= charts.MAX_FACTOR else label[:charts.MAX_FACTOR - 1] + "…"
        text, n = label, 1
        while text in seen:
            n += 1
            text = f"{label} ({n})"
        seen.add(text)
        found.append(text)
    return found


def _table(result: Any, measure: str) -> pn.viewable.Viewable:
    """A row per label, a column per model (and the label's ad spend when spend was imported); every cell
    is escaped by html_table."""
    credits = _credits(result, measure)
    shares = _credits(result, "share")
    style = MEASURES[measure][1]
    spend = {row.label: row.cost for row in result.rows} if result.cost is not None else None
    header = [result.by.title(), *(["Ad spend"] if spend is not None else []),
              *(MODEL_NAMES[model] for model in result.models)]

    def cell(model: str, label: str) -> str:
        text = charts.format_number(credits.get((model, label)), **style)
        if measure == "conversions" and shares.get((model, label)) is not None:
            text += f" ({charts.format_number(shares[(model, label)], percent=True)})"
        return text

    rows = [[shown(label), *([charts.format_number(spend.get(label))] if spend is not None else []),
             *(cell(model, label) for model in result.models)] for label in result.labels]
    caption = MEASURES[measure][0] + (" (share of the attributed conversions)" if measure == "conversions" else "")
    return pn.Column(theme.html(f"<div class='nx-muted'>{escape(caption)}</div>", margin=(0, 10)),
                     _marked(html_table(header, rows), "nx-model-table"), sizing_mode="stretch_width")


def _marked(table: pn.pane.HTML, name: str) -> pn.pane.HTML:
    """A table that the page's tests (and a reader's stylesheet) can find by its class."""
    table.css_classes = [name]
    return table


def _kpis(result: Any) -> list[pn.viewable.Viewable]:
    figures = [("conversions", "Conversions", result.conversions), ("attributed", "Attributed", result.attributed),
               ("unattributed", "No touch in lookback", result.unattributed),
               ("lost_journeys", "Journeys without conversion", result.lost_journeys)]
    if result.value is not None:
        figures.append(("value", "Value", result.value))
    if result.cost is not None:
        figures.append(("cost", "Ad spend", result.cost))
    return [theme.html(f"<div class='nx-kpi-card' data-attribution-kpi='{name}'><div class='nx-kpi-label'>"
                       f"{escape(label)}</div><div class='nx-kpi'>{escape(charts.format_number(value))}</div></div>",
                       width=200, sizing_mode="fixed", margin=(5, 8)) for name, label, value in figures]


def draw_paths(ctx: Context | None, result: Any, chart: str = "table") -> pn.viewable.Viewable:
    """A conversion_paths result: its top paths, with conversions, lost journeys, rate, time and touches."""
    if not result.paths:
        return empty("No conversion in this range has a touch in its lookback.")
    valued = any(path.value is not None for path in result.paths)
    header = ["Path", "Conversions", "Without conversion", "Conversion rate", "Avg. time to convert", "Touches",
              *(["Value"] if valued else [])]
    rows = [[" → ".join(shown(label) for label in path.path), charts.format_number(path.conversions),
             charts.format_number(path.lost), charts.format_number(path.conversion_rate, percent=True),
             charts.format_number(path.avg_seconds_to_convert, duration=True), charts.format_number(path.touches),
             *([charts.format_number(path.value)] if valued else [])] for path in result.paths]
    note = (f"{charts.format_number(result.distinct_paths)} distinct converting paths; on average "
            f"{charts.format_number(result.avg_touches)} touches and "
            f"{charts.format_number(result.avg_seconds_to_convert, duration=True)} from the first touch to the "
            f"conversion.")
    return pn.Column(_marked(html_table(header, rows), "nx-conversion-paths"),
                     theme.html(f"<div class='nx-muted'>{escape(note)}</div>", margin=(0, 10)),
                     sizing_mode="stretch_width")


# --- the controls ----------------------------------------------------------------------------------------

def builder(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    """What converts, how touches are labelled, the lookback, time decay's half-life, what the bars measure;
    and the channel rules."""
    saved = ctx.reader.goals()
    options = {f"Goal: {goal.name}": f"goal:{goal.goal_id}" for goal in saved}
    options |= {f"Event: {name}": f"event:{name}" for name in event_names(ctx)}
    chosen = conversion_of(ctx, settings)
    current = f"goal:{chosen}" if isinstance(chosen, str) else f"event:{chosen['event']}" if chosen else None
    if current and current not in options.values():
        options[current.replace("event:", "Event: ", 1)] = current  # a link may name an event not seen lately
    conversion = pn.widgets.Select(label="Conversion", options=options, value=current, width=260)
    value = pn.widgets.TextInput(label="Value property (events)", value=settings.value_property,
                                 placeholder="revenue", width=160)
    by = pn.widgets.Select(label="Credit", options={"channels": "channel", "sources": "source",
                                                    "campaigns": "campaign"}, value=settings.by, width=120)
    lookback = pn.widgets.IntInput(label="Lookback (days)", value=settings.lookback_days, start=1, end=365, width=120)
    half_life = pn.widgets.IntInput(label="Time decay half-life (days)", value=settings.half_life_days, start=1,
                                    end=365, width=170)
    measure = pn.widgets.Select(label="Show", options={label: name for name, (label, _) in MEASURES.items()},
                                value=settings.measure, width=190)
    conversion.param.watch(lambda e: setattr(settings, "conversion", e.new or ""), "value")
    value.param.watch(lambda e: setattr(settings, "value_property", e.new.strip()), "value")
    by.param.watch(lambda e: setattr(settings, "by", e.new), "value")
    lookback.param.watch(lambda e: setattr(settings, "lookback_days", e.new) if e.new else None, "value")
    half_life.param.watch(lambda e: setattr(settings, "half_life_days", e.new) if e.new else None, "value")
    measure.param.watch(lambda e: setattr(settings, "measure", e.new), "value")
    # A change of rules changes every answer (their cache key holds the rules): the body is drawn again.
    rules = channel_rules.editor(ctx.reader, on_change=lambda: settings.param.trigger("by"))
    return pn.Column(pn.Row(conversion, value, by, lookback, half_life, measure), rules, sizing_mode="stretch_width")
