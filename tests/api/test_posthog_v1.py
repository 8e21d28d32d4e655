"""PostHog's capture v1 protocol with the real posthog-python SDK in v1 mode (capture_mode="v1") against the
real server: every event stored once (a resend too), $lib from the SDK's header, gzip and deflate bodies, a
dropped event reported as `drop` with its reason, and a store that fails for a moment answered `retry`,
after which the SDK resends and the events are stored once."""

from __future__ import annotations

import json
import time
import uuid
import zlib
from datetime import datetime, timezone
from typing import Any

import posthog
import pytest

from tests.api.test_posthog_capture import rows


@pytest.fixture(scope="module")
def project(server):
    return server.project_with_keys("posthog-v1")


def sdk(server, secret: str, errors: list[Exception], **options: Any) -> posthog.Posthog:
    """The SDK as an app configures it for v1; errors reach `errors` (its on_error callback)."""
    return posthog.Posthog(secret, host=server.url, capture_mode="v1", on_error=lambda e, _: errors.append(e),
                           flush_interval=0.05, max_retries=3, **options)


def stored(server, project_id: int, ids: list[str]) -> dict[str, int]:
    found = server.runtime.clickhouse.query(
        "SELECT message_id, count() FROM events WHERE project_id = {p:UInt32} AND message_id IN {ids:Array(String)} "
        "GROUP BY message_id", parameters={"p": project_id, "ids": ids}).result_rows
    return dict(found)


@pytest.mark.parametrize("compression", ["none", "gzip", "deflate"])
def test_the_sdk_s_events_are_stored_once_with_its_library(server, project, compression):
    project_id, secrets = project
    errors: list[Exception] = []
    client = sdk(server, secrets["write"], errors, capture_compression=compression)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    client.capture("buy", distinct_id="v1-user", properties={"plan": "pro", "$session_id": "s-v1"}, uuid=ids[0])
    client.capture("$pageview", distinct_id="v1-user", properties={"$current_url": "https://a.example/docs?utm_source=hn"},
                   uuid=ids[1])
    client.capture("buy", distinct_id="v1-user", properties={"plan": "team"}, uuid=ids[2],
                   timestamp="2026-11-20T10:00:00+00:00")
    client.set(distinct_id="v1-user", properties={"email": "v1@example.com"})  # v1 sends $set inside properties
    client.flush()
    client.shutdown()
    assert errors == []
    assert stored(server, project_id, ids) == {i: 1 for i in ids}
    buy, view, old = sorted(rows(server, project_id, ids), key=lambda r: ids.index(r["message_id"]))
    assert (buy["event"], buy["library"], buy["library_version"]) == ("buy", "posthog-python", posthog.VERSION)
    assert (buy["session_id"], json.loads(buy["props"])["plan"]) == ("s-v1", "pro")
    assert (view["type"], view["path"], view["utm_source"]) == ("page", "/docs", "hn")
    assert old["ts"].isoformat().startswith("2026-11-20T10:00:00")
    traits = server.runtime.clickhouse.query(
        "SELECT toJSONString(properties) FROM persons FINAL WHERE project_id = {p:UInt32}",
        parameters={"p": project_id}).result_rows
    assert any(json.loads(t[0]).get("email") == "v1@example.com" for t in traits)


def test_a_dropped_event_is_reported_with_its_reason_and_the_rest_stored(server, project):
    project_id, secrets = project
    errors: list[Exception] = []
    client = sdk(server, secrets["write"], errors)
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    client.capture("ok", distinct_id="v1-drop", uuid=good)
    client.capture("poison", distinct_id="v1-drop", properties={"p.q": 1, "p": {"q": 2}}, uuid=bad)
    client.flush()
    client.shutdown()
    assert stored(server, project_id, [good, bad]) == {good: 1}
    assert len(errors) == 1 and [uid for uid, _ in errors[0].drops] == [bad]
    assert errors[0].drops[0][1].startswith("properties.p.q: p.q is given twice")


def refusing_inserts(server, http, secret: str):
    """The engine refusing inserts into this month's partition (TOO_MANY_PARTS, as when merges fall behind),
    which is given a part first: the limit counts the partition's parts."""
    now = datetime.now(timezone.utc).isoformat()
    seed = {"batch": [{"event": "seed", "uuid": str(uuid.uuid4()), "distinct_id": "v1-seed", "timestamp": now}]}
    assert post(http, json.dumps(seed).encode(), secret).status_code == 200
    server.runtime.clickhouse.command("ALTER TABLE events MODIFY SETTING parts_to_throw_insert = 1")


def accepting_inserts(server) -> None:
    server.runtime.clickhouse.command("ALTER TABLE events RESET SETTING parts_to_throw_insert")


