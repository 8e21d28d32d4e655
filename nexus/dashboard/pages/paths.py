"""Paths: where persons go from a step (or how they came to one), as a Sankey diagram drawn with Bokeh —
nodes per step as bars, the paths between them as bands — and, for a node clicked, the persons behind it."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, Range1d, TapTool, Text
from bokeh.plotting import figure

from nexus.analyses import registry
from nexus.analyses.breakdown import OTHER
from nexus.analyses.funnels import UNIT_SECONDS
from nexus.analyses.paths import MAX_NODES_PER_STEP, MAX_STEPS
from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages.persons import profile_link
from nexus.dashboard.pages.shared import checked, html_table, sharing
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, empty, page
from nexus.errors import InvalidRequest
from nexus.timezones import zone

PAGE_SIZE = 100
NODE_WIDTH = 0.06  # of the space between two steps
OTHER_COLOUR = "#999999"
MAX_LABEL = 28  # characters of a node's name on the chart; the hover shows it whole
CURVE_POINTS = 24


class Settings(param.Parameterized):
    anchor = param.String(default="")  # a step name: an event name or a page path; empty: each first step
    direction = param.Selector(default="start", objects=["start", "end"])
    step_type = param.Selector(default="both", objects=["both", "events", "pages"])
    steps = param.Integer(default=5, bounds=(2, MAX_STEPS))
    nodes_per_step = param.Integer(default=10, bounds=(1, MAX_NODES_PER_STEP))
    within = param.Selector(default="session", objects=["session", "window"])
    gap_minutes = param.Integer(default=30, bounds=(1, 24 * 60))
    window = param.Integer(default=1, bounds=(1, None))
    window_unit = param.Selector(default="day", objects=list(UNIT_SECONDS))
    collapse_repeats = param.Boolean(default=True)
    cleaning = param.String(default="")  # rules, one a line: pattern => replacement


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    return page(dashboard, "paths", lambda ctx: body(ctx, settings), settings=settings,
                controls=lambda ctx: [builder(settings)], uses_interval=False)


def cleaning_rules(text: str) -> list[dict[str, str]]:
    """Rules as the page's text box holds them, one a line: `pattern => replacement` (no arrow: replaced
    by nothing)."""
    rules = []
    for line in text.splitlines():
        if line.strip():
            pattern, _, replacement = line.partition("=>")
            rules.append({"pattern": pattern.strip(), "replacement": replacement.strip()})
    return rules


def request(common: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The paths request the page sends; `common` is the shell's `ctx.common(interval=False)`."""
    body: dict[str, Any] = {
        **common, "step_type": settings.step_type, "steps": settings.steps,
        "nodes_per_step": settings.nodes_per_step, "within": settings.within, "gap_minutes": settings.gap_minutes,
        "window": settings.window, "window_unit": settings.window_unit, "collapse_repeats": settings.collapse_repeats,
        "cleaning": cleaning_rules(settings.cleaning)}
    if settings.anchor.strip():
        body[settings.direction] = settings.anchor.strip()
    return body


