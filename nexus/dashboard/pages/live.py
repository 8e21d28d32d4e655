"""The Overview's live panel: events and persons in the last 30 minutes, per minute, and the latest events as
they arrive, asked again every few seconds (the `live` analysis; cached answers last until new events
change the project, so an idle project costs no query)."""

from __future__ import annotations

from html import escape
from typing import Any
from zoneinfo import ZoneInfo

import panel as pn

from nexus.dashboard import charts, theme
from nexus.dashboard.cards import early
from nexus.dashboard.shell import Context
from nexus.errors import NexusError

REFRESH_MS = 5_000
MINUTES = 30


def panel(ctx: Context) -> pn.viewable.Viewable:
    # Asked as the page is built, as a card's answer is: drawn into the page when it comes back in time.
    first = early(current, ctx)
    inline = first.done()
    shown = theme.html(first.result() if inline else "<div class='nx-muted'>Live: loading…</div>",
                       css_classes=["nx-live"])

    def refresh() -> None:
        if not _open_in_a_browser():
            return
        if not ctx.reader.still_allowed():
            callback.stop()
            return
        shown.object = current(ctx)

    def start() -> None:
        if not inline:
            shown.object = first.result()
        callback.start()

    callback = pn.state.add_periodic_callback(refresh, period=REFRESH_MS, start=False)
    pn.state.onload(start, threaded=True)
    return shown


def _open_in_a_browser() -> bool:
    """Whether a browser still shows this page. A closed tab's session lives on for a minute (until the
    server drops unused sessions), and its refreshes would query for nobody: after new events each one
    misses the cache (a closed Overview's live query every 5 s, 0.5-1.7 s each on 10M events)."""
    doc = pn.state.curdoc
    session = getattr(doc.session_context, "session", None) if doc is not None and doc.session_context else None
    return session is None or session.connection_count > 0


def current(ctx: Context) -> str:
    """The panel's markup now, or why it cannot be shown."""
    request: dict[str, Any] = {"minutes": MINUTES, "latest": 15}
    where = ctx.view.where()
    if where:
        request["where"] = where
    try:
        return render(ctx.reader.answer("live", request).decoded(), ctx.timezone)
    except NexusError as e:
        return f"<div class='nx-notice nx-warning'>Live: {escape(str(e))}</div>"


def render(result: Any, timezone: str) -> str:
    """The live numbers, a per-minute bar strip and the latest events, as markup (every user string escaped)."""
    most = max((p.events for p in result.series), default=0) or 1
    strip = "".join(f"<span class='nx-live-bar' style='height:{p.events / most * 100:.0f}%' "
                    f"title='{p.events:,} events'></span>" for p in result.series)
    rows = "".join(
        f"<tr class='nx-live-row'><td>{escape(_local(e.timestamp, timezone))}</td><td>{escape(e.event)}</td>"
        f"<td>{escape(e.distinct_id)}</td><td>{escape(e.path)}</td><td>{escape(e.country)}</td></tr>"
        for e in result.latest)
    table = (f"<table class='nx-live-table'><tr><th>time</th><th>event</th><th>distinct id</th><th>page</th>"
             f"<th>country</th></tr>{rows}</table>") if rows else "<div class='nx-muted'>No events in the last 30 minutes.</div>"
    return (f"<section class='nx-live-panel'><h3><span class='nx-live-dot'></span>Live · last {MINUTES} minutes</h3>"
            f"<div class='nx-live-numbers'><div><div class='nx-kpi' data-live='events'>{charts.format_number(result.events)}</div>"
            f"<div class='nx-kpi-label'>events</div></div><div><div class='nx-kpi' data-live='persons'>"
            f"{charts.format_number(result.persons)}</div><div class='nx-kpi-label'>persons</div></div>"
            f"<div class='nx-live-strip'>{strip}</div></div>{table}</section>")


def _local(moment: Any, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%H:%M:%S")
