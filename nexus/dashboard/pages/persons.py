"""The persons pages: the persons list (search, sort, a page at a time) and one person's profile — who they
are, what they did in sum, and their events newest first with the boundaries of their sessions.

Ids and traits are user data: every one reaches the page escaped, and a link to a profile carries the id
URL-encoded inside an escaped attribute (`profile_link`), so an id is never markup. Paging follows the
analyses' cursors as the events explorer does (the cursors of the pages passed are kept in `trail`), and
all of it is in the URL: a link opens the same page of the same list or timeline.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Any

import panel as pn
import param

from nexus.analyses.person_list import PersonListResult
from nexus.analyses.person_profile import PersonResult
from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages.events import newer, older
from nexus.dashboard.pages.shared import TABLE_CSS
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, error_notice, page
from nexus.errors import NexusError
from nexus.timezones import zone

SORTS = {"Last seen": "last_seen", "Events": "events", "Revenue": "revenue"}
PAGE_SIZES = [25, 50, 100, 250]


class ListSettings(param.Parameterized):
    q = param.String(default="")  # search; empty: everyone
    sort = param.Selector(default="last_seen", objects=list(SORTS.values()))
    limit = param.Integer(default=50, bounds=(1, 1000))
    cursor = param.String(default="")  # the cursor of the page shown; empty: the first page
    trail = param.String(default="")  # the cursor of each page passed on the way here


class ProfileSettings(param.Parameterized):
    person = param.String(default="")
    limit = param.Integer(default=50, bounds=(1, 1000))
    cursor = param.String(default="")
    trail = param.String(default="")


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = ListSettings()
    return page(dashboard, "persons", lambda ctx: list_body(ctx, settings), settings=settings,
                controls=lambda ctx: [search_bar(ctx, settings)], uses_interval=False, uses_dates=False)


def profile_view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = ProfileSettings()
    return page(dashboard, "person", lambda ctx: profile_body(ctx, settings), settings=settings, uses_filters=False)


# --- requests and links (pure) --------------------------------------------------------------------------

def list_request(settings: ListSettings, where: dict[str, Any] | None = None) -> dict[str, Any]:
    """The persons request of the list's settings and the global filters' `where` (persons with a matching
    event, trait or cohort)."""
    return {"sort": settings.sort, "limit": settings.limit, **({"q": settings.q} if settings.q else {}),
            **({"where": where} if where else {}), **({"cursor": settings.cursor} if settings.cursor else {})}


def profile_request(settings: ProfileSettings) -> dict[str, Any]:
    return {"person": settings.person, "limit": settings.limit,
            **({"cursor": settings.cursor} if settings.cursor else {})}


def profile_link(ctx: Context, person: str, text: str | None = None) -> str:
    """An `<a>` to the person's profile (in the project and settings shown), its id and text escaped."""
    href = escape(ctx.link("person", person=person), quote=True)
    return f"<a class='nx-person' href='{href}'>{escape(person if text is None else text)}</a>"


def _when(moment: datetime | None, tz: str) -> str:
    return "" if moment is None else moment.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M:%S")


def _table(header: list[str], rows: list[list[str]], role: str, *, numeric: frozenset[int] = frozenset(),
           row_attributes: list[str] | None = None) -> str:
    """Rows of cells that are already markup (escaped by the caller) as a table; `row_attributes`, one
    constant text per row, go into its <tr>."""
    def cells(tag: str, row: list[str]) -> str:
        return "".join(f"<{tag}{RIGHT if j in numeric else ''}>{c}</{tag}>" for j, c in enumerate(row))

    attributes = row_attributes or [""] * len(rows)
    body = "".join(f"<tr{extra}>{cells('td', row)}</tr>" for extra, row in zip(attributes, rows))
    return (f"<table class='nx-table' data-role='{role}'><thead><tr>{cells('th', [escape(h) for h in header])}"
            f"</tr></thead><tbody>{body}</tbody></table><style>{TABLE_CSS}{_CSS}</style>")


RIGHT = " style='text-align:right'"
_CSS = (".nx-session td { border-bottom: 2px solid var(--nx-accent, #4c6ef5); }"
        ".nx-session-label { color: var(--nx-muted); font-size: .75rem; }"
        ".nx-kv { display: flex; gap: 1.5rem; flex-wrap: wrap; margin: .3rem 0 .6rem; }"
        ".nx-kv b { display: block; font-size: 1.1rem; }")


# --- the persons list -----------------------------------------------------------------------------------

