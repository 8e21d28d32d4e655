"""The real browser SDKs, in Chromium, on a page of another origin: `@segment/analytics-next` (its
standalone bundle, one request per call and batched) and `posthog-js` send to Nexus, each event is stored
exactly once, and each SDK sees its answers succeed (no retry). Also: the /schema page renders under its
Content-Security-Policy. Every asset is served on loopback and any other address is refused, so the
pages work air-gapped.

Needs Debian's chromium (/usr/bin/chromium) and npm: `.ci/run` installs chromium; the SDK bundles, pinned
by version and checksum, are fetched once with `npm pack` into ~/.cache/nexus-tests. Without them the test
is skipped locally and fails under CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security

CHROMIUM = Path("/usr/bin/chromium")
# name: (version, npm's sha512 integrity of the tarball, what the pages load)
BUNDLES = {
    "@segment/analytics-next": ("1.84.3", "sha512-5l7cPBzScxhfJ0zdcKQI4daDvMIWWUk7hClT1xGRelnHUltIEoQ9w8+ZpFPoWJM"
                                "pX8D7IA1nVAfJbpiKi3XaKw==", "dist/umd"),
    "posthog-js": ("1.449.2", "sha512-vji+h92IHaLlFSEnRH1hwe8uLWGOdDUImmPXexj/+V7Xm7HTxIQisYE/Kom7Aaw4DRpzfdhQxiyAN1Y"
                   "VYR4G8Q==", "dist/array.no-external.js"),
}
SETTLE_SECONDS = 2.0  # after the last answer: time for a retry to show if the SDK had seen a failure


def _missing(what: str) -> None:
    message = f"the browser SDK test needs {what}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def fetch_bundle(name: str, cache: Path) -> Path:
    """The unpacked npm package, fetched with `npm pack` once and checked against its pinned integrity."""
    version, integrity, _ = BUNDLES[name]
    target = cache / f"{name.replace('/', '+')}-{version}"
    if (target / "package.json").exists():
        return target
    if not shutil.which("npm"):
        _missing("npm, to fetch the SDK bundles from the npm registry")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        packed = subprocess.run(["npm", "pack", f"{name}@{version}", "--json", "--ignore-scripts",
                                 "--pack-destination", work], capture_output=True, text=True, timeout=300)
        assert packed.returncode == 0, packed.stderr[-2000:]
        info = json.loads(packed.stdout)[0]
        assert info["integrity"] == integrity, f"{name}@{version} is not the tarball this test pins"
        with tarfile.open(Path(work) / info["filename"]) as tar:
            tar.extractall(work, filter="data")
        (Path(work) / "package").rename(target)  # atomic: a concurrent run sees all of it or nothing
    return target


@pytest.fixture(scope="module")
def bundles() -> dict[str, Path]:
    cache = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "nexus-tests"
    return {name: fetch_bundle(name, cache) / BUNDLES[name][2] for name in BUNDLES}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        _missing("Debian's chromium: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


class Site:
    """A static web server on its own loopback port: the shop's pages, the SDK bundles, Segment's settings."""

    def __init__(self, files: dict[str, tuple[str, bytes]], folders: dict[str, Path]):
        self.files, self.folders = files, folders
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                found = site.files.get(path) or site._from_folder(path)
                if found is None:
                    self.send_error(404)
                    return
                kind, body = found
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _from_folder(self, path: str) -> tuple[str, bytes] | None:
        for prefix, folder in self.folders.items():
            name = path.removeprefix(prefix)
            if path.startswith(prefix) and "/" not in name and (folder / name).is_file():
                return "application/javascript", (folder / name).read_bytes()
        return None


@pytest.fixture(scope="module")
def site(bundles) -> Iterator[Site]:
    shop = Site({}, {"/analytics-next/bundles/": bundles["@segment/analytics-next"]})
    yield shop
    shop.httpd.shutdown()


def record_network(page, nexus: str) -> dict[str, list]:
    """Every request the page makes: those to Nexus, and any to a host off this machine (refused)."""
    seen: dict[str, list] = {"nexus": [], "elsewhere": []}

    def route(route) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            seen["elsewhere"].append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on("request", lambda r: r.url.startswith(nexus) and seen["nexus"].append(
        {"method": r.method, "path": urlsplit(r.url).path, "query": urlsplit(r.url).query, "headers": r.headers,
         "body": r.post_data_buffer}))
    return seen


# Installed before any SDK: both SDKs call the page's fetch, so this sees what they see. A response the
# browser hides for want of CORS headers is a rejected promise here, as it is for the SDK.
FETCH_PROBE = """
window.answers = [];
const realFetch = window.fetch;
window.fetch = function (input, init) {
  const url = typeof input === "string" ? input : input.url;
  return realFetch.call(this, input, init).then(
    (r) => { window.answers.push({url, status: r.status}); return r; },
    (e) => { window.answers.push({url, error: String(e)}); throw e; });
};
"""


def page_html(script: str, head: str = "") -> bytes:
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>shop</title>
<script>{FETCH_PROBE}</script>{head}</head><body><h1>shop</h1><script>{script}</script></body></html>""".encode()


