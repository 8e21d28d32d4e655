"""The events explorer: what the project tracks (event names with their counts, and the properties of the
chosen event with their types), and the raw events themselves, newest first, a page at a time, under the
page's date range and filters.

Paging follows the events analysis's cursor: "Older" asks for the events before the last row shown
(`before` = the page's next_cursor); the cursors of the pages passed are kept (`trail`), so "Newer" goes
back exactly one page. Both are in the URL with the chosen event and page size: a link opens the same page
of events (its rows do not move when newer events arrive).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape
from typing import Any

import panel as pn
import param
from bokeh.models import DataTable

from nexus.analyses.catalog import EventName, PropertyName
from nexus.analyses.events import EventRow, EventsResult
from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages import grid
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, guarded, page
from nexus.services.analyses import Answer
from nexus.timezones import zone

ANY_EVENT = "(any event)"
PAGE_SIZES = [25, 50, 100, 250]
SEPARATOR = "."  # between the cursors of `trail`: never inside one (URL-safe base64)
# (field, title, relative width): the table fits its width, sharing it out in these proportions.
COLUMNS = [("time", "Time", 170), ("event", "Event", 140), ("distinct_id", "Distinct id", 120),
           ("person", "Person", 120), ("path", "Path", 120), ("country", "Country", 60), ("browser", "Browser", 80),
           ("os", "OS", 80), ("device_type", "Device", 70), ("properties", "Properties", 280)]
NAME_COLUMNS = [("name", "Event", 200), ("events", "Events (all time)", 90), ("last_seen", "Last seen", 90)]
PROPERTY_COLUMNS = [("key", "Property", 200), ("source", "Of", 70), ("types", "Types", 110),
                    ("seen", "In sample", 90)]


class Settings(param.Parameterized):
    event = param.String(default="")  # empty: any event
    limit = param.Integer(default=50, bounds=(1, 1000))
    before = param.String(default="")  # the cursor of the page shown; empty: the newest page
    trail = param.String(default="")  # the `before` of each page passed on the way here, oldest last


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    known: dict[str | None, list[PropertyName]] = {}  # the catalogue's properties per event, for this session

    def controls(ctx: Context) -> list[Any]:
        ctx.view.param.watch(lambda _: first_page(settings), ["range", "date_from", "date_to", "tz", "filters"])
        return []

    return page(dashboard, "events", lambda ctx: body(ctx, settings, known), settings=settings, controls=controls,
                uses_interval=False)


# --- paging (pure) --------------------------------------------------------------------------------------

def request(common: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The events request of the page: `common` is the shell's `ctx.common(interval=False)`."""
    return {**common, "limit": settings.limit, **({"event": settings.event} if settings.event else {}),
            **({"before": settings.before} if settings.before else {})}


def older(before: str, trail: str, next_cursor: str) -> tuple[str, str]:
    """(before, trail) of the page after this one: this page's cursor joins the trail (each cursor in it
    follows a separator, so the newest page's empty cursor is kept too)."""
    return next_cursor, trail + SEPARATOR + before


def newer(before: str, trail: str) -> tuple[str, str]:
    """(before, trail) of the page before this one; a page opened without its trail goes to the newest."""
    if not trail:
        return "", ""
    head, _, last = trail.rpartition(SEPARATOR)
    return last, head


def first_page(settings: Settings) -> None:
    settings.param.update(before="", trail="")


# --- tables (pure) --------------------------------------------------------------------------------------

def event_rows(rows: list[EventRow], timezone: str) -> dict[str, list[str]]:
    """The events as text cells, times in `timezone` to the millisecond."""
    tz = zone(timezone)
    return {
        "time": [r.timestamp.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] for r in rows],
        "event": [r.event for r in rows], "distinct_id": [r.distinct_id for r in rows],
        "person": [r.person_id or "" for r in rows], "path": [r.path for r in rows],
        "country": [r.country for r in rows], "browser": [r.browser for r in rows], "os": [r.os for r in rows],
        "device_type": [r.device_type for r in rows], "properties": [r.properties for r in rows],
    }


def name_rows(names: list[EventName]) -> dict[str, list[str]]:
    return {"name": [n.name for n in names], "events": [charts.format_number(n.events) for n in names],
            "last_seen": [n.last_seen.isoformat() for n in names]}


def property_rows(found: list[PropertyName]) -> dict[str, list[str]]:
    return {"key": [p.key for p in found], "source": [p.source for p in found],
            "types": [", ".join(p.types) for p in found],
            "seen": ["" if p.seen is None else f"{p.seen:,}" for p in found]}


# --- the page -------------------------------------------------------------------------------------------

def body(ctx: Context, settings: Settings, known: dict[str | None, list[PropertyName]]) -> pn.viewable.Viewable:
    names = _later(lambda: catalogue(ctx, settings, known), min_height=300)
    events = card(ctx, "Latest events", "events", request(ctx.common(interval=False), settings),
                  lambda result, answer: draw(ctx, settings, result, answer), chart="table", height=420)
    return pn.Column(events, names, sizing_mode="stretch_width")


