"""Serves the dashboard: a Bokeh server (Panel's) with one app per page, the sign-in pages, and every
JS/CSS file from this process (no CDN, no web fonts: the dashboard works air-gapped).

Embedded, `nexus serve` starts it on a thread of its own with its own event loop, beside the API, on
NEXUS_DASHBOARD_PORT; in server mode `nexus dashboard` runs it as the whole process. Either way the
pages read through the process's read services (nexus.runtime), never through the HTTP API.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import panel as pn
from bokeh.server.server import Server
from panel.io.server import get_server
from tornado.ioloop import IOLoop
from tornado.web import RedirectHandler, RequestHandler

from nexus.dashboard import pages
from nexus.dashboard.session import Dashboard
from nexus.dashboard.signin import HOME_PATH, DashboardAuth, SignIns
from nexus.errors import InvalidConfig
from nexus.observe.http import UNMATCHED
from nexus.runtime import Runtime

log = logging.getLogger("nexus.dashboard")
requests_log = logging.getLogger("nexus.dashboard.requests")
# Bokeh announces every start and session at INFO; the dashboard reports what matters itself.
for _name in ("bokeh.server.server", "bokeh.server.tornado", "bokeh.server.views.ws"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def build(runtime: Runtime, *, host: str, port: int, loop: IOLoop) -> Server:
    """The dashboard's server on `loop`, listening (not yet started); InvalidConfig when the port is taken."""
    signins = SignIns(runtime.clickhouse, runtime.redis.client, runtime.settings.dashboard_session_hours)
    dashboard = Dashboard(runtime, signins)
    pn.config.nthreads = 4  # each session's queries run off the event loop, several tiles at once
    pn.config.global_loading_spinner = False
    pn.config.browser_info = False  # no page reads it: one model less, and no round of messages at every load
    routes = {name: _for(dashboard, page) for name, page in pages.ROUTES.items()}
    try:
        return _server(routes, signins, host=host, port=port, loop=loop)
    except OSError as e:
        raise InvalidConfig(f"cannot listen on {host}:{port} (the dashboard's port, NEXUS_DASHBOARD_PORT): "
                            f"{e.strerror}") from None


def _server(routes: dict[str, Callable[[], object]], signins: SignIns, *, host: str, port: int,
            loop: IOLoop) -> Server:
    return get_server(
        routes, port=port, address=host, loop=loop, start=False, title="Nexus",
        websocket_origin=[f"{name}:{port}" for name in _names(host)] if port else "*",
        cookie_secret=signins.cookie_secret(), auth_provider=DashboardAuth(signins),
        extra_patterns=[(r"/", RedirectHandler, {"url": HOME_PATH})],
        # Sessions live as long as their page; an idle one is dropped after a minute without its browser.
        unused_session_lifetime_milliseconds=60_000, check_unused_sessions_milliseconds=20_000,
        include_cookies=["nexus_session"], include_headers=["Host"],
        # gzip for the browsers that ask: Bokeh's and Panel's scripts are 2.9 MB as sent, 0.8 MB compressed
        # (fetched once: their URLs carry a version and are cached for ten years).
        compress_response=True,
        log_function=_log_request,
    )


def _log_request(handler: RequestHandler) -> None:
    """Tornado's access line, shaped as the API's (nexus.observe.http): the path without its query string,
    which may carry a session id or a key pasted into a link; a path no handler serves as (unmatched).
    A 5xx is an error, as tornado.access logs it: a page or a sign-in failed (the dashboard's tests watch for it)."""
    status = handler.get_status()
    request = handler.request
    requests_log.log(logging.ERROR if status >= 500 else logging.INFO, "request", extra={
        "method": request.method, "route": UNMATCHED if status == 404 else request.path, "status": status,
        "duration_ms": round(request.request_time() * 1000, 1)})


def _for(dashboard: Dashboard, page: Callable[[Dashboard], object]) -> Callable[[], object]:
    """The page as Panel serves one: a plain function it calls for each new session."""
    def build_page() -> object:
        return page(dashboard)
    return build_page


def _names(host: str) -> list[str]:
    """Host names a browser may use for a server on `host`: the websocket accepts pages from these only."""
    if host in ("0.0.0.0", "::", ""):
        return ["*"]  # listening everywhere: the operator's proxy or firewall decides who reaches it
    return sorted({host, "localhost", "127.0.0.1"}) if host in ("127.0.0.1", "localhost", "::1") else [host]


@contextmanager
def running(runtime: Runtime, *, host: str, port: int) -> Iterator[str]:
    """The dashboard served on a thread of its own until the block ends; yields its URL."""
    ready = threading.Event()
    holder: dict[str, object] = {}

    def serve() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = IOLoop.current()
        try:
            server = build(runtime, host=host, port=port, loop=loop)
            server.start()
            holder.update(server=server, loop=loop)
        except BaseException as e:  # reported to the starting thread
            holder["error"] = e
            ready.set()
            return
        ready.set()
        loop.start()
        server.stop()
        loop.close(all_fds=False)

    thread = threading.Thread(target=serve, name="nexus-dashboard", daemon=True)
    thread.start()
    ready.wait()
    if "error" in holder:
        raise holder["error"]  # type: ignore[misc]
    server: Server = holder["server"]  # type: ignore[assignment]
    loop: IOLoop = holder["loop"]  # type: ignore[assignment]
    try:
        yield url_of(host, server.port)
    finally:
        loop.add_callback(loop.stop)
        thread.join(timeout=10)


def run(runtime: Runtime, *, host: str, port: int, say: Callable[[str], None]) -> None:
    """Serve the dashboard in this thread until SIGTERM/SIGINT (server mode: `nexus dashboard`)."""
    loop = IOLoop.current()
    server = build(runtime, host=host, port=port, loop=loop)
    server.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.add_callback_from_signal(loop.stop))
    say(f"Nexus dashboard is serving {url_of(host, server.port)}  (sign in with a read or admin key)")
    loop.start()
    server.stop()


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    return f"http://[{shown}]:{port}/" if ":" in shown and not shown.startswith("[") else f"http://{shown}:{port}/"