def stored(server, project_id: int) -> dict[str, int]:
    rows = server.runtime.clickhouse.query(
        "SELECT message_id, count() FROM events WHERE project_id = {p:UInt32} GROUP BY message_id",
        parameters={"p": project_id}).result_rows
    return dict(rows)


def settle(page, seen: dict[str, list]) -> None:
    """Wait until no request has gone to Nexus for SETTLE_SECONDS."""
    count, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < SETTLE_SECONDS:
        page.wait_for_timeout(200)
        if len(seen["nexus"]) != count:
            count, quiet_since = len(seen["nexus"]), time.monotonic()


def segment_settings(write_key: str, nexus: str, strategy: str) -> bytes:
    """What Segment's CDN answers for a source, pointed at Nexus (apiHost is host:port/v1)."""
    segmentio = {"apiKey": write_key, "apiHost": urlsplit(nexus).netloc + "/v1", "protocol": "http",
                 "unbundledIntegrations": [], "addBundledMetadata": True, "maybeBundledConfigIds": {}}
    if strategy == "batching":
        segmentio["deliveryStrategy"] = {"strategy": "batching", "config": {"size": 10, "timeout": 300}}
    return json.dumps({"integrations": {"Segment.io": segmentio}, "plan": {}, "edgeFunction": {},
                       "analyticsNextEnabled": True, "middlewareSettings": {}, "enabledMiddleware": {},
                       "metrics": {"sampleRate": 0}, "legacyVideoPluginsEnabled": False,
                       "remotePlugins": []}).encode()


SEGMENT_CALLS = """
window.results = (async () => {
  const a = window.analytics;
  const calls = [
    () => a.identify("sdk-user", {plan: "pro"}),
    () => a.track("Signed Up", {plan: "pro", seats: 3}),
    () => a.page("Pricing"),
    () => a.screen("Home"),
    () => a.group("org-1", {name: "Acme"}),
    () => a.alias("sdk-user-2", "sdk-user"),
  ];
  const out = [];
  for (const call of calls) {
    const ctx = await call();
    out.push({id: ctx.event.messageId, type: ctx.event.type,
              failed: ctx.failedDelivery() ? String(ctx.failedDelivery().reason) : null,
              errors: ctx.logs().filter((l) => l.level === "error").map((l) => l.message)});
  }
  return out;
})();
"""


