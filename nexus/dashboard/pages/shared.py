"""What the analysis pages share: one answer per request for the several cards of a page that show it,
the breakdown controls, an event picker's options, and escaped HTML tables of small results."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from html import escape
from typing import Any

import msgspec
import panel as pn
import param

from nexus.analyses import registry
from nexus.analyses.breakdown import OTHER
from nexus.dashboard import theme
from nexus.dashboard.session import Reader
from nexus.dashboard.shell import Context
from nexus.services.analyses import Answer

ANY_EVENT = "(any event)"
SOURCES = ["event", "person", "column"]
MAX_EVENT_NAMES = 500


class OneAnswer:
    """A reader that asks each (kind, request) once, however many cards show it. The cards of a page load
    side by side on Panel's thread pool: without this, each would run the same query while the first had
    not yet put its answer in the cache. Everything but `answer` is the wrapped reader's."""

    def __init__(self, reader: Reader):
        self._reader = reader
        self._lock = threading.Lock()
        self._answers: dict[str, Future[Answer]] = {}

    def answer(self, kind: str, request: dict[str, Any] | msgspec.Struct) -> Answer:
        key = kind + " " + (msgspec.json.encode(request).decode() if isinstance(request, msgspec.Struct)
                            else json.dumps(request, sort_keys=True, default=str))
        with self._lock:
            future = self._answers.get(key)
            asking = future is None
            if future is None:
                future = self._answers[key] = Future()
        if asking:
            try:
                future.set_result(self._reader.answer(kind, request))
            except BaseException as e:  # each card waiting shows the same reason
                future.set_exception(e)
        return future.result()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


def checked(kind: str, request: dict[str, Any]) -> dict[str, Any]:
    """`request`, once its analysis accepts it: a setting it refuses (a bad property name) raises here, so
    the page shows the reason once instead of in each of its cards."""
    registry.decode(kind, request)
    return request


def sharing(ctx: Context) -> Context:
    """`ctx` whose reader answers each request once (for one drawing of a page body)."""
    return Context(OneAnswer(ctx.reader), ctx.view, ctx.page)  # type: ignore[arg-type]


# --- breakdown ------------------------------------------------------------------------------------------

class Breakdowns(param.Parameterized):
    """The settings of a page that breaks its analysis down by a property."""

    breakdown = param.String(default="")  # a property key; empty: none
    breakdown_source = param.Selector(default="event", objects=SOURCES)


def breakdown_of(settings: Breakdowns) -> dict[str, Any] | None:
    key = settings.breakdown.strip()
    return {"key": key, "source": settings.breakdown_source} if key else None


def breakdown_controls(settings: Breakdowns) -> list[pn.viewable.Viewable]:
    key = pn.widgets.TextInput(label="Breakdown by", value=settings.breakdown, placeholder="$browser", width=150)
    source = pn.widgets.Select(label="of", options=SOURCES, value=settings.breakdown_source, width=90)
    key.param.watch(lambda e: setattr(settings, "breakdown", e.new.strip()), "value")
    source.param.watch(lambda e: setattr(settings, "breakdown_source", e.new), "value")
    return [key, source]


def group_label(value: str | None) -> str:
    """A breakdown group as a reader sees it: everyone, the rest, an empty value."""
    if value is None:
        return "Everyone"
    return "(other values)" if value == OTHER else value or "(none)"


# --- events ---------------------------------------------------------------------------------------------

def event_names(ctx: Context) -> list[str]:
    """The project's event names, most frequent first (for pickers and default steps)."""
    return [e.name for e in ctx.reader.event_names()[:MAX_EVENT_NAMES]]


def event_options(names: Sequence[str], current: str | None, *, any_event: bool = True) -> list[str]:
    """A picker's options: (any event), the names, and the current one even when it is not among them (a
    link can name an event not seen lately)."""
    options = ([ANY_EVENT] if any_event else []) + list(names)
    if current and current not in options:
        options.append(current)
    return options


# --- small tables ---------------------------------------------------------------------------------------

def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric_from: int = 1) -> pn.pane.HTML:
    """Rows of text as a table; every cell is escaped here (cells may be event names or property values)."""
    def cell(tag: str, j: int, text: str) -> str:
        align = " style='text-align:right'" if j >= numeric_from else ""
        return f"<{tag}{align}>{escape(text)}</{tag}>"

    head = "".join(cell("th", j, h) for j, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", j, c) for j, c in enumerate(row)) + "</tr>" for row in rows)
    return theme.html(f"<table class='nx-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                      f"<style>{TABLE_CSS}</style>", margin=(5, 10))


TABLE_CSS = (".nx-table { border-collapse: collapse; font-size: .85rem; width: 100%; }"
             ".nx-table th, .nx-table td { padding: .3rem .6rem; border-bottom: 1px solid var(--nx-line); }"
             ".nx-table th { color: var(--nx-muted); font-weight: 600; text-align: left; }")
