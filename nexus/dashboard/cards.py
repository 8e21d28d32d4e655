"""A card: one analysis answer drawn as a chart, loading on its own (several cards of a page at once),
with its actions: show the SQL behind the very number shown, download the data as CSV, pin it to a
saved dashboard."""

from __future__ import annotations

import io
import json
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from html import escape
from typing import Any, TypeVar

import panel as pn

from nexus.dashboard import theme
from nexus.dashboard.pin import pin_control
from nexus.dashboard.shell import Context, guarded
from nexus.services.analyses import Answer

Draw = Callable[[Any, Answer], Any]  # (the decoded result, its answer) → a viewable
T = TypeVar("T")


def card(ctx: Context, title: str, kind: str, request: dict[str, Any], draw: Draw, *, chart: str = "line",
         width: int | None = None, height: int = 360) -> pn.viewable.Viewable:
    """The analysis `kind` answered for `request` and drawn by `draw`, inside a card with its actions."""
    holder = pn.Column(sizing_mode="stretch_width", min_height=height)
    box = pn.Column(theme.html(f"<div class='nx-card-title'>{escape(title)}</div>", margin=(5, 10, 0, 10)),
                    holder, css_classes=["nx-card"], sizing_mode="stretch_width" if width is None else "fixed",
                    width=width, styles={"border": "1px solid var(--nx-line, #e3e6eb)", "border-radius": "10px"},
                    margin=6)
    asked = _ask(ctx, kind, request)

    def content() -> list[Any]:
        drawn = guarded(lambda: _drawn(ctx, title, kind, request, draw, chart, asked.result()))
        return drawn if isinstance(drawn, list) else [drawn]

    if asked.done():
        holder.objects = content()
        return box

    holder.loading = True  # in the page as it is sent

    def load() -> None:
        drawn = content()  # built on this thread, before it joins the page

        def show() -> None:
            holder.objects = drawn
            holder.loading = False

        # On the event loop, the two changes in one go: set one after the other from this thread, the
        # second one was now and then lost (1 load in 8), leaving a drawn card under its spinner.
        pn.state.execute(show, schedule=True)

    _later(load)
    return box


# The page's analyses run here, apart from Panel's pool where the cards wait for them (a card waiting
# on its own pool's queue could wait forever).
_ANSWERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nexus-card")
# How long building a page may wait, all its cards together, for answers to come back before it is sent.
INLINE_SECONDS = 0.1
_waited: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()  # by document, seconds


def _ask(ctx: Context, kind: str, request: dict[str, Any]) -> Future[Answer]:
    """The answer, asked for now rather than once the browser shows the page: the query runs while the
    browser still loads and runs the page's scripts (most of a page's first second). The page waits up
    to INLINE_SECONDS in all for its answers: one ready by then (a cached one takes milliseconds) is
    drawn into the page itself, so the browser gets the card with the page, with no second round trip
    (and no change of the page to lay out again). Drawing does not count against the wait."""
    return early(ctx.reader.answer, kind, request)


def early(work: Callable[..., T], *args: Any) -> Future[T]:
    """`work(*args)` started now on the cards' pool, the page being built waiting for it within what is
    left of its INLINE_SECONDS: done() says whether to draw its result into the page (see _ask)."""
    asked = _ANSWERS.submit(work, *args)
    doc = pn.state.curdoc
    left = INLINE_SECONDS - _waited.get(doc, 0.0) if doc is not None else 0.0
    if left > 0:
        started = time.monotonic()
        try:
            asked.exception(timeout=left)
        except FuturesTimeout:
            pass
        _waited[doc] = _waited.get(doc, 0.0) + time.monotonic() - started
    return asked


def _later(load: Callable[[], None]) -> None:
    """Run `load` once the page is shown, on Panel's thread pool: the cards of a page load side by side.
    (A card is changed only once the browser has the page: Panel drops changes made between the moment
    the browser pulls the page's document and the moment it says the page is shown.)"""
    pn.state.onload(load, threaded=True)


def _drawn(ctx: Context, title: str, kind: str, request: dict[str, Any], draw: Draw, chart: str,
           answer: Answer) -> list[Any]:
    """The chart and its actions, side by side in the card (no layout of their own: every layout is one
    more view, shadow root and set of stylesheets for the browser to build and lay out)."""
    return [draw(answer.decoded(), answer), actions(ctx, title, kind, request, answer, chart)]


def actions(ctx: Context, title: str, kind: str, request: dict[str, Any], answer: Answer,
            chart: str) -> pn.viewable.Viewable:
    """The data as CSV, Show me the SQL, and (for an admin key) pin to a dashboard. The SQL is markup that
    opens in the page (<details>): no widget and no round trip to the server to show it."""
    download = pn.widgets.FileDownload(callback=lambda: io.BytesIO(answer.table_bytes("csv")),
                                       filename=f"{kind}.csv", label="Data as CSV", button_type="light", width=120)
    sql = theme.html(f"<details class='nx-explain'><summary role='button'>Show me the SQL</summary>"
                     f"{explain_html(ctx, answer)}</details>", css_classes=["nx-show-sql"])
    row: list[Any] = [download, sql]
    if ctx.reader.can_edit:
        row.append(pin_control(ctx, title, kind, request, chart))
    return pn.Row(*row, sizing_mode="stretch_width")


def explain_html(ctx: Context, answer: Answer) -> str:
    """The SQL and parameters that produced the answer shown (its cached explain, not a rebuilt one), and a
    link that opens them in the SQL explorer."""
    explain = answer.explain
    params = json.dumps(explain.params, indent=1, default=str)
    link = ctx.link("sql", sql=explain.sql, params=json.dumps(explain.params, default=str))
    when = answer.computed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f"<div class='nx-muted'>Computed {escape(when)}{' (from the cache)' if answer.cached else ''}</div>"
            f"<pre class='nx-sql' data-role='sql'>{escape(explain.sql)}</pre>"
            f"<div>Parameters</div><pre class='nx-sql' data-role='params'>{escape(params)}</pre>"
            f"<a class='nx-open-sql' href='{escape(link, quote=True)}' target='_self'>Open in the SQL explorer</a>")