@pytest.mark.parametrize(("strategy", "paths"), [
    ("standard", {"/v1/i", "/v1/t", "/v1/p", "/v1/s", "/v1/g", "/v1/a"}),
    ("batching", {"/v1/b"}),
])
def test_segment_analytics_next_in_a_browser(server, browser, site, strategy, paths):
    project_id, secrets = server.project_with_keys(f"browser-segment-{strategy}")
    key = secrets["write"]
    # Given a shop page on another origin that loads the standalone bundle the way Segment's snippet does
    site.files[f"/v1/projects/{key}/settings"] = ("application/json", segment_settings(key, server.url, strategy))
    site.files[f"/analytics.js/v1/{key}/analytics.min.js"] = (
        "application/javascript", (site.folders["/analytics-next/bundles/"] / "standalone.js").read_bytes())
    stub = f"""window.analytics = []; analytics._writeKey = {json.dumps(key)}; analytics._cdn = location.origin;
               analytics._loadOptions = {{}}; window.sdkErrors = [];"""
    site.files[f"/segment-{strategy}.html"] = ("text/html", page_html(
        "", head=f'<script>{stub}</script><script src="/analytics.js/v1/{key}/analytics.min.js"></script>'))
    page = browser.new_page()
    seen = record_network(page, server.url)
    page.goto(f"{site.url}/segment-{strategy}.html")
    page.wait_for_function("window.analytics && window.analytics.initialized === true", timeout=30_000)
    page.evaluate("window.analytics.on('error', (e) => window.sdkErrors.push(String(e && e.reason)))")
    # When the page identifies, tracks, pages, screens, groups and aliases
    page.evaluate(SEGMENT_CALLS)
    results = page.evaluate("window.results")
    page.wait_for_function(f"window.answers.filter(a => a.url.startsWith({json.dumps(server.url)})).length > 0")
    settle(page, seen)
    answers = [a for a in page.evaluate("window.answers") if a["url"].startswith(server.url)]
    errors = page.evaluate("window.sdkErrors")
    page.close()
    # Then the SDK saw every answer succeed and sent nothing twice
    assert [r["type"] for r in results] == ["identify", "track", "page", "screen", "group", "alias"]
    assert all(r["failed"] is None and not r["errors"] for r in results), results
    assert not errors
    assert answers and all(a.get("status") == 200 for a in answers), answers
    posts = [r for r in seen["nexus"] if r["method"] == "POST"]
    assert {r["path"] for r in posts} == paths
    assert not [r for r in seen["nexus"] if "x-retry-count" in r["headers"]]
    assert all(r["headers"]["authorization"].startswith("Basic ") for r in posts)
    bodies = [json.loads(r["body"]) for r in posts]
    sent = [m["messageId"] for b in bodies for m in b.get("batch", [b])]
    assert sorted(sent) == sorted(r["id"] for r in results) and not seen["elsewhere"]
    # And each event is stored exactly once
    assert stored(server, project_id) == {r["id"]: 1 for r in results}


POSTHOG_INIT = """
window.sent = []; window.requestErrors = [];
posthog.init(%(key)s, {
  api_host: %(nexus)s,
  opt_out_useragent_filter: true,            // a headless browser's user agent is on posthog-js's bot list
  autocapture: false, capture_pageview: false, capture_pageleave: false, disable_session_recording: true,
  disable_surveys: true, advanced_disable_flags: true, disable_external_dependency_loading: true,
  persistence: "memory", request_queue_config: {flush_interval_ms: 250},
  before_send: (event) => { window.sent.push(event.uuid); return event; },
  on_request_error: (response) => window.requestErrors.push(response.statusCode),
});
posthog.capture("signed_up", {plan: "pro"});
posthog.identify("ph-user", {email: "ph@example.com"});
posthog.capture("invoice_paid", {amount: 120});
"""


def test_posthog_js_in_a_browser(server, browser, site, bundles):
    project_id, secrets = server.project_with_keys("browser-posthog")
    site.files["/posthog/array.js"] = ("application/javascript", bundles["posthog-js"].read_bytes())
    script = POSTHOG_INIT % {"key": json.dumps(secrets["write"]), "nexus": json.dumps(server.url)}
    site.files["/posthog.html"] = ("text/html", page_html(script, head='<script src="/posthog/array.js"></script>'))
    page = browser.new_page()
    seen = record_network(page, server.url)
    # Given a page on another origin that loads posthog-js and captures three events
    page.goto(f"{site.url}/posthog.html")
    page.wait_for_function("window.sent && window.sent.length === 3", timeout=30_000)
    page.wait_for_function(f"window.answers.filter(a => a.url.startsWith({json.dumps(server.url)})).length > 0")
    settle(page, seen)
    sent = page.evaluate("window.sent")
    answers = [a for a in page.evaluate("window.answers") if a["url"].startswith(server.url)]
    request_errors = page.evaluate("window.requestErrors")
    page.close()
    # Then posthog-js read every answer as a success and retried nothing
    assert answers and all(a.get("status") == 200 for a in answers), answers
    assert not request_errors
    assert seen["nexus"] and all(r["method"] == "POST" and r["path"] == "/e/" for r in seen["nexus"])
    assert not [r for r in seen["nexus"] if "retry_count" in r["query"]] and not seen["elsewhere"]
    # And each event is stored exactly once
    assert stored(server, project_id) == {uuid: 1 for uuid in sent}


def test_the_schema_page_renders_under_its_policy(server, browser):
    page = browser.new_page()
    seen = record_network(page, server.url)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.goto(f"{server.url}/schema")
    page.wait_for_selector(".opblock", timeout=30_000)  # Swagger UI drew the operations
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    page.close()
    assert "/v1/t" in operations and "/v1/batch" in operations
    assert not seen["elsewhere"]
    assert not [m for m in console if "Content Security Policy" in m], console
