"""The frame around every page: navigation, project switcher, the global date range, time zone, filters
and interval, light and dark theme, and the URL that holds all of them (a page with its settings is a
link that opens the same view).

A page is a function `body(ctx) -> Viewable`, rebuilt when a global setting changes; it reads through
`ctx.reader` only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import urlencode

import msgspec
import panel as pn
import param

from nexus.analyses.filters import Filter
from nexus.dashboard import theme
from nexus.dashboard.url_state import keep_json_in_url, synced
from nexus.dashboard.session import Dashboard, Reader
from nexus.errors import InvalidRequest, NexusError, new_error_id

log = logging.getLogger("nexus.dashboard")

PRESETS = {"today": "Today", "yesterday": "Yesterday", "-7d": "Last 7 days", "-30d": "Last 30 days",
           "-90d": "Last 90 days", "this_month": "This month", "last_month": "Last month", "custom": "Custom"}
INTERVALS = ["hour", "day", "week", "month"]
ZONES = ["UTC", "Europe/London", "Europe/Berlin", "Europe/Paris", "America/New_York", "America/Chicago",
         "America/Denver", "America/Los_Angeles", "America/Sao_Paulo", "Asia/Kolkata", "Asia/Shanghai",
         "Asia/Tokyo", "Australia/Sydney"]
OPERATORS = ["eq", "neq", "contains", "not_contains", "regex", "not_regex", "gt", "gte", "lt", "lte",
             "is_set", "is_not_set", "in", "not_in"]
NAV = [("overview", "Overview"), ("trends", "Trends"), ("funnels", "Funnels"), ("paths", "Paths"),
       ("retention", "Retention"), ("sessions", "Sessions"), ("goals", "Goals"), ("attribution", "Attribution"),
       ("experiments", "Experiments"),
       ("stickiness", "Stickiness & lifecycle"), ("events", "Events"), ("persons", "Persons"),
       ("cohorts", "Cohorts"), ("predictions", "Predictions"), ("sql", "SQL"),
       ("dashboards", "Dashboards"), ("exports", "Exports")]


class View(param.Parameterized):
    """The global settings, mirrored in the URL's query string."""

    project = param.Integer(default=0)
    range = param.Selector(default="-7d", objects=list(PRESETS))
    date_from = param.String(default="")
    date_to = param.String(default="")
    tz = param.String(default="")
    filters = param.String(default="")  # a JSON list of filters, the API's vocabulary
    interval = param.Selector(default="day", objects=INTERVALS)
    theme = param.Selector(default="light", objects=["light", "dark"])

    def date_range(self) -> dict[str, str]:
        if self.range == "custom" and self.date_from:
            return {"date_from": self.date_from, **({"date_to": self.date_to} if self.date_to else {})}
        return {"date_from": self.range if self.range != "custom" else "-7d"}

    def filter_list(self) -> list[dict[str, Any]]:
        try:
            value = json.loads(self.filters) if self.filters else []
        except ValueError:
            return []
        return value if isinstance(value, list) else []

    def where(self) -> dict[str, Any] | None:
        filters = self.filter_list()
        return {"filters": filters} if filters else None

    def add_filter(self, item: dict[str, Any]) -> None:
        if item not in self.filter_list():
            self.filters = json.dumps(self.filter_list() + [item], separators=(",", ":"))

    def remove_filter(self, index: int) -> None:
        filters = self.filter_list()
        del filters[index]
        self.filters = json.dumps(filters, separators=(",", ":")) if filters else ""


GLOBAL_PARAMS = ["project", "range", "date_from", "date_to", "tz", "filters", "interval", "theme"]


class Context:
    """What a page body gets: the reader for the chosen project and the global settings."""

    def __init__(self, reader: Reader, view: View, page: str):
        self.reader = reader
        self.view = view
        self.page = page

    @property
    def timezone(self) -> str:
        return self.view.tz or self.reader.grant.timezone

    @property
    def dark(self) -> bool:
        return self.view.theme == "dark"

    def common(self, *, interval: bool = True) -> dict[str, Any]:
        """The request fields every analysis shares, from the global settings."""
        request: dict[str, Any] = {"date_range": self.view.date_range(), "timezone": self.timezone}
        if interval:
            request["interval"] = self.view.interval
        where = self.view.where()
        if where:
            request["where"] = where
        return request

    def link(self, page: str, **extra: Any) -> str:
        """The URL of `page` with the current global settings (and `extra` page settings)."""
        values = {name: getattr(self.view, name) for name in GLOBAL_PARAMS}
        defaults = {name: View.param[name].default for name in GLOBAL_PARAMS}
        query = {k: v for k, v in values.items() if v != defaults[k]} | {k: v for k, v in extra.items() if v}
        return f"/{page}" + (f"?{urlencode(query)}" if query else "")