def body(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    ctx = sharing(ctx)
    asked = checked("paths", request(ctx.common(interval=False), settings))
    people = pn.Column(sizing_mode="stretch_width")

    def drawn(result: Any, _: Any) -> pn.viewable.Viewable:
        def clicked(node: Any) -> None:
            people.objects = [persons_card(ctx, asked, node.step, node.name, "reached", 0, people)]

        return draw(ctx, result, on_node=clicked)

    return pn.Column(card(ctx, "Paths", "paths", asked, drawn, chart="sankey", height=480), people,
                     sizing_mode="stretch_width")


def draw(ctx: Context, result: Any, chart: str = "sankey", on_node: Any = None) -> pn.viewable.Viewable:
    """A paths result as a Sankey diagram and a line on what it counts (`chart` "table": its edges as a
    table); `on_node(node)` is called with the node a click selects."""
    if not result.nodes:
        return empty("No paths in this range.")
    if chart == "table":
        named = {n.id: n for n in result.nodes}
        return html_table(["From", "To", "Paths", "Persons"], [
            [f"{named[e.source].step}. {_shown(named[e.source].name)}",
             f"{named[e.target].step}. {_shown(named[e.target].name)}",
             charts.format_number(e.value), charts.format_number(e.persons)] for e in result.edges], numeric_from=2)
    fig, nodes = sankey(result)
    if on_node is not None:
        source = fig.select_one({"name": "nodes"}).data_source

        def selected(_: str, __: list[int], indices: list[int]) -> None:
            if indices:
                on_node(nodes[indices[0]])

        source.selected.on_change("indices", selected)
    unit = "sessions" if result.unit == "sessions" else "persons"
    note = (f"{charts.format_number(result.paths)} {unit} {'end' if result.direction == 'backward' else 'start'} "
            f"here; a band's width is the {unit} taking it. Click a step to list its persons.")
    return pn.Column(pn.pane.Bokeh(fig, sizing_mode="stretch_width"),
                     theme.html(f"<div class='nx-muted'>{escape(note)}</div>", margin=(0, 10)),
                     sizing_mode="stretch_width")


def sankey(result: Any, height: int = 420) -> tuple[figure, list[Any]]:
    """Nodes as bars in a column per step (time runs left to right, so a backward path's end is on the
    right), stacked by value, and each edge as a band between its nodes bounded by two cubic Bézier
    curves, as wide at each end as its paths. Bokeh has no Sankey glyph: bars are quads, bands patches.
    Returns the figure and its nodes in the order of the node glyph's rows."""
    steps = max(n.step for n in result.nodes) + 1
    backward = result.direction == "backward"

    def column(step: int) -> int:
        return steps - 1 - step if backward else step

    columns: dict[int, list[Any]] = {}
    for node in result.nodes:
        columns.setdefault(column(node.step), []).append(node)
    tallest = max(sum(n.value for n in nodes) for nodes in columns.values())
    most = max(len(nodes) for nodes in columns.values())
    gap = tallest * 0.25 / max(most - 1, 1)
    box: dict[str, list[float]] = {}  # id → [left, right, top, bottom]
    for x, nodes in columns.items():
        top = 0.0
        for node in nodes:
            box[node.id] = [x, x + NODE_WIDTH, top, top - node.value]
            top -= node.value + gap
    colours = charts.colours_for(n.name for n in result.nodes if n.name != OTHER)
    colour = {n.id: OTHER_COLOUR if n.name == OTHER else colours[n.name] for n in result.nodes}
    # Where the next band leaves a node (under the bands already leaving it) and enters one.
    leaves = {i: b[2] for i, b in box.items()}
    enters = dict(leaves)
    bands: dict[str, list[Any]] = {"xs": [], "ys": [], "colour": [], "source": [], "target": [], "value": []}
    named = {n.id: n for n in result.nodes}
    for edge in sorted(result.edges, key=lambda e: (box[e.source][0], -box[e.source][2], -box[e.target][2])):
        s, t = box[edge.source], box[edge.target]
        s_top, t_top = leaves[edge.source], enters[edge.target]
        leaves[edge.source] -= edge.value
        enters[edge.target] -= edge.value
        top_x, top_y = _curve(s[1], s_top, t[0], t_top)
        bottom_x, bottom_y = _curve(t[0], t_top - edge.value, s[1], s_top - edge.value)
        bands["xs"].append(np.concatenate([top_x, bottom_x]))
        bands["ys"].append(np.concatenate([top_y, bottom_y]))
        bands["colour"].append(colour[edge.source])
        bands["source"].append(named[edge.source].name)
        bands["target"].append(named[edge.target].name)
        bands["value"].append(charts.format_number(edge.value))
    ordered = list(result.nodes)
    nodes = ColumnDataSource({
        "left": [box[n.id][0] for n in ordered], "right": [box[n.id][1] for n in ordered],
        "top": [box[n.id][2] for n in ordered], "bottom": [box[n.id][3] for n in ordered],
        "colour": [colour[n.id] for n in ordered], "name": [_shown(n.name) for n in ordered],
        "step": [n.step for n in ordered], "value": [charts.format_number(n.value) for n in ordered],
        "persons": [charts.format_number(n.persons) for n in ordered],
        "dropped": [charts.format_number(n.dropped) for n in ordered],
        "label": [_label(n.name) for n in ordered], "label_x": [box[n.id][1] + 0.02 for n in ordered],
        "label_y": [(box[n.id][2] + box[n.id][3]) / 2 for n in ordered],
    })
    lowest = min(b[3] for b in box.values())
    fig = figure(height=height, sizing_mode="stretch_width", tools="tap,reset,save", toolbar_location="right",
                 x_range=Range1d(-0.05, steps - 1 + 0.75), y_range=Range1d(lowest - gap * 0.5, gap * 0.5))
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    fig.axis.visible = False
    fig.grid.visible = False
    drawn_bands = fig.patches("xs", "ys", source=ColumnDataSource(bands), fill_color="colour", fill_alpha=0.3,
                              line_alpha=0, hover_fill_alpha=0.55)
    drawn_nodes = fig.quad(left="left", right="right", top="top", bottom="bottom", source=nodes, color="colour",
                           name="nodes", nonselection_fill_alpha=0.35, selection_line_color="#303030")
    fig.add_glyph(nodes, Text(x="label_x", y="label_y", text="label", text_baseline="middle",
                              text_font_size="11px"))
    fig.select_one(TapTool).renderers = [drawn_nodes]
    fig.add_tools(
        HoverTool(renderers=[drawn_nodes], tooltips=[("Step", "@step"), ("Name", "@name"), ("Paths", "@value"),
                                                     ("Persons", "@persons"), ("Ended here", "@dropped")]),
        HoverTool(renderers=[drawn_bands], tooltips=[("From", "@source"), ("To", "@target"), ("Paths", "@value")]))
    return fig, ordered


def _curve(x0: float, y0: float, x1: float, y1: float) -> tuple[np.ndarray, np.ndarray]:
    """Points of the cubic Bézier from (x0, y0) to (x1, y1) that leaves and arrives level."""
    t = np.linspace(0.0, 1.0, CURVE_POINTS)
    middle = (x0 + x1) / 2
    xs = (1 - t) ** 3 * x0 + 3 * (1 - t) ** 2 * t * middle + 3 * (1 - t) * t ** 2 * middle + t ** 3 * x1
    ys = (1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * y0 + 3 * (1 - t) * t ** 2 * y1 + t ** 3 * y1
    return xs, ys


def _shown(name: str) -> str:
    return "(other steps)" if name == OTHER else name or "(empty)"


def _label(name: str) -> str:
    """A node's name on the chart, cut to MAX_LABEL characters (Bokeh draws text on its canvas, as text)."""
    shown = _shown(name)
    return shown if len(shown) <= MAX_LABEL else shown[:MAX_LABEL - 1] + "…"


# --- a node's persons ------------------------------------------------------------------------------------

def persons_request(paths: dict[str, Any], step: int, node: str, status: str, offset: int = 0) -> dict[str, Any]:
    return {"paths": paths, "step": step, "node": node, "status": status, "limit": PAGE_SIZE, "offset": offset}


def persons_card(ctx: Context, paths: dict[str, Any], step: int, node: str, status: str, offset: int,
                 holder: pn.Column) -> pn.viewable.Viewable:
    """The persons who reached `node` at `step` (or whose path ended there), a page at a time."""
    verb = "ended at" if status == "dropped" else "reached"
    title = f"Persons who {verb} {_shown(node)} (step {step})"

    def show(at: int, wanted: str = status) -> None:
        holder.objects = [persons_card(ctx, paths, step, node, wanted, at, holder)]

    def drawn(result: Any, _: Any) -> pn.viewable.Viewable:
        other = "reached" if status == "dropped" else "dropped"
        switch = pn.widgets.Button(label="Those who reached it" if other == "reached" else "Those whose path ended here",
                                   button_type="light", width=220)
        switch.on_click(lambda _: show(0, other))
        if not result.persons:
            return pn.Column(empty("Nobody."), switch)
        earlier = pn.widgets.Button(label=f"← Previous {PAGE_SIZE}", button_type="light", width=130,
                                    disabled=offset == 0)
        later = pn.widgets.Button(label=f"Next {PAGE_SIZE} →", button_type="light", width=130,
                                  disabled=not result.has_more)
        earlier.on_click(lambda _: show(max(offset - PAGE_SIZE, 0)))
        later.on_click(lambda _: show(offset + PAGE_SIZE))
        return pn.Column(persons_table(ctx, result), pn.Row(earlier, later, switch), sizing_mode="stretch_width")

    return card(ctx, title, "paths_persons", persons_request(paths, step, node, status, offset), drawn,
                chart="table", height=200)


def draw_persons(ctx: Context, result: Any, chart: str = "table") -> pn.viewable.Viewable:
    """A page of a node's persons (as a pinned tile draws it)."""
    return persons_table(ctx, result) if result.persons else empty("Nobody.")


def persons_table(ctx: Context, result: Any) -> pn.viewable.Viewable:
    """Persons with a link to each profile; every cell escaped (ids are the sender's strings)."""
    tz = zone(result.timezone)
    rows = "".join(
        f"<tr><td>{profile_link(ctx, p.person)}</td><td style='text-align:right'>{p.paths}</td>"
        f"<td>{escape(p.anchored_at.astimezone(tz).strftime('%Y-%m-%d %H:%M:%S'))}</td></tr>"
        for p in result.persons)
    return theme.html(
        f"<table class='nx-table' data-role='path-persons'><thead><tr><th>Person</th><th>Paths</th>"
        f"<th>First path began ({escape(result.timezone)})</th></tr></thead><tbody>{rows}</tbody></table>",
        margin=(5, 10), sizing_mode="stretch_width")


# --- the controls ----------------------------------------------------------------------------------------

def builder(settings: Settings) -> pn.viewable.Viewable:
    """Where paths start (or end), what a step is, how many steps and nodes, sessions or a time window,
    repeats, and cleaning rules for page paths."""
    direction = pn.widgets.Select(label="Paths", options={"starting at": "start", "ending at": "end"},
                                  value=settings.direction, width=120)
    anchor = pn.widgets.TextInput(label="Step (event or page path)", value=settings.anchor,
                                  placeholder="(each first step)", width=200)
    step_type = pn.widgets.Select(label="Steps are", options={"events and pages": "both", "events": "events",
                                                              "pages": "pages"}, value=settings.step_type, width=140)
    steps = pn.widgets.IntInput(label="Steps", value=settings.steps, start=2, end=MAX_STEPS, width=80)
    nodes = pn.widgets.IntInput(label="Nodes per step", value=settings.nodes_per_step, start=1,
                                end=MAX_NODES_PER_STEP, width=110)
    within = pn.widgets.Select(label="Within", options={"a session": "session", "a time window": "window"},
                               value=settings.within, width=130)
    gap = pn.widgets.IntInput(label="Session gap (minutes)", value=settings.gap_minutes, start=1, end=24 * 60,
                              width=150, visible=settings.within == "session")
    window = pn.widgets.IntInput(label="Window", value=settings.window, start=1, width=80,
                                 visible=settings.within == "window")
    unit = pn.widgets.Select(label="unit", options=list(UNIT_SECONDS), value=settings.window_unit, width=90,
                             visible=settings.within == "window")
    collapse = pn.widgets.Checkbox(name="Collapse repeated steps", value=settings.collapse_repeats,
                                   margin=(30, 10, 5, 10))
    cleaning = pn.widgets.TextAreaInput(label="Path cleaning (one rule a line: RE2 pattern => replacement)",
                                        value=settings.cleaning, placeholder="^/item/\\d+$ => /item/:id",
                                        height=70, width=420)
    problem = theme.html("", visible=False)

    def set_cleaning(text: str) -> None:
        try:  # the check the request gets, shown beside the box
            registry.decode("paths", {"cleaning": cleaning_rules(text)})
        except InvalidRequest as error:
            problem.object = f"<div class='nx-notice nx-warning'>{escape(str(error))}</div>"
            problem.visible = True
            return
        problem.visible = False
        settings.cleaning = text

    def set_within(value: str) -> None:
        gap.visible, window.visible, unit.visible = value == "session", value == "window", value == "window"
        settings.within = value

    direction.param.watch(lambda e: setattr(settings, "direction", e.new), "value")
    anchor.param.watch(lambda e: setattr(settings, "anchor", e.new.strip()), "value")
    step_type.param.watch(lambda e: setattr(settings, "step_type", e.new), "value")
    steps.param.watch(lambda e: setattr(settings, "steps", e.new) if e.new else None, "value")
    nodes.param.watch(lambda e: setattr(settings, "nodes_per_step", e.new) if e.new else None, "value")
    within.param.watch(lambda e: set_within(e.new), "value")
    gap.param.watch(lambda e: setattr(settings, "gap_minutes", e.new) if e.new else None, "value")
    window.param.watch(lambda e: setattr(settings, "window", e.new) if e.new else None, "value")
    unit.param.watch(lambda e: setattr(settings, "window_unit", e.new), "value")
    collapse.param.watch(lambda e: setattr(settings, "collapse_repeats", e.new), "value")
    cleaning.param.watch(lambda e: set_cleaning(e.new), "value")
    return pn.Column(pn.Row(direction, anchor, step_type, steps, nodes, within, gap, window, unit, collapse),
                     pn.Row(cleaning, problem), sizing_mode="stretch_width")
