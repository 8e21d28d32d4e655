"""Cross-origin calls as browsers make them: Segment's short paths, preflights, and which origins may read
which answers. The write endpoints answer every origin (write keys are public by design); the others
only the origins in NEXUS_CORS_ORIGINS. (tests/api/test_browser_sdks.py runs the real SDKs in Chromium.)"""

from __future__ import annotations

import base64
import uuid

import pytest

from nexus.errors import InvalidConfig
from nexus.settings import load

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security

DASHBOARD = "http://dashboard.example"
SHOP = "http://shop.example"
SHORT = {"t": "track", "p": "page", "s": "screen", "i": "identify", "g": "group", "a": "alias"}
WRITE_PATHS = ["/v1/batch", "/v1/b", *(f"/v1/{c}" for c in [*SHORT, *SHORT.values()]), "/v1/receipts",
               "/e/", "/i/v0/e/", "/batch/", "/capture/", "/track/", "/i/v1/analytics/events",
               "/v1/experiments/new-checkout/assign"]


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    return {"NEXUS_CORS_ORIGINS": DASHBOARD}


@pytest.fixture(scope="module")
def project(server):
    return server.project_with_keys("cors")


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


def preflight(http, path: str, origin: str, headers: str, method: str = "POST"):
    return http.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                       "Access-Control-Request-Headers": headers})


@pytest.mark.parametrize("path", WRITE_PATHS)
def test_write_endpoints_answer_preflights_from_any_origin(http, path):
    # Given analytics-next's request on a retry: HTTP Basic, a JSON body, X-Retry-Count
    answer = preflight(http, path, SHOP, "authorization,content-type,x-retry-count")
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "content-encoding", "x-retry-count"} <= allowed
    assert int(answer.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in answer.headers


@pytest.mark.parametrize("short,call", SHORT.items())
def test_segment_short_paths_store_like_the_long_ones(server, http, project, short, call):
    project_id, secrets = project
    message_id = str(uuid.uuid4())
    body = {"messageId": message_id, "userId": "u-short", "anonymousId": "a-short", "event": "Clicked",
            "previousId": "a-short", "groupId": "g1", "name": "Home", "writeKey": secrets["write"]}
    answer = http.post(f"/v1/{short}", json=body, headers={"Origin": SHOP, "Content-Type": "text/plain"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "retry-after" in answer.headers["access-control-expose-headers"].lower()
    types = server.runtime.clickhouse.query(
        "SELECT type FROM events WHERE project_id = {p:UInt32} AND message_id = {m:String}",
        parameters={"p": project_id, "m": message_id}).result_rows
    assert types == [(call,)]


def test_segment_batches_at_v1_b(server, http, project):
    project_id, secrets = project
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    body = {"writeKey": secrets["write"], "sentAt": "2026-11-28T10:00:00Z",
            "batch": [{"type": "track", "event": "Viewed", "userId": "u-b", "messageId": i} for i in ids]}
    answer = http.post("/v1/b", json=body, headers={"Origin": SHOP, **basic(secrets["write"])})
    assert answer.status_code == 200 and answer.json()["stored"] == 2
    assert answer.headers["access-control-allow-origin"] == "*"
    count = server.runtime.clickhouse.query(
        "SELECT count() FROM events WHERE project_id = {p:UInt32} AND message_id IN {ids:Array(String)}",
        parameters={"p": project_id, "ids": ids}).result_rows[0][0]
    assert count == 2


def test_refusals_on_write_endpoints_are_readable_too(http):
    # An SDK decides whether to retry from the status: the browser must let it see a 401 or 400.
    for answer in (http.post("/v1/t", json={"event": "x", "userId": "u"}, headers={"Origin": SHOP}),
                   http.post("/e/", content=b"", headers={"Origin": SHOP})):
        assert answer.status_code in (400, 401)
        assert answer.headers["access-control-allow-origin"] == "*"


def test_read_endpoints_answer_only_the_listed_origins(http, project):
    _, secrets = project
    for path, method in [("/v1/query", "POST"), ("/v1/ingest/metrics", "GET"), ("/v1/import", "POST")]:
        allowed = preflight(http, path, DASHBOARD, "authorization,content-type", method)
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == DASHBOARD
        assert method in allowed.headers["access-control-allow-methods"]
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in allowed.headers
        refused = preflight(http, path, SHOP, "authorization,content-type", method)
        assert "access-control-allow-origin" not in refused.headers
        assert "access-control-allow-headers" not in refused.headers
    read = {"Authorization": f"Bearer {secrets['read']}"}
    mine = http.get("/v1/ingest/metrics", headers={"Origin": DASHBOARD, **read})
    assert mine.status_code == 200 and mine.headers["access-control-allow-origin"] == DASHBOARD
    assert "origin" in mine.headers["vary"].lower()
    theirs = http.get("/v1/ingest/metrics", headers={"Origin": SHOP, **read})
    assert theirs.status_code == 200 and "access-control-allow-origin" not in theirs.headers
    assert "origin" in theirs.headers["vary"].lower()


def test_cors_origins_setting_defaults_to_none_and_takes_only_origins():
    assert load({}).cors_origins == ()
    assert load({"NEXUS_CORS_ORIGINS": " https://App.example.com, http://127.0.0.1:3000 "}).cors_origins == (
        "https://app.example.com", "http://127.0.0.1:3000")
    for bad in ("*", "https://app.example.com/", "app.example.com", "https://app.example.com/path", "ftp://x"):
        with pytest.raises(InvalidConfig, match="NEXUS_CORS_ORIGINS"):
            load({"NEXUS_CORS_ORIGINS": bad})


def test_a_templated_write_route_opens_only_that_route(http, project):
    """The assign route (/v1/experiments/{key}/assign) takes write keys: any origin reads its answer; the
    experiment itself (/v1/experiments/{key}) is a read key's, closed to other origins."""
    _, secrets = project
    write = {"Authorization": f"Bearer {secrets['write']}", "Origin": SHOP}
    assigned = http.get("/v1/experiments/no-such/assign", params={"distinct_id": "u"}, headers=write)
    assert assigned.headers["access-control-allow-origin"] == "*"  # its refusal (404) is readable too
    read = {"Authorization": f"Bearer {secrets['read']}", "Origin": SHOP}
    for path in ("/v1/experiments/no-such", "/v1/experiments/no-such/assign/more", "/v1/experiments/a/b/assign"):
        assert "access-control-allow-origin" not in http.get(path, headers=read).headers, path
