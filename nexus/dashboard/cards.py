"""A card: one analysis answer drawn as a chart, loading on its own (several cards of a page at once),
with its actions: show the SQL behind the very number shown, download the data as CSV, pin it to a
saved dashboard."""

from __future__ import annotations

import io
import json
import time
import weakref
from collections.abc import Callable
from functools import partial
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FuturesTimeout
from html import escape
from typing import Any, TypeVar

import panel as pn
from panel.io.state import set_curdoc
from tornado.ioloop import IOLoop

from nexus.dashboard import theme
from nexus.dashboard.pin import pin_control
from nexus.dashboard.shell import Context, guarded
from nexus.services.analyses import Answer

Draw = Callable[[Any, Answer], Any]  # (the decoded result, its answer) → a viewable
T = TypeVar("T")


def card(ctx: Context, title: str, kind: str, request: dict[str, Any], draw: Draw, *, chart: str = "line",
         width: int | None = None, height: int = 360) -> pn.viewable.Viewable:
    """The analysis `kind` answered for `request` and drawn by `draw`, inside a card with its actions."""
    holder = pn.Column(sizing_mode="stretch_width", min_height=height, stylesheets=[theme.STILL_LOADING])
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
    _later(holder, asked, content)
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
    _session_loop(doc)  # while the page is built on its loop: a redraw later finds it
    left = INLINE_SECONDS - _waited.get(doc, 0.0) if doc is not None else 0.0
    if left > 0:
        started = time.monotonic()
        try:
            asked.exception(timeout=left)
        except FuturesTimeout:
            pass
        _waited[doc] = _waited.get(doc, 0.0) + time.monotonic() - started
    return asked


_loops: weakref.WeakKeyDictionary[Any, IOLoop] = weakref.WeakKeyDictionary()  # by document


def _session_loop(doc: Any) -> IOLoop | None:
    """The event loop of the document's session. A page is built on it, but drawn again after a change
    of settings on Panel's thread pool (Panel handles browser events there), which has no loop: the one
    seen when the page was built serves then. Without it a redrawn card was changed from a pool thread,
    racing Panel's holds of the document, and now and then stayed under its spinner in the browser."""
    loop = IOLoop.current(instance=False)
    if doc is None:
        return loop
    if loop is not None:
        _loops[doc] = loop
        return loop
    return _loops.get(doc)


Waiting = tuple[pn.Column, Future[Any], Callable[[], list[Any]]]  # a card's holder, its answer, its content
_waiting: weakref.WeakKeyDictionary[Any, list[Waiting]] = weakref.WeakKeyDictionary()  # by document


def _later(holder: pn.Column, asked: Future[Any], content: Callable[[], list[Any]]) -> None:
    """Draw the card once the page is shown and its answer is in (a card is changed only once the browser
    has the page: Panel drops changes made between the moment the browser pulls the page's document and
    the moment it says the page is shown).

    The cards of a page still waiting when it is shown are drawn together: those whose answers are in by
    then, in one change of the page, then each batch that comes in while the last was drawn. The browser
    lays the whole page out again at each change (every plot drawn anew), so eight cards changed one by
    one cost it several times what they cost together."""
    doc = pn.state.curdoc
    loop = _session_loop(doc)
    if doc is None or pn.state.loaded:  # no server session, or a page drawn again after a change of settings
        pn.state.onload(lambda: _fill(doc, loop, [(holder, asked, content)]), threaded=True)
        return
    waiting = _waiting.setdefault(doc, [])
    if not waiting:
        pn.state.onload(lambda: _fill(doc, loop, waiting), threaded=True)  # once the page is built and shown
    waiting.append((holder, asked, content))


def _fill(doc: Any, loop: IOLoop | None, waiting: list[Waiting]) -> None:
    """On Panel's thread pool: the waiting cards drawn as their answers come in, batch by batch."""
    left = list(waiting)
    while left:
        wait([asked for _, asked, _ in left], return_when=FIRST_COMPLETED)
        ready, left = [w for w in left if w[1].done()], [w for w in left if not w[1].done()]
        drawn = [(holder, content()) for holder, _, content in ready]  # built here, before they join the page
        _on_loop(doc, loop, partial(_show, drawn))


def _show(drawn: list[tuple[pn.Column, list[Any]]]) -> None:
    """Each card's chart in and spinner off, all in one message to the browser."""
    with pn.io.hold():
        for holder, objects in drawn:
            holder.objects = objects
            holder.loading = False


def _on_loop(doc: Any, loop: IOLoop | None, change: Callable[[], None]) -> None:
    """`change` the page on its session's event loop, where nothing else changes it meanwhile. Handed over
    with the loop's own thread-safe add_callback, not through the document (add_next_tick_callback from
    this thread): that registration races Panel's holds of the document on the loop, and a lost one left
    a card drawn on the server under its spinner in the browser (1 fresh load of a saved dashboard in 8)."""
    if loop is None:
        change()  # no server session (a test building a page)
        return

    def run() -> None:
        with set_curdoc(doc):
            change()

    loop.add_callback(run)


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