def search_bar(ctx: Context, settings: ListSettings) -> pn.viewable.Viewable:
    search = pn.widgets.TextInput(label="Search", placeholder="a distinct id, person id or trait value",
                                  value=settings.q, width=320)
    sort = pn.widgets.Select(label="Sort by", options=SORTS, value=settings.sort, width=140)
    size = pn.widgets.Select(label="Per page", options=PAGE_SIZES if settings.limit in PAGE_SIZES else
                             sorted([*PAGE_SIZES, settings.limit]), value=settings.limit, width=100)
    search.param.watch(lambda e: settings.param.update(q=e.new.strip(), cursor="", trail=""), "value")
    sort.param.watch(lambda e: settings.param.update(sort=e.new, cursor="", trail=""), "value")
    size.param.watch(lambda e: settings.param.update(limit=e.new, cursor="", trail=""), "value")
    # Another filter lists other persons: the pages passed belong to the list before it.
    ctx.view.param.watch(lambda _: settings.param.update(cursor="", trail=""), "filters")
    return pn.Row(search, sort, size, sizing_mode="stretch_width")


def list_body(ctx: Context, settings: ListSettings) -> pn.viewable.Viewable:
    return card(ctx, "Persons", "persons", list_request(settings, ctx.common().get("where")),
                lambda result, _: draw_list(ctx, settings, result), chart="table", height=420)


def persons_markup(ctx: Context, result: PersonListResult) -> str:
    tz = ctx.timezone
    rows = [[profile_link(ctx, p.person), escape(", ".join(p.distinct_ids)), _when(p.first_seen, tz),
             _when(p.last_seen, tz), f"{p.events:,}", charts.format_number(p.revenue)] for p in result.persons]
    if not rows:
        return "<div class='nx-notice' data-role='persons'>Nobody matches.</div>"
    return _table(["Person", "Distinct ids", f"First seen ({tz})", f"Last seen ({tz})", "Events", "Revenue"],
                  rows, "persons", numeric=frozenset({4, 5}))


def draw_persons(ctx: Context, result: PersonListResult, chart: str = "table") -> pn.viewable.Viewable:
    """A page of persons (as a pinned tile draws it)."""
    return theme.html(persons_markup(ctx, result))


def draw_list(ctx: Context, settings: ListSettings, result: PersonListResult) -> pn.viewable.Viewable:
    table = persons_markup(ctx, result)
    first = pn.widgets.Button(label="« First", width=90, disabled=not settings.cursor)
    back = pn.widgets.Button(label="‹ Previous", width=90, disabled=not settings.cursor)
    more = pn.widgets.Button(label="Next ›", width=90, disabled=result.next_cursor is None)
    first.on_click(lambda _: settings.param.update(cursor="", trail=""))
    back.on_click(lambda _: _go(settings, newer(settings.cursor, settings.trail)))
    more.on_click(lambda _: _go(settings, older(settings.cursor, settings.trail, result.next_cursor or "")))
    status = (f"<div class='nx-muted' data-role='page'>{len(result.persons):,} persons, by "
              f"{escape(settings.sort.replace('_', ' '))}{'' if result.next_cursor else '; the last page'}.</div>")
    return pn.Column(theme.html(status + table), pn.Row(first, back, more), sizing_mode="stretch_width")


def _go(settings: ListSettings | ProfileSettings, place: tuple[str, str]) -> None:
    settings.param.update(cursor=place[0], trail=place[1])


# --- a profile ------------------------------------------------------------------------------------------

def profile_body(ctx: Context, settings: ProfileSettings) -> pn.viewable.Viewable:
    if not settings.person:
        return theme.html(f"<div class='nx-notice' data-role='no-person'>Pick a person on the "
                          f"<a href='{escape(ctx.link('persons'), quote=True)}'>Persons</a> page.</div>")
    return card(ctx, "Person", "person", profile_request(settings),
                lambda result, _: draw_profile(ctx, settings, result), chart="table", height=420)


def draw_person(ctx: Context, result: PersonResult, chart: str = "table") -> pn.viewable.Viewable:
    """A profile and its newest events (as a pinned tile draws it)."""
    return profile_markup(ctx, result)