def test_a_store_failing_for_a_moment_is_answered_retry_and_the_sdk_resends(server, http, project):
    """The engine refuses inserts (TOO_MANY_PARTS, as when merges fall behind) until the first refusal has
    happened; the SDK is told `retry`, waits, resends, and each event is stored once."""
    project_id, secrets = project
    engine = server.runtime.clickhouse
    failures = lambda: engine.query(  # noqa: E731
        "SELECT sum(value) FROM system.errors WHERE name = 'TOO_MANY_PARTS'").result_rows[0][0] or 0
    before = failures()
    errors: list[Exception] = []
    client = sdk(server, secrets["write"], errors)
    ids = [str(uuid.uuid4()) for _ in range(2)]
    refusing_inserts(server, http, secrets["write"])
    try:
        for i in ids:
            client.capture("retried", distinct_id="v1-retry", uuid=i)
        deadline = time.monotonic() + 30
        while failures() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert failures() > before, "the insert was never refused"
    finally:
        accepting_inserts(server)
    client.flush()
    client.shutdown()
    assert errors == []
    assert stored(server, project_id, ids) == {i: 1 for i in ids}


def post(http, body: bytes, secret: str | None, **headers: str):
    auth = {"Authorization": f"Bearer {secret}"} if secret else {}
    return http.post("/i/v1/analytics/events", content=body,
                     headers={"Content-Type": "application/json", **auth, **headers})


def test_a_refused_insert_answers_retry_for_every_event_and_drop_for_the_invalid(server, http, project):
    project_id, secrets = project
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(timezone.utc).isoformat()
    body = json.dumps({"batch": [
        {"event": "e", "uuid": good, "distinct_id": "v1-r", "timestamp": now, "properties": {}},
        {"event": "", "uuid": bad, "distinct_id": "v1-r", "timestamp": now, "properties": {}}]})
    refusing_inserts(server, http, secrets["write"])
    try:
        answer = post(http, body.encode(), secrets["write"])
    finally:
        accepting_inserts(server)
    assert answer.status_code == 200 and answer.headers["Retry-After"].isdigit()
    assert answer.json() == {"results": {good: {"result": "retry"},
                                         bad: {"result": "drop", "details": "event: missing event name"}}}
    assert stored(server, project_id, [good]) == {}
    assert post(http, body.encode(), secrets["write"]).json()["results"][good] == {"result": "ok"}
    assert stored(server, project_id, [good]) == {good: 1}


def test_answers_per_event_and_a_resend_is_stored_once(server, http, project):
    project_id, secrets = project
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    batch = {"created_at": "2026-12-01T00:00:00Z", "batch": [
        {"event": "e", "uuid": ids[0], "distinct_id": "v1-raw", "timestamp": "2026-12-01T00:00:00Z", "options": {},
         "properties": {}},
        {"event": "e", "uuid": ids[1], "distinct_id": "v1-raw", "timestamp": "not a time", "options": {},
         "properties": {}},
        {"event": "e", "uuid": "x", "distinct_id": "v1-raw", "timestamp": "2026-12-01T00:00:00Z", "options": [],
         "properties": {}}]}
    body = json.dumps(batch).encode()
    for attempt in range(2):
        answer = post(http, zlib.compress(body) if attempt else body, secrets["write"],
                      **({"Content-Encoding": "deflate"} if attempt else {}))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"results": {
            ids[0]: {"result": "ok"},
            ids[1]: {"result": "drop", "details": "timestamp: invalid ISO 8601 timestamp: 'not a time'"},
            "x": {"result": "drop", "details": "uuid: uuid must be a UUID, got 'x'"}}}
    assert stored(server, project_id, ids) == {ids[0]: 1}


@pytest.mark.parametrize(("body", "key", "status", "words"), [
    (b'{"batch": []}', "write", 400, "holds no events"),
    (b'{"batch": {}}', "write", 400, "not a capture v1 batch"),
    (b'{"created_at": 1}', "write", 400, "batch"),
    (b"{", "write", 400, "malformed JSON"),
    (b'{"batch": [{}]}', None, 401, ""),
    (b'{"batch": [{}]}', "read", 403, ""),
])
def test_bad_requests_are_refused_whole(http, project, body, key, status, words):
    _, secrets = project
    answer = post(http, body, secrets[key] if key else None)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"] and "Traceback" not in answer.text


def test_another_project_s_key_stores_in_its_own_project_only(server, http, project):
    project_id, _ = project
    other_id, other = server.project_with_keys("posthog-v1-other")
    event_id = str(uuid.uuid4())
    batch = {"batch": [{"event": "theirs", "uuid": event_id, "distinct_id": "them", "options": {}, "properties": {},
                        "timestamp": "2026-12-01T00:00:00Z"}]}
    answer = post(http, json.dumps(batch).encode(), other["write"])
    assert answer.json() == {"results": {event_id: {"result": "ok"}}}
    assert stored(server, other_id, [event_id]) == {event_id: 1} and stored(server, project_id, [event_id]) == {}