def page(dashboard: Dashboard, name: str, body: Callable[[Context], Any], *,
         controls: Callable[[Context], list[Any]] | None = None, settings: param.Parameterized | None = None,
         uses_interval: bool = True, uses_filters: bool = True, uses_dates: bool = True) -> pn.viewable.Viewable:
    """The page `name` for whoever opened it: its body inside the shell, or the reason it cannot be shown.
    The body is drawn again when a global setting or one of the page's own `settings` changes. A page
    that reads no date range or filters (the SQL explorer) shows no bar for them; one that reads filters
    but no dates (the persons list) shows the time zone and the filters only."""
    viewer = dashboard.viewer()
    view = View()
    _read_url(view)
    theme.apply(view.theme == "dark")
    if viewer is None:
        return _frame(view, None, name, _notice("Your sign-in ended. <a href='/login'>Sign in again</a>."))
    grant = viewer.grant(view.project or None)
    if grant is None:
        here = escape(f"/{name}?{urlencode(_args())}", quote=True)
        return _frame(view, None, name, _notice(
            f"None of your keys opens project {view.project}. "
            f"<a href='/login?next={here}'>Add a key of that project</a>."))
    view.project = grant.project_id
    ctx = Context(Reader(dashboard, viewer, grant), view, name)
    keep_json_in_url()  # the global filters are JSON too
    pn.state.location.sync(view, {name: name for name in GLOBAL_PARAMS})
    if settings is not None:
        synced(settings)
    extra = controls(ctx) if controls else []
    watched = [view.param[p] for p in GLOBAL_PARAMS]
    if settings is not None:
        watched += [settings.param[p] for p in settings.param if p != "name"]
    content = pn.panel(pn.bind(lambda *_: guarded(lambda: body(ctx)), *watched), sizing_mode="stretch_width")
    bar = [_settings(ctx, uses_interval, uses_dates)] if uses_filters else []
    layout = _frame(view, ctx, name, pn.Column(*bar, *extra, content, sizing_mode="stretch_width"))
    _watch_sign_in(ctx, layout)
    return layout


def guarded(build: Callable[[], Any]) -> Any:
    """`build()`, or the reason it failed as a notice: a bad filter says what is wrong, never a traceback."""
    try:
        return build()
    except NexusError as e:
        return error_notice(e)
    except Exception:
        error_id = new_error_id()
        log.exception("dashboard error %s", error_id)
        return _notice(f"Something went wrong (error {error_id}: the server log has the details).", "danger")


def error_notice(error: NexusError) -> pn.viewable.Viewable:
    field = f" (field {error.field})" if isinstance(error, InvalidRequest) and error.field else ""
    return _notice(escape(str(error)) + escape(field), "warning")


def _notice(html: str, kind: str = "info") -> pn.viewable.Viewable:
    """A message box; `html` is trusted markup, so every user string in it must be escaped by the caller."""
    return theme.html(f"<div class='nx-notice nx-{kind}' role='status'>{html}</div>")


def empty(message: str = "No events in this range.") -> pn.viewable.Viewable:
    return _notice(escape(message))


def _args() -> dict[str, str]:
    return {k: v[0].decode(errors="replace") for k, v in (pn.state.session_args or {}).items() if v}


def _read_url(view: View) -> None:
    """The settings the URL gives; a value that does not fit is ignored (the default stays)."""
    for name, text in _args().items():
        if name not in GLOBAL_PARAMS:
            continue
        try:
            view.param.update(**{name: int(text) if name == "project" else text})
        except (ValueError, TypeError):
            continue


def _settings(ctx: Context, uses_interval: bool, uses_dates: bool) -> pn.viewable.Viewable:
    view = ctx.view
    preset = pn.widgets.Select(label="Date range", options={v: k for k, v in PRESETS.items()}, value=view.range, width=150)
    start = pn.widgets.TextInput(label="From", value=view.date_from, placeholder="2026-10-01", width=120,
                                 visible=view.range == "custom")
    end = pn.widgets.TextInput(label="To", value=view.date_to, placeholder="2026-10-31", width=120,
                               visible=view.range == "custom")
    zones = sorted(set(ZONES) | {ctx.timezone})
    zone = pn.widgets.Select(label="Time zone", options=zones, value=ctx.timezone, width=170)
    interval = pn.widgets.Select(label="Interval", options=INTERVALS, value=view.interval, width=100,
                                 visible=uses_interval)

    def on_preset(event: param.parameterized.Event) -> None:
        start.visible = end.visible = event.new == "custom"
        if event.new != "custom" or start.value:
            view.range = event.new

    def on_custom(_: param.parameterized.Event) -> None:
        if start.value:
            view.param.update(range="custom", date_from=start.value.strip(), date_to=end.value.strip())

    preset.param.watch(on_preset, "value")
    start.param.watch(on_custom, "value")
    end.param.watch(on_custom, "value")
    zone.param.watch(lambda e: setattr(view, "tz", e.new if e.new != ctx.reader.grant.timezone else ""), "value")
    interval.param.watch(lambda e: setattr(view, "interval", e.new), "value")
    dates = [preset, start, end] if uses_dates else []
    return pn.Row(*dates, zone, interval, _filter_bar(ctx), sizing_mode="stretch_width", css_classes=["nx-settings"])