def draw_profile(ctx: Context, settings: ProfileSettings, result: PersonResult) -> pn.viewable.Viewable:
    first = pn.widgets.Button(label="« Newest", width=90, disabled=not settings.cursor)
    back = pn.widgets.Button(label="‹ Newer", width=90, disabled=not settings.cursor)
    more = pn.widgets.Button(label="Older ›", width=90, disabled=result.next_cursor is None)
    first.on_click(lambda _: settings.param.update(cursor="", trail=""))
    back.on_click(lambda _: _go(settings, newer(settings.cursor, settings.trail)))
    more.on_click(lambda _: _go(settings, older(settings.cursor, settings.trail, result.next_cursor or "")))
    shown = pn.Column(profile_markup(ctx, result), pn.Row(first, back, more), sizing_mode="stretch_width")
    if not ctx.reader.can_edit:
        return shown
    return pn.Column(shown, erase_control(ctx, result, lambda: setattr(shown, "visible", False)),
                     sizing_mode="stretch_width")


def erase_control(ctx: Context, result: PersonResult, erased: Callable[[], None]) -> pn.viewable.Viewable:
    """An admin key's way to erase the person (GDPR), as DELETE /v1/persons/{id}: the person's id typed again
    to confirm, since nothing brings them back; `erased()` is called once they are gone."""
    ask = pn.widgets.Button(label="Erase this person…", button_type="danger", width=170)
    typed = pn.widgets.TextInput(placeholder="type the person's id to confirm", width=320)
    confirm = pn.widgets.Button(label="Erase for good", button_type="danger", width=140, disabled=True)
    warning = theme.html(
        f"<div class='nx-notice nx-warning' data-role='erase-warning'>Every event, identity and trait of "
        f"<b>{escape(result.person)}</b> and of their ids ({escape(', '.join(result.distinct_ids))}) is deleted "
        f"from every table, for good.</div>")
    form = pn.Column(warning, pn.Row(typed, confirm), visible=False, sizing_mode="stretch_width")
    done = pn.Column(sizing_mode="stretch_width")

    def erase(_: Any) -> None:
        confirm.disabled = True
        try:
            record = ctx.reader.erase_person(result.person)
        except NexusError as e:
            done.objects = [error_notice(e)]
            return
        rows = ", ".join(f"{table} {count:,}" for table, count in sorted(record.rows.items()))
        form.visible = ask.visible = False
        erased()
        done.objects = [theme.html(
            f"<div class='nx-notice nx-info' data-role='erased'>Erased {escape(result.person)} "
            f"({record.distinct_ids} distinct ids; rows removed: {escape(rows)}), recorded as "
            f"{escape(record.erasure_id)}.</div>")]

    ask.on_click(lambda _: setattr(form, "visible", True))
    typed.param.watch(lambda e: setattr(confirm, "disabled", e.new.strip() != result.person), "value_input")
    confirm.on_click(erase)
    return pn.Column(ask, form, done, sizing_mode="stretch_width")


def profile_markup(ctx: Context, result: PersonResult) -> pn.viewable.Viewable:
    tz = ctx.timezone
    facts = [("First seen", _when(result.first_seen, tz)), ("Last seen", _when(result.last_seen, tz)),
             ("Events", f"{result.events:,}"), ("Sessions", f"{result.sessions:,}"),
             ("Revenue", charts.format_number(result.revenue))]
    summary = ("<div class='nx-kv' data-role='summary'>"
               + "".join(f"<span>{escape(k)}<b>{escape(v)}</b></span>" for k, v in facts) + "</div>")
    ids = f"<div data-role='ids'>Distinct ids: {escape(', '.join(result.distinct_ids))}</div>"
    traits = _table(["Trait", "Value", f"Last set ({tz})"],
                    [[escape(t.key), escape(t.value), _when(t.last_set, tz)] for t in result.traits], "traits")
    timeline = _table(["Time", "Event", "Distinct id", "Path", "Properties"], timeline_rows(result, tz), "timeline",
                      row_attributes=[" class='nx-session' data-session-start='1'" if e.session_start else ""
                                      for e in result.timeline])
    head = f"<div class='nx-card-title' data-role='person'>{escape(result.person)}</div>"
    return theme.html(head + summary + ids + "<h4>Traits</h4>"
                      + (traits if result.traits else "<div class='nx-muted'>None.</div>")
                      + "<h4>Events, newest first</h4>" + timeline)


def timeline_rows(result: PersonResult, tz: str) -> list[list[str]]:
    """The timeline's rows as markup; the first event of a session carries the boundary (newest first, it is
    the session's last row, underlined), marked with its session's number."""
    return [[_when(e.timestamp, tz) + (f"<div class='nx-session-label'>session {e.session} starts</div>"
                                       if e.session_start else ""),
             escape(e.event), escape(e.distinct_id), escape(e.path), f"<code>{escape(e.properties)}</code>"]
            for e in result.timeline]
