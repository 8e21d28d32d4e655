"""The dashboard in a real browser: the API and the dashboard served from this test process over loopback
(this module's chDB database, the session's redis-server), a small demo stream in project A, a few hostile
events in project B, and Debian's chromium driven by playwright, where every request that is not to
127.0.0.1 is refused and recorded, and an XSS canary reports each time it fires.

Needs /usr/bin/chromium (`.ci/run` installs it) and the playwright package (the `test` extra); without
them the browser tests are skipped locally and fail under CI.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from nexus.dashboard.server import running
from nexus.dashboard.signin import COOKIE
from nexus.demo.load import load
from nexus.meta import dashboards, keys, projects
from nexus.runtime import Runtime
from tests.api.conftest import Server, server, server_env  # noqa: F401  (the API fixtures, reused here)

CHROMIUM = Path("/usr/bin/chromium")
# Every URL but this machine's (the browser matches it, so requests to 127.0.0.1 pass without a detour here).
OFF_HOST = re.compile(r"^(?!https?://127\.0\.0\.1[:/])")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
DEMO_EVENTS = 25_000
# The canary: markup that runs script if any page puts it into the document as HTML instead of text.
XSS = '<img src=x onerror="window.__xss=1">'
A_SECRET = "Acme secret board"  # names of project A's that project B's keys must never show
A_SECRET_TILE = "Acme secret tile"
# Loggers where the dashboard's server reports a failure: our pages, Bokeh's server, Panel, and Tornado's
# handlers (an uncaught exception, and any 5xx answer, which nexus.dashboard.requests logs at ERROR).
SERVER_LOGGERS = ("nexus.dashboard", "bokeh", "panel", "tornado.application", "tornado.general", "tornado.access")


class Project(msgspec.Struct):
    project_id: int
    name: str
    timezone: str
    keys: dict[str, str]  # scope → secret
    key_ids: dict[str, str]  # scope → public key id


class Stack(msgspec.Struct):
    """The API and the dashboard of this test module, and what they hold."""

    api: str  # http://127.0.0.1:<port>
    url: str  # the dashboard's, without the trailing slash
    runtime: Runtime
    a: Project
    b: Project
    a_board: str  # the id of project A's own dashboard, named A_SECRET
    server_errors: list[logging.LogRecord]

    def new_key(self, project: Project, scope: str) -> tuple[str, str]:
        """A fresh key (its id, its secret) of the project: for tests that revoke or sign out."""
        key, secret = keys.create(self.runtime.clickhouse, project.project_id, scope)
        return key.key_id, secret

    def analysis(self, project: Project, kind: str, request: dict[str, Any]) -> dict[str, Any]:
        """What POST /v1/analyses/{kind} answers for the request, asked with the project's read key."""
        answer = httpx.post(f"{self.api}/v1/analyses/{kind}", json=request, timeout=60,
                            headers={"Authorization": f"Bearer {project.keys['read']}"})
        assert answer.status_code == 200, answer.text
        return answer.json()["result"]

    def cookie(self, secret: str) -> str:
        """The signed sign-in cookie the login form sets for this key (asked over HTTP, as a form post)."""
        answer = httpx.post(f"{self.url}/login", data={"key": secret, "next": "/overview"}, timeout=30)
        assert answer.status_code == 302, answer.text
        value = answer.cookies.get(COOKIE)
        assert value, answer.headers
        return value


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]):
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


def _hostile_batch(now: datetime) -> list[dict[str, Any]]:
    """Project B's events: ordinary ones, and the canary as an event name, a property value, a page path
    and a distinct id, in the last hour up to two minutes ago (the live panel's 30 minutes show the newest)."""
    batch = []
    for i in range(12):
        at = (now - timedelta(minutes=2 + (11 - i) * 4)).isoformat()
        person = XSS if i == 0 else f"b-person-{i % 4}"
        page = {"path": f"/{XSS}" if i % 3 == 0 else "/pricing", "url": "https://b.example/pricing"}
        batch.append({"type": "track", "event": XSS if i % 2 == 0 else "signup", "userId": person,
                      "timestamp": at, "messageId": f"b-{i}", "properties": {"plan": XSS, "revenue": 5},
                      "context": {"page": page}})
    return batch


