"""Funnels: 2 to 10 steps (each an event, optionally with one property condition), ordered, strict or
unordered, within a conversion window, broken down by a property; bars with conversion and drop-off per
step, the time to convert, and the persons behind each step's numbers."""

from __future__ import annotations

from html import escape
from typing import Any

import panel as pn
import param
from bokeh.models import ColumnDataSource, DataTable, StringFormatter, TableColumn

from nexus.analyses.funnels import MODES, UNIT_SECONDS
from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages.persons import profile_link
from nexus.dashboard.pages.shared import (Breakdowns, breakdown_controls, breakdown_of, checked, event_names,
                                          event_options, group_label, html_table, sharing)
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import OPERATORS, Context, empty, new_filter, page
from nexus.dashboard.url_state import dumps, json_list
from nexus.errors import InvalidRequest
from nexus.timezones import zone

MIN_STEPS, MAX_STEPS, DEFAULT_STEPS = 2, 10, 3
PAGE_SIZE = 100
NO_FILTER = ""


class Settings(Breakdowns):
    steps = param.String(default="")  # a JSON list of {"event", "where"?}; empty: the most frequent events
    mode = param.Selector(default="ordered", objects=list(MODES))
    window = param.Integer(default=14, bounds=(1, None))
    window_unit = param.Selector(default="day", objects=list(UNIT_SECONDS))


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    names: list[str] = []

    def controls(ctx: Context) -> list[Any]:
        names[:] = event_names(ctx)
        return [builder(settings, names)]

    return page(dashboard, "funnels", lambda ctx: body(ctx, settings, names), settings=settings,
                controls=controls, uses_interval=False)


def steps_of(settings: Settings, names: list[str]) -> list[dict[str, Any]]:
    """The steps the URL gives (items that are not a step are left out), or the most frequent events."""
    given = [{k: v for k, v in item.items() if k in ("event", "where", "label")}
             for item in json_list(settings.steps) if isinstance(item, dict) and isinstance(item.get("event"), str)]
    return given or [{"event": name} for name in names[:DEFAULT_STEPS]]


def request(common: dict[str, Any], settings: Settings, names: list[str]) -> dict[str, Any]:
    """The funnel request the page sends: `common` is the shell's `ctx.common(interval=False)`; `names`
    the project's event names, most frequent first (the default steps)."""
    body: dict[str, Any] = {"steps": steps_of(settings, names), **common, "mode": settings.mode,
                            "window": settings.window, "window_unit": settings.window_unit}
    breakdown = breakdown_of(settings)
    if breakdown:
        body["breakdown"] = breakdown
    return body


def persons_request(funnel: dict[str, Any], step: int, status: str, group: str | None = None,
                    offset: int = 0) -> dict[str, Any]:
    """Who is behind a step's number: `status` "converted" at `step` (0-based) are those who reached it,
    "dropped" those who reached step-1 but not `step`; `group` a breakdown group's label."""
    body: dict[str, Any] = {"funnel": funnel, "step": step, "status": status, "limit": PAGE_SIZE, "offset": offset}
    if group is not None:
        body["breakdown_value"] = group
    return body


def body(ctx: Context, settings: Settings, names: list[str]) -> pn.viewable.Viewable:
    if len(steps_of(settings, names)) < MIN_STEPS:
        return empty("A funnel needs two steps: this project has tracked fewer than two kinds of event.")
    ctx = sharing(ctx)
    funnel = checked("funnel", request(ctx.common(interval=False), settings, names))
    people = pn.Column(sizing_mode="stretch_width")
    return pn.Column(
        card(ctx, "Funnel", "funnel", funnel, lambda result, _: pn.Column(draw(ctx, result, "funnel"),
                                                                           person_buttons(ctx, result, funnel, people)),
             chart="funnel", height=300),
        people, sizing_mode="stretch_width")