def catalogue(ctx: Context, settings: Settings, known: dict[str | None, list[PropertyName]]) -> pn.viewable.Viewable:
    """Event names (a click picks one) and the chosen event's properties, with their types."""
    names = ctx.reader.event_names()
    event = settings.event or None
    if event not in known:
        known[event] = ctx.reader.properties(event)
    picked = _table(ctx, name_rows(names), NAME_COLUMNS, height=320, css="nx-event-names")
    current = [i for i, n in enumerate(names) if n.name == settings.event]
    picked.source.selected.indices = current

    def on_pick(_attr: str, _old: list[int], new: list[int]) -> None:
        if new and names[new[0]].name != settings.event:
            settings.param.update(event=names[new[0]].name, before="", trail="")

    picked.source.selected.on_change("indices", on_pick)
    shown = known[event]
    title = f"Properties of {event} (last 30 days)" if event else "Properties of all events (last 30 days)"
    properties = _table(ctx, property_rows(shown), PROPERTY_COLUMNS, height=320, css="nx-properties")
    return pn.Row(
        pn.Column(_title(f"Events tracked ({len(names):,})"), pn.pane.Bokeh(picked, sizing_mode="stretch_width"),
                  sizing_mode="stretch_width"),
        pn.Column(_title(title), pn.pane.Bokeh(properties, sizing_mode="stretch_width"), sizing_mode="stretch_width"),
        sizing_mode="stretch_width", css_classes=["nx-catalogue"])


def draw(ctx: Context, settings: Settings, result: EventsResult, answer: Answer) -> pn.viewable.Viewable:
    """The page of events, its paging and event picker, and the chosen row's properties in full."""
    names = [n.name for n in ctx.reader.event_names()]
    options = [ANY_EVENT, *names, *([settings.event] if settings.event and settings.event not in names else [])]
    pick = pn.widgets.Select(label="Event", options=options, value=settings.event or ANY_EVENT, width=240)
    size = pn.widgets.Select(label="Rows per page", options=PAGE_SIZES if settings.limit in PAGE_SIZES else
                             sorted([*PAGE_SIZES, settings.limit]), value=settings.limit, width=110)
    newest = pn.widgets.Button(label="« Newest", width=90, disabled=not settings.before, margin=(23, 5, 5, 5))
    newer_ = pn.widgets.Button(label="‹ Newer", width=90, disabled=not settings.before, margin=(23, 5, 5, 5))
    older_ = pn.widgets.Button(label="Older ›", width=90, disabled=result.next_cursor is None, margin=(23, 5, 5, 5))
    pick.param.watch(lambda e: settings.param.update(event="" if e.new == ANY_EVENT else e.new, before="", trail=""),
                     "value")
    size.param.watch(lambda e: settings.param.update(limit=e.new, before="", trail=""), "value")
    newest.on_click(lambda _: first_page(settings))
    newer_.on_click(lambda _: _go(settings, newer(settings.before, settings.trail)))
    older_.on_click(lambda _: _go(settings, older(settings.before, settings.trail, result.next_cursor or "")))
    where = "the newest events" if not settings.before else "older events"
    status = theme.html(f"<div style='color: var(--nx-muted)' data-role='page'>{len(result.rows):,} of {where} "
                        f"in {escape(_span(result))} ({escape(result.timezone)}), newest first"
                        f"{'' if result.next_cursor else '; no older events'}.</div>")
    if not result.rows:
        table: Any = theme.html("<div class='nx-notice'>No events in this range.</div>")
        detail: Any = pn.Spacer(height=0)
    else:
        rows = _table(ctx, event_rows(result.rows, result.timezone), COLUMNS,
                      height=min(560, 30 + 26 * len(result.rows)), css="nx-events")
        detail = theme.html("<div style='color: var(--nx-muted)'>Click a row to see its properties in full.</div>")
        rows.source.selected.on_change("indices", lambda _a, _o, new: _show(detail, result.rows, new))
        table = pn.pane.Bokeh(rows, sizing_mode="stretch_width")
    return pn.Column(pn.Row(pick, size, newest, newer_, older_), status, table, detail, sizing_mode="stretch_width")


def _go(settings: Settings, place: tuple[str, str]) -> None:
    settings.param.update(before=place[0], trail=place[1])


def _span(result: EventsResult) -> str:
    tz = zone(result.timezone)
    start, end = result.date_from.astimezone(tz), result.date_to.astimezone(tz)
    return f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M}"


def _show(detail: pn.pane.HTML, rows: list[EventRow], picked: list[int]) -> None:
    if not picked:
        return
    row = rows[picked[0]]
    try:
        properties = json.dumps(json.loads(row.properties), indent=2, ensure_ascii=False)
    except ValueError:
        properties = row.properties
    detail.object = (f"<div class='nx-card-title'>{escape(row.event)} · {escape(row.message_id)}</div>"
                     f"<pre class='nx-sql' data-role='properties'>{escape(properties)}</pre>")


def _table(ctx: Context, data: dict[str, list[str]], columns: list[grid.Column], *, height: int,
           css: str) -> DataTable:
    return grid.text_table(data, columns, height=height, css=css, dark=ctx.dark, right=frozenset({"events"}))


def _title(text: str) -> pn.viewable.Viewable:
    return theme.html(f"<div class='nx-card-title'>{escape(text)}</div>", margin=(10, 10, 0, 10))


def _later(build: Callable[[], Any], *, min_height: int) -> pn.viewable.Viewable:
    """`build()` drawn once the page is shown, on Panel's thread pool (beside the events card)."""
    holder = pn.Column(sizing_mode="stretch_width", min_height=min_height)

    def load() -> None:
        holder.loading = True
        try:
            holder.objects = [guarded(build)]
        finally:
            holder.loading = False

    pn.state.onload(load, threaded=True)
    return holder