@pytest.fixture(scope="module")
def stack(server: Server) -> Iterator[Stack]:  # noqa: F811  (the fixture imported above)
    runtime = server.runtime
    client = runtime.clickhouse
    made: dict[str, Project] = {}
    for label, name, zone in (("a", "Acme Analytics", "America/New_York"), ("b", "Beta Shop", "UTC")):
        project = projects.create(client, name, zone)
        created = {scope: keys.create(client, project.project_id, scope) for scope in ("write", "read", "admin")}
        made[label] = Project(project.project_id, name, zone, {s: secret for s, (_, secret) in created.items()},
                              {s: key.key_id for s, (key, _) in created.items()})
    a, b = made["a"], made["b"]
    assert load(client, a.project_id, DEMO_EVENTS, seed=11) == DEMO_EVENTS
    board = dashboards.create(client, a.project_id, dashboards.DashboardInput(name=A_SECRET, tiles=[
        dashboards.Tile(title=A_SECRET_TILE, kind="trends", chart="line",
                        request={"series": [{"event": "signup", "metric": "events"}]})]), a.key_ids["admin"])
    # B's dashboard and tile carry the canary in their names.
    dashboards.create(client, b.project_id, dashboards.DashboardInput(name=XSS, tiles=[
        dashboards.Tile(title=XSS, kind="trends", chart="bar",
                        request={"series": [{"event": XSS, "metric": "events"}]})]),
        b.key_ids["admin"])
    sent = httpx.post(f"{server.url}/v1/batch", json={"batch": _hostile_batch(datetime.now(timezone.utc))},
                      auth=(b.keys["write"], ""), timeout=60)
    assert sent.status_code == 200 and not sent.json().get("rejected"), sent.text
    errors: list[logging.LogRecord] = []
    handler = _Collect(errors)
    for name in SERVER_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    try:
        with running(runtime, host="127.0.0.1", port=0) as url:
            yield Stack(server.url, url.rstrip("/"), runtime, a, b, board.dashboard_id, errors)
    finally:
        for name in SERVER_LOGGERS:
            logging.getLogger(name).removeHandler(handler)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's chromium (never a downloaded browser), one per test module: Playwright's sync API keeps an
    event loop running in the main thread while it is open, which later modules' asyncio.run (and their
    own Playwright) refuse."""
    if not CHROMIUM.exists():
        _missing("Debian's chromium: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


def _missing(what: str) -> None:
    message = f"the dashboard's browser tests need {what}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# Before any page script: window.__xss reports to the test each time it is set, on every page and frame.
CANARY = """
Object.defineProperty(window, "__xss", {
  configurable: false,
  get() { return undefined; },
  set(v) { window.__nexusCanary(location.href); },
});
"""

# True once the page has its Bokeh canvases (at least `minimum`), no Panel loading spinner, and the count
# of canvases has not changed for `quiet` ms (the state is kept on window between polls). Panel draws each
# pane in a shadow root: the walk enters them.
SETTLED = """([minimum, quiet]) => {
  const found = {canvas: 0, loading: 0};
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.tagName === "CANVAS" && el.width > 0 && el.height > 0) found.canvas++;
      if (el.classList.contains("pn-loading")) found.loading++;
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  const now = performance.now(), seen = window.__nexusSettled;
  if (!seen || seen.canvas !== found.canvas || found.loading) {
    window.__nexusSettled = {canvas: found.canvas, since: now};
    return false;
  }
  return found.canvas >= minimum && now - seen.since >= quiet;
}"""

# The text of the page, shadow roots included (innerText of the body stops at them), one line per text
# node, hidden elements included (a check that something is absent should see those too).
TEXT = """() => {
  const parts = [];
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      const text = node.nodeValue.trim();
      if (text) parts.push(text);
      return;
    }
    if (node.tagName === "STYLE" || node.tagName === "SCRIPT") return;
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) walk(child);
  };
  walk(document.body);
  return parts.join("\\n");
}"""


class Browse:
    """One test's browser: fresh contexts (each its own cookies), what their pages did, and screenshots."""

    def __init__(self, stack: Stack, chromium: Any, name: str):
        self.stack = stack
        self.chromium = chromium
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
        self.contexts: list[Any] = []
        self.pages: list[Any] = []
        self.console_errors: list[str] = []
        self.elsewhere: list[str] = []  # requests to anywhere but 127.0.0.1 (all refused)
        self.xss: list[str] = []  # pages where the canary fired
        self.errors_before = len(stack.server_errors)

    def context(self, key: str | None = None) -> Any:
        """A fresh browser context, signed in with `key` (through the login form's cookie) when given."""
        context = self.chromium.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(30_000)
        context.add_init_script(CANARY)
        context.expose_function("__nexusCanary", lambda url: self.xss.append(url))
        context.route(OFF_HOST, self._refuse)
        if key is not None:
            context.add_cookies([{"name": COOKIE, "value": self.stack.cookie(key), "url": self.stack.url,
                                  "httpOnly": True, "sameSite": "Lax"}])
        self.contexts.append(context)
        return context

    def page(self, key: str | None = None, path: str | None = None, *, context: Any = None) -> Any:
        """A page in a new context (or in `context`), opened at `path` when given."""
        page = (context or self.context(key)).new_page()
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: self.console_errors.append(f"{page.url}: uncaught {e}"))
        self.pages.append(page)
        if path is not None:
            page.goto(self.stack.url + path)
        return page

    def _refuse(self, route: Any) -> None:
        self.elsewhere.append(route.request.url)
        route.abort()

    def server_errors(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" + (f"\n{logging.Formatter().formatException(r.exc_info)}"
                                                  if r.exc_info else "")
                for r in self.stack.server_errors[self.errors_before:]]

    def assert_clean(self, *, expected_console: tuple[str, ...] = ()) -> None:
        """No console error (but those expected), no server exception, no request off this machine, no XSS."""
        unexpected = [e for e in self.console_errors if not any(x in e for x in expected_console)]
        assert unexpected == [], unexpected
        assert self.server_errors() == []
        assert self.elsewhere == []
        assert self.xss == []

    def shoot(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        open_pages = [p for p in self.pages if not p.is_closed()]
        for i, page in enumerate(open_pages):
            suffix = "" if i == len(open_pages) - 1 else f"-{i + 1}"
            try:
                page.screenshot(path=str(ARTIFACTS / f"{self.name}{suffix}.png"), full_page=True, timeout=10_000)
            except Exception as e:  # a screenshot is evidence, not the test: report and go on
                print(f"screenshot of {page.url} failed: {e}")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def browse(stack: Stack, chromium: Any, request: pytest.FixtureRequest) -> Iterator[Browse]:
    """Fresh contexts for this test; at its end a screenshot of each page still open into
    test-artifacts/dashboard/<test name>.png, and whatever the test did, the canary never fired and
    nothing was asked of another host."""
    browsing = Browse(stack, chromium, request.node.name)
    try:
        yield browsing
    finally:
        browsing.shoot()
        browsing.close()
    assert browsing.xss == [], f"the XSS canary fired on {browsing.xss}"
    assert browsing.elsewhere == [], f"requests off this machine: {browsing.elsewhere}"


def sign_in(page: Any, stack: Stack, key: str, path: str = "/overview") -> None:
    """Sign in through the login form (opening `path` first when the page is not on the login page)."""
    if "/login" not in page.url:
        page.goto(stack.url + path)
    page.wait_for_url(re.compile(r"/login"))
    page.fill("input[name=key]", key)
    with page.expect_navigation():
        page.click("button[type=submit]")


def wait_for_plots(page: Any, minimum: int = 1, *, quiet_ms: int = 300, timeout: float = 45_000) -> None:
    """Until the page shows at least `minimum` Bokeh canvases, no Panel spinner, and nothing new for a moment
    (counted from this call: what an earlier wait saw does not count)."""
    page.evaluate("delete window.__nexusSettled")
    page.wait_for_function(SETTLED, arg=[minimum, quiet_ms], polling=100, timeout=timeout)


def settled(page: Any, *, quiet_ms: int = 300, timeout: float = 45_000) -> None:
    """Until no Panel spinner shows and the page's canvases stop changing (a page that may have no plot)."""
    wait_for_plots(page, 0, quiet_ms=quiet_ms, timeout=timeout)


# Every element matching a selector, shadow roots included; `mark` flags them, else: are there any, none flagged?
_MATCHING = """([selector, mark]) => {
  const found = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.matches(selector)) found.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  if (mark) { found.forEach((el) => { el.__nexusStale = true; }); return true; }
  return found.length > 0 && found.every((el) => !el.__nexusStale);
}"""


def mark_stale(page: Any, selector: str) -> None:
    """Flag what `selector` matches now, so that `fresh` can wait for the page to draw it anew."""
    page.evaluate(_MATCHING, [selector, True])


def fresh(page: Any, selector: str, *, timeout: float = 45_000) -> None:
    """Until `selector` matches elements drawn since `mark_stale` (and none of those it flagged)."""
    page.wait_for_function(_MATCHING, arg=[selector, False], polling=100, timeout=timeout)


def page_text(page: Any) -> str:
    return page.evaluate(TEXT)


def wait_until(check: Any, *, page: Any = None, timeout: float = 30, every: float = 0.2, what: str = "") -> Any:
    """Poll `check()` until it returns something true; that value, or a failure saying `what`. With `page`,
    the wait lets playwright deliver the page's events (a sync playwright hears them only while called)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or check}")
        if page is not None:
            page.wait_for_timeout(every * 1000)
        else:
            time.sleep(every)