def draw(ctx: Context, result: Any, chart: str = "funnel") -> pn.viewable.Viewable:
    """A funnel result: the bars (one colour per breakdown group), and conversion and time per step."""
    everyone = result.groups[0]
    if not everyone.steps[0].persons:
        return empty("Nobody entered this funnel in this range.")
    steps = [s.label for s in everyone.steps]
    groups = {group_label(g.breakdown): [s.persons for s in g.steps] for g in result.groups[1:]} or None
    bars = charts.funnel_bars(steps, [s.persons for s in everyone.steps],
                              conversion=[s.conversion_from_first for s in everyone.steps], groups=groups)
    return pn.Column(pn.pane.Bokeh(bars, sizing_mode="stretch_width"), step_table(result),
                     sizing_mode="stretch_width")


def step_table(result: Any) -> pn.viewable.Viewable:
    """Per step (everyone): persons, conversion, drop-off and the time from the previous step."""
    header = ["Step", "Persons", "From first", "From previous", "Dropped off", "Median time", "Average time"]
    rows = [[f"{s.step + 1}. {s.label}", charts.format_number(s.persons),
             charts.format_number(s.conversion_from_first, percent=True),
             charts.format_number(s.conversion_from_previous, percent=True) if s.step else charts.MISSING,
             charts.format_number(s.dropped) if s.step else charts.MISSING,
             charts.format_number(s.median_seconds, duration=True), charts.format_number(s.avg_seconds, duration=True)]
            for s in result.groups[0].steps]
    return html_table(header, rows)


def person_buttons(ctx: Context, result: Any, funnel: dict[str, Any], people: pn.Column) -> pn.viewable.Viewable:
    """A button per step for the persons who reached it and for those who dropped off after it; the list
    opens in its own card under the funnel."""
    everyone = result.groups[0]
    if not everyone.steps[0].persons:
        return pn.Column()
    labels = {group_label(g.breakdown): g.breakdown for g in result.groups}
    group = pn.widgets.Select(label="Persons of", options=list(labels), value="Everyone", width=200,
                              visible=len(labels) > 1)

    def show(step: int, status: str) -> None:
        people.objects = [persons_card(ctx, funnel, step, status, labels[group.value], 0, people)]

    rows = [theme.html("<div class='nx-muted'>Who is behind the numbers:</div>", margin=(10, 10, 0, 10)), group]
    for lists in person_lists(len(everyone.steps)):
        buttons = []
        for step, status in lists:
            button = pn.widgets.Button(label=persons_title(step, status), button_type="light", width=210)
            button.on_click(lambda _, k=step, s=status: show(k, s))
            buttons.append(button)
        rows.append(pn.Row(*buttons))
    return pn.Column(*rows, sizing_mode="stretch_width")


def person_lists(steps: int) -> list[list[tuple[int, str]]]:
    """Per step of the funnel, the persons lists it offers as (step, status) of a funnel_persons request:
    those who reached it and, but for the last step, those who dropped off after it (whose depth is the
    next step's index)."""
    return [[(k, "converted"), *([(k + 1, "dropped")] if k + 1 < steps else [])] for k in range(steps)]


def persons_title(step: int, status: str) -> str:
    """What a list holds, in the page's 1-based step numbers (`step` is the request's 0-based index)."""
    if status == "dropped":
        return f"Dropped off after step {step}"
    return f"Reached step {step + 1}" if step else "Entered the funnel"