def _filter_bar(ctx: Context) -> pn.viewable.Viewable:
    """The global filters as removable chips, and a small form that adds one (checked before it is used)."""
    view = ctx.view
    chips = pn.Row(sizing_mode="stretch_width")
    # "cohort": the property is a cohort's id (its page lists them) and the operator in or not_in.
    source = pn.widgets.Select(label="Filter on", options=["event", "person", "column", "cohort"], value="event",
                               width=90)
    key = pn.widgets.TextInput(label="Property", placeholder="$browser", width=130)
    op = pn.widgets.Select(label="Operator", options=OPERATORS, value="eq", width=100)
    value = pn.widgets.TextInput(label="Value", placeholder="value", width=120)
    add = pn.widgets.Button(label="Add filter", button_type="primary", width=90, margin=(23, 5, 5, 5))
    problem = theme.html("", visible=False)

    def redraw(*_: object) -> None:
        items = []
        for index, item in enumerate(view.filter_list()):
            label = f"{item.get('source', 'event')}.{item.get('key')} {item.get('op', 'eq')} {item.get('value', '')}"
            chip = pn.widgets.Button(label=f"{label} ✕", button_type="light", css_classes=["nx-chip"],
                                     description="Remove this filter")
            chip.on_click(lambda _, i=index: view.remove_filter(i))
            items.append(chip)
        chips.objects = items

    def on_add(_: object) -> None:
        try:
            item = new_filter(key.value, op.value, source.value, value.value)
        except InvalidRequest as e:
            problem.object = f"<div class='nx-notice nx-warning'>{escape(str(e))}</div>"
            problem.visible = True
            return
        problem.visible = False
        view.add_filter(item)

    add.on_click(on_add)
    view.param.watch(redraw, "filters")
    redraw()
    return pn.Column(pn.Row(source, key, op, value, add), problem, chips, sizing_mode="stretch_width")


def new_filter(key: str, op: str, source: str, value: str) -> dict[str, Any]:
    """A filter as typed in a form (a value: numbers for comparisons, a comma-separated list for in/not_in),
    checked as the analyses read it: InvalidRequest says what is wrong."""
    item: dict[str, Any] = {"key": key.strip(), "op": op, "source": source}
    if source == "cohort":
        pass  # membership takes no value
    elif op in ("in", "not_in"):
        item["value"] = [_number_or_text(part.strip()) for part in value.split(",") if part.strip()]
    elif op in ("gt", "gte", "lt", "lte"):
        item["value"] = _number_or_text(value.strip())
    elif op not in ("is_set", "is_not_set"):
        item["value"] = value
    try:
        msgspec.convert(item, Filter)
    except msgspec.ValidationError as e:
        raise InvalidRequest(str(e)) from None
    return item


def _number_or_text(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _frame(view: View, ctx: Context | None, current: str, body: Any) -> pn.viewable.Viewable:
    header = theme.html(pn.bind(lambda *_: _header(view, ctx, current), *[view.param[p] for p in GLOBAL_PARAMS]),
                        margin=0)
    if pn.state.curdoc:
        pn.state.curdoc.title = f"{dict(NAV).get(current, current)} · Nexus"
    return pn.Column(header, body, sizing_mode="stretch_width")


def _header(view: View, ctx: Context | None, current: str) -> str:
    """Navigation, the project switcher and the theme switch, as plain links carrying the settings (no
    script: a switch of project or theme opens the page anew, read as the other key, drawn in the other theme)."""
    def href(page: str, **extra: Any) -> str:
        return escape(ctx.link(page, **extra) if ctx else f"/{page}", quote=True)

    links = "".join(f"<a class='nx-nav{' nx-active' if name == current else ''}' href='{href(name)}'>{escape(label)}</a>"
                    for name, label in NAV)
    projects = ""
    if ctx is not None:
        others = "".join(
            f"<a href='{escape(f'/{current}?project={g.project_id}', quote=True)}'>{escape(g.project_name)}</a>"
            for g in ctx.reader.viewer.grants if g.project_id != ctx.reader.project_id)
        projects = (f"<details class='nx-projects'><summary>{escape(ctx.reader.grant.project_name)}</summary>"
                    f"{others}<a href='/login?next={escape(f'/{current}', quote=True)}'>+ Add a project's key</a></details>")
    other_theme = "light" if view.theme == "dark" else "dark"
    theme_link = (f"<a class='nx-nav nx-theme' href='{href(current, theme=other_theme)}'>"
                  f"{other_theme.title()} theme</a>") if ctx else ""
    return (f"<header class='nx-header'><span class='nx-brand'>Nexus</span>{projects}<nav>{links}</nav>"
            f"<span class='nx-right'>{theme_link}<a class='nx-nav' href='/logout'>Sign out</a></span></header>")


def _watch_sign_in(ctx: Context, layout: pn.Column) -> None:
    """Every 10 s: a page whose key was revoked (or whose sign-in ended) is replaced by a notice (a check
    costs a Redis read and the key cache's lookups, which the revocation counter keeps current)."""

    def check() -> None:
        if not ctx.reader.still_allowed():
            layout.objects = [_notice("Your sign-in ended or its key was revoked. "
                                      "<a href='/login'>Sign in again</a>.", "warning")]
            callback.stop()

    callback = pn.state.add_periodic_callback(check, period=10_000)