def persons_card(ctx: Context, funnel: dict[str, Any], step: int, status: str, group: str | None, offset: int,
                 holder: pn.Column) -> pn.viewable.Viewable:
    title = persons_title(step, status) + (f" · {group_label(group)}" if group is not None else "")

    def page_at(at: int) -> None:
        holder.objects = [persons_card(ctx, funnel, step, status, group, at, holder)]

    def drawn(result: Any, _: Any) -> pn.viewable.Viewable:
        if not result.persons:
            return empty("Nobody.")
        table = persons_table(result)
        earlier = pn.widgets.Button(label=f"← Previous {PAGE_SIZE}", button_type="light", width=130,
                                    disabled=offset == 0)
        later = pn.widgets.Button(label=f"Next {PAGE_SIZE} →", button_type="light", width=130,
                                  disabled=not result.has_more)
        earlier.on_click(lambda _: page_at(max(offset - PAGE_SIZE, 0)))
        later.on_click(lambda _: page_at(offset + PAGE_SIZE))
        shown = f"Persons {offset + 1}–{offset + len(result.persons)}{' (more follow)' if result.has_more else ''}"
        return pn.Column(table, pn.Row(earlier, later, theme.html(f"<div class='nx-muted'>{shown}</div>",
                                                                   margin=(12, 10))),
                         profile_links(ctx, table, [p.person for p in result.persons]), sizing_mode="stretch_width")

    return card(ctx, title, "funnel_persons", persons_request(funnel, step, status, group, offset), drawn,
                chart="table", height=200)


def draw_persons(ctx: Context, result: Any, chart: str = "table") -> pn.viewable.Viewable:
    """A page of a step's persons (as a pinned tile draws it)."""
    return persons_table(result) if result.persons else empty("Nobody.")


def profile_links(ctx: Context, table: pn.pane.Bokeh, persons: list[str]) -> pn.viewable.Viewable:
    """Under a persons table: a click on a row offers that person's profile (the table's cells stay text)."""
    link = theme.html("<div class='nx-muted'>Click a person to open their profile.</div>", margin=(0, 10))

    def picked(_attr: str, _old: list[int], new: list[int]) -> None:
        if new:
            person = persons[new[0]]
            shown = profile_link(ctx, person, f"Open the profile of {person} →")
            link.object = f"<div data-role='profile-link'>{shown}</div>"

    table.object.source.selected.on_change("indices", picked)
    return link


def persons_table(result: Any) -> pn.viewable.Viewable:
    """Persons as a Bokeh table: its StringFormatter puts every cell in as text, never as markup."""
    tz = zone(result.timezone)
    source = ColumnDataSource({
        "person": [p.person for p in result.persons],
        "depth": [str(p.depth) for p in result.persons],
        "entered": [p.entered_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") for p in result.persons],
    })
    text = StringFormatter()
    columns = [TableColumn(field="person", title="Person (distinct id)", formatter=text, width=420),
               TableColumn(field="depth", title="Steps reached", formatter=text, width=110),
               TableColumn(field="entered", title=f"Entered ({result.timezone})", formatter=text, width=180)]
    table = DataTable(source=source, columns=columns, index_position=None, sizing_mode="stretch_width",
                      height=min(36 + 25 * len(result.persons), 420))
    return pn.pane.Bokeh(table, sizing_mode="stretch_width")


# --- the step builder -----------------------------------------------------------------------------------

def step_filter(item: dict[str, Any]) -> dict[str, Any] | None:
    """The one condition the builder shows for a step: the first of its filters."""
    filters = (item.get("where") or {}).get("filters") if isinstance(item.get("where"), dict) else None
    return filters[0] if isinstance(filters, list) and filters and isinstance(filters[0], dict) else None


def step_row(index: int, item: dict[str, Any], names: list[str], removable: bool,
             replace: Any) -> pn.viewable.Viewable:
    """The widgets of one step; `replace(index, step, error)` takes the edited step (None: removed)."""
    condition = step_filter(item) or {}
    shown = condition.get("value")
    event = pn.widgets.Select(label=f"Step {index + 1}", options=event_options(names, item["event"], any_event=False),
                              value=item["event"], width=200)
    source = pn.widgets.Select(label="where", options=["event", "person", "column"],
                               value=condition.get("source", "event"), width=90)
    key = pn.widgets.TextInput(label="Property", value=str(condition.get("key", "")), placeholder="(none)",
                               width=130)
    op = pn.widgets.Select(label="Operator", options=OPERATORS, value=condition.get("op", "eq"), width=100)
    value = pn.widgets.TextInput(label="Value", width=130, value=", ".join(map(str, shown)) if isinstance(shown, list)
                                 else "" if shown is None else str(shown))
    remove = pn.widgets.Button(label="✕", width=40, margin=(23, 5, 5, 5), disabled=not removable,
                               description="Remove this step")

    def new_event(_: object) -> None:  # the step's conditions stay as they are, shown or not
        replace(index, {**item, "event": event.value})

    def new_condition(_: object) -> None:
        step = {k: v for k, v in item.items() if k != "where"}
        if key.value.strip():
            try:
                wanted = new_filter(key.value, op.value, source.value, value.value)
            except InvalidRequest as error:
                return replace(index, None, error)
            step["where"] = {"filters": [wanted]}
        replace(index, step)

    event.param.watch(new_event, "value")
    for widget in (source, key, op, value):
        widget.param.watch(new_condition, "value")
    remove.on_click(lambda _: replace(index, None))
    hidden = conditions(item) - (1 if condition else 0)
    note = [theme.html(f"<div class='nx-muted'>and {hidden} more condition{'s' if hidden > 1 else ''} from the link"
                       " (editing this row replaces them)</div>", margin=(30, 5, 5, 5), width=260)] if hidden else []
    return pn.Row(event, source, key, op, value, remove, *note)


def conditions(item: dict[str, Any]) -> int:
    """How many conditions a step's `where` holds (filters and nested groups)."""
    where = item.get("where")
    if not isinstance(where, dict):
        return 0
    return len(where.get("filters") or []) + len(where.get("groups") or [])


def builder(settings: Settings, names: list[str]) -> pn.viewable.Viewable:
    """One row per step: its event, and a property condition (source, key, operator, value); then the
    mode, the conversion window and the breakdown."""
    rows = pn.Column(sizing_mode="stretch_width")
    problem = theme.html("", visible=False)

    def current() -> list[dict[str, Any]]:
        return steps_of(settings, names)

    def replace(index: int, step: dict[str, Any] | None, error: Exception | None = None) -> None:
        """Step `index` becomes `step` (None: removed), or the builder says why it cannot."""
        if error is not None:
            problem.object = f"<div class='nx-notice nx-warning'>Step {index + 1}: {escape(str(error))}</div>"
            problem.visible = True
            return
        problem.visible = False
        steps = current()
        settings.steps = dumps([s for j, s in enumerate(steps) if j != index] if step is None else
                               [step if j == index else s for j, s in enumerate(steps)])

    def redraw(*_: object) -> None:
        items = current()
        rows.objects = [step_row(index, item, names, len(items) > MIN_STEPS, replace)
                        for index, item in enumerate(items)]
        add.disabled = len(items) >= MAX_STEPS

    add = pn.widgets.Button(label="+ Step", button_type="light", width=90, margin=(23, 5, 5, 5))
    add.on_click(lambda _: setattr(settings, "steps", dumps(current() + [{"event": (names or [""])[0]}])))
    mode = pn.widgets.Select(label="Order", options={"In order": "ordered", "Strictly in a row": "strict",
                                                    "Any order": "unordered"}, value=settings.mode, width=150)
    window = pn.widgets.IntInput(label="Conversion window", value=settings.window, start=1, width=110)
    unit = pn.widgets.Select(label="unit", options=list(UNIT_SECONDS), value=settings.window_unit, width=90)
    mode.param.watch(lambda e: setattr(settings, "mode", e.new), "value")
    window.param.watch(lambda e: setattr(settings, "window", e.new) if e.new and e.new >= 1 else None, "value")
    unit.param.watch(lambda e: setattr(settings, "window_unit", e.new), "value")
    settings.param.watch(redraw, "steps")
    redraw()
    return pn.Column(rows, problem, pn.Row(add, mode, window, unit, *breakdown_controls(settings)),
                     sizing_mode="stretch_width")
