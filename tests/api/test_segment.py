"""The Segment HTTP Tracking API as SDKs use it: shapes, auth, encodings, limits, rejections, dedup,
clock skew, enrichment and identity — over real HTTP, checked in ClickHouse."""

from __future__ import annotations

import base64
import gzip
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from nexus.api import auth
from nexus.store import json_insert

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.1 Mobile/15E148 Safari/604.1")


@pytest.fixture(scope="module")
def shop(server):
    return server.project_with_keys("shop")


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


def stored(server, project_id: int, where: str = "1", **params) -> list[dict]:
    result = server.runtime.clickhouse.query(
        f"SELECT * EXCEPT properties, toJSONString(properties) AS props FROM events "
        f"WHERE project_id = {{p:UInt32}} AND {where} ORDER BY ts, message_id",
        parameters={"p": project_id, **params},
    )
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


def mid() -> str:
    return str(uuid.uuid4())


FULL_CONTEXT = {
    "ip": "8.8.8.8",
    "userAgent": CHROME,
    "library": {"name": "analytics.js", "version": "5.2.0"},
    "locale": "en-US",
    "timezone": "Europe/Berlin",
    "page": {"url": "https://shop.example.com/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=nov",
             "path": "/pricing", "referrer": "https://www.google.com/search?q=x", "title": "Pricing", "search": "?a"},
    "device": {"type": "desktop"}, "os": {"name": "Windows"},
}


def test_a_full_track_event_is_stored_enriched(server, http, shop):
    project_id, secrets = shop
    message_id = mid()
    event = {"type": "track", "event": "Order Completed", "userId": "user-1", "anonymousId": "anon-1",
             "properties": {"revenue": 49.5, "currency": "USD", "products": [{"sku": "a"}]},
             "context": FULL_CONTEXT, "integrations": {"All": True},
             "timestamp": "2026-11-28T10:00:00.000Z", "messageId": message_id}
    answer = http.post("/v1/batch", json={"batch": [event]}, headers=basic(secrets["write"]))
    assert answer.status_code == 200 and answer.json() == {"success": True, "stored": 1, "duplicates": 0}
    [row] = stored(server, project_id, "message_id = {m:String}", m=message_id)
    assert (row["event"], row["type"], row["distinct_id"], row["user_id"], row["anonymous_id"]) == (
        "Order Completed", "track", "user-1", "user-1", "anon-1")
    assert row["ts"] == datetime(2026, 11, 28, 10, tzinfo=timezone.utc)
    assert (row["host"], row["path"], row["referrer_domain"], row["referrer_class"]) == (
        "shop.example.com", "/pricing", "google.com", "search")
    assert (row["utm_source"], row["utm_medium"], row["utm_campaign"]) == ("newsletter", "email", "nov")
    assert (row["country"], row["ip"]) == ("US", "8.8.8.0")
    assert (row["browser"], row["browser_version"], row["os"], row["device_type"]) == ("Chrome", "120", "Windows", "desktop")
    assert (row["library"], row["library_version"]) == ("analytics.js", "5.2.0")
    assert json.loads(row["props"]) == {"revenue": 49.5, "currency": "USD", "products": [{"sku": "a"}]}


@pytest.mark.parametrize(
    ("call", "body", "event_name", "properties"),
    [
        ("track", {"event": "Clicked", "anonymousId": "a"}, "Clicked", {}),
        ("page", {"anonymousId": "a", "name": "Home", "properties": {"url": "https://x.io/home?utm_source=ads"}},
         "page_view", {"url": "https://x.io/home?utm_source=ads", "name": "Home"}),
        ("screen", {"userId": 42, "name": "Settings"}, "screen_view", {"name": "Settings"}),
        ("identify", {"userId": "u9", "traits": {"plan": "team"}}, "identify", {"plan": "team"}),
        ("group", {"userId": "u9", "groupId": "acme", "traits": {"seats": 5}}, "group", {"seats": 5, "group_id": "acme"}),
        ("alias", {"userId": "u9", "previousId": "a-old"}, "alias", {"previous_id": "a-old"}),
    ],
)
def test_minimal_calls_on_their_own_endpoints(server, http, shop, call, body, event_name, properties):
    project_id, secrets = shop
    message_id = mid()
    answer = http.post(f"/v1/{call}", json={**body, "messageId": message_id}, headers=basic(secrets["write"]))
    assert answer.status_code == 200, answer.text
    [row] = stored(server, project_id, "message_id = {m:String}", m=message_id)
    assert (row["type"], row["event"]) == (call, event_name)
    assert json.loads(row["props"]) == properties
    assert row["distinct_id"] == str(body.get("userId") or body.get("anonymousId"))
    if call == "page":
        assert (row["host"], row["path"], row["utm_source"]) == ("x.io", "/home", "ads")


def test_every_way_of_passing_the_write_key(server, http, shop):
    project_id, secrets = shop
    event = {"type": "track", "event": "Auth", "anonymousId": "a"}
    assert http.post("/v1/batch", json={"batch": [event]}, headers={"Authorization": f"Bearer {secrets['write']}"}).status_code == 200
    assert http.post("/v1/batch", json={"batch": [event], "writeKey": secrets["write"]}).status_code == 200
    assert http.post("/v1/track", json={**event, "writeKey": secrets["write"]}).status_code == 200
    assert http.post("/v1/batch", json={"batch": [event]}, headers=basic(secrets["admin"])).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "an API key is required"),
        ({"Authorization": "Basic bm90LWEta2V5Og=="}, 401, "not valid"),
        ({"Authorization": "Basic !!!"}, 401, "not valid HTTP Basic"),
        ("read", 403, "this read key cannot send events"),
    ],
)
def test_bad_keys_are_refused(server, http, shop, headers, status, reason):
    _, secrets = shop
    if headers == "read":
        headers = basic(secrets["read"])
    answer = http.post("/v1/batch", json={"batch": [{"type": "track", "event": "x", "anonymousId": "a"}]}, headers=headers)
    assert answer.status_code == status and reason in answer.json()["error"]


def test_a_key_of_another_project_writes_only_there(server, http, shop):
    project_id, _ = shop
    other_id, other = server.project_with_keys("other-shop")
    message_id = mid()
    http.post("/v1/track", json={"event": "x", "anonymousId": "a", "messageId": message_id}, headers=basic(other["write"]))
    assert stored(server, project_id, "message_id = {m:String}", m=message_id) == []
    assert len(stored(server, other_id, "message_id = {m:String}", m=message_id)) == 1


def test_a_revoked_key_stops_working(server, http, monkeypatch):
    from nexus.meta import keys

    project_id, secrets = server.project_with_keys("revoking")
    monkeypatch.setattr(auth, "CACHE_SECONDS", 0.0)
    event = {"event": "x", "anonymousId": "a"}
    assert http.post("/v1/track", json=event, headers=basic(secrets["write"])).status_code == 200
    keys.revoke(server.runtime.clickhouse, secrets["write"][:11])
    answer = http.post("/v1/track", json=event, headers=basic(secrets["write"]))
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]


def test_gzip_bodies_are_accepted_and_bad_or_huge_gzip_refused(server, http, shop):
    project_id, secrets = shop
    message_id = mid()
    body = gzip.compress(json.dumps({"batch": [{"type": "track", "event": "Zipped", "anonymousId": "a",
                                                "messageId": message_id}]}).encode())
    headers = {**basic(secrets["write"]), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert http.post("/v1/batch", content=body, headers=headers).status_code == 200
    assert len(stored(server, project_id, "message_id = {m:String}", m=message_id)) == 1
    bad = http.post("/v1/batch", content=b"not gzip", headers=headers)
    assert bad.status_code == 400 and "not valid gzip" in bad.json()["error"]
    bomb = gzip.compress(b'{"batch": [' + b" " * 50_000_000 + b"]}")
    assert len(bomb) < 100_000
    answer = http.post("/v1/batch", content=bomb, headers=headers)
    assert answer.status_code == 413 and "decoded request body is over the limit" in answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b'{"batch": []}', 400, "the batch is empty"),
        (b'{"batch": 5}', 400, "batch: Expected `array`, got `int`"),
        (b"[]", 400, "Expected `object`, got `array`"),
        (b"", 400, "malformed JSON"),
    ],
)
def test_malformed_bodies_are_400_with_a_reason(server, http, shop, body, status, reason):
    _, secrets = shop
    answer = http.post("/v1/batch", content=body, headers=basic(secrets["write"]))
    assert answer.status_code == status and reason in answer.json()["error"]


def test_a_body_over_the_limit_is_413(server, http, shop):
    _, secrets = shop
    padding = "x" * (server.runtime.settings.max_request_bytes + 10)
    answer = http.post("/v1/batch", content=json.dumps({"batch": [], "p": padding}), headers=basic(secrets["write"]))
    assert answer.status_code == 413 and "over the limit" in answer.json()["error"]
    single = http.post("/v1/track", json={"event": "x", "anonymousId": "a", "properties": {"p": "x" * 40_000}},
                       headers=basic(secrets["write"]))
    assert single.status_code == 413 and "over the limit of 32768" in single.json()["error"]


def test_a_batch_stores_the_valid_events_and_names_each_rejected_one(server, http, shop):
    project_id, secrets = shop
    good = [mid(), mid()]
    batch = [
        {"type": "track", "event": "Good", "anonymousId": "a", "messageId": good[0]},
        {"type": "track", "anonymousId": "a"},
        {"type": "track", "event": "Typed", "userId": ["no"]},
        {"type": "launch", "event": "x", "anonymousId": "a"},
        {"type": "track", "event": "Huge", "anonymousId": "a", "properties": {"p": "x" * 40_000}},
        {"type": "track", "event": "When", "anonymousId": "a", "timestamp": "yesterday"},
        {"type": "track", "event": "Nobody"},
        {"type": "track", "event": "Good", "anonymousId": "b", "messageId": good[1]},
        {"type": "alias", "userId": "u"},
        {"type": "group", "userId": "u"},
    ]
    answer = http.post("/v1/batch", json={"batch": batch}, headers=basic(secrets["write"]))
    assert answer.status_code == 400
    body = answer.json()
    assert (body["success"], body["stored"], body["rejected"]) == (False, 2, 8)
    errors = {(e["index"], e["field"]) for e in body["errors"]}
    assert errors == {(1, "event"), (2, "userId"), (3, "type"), (4, ""), (5, "timestamp"), (6, "userId"),
                      (8, "previousId"), (9, "groupId")}
    reasons = {e["index"]: e["reason"] for e in body["errors"]}
    assert "over the limit of 32768" in reasons[4] and "Invalid enum value 'launch'" in reasons[3]
    assert len(stored(server, project_id, "message_id IN {m:Array(String)}", m=good)) == 2


def test_a_retried_batch_is_stored_once(server, http, shop):
    project_id, secrets = shop
    ids = [mid() for _ in range(50)]
    batch = {"batch": [{"type": "track", "event": "Retry", "anonymousId": "r", "messageId": m} for m in ids]}
    first = http.post("/v1/batch", json=batch, headers=basic(secrets["write"])).json()
    again = http.post("/v1/batch", json=batch, headers=basic(secrets["write"])).json()
    assert (first["stored"], first["duplicates"], again["stored"], again["duplicates"]) == (50, 0, 0, 50)
    repeated = http.post("/v1/batch", json={"batch": batch["batch"][:1] * 3}, headers=basic(secrets["write"])).json()
    assert repeated == {"success": True, "stored": 0, "duplicates": 3}
    assert len(stored(server, project_id, "message_id IN {m:Array(String)}", m=ids)) == 50


def test_racing_requests_with_the_same_ids_store_them_once(server, http, shop):
    project_id, secrets = shop
    ids = [mid() for _ in range(200)]
    batch = {"batch": [{"type": "track", "event": "Race", "anonymousId": "r", "messageId": m} for m in ids]}
    answers = []

    def send() -> None:
        import httpx

        answers.append(httpx.post(f"{server.url}/v1/batch", json=batch, headers=basic(secrets["write"]), timeout=30).json())

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(a["stored"] for a in answers) == 200 and sum(a["duplicates"] for a in answers) == 1000
    assert len(stored(server, project_id, "message_id IN {m:Array(String)}", m=ids)) == 200


def test_clock_skew_is_corrected_and_counted(server, http):
    project_id, secrets = server.project_with_keys("skewed")
    now = datetime.now(timezone.utc)
    # Given a device whose clock runs two hours ahead
    device = now + timedelta(hours=2)
    happened = device - timedelta(minutes=5)
    message_id = mid()
    event = {"type": "track", "event": "Skewed", "anonymousId": "s", "messageId": message_id,
             "timestamp": happened.isoformat(), "context": {"library": {"name": "analytics-ios", "version": "4"}}}
    answer = http.post("/v1/batch", json={"batch": [event], "sentAt": device.isoformat()}, headers=basic(secrets["write"]))
    assert answer.status_code == 200, answer.text
    [row] = stored(server, project_id, "message_id = {m:String}", m=message_id)
    # Then ts is the server's time minus the five minutes the device measured
    assert abs(row["ts"] - (now - timedelta(minutes=5))) < timedelta(seconds=5)
    assert abs(row["skew_ms"] + 7_200_000) < 5_000 and row["sent_at"] is not None
    metrics = http.get("/v1/ingest/metrics", headers=basic(secrets["read"])).json()
    ios = metrics["skew_by_library"]["analytics-ios"]
    assert ios["events"] == 1 and ios["flagged"] == 1 and abs(ios["max_abs_skew_ms"] - 7_200_000) < 5_000


def test_times_too_far_ahead_or_behind_are_rejected(server, http, shop):
    _, secrets = shop
    now = datetime.now(timezone.utc)
    batch = [{"type": "track", "event": "Future", "anonymousId": "t", "timestamp": (now + timedelta(days=2)).isoformat()},
             {"type": "track", "event": "Ancient", "anonymousId": "t", "timestamp": "1999-05-01T00:00:00Z"},
             {"type": "track", "event": "Year one", "anonymousId": "t", "timestamp": "0001-01-01T00:00:00+01:00"},
             {"type": "track", "event": "Year 9999", "anonymousId": "t", "timestamp": "9999-12-31T23:59:59-01:00"}]
    body = http.post("/v1/batch", json={"batch": batch}, headers=basic(secrets["write"])).json()
    reasons = [e["reason"] for e in body["errors"]]
    assert "in the future" in reasons[0] and "before the earliest accepted time" in reasons[1]
    assert "before the earliest" in reasons[2]
    assert [e["field"] for e in body["errors"]] == ["timestamp"] * 4


def test_enrichment_falls_back_to_the_request_address(server, http, shop):
    project_id, secrets = shop
    message_id = mid()
    event = {"event": "Mobile", "anonymousId": "m", "messageId": message_id, "context": {"userAgent": IPHONE}}
    assert http.post("/v1/track", json=event, headers=basic(secrets["write"])).status_code == 200
    [row] = stored(server, project_id, "message_id = {m:String}", m=message_id)
    assert (row["ip"], row["country"]) == ("127.0.0.0", "")
    assert (row["browser"], row["os"], row["device_type"]) == ("Safari", "iOS", "mobile")


def test_bots_are_stored_and_flagged(server, http, shop):
    project_id, secrets = shop
    message_id = mid()
    bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    http.post("/v1/page", json={"anonymousId": "g", "messageId": message_id, "context": {"userAgent": bot}},
              headers=basic(secrets["write"]))
    [row] = stored(server, project_id, "message_id = {m:String}", m=message_id)
    assert row["device_type"] == "bot"


def test_identify_and_alias_put_ids_on_one_person(server, http):
    project_id, secrets = server.project_with_keys("identity")
    send = lambda call, body: http.post(f"/v1/{call}", json={**body, "messageId": mid()}, headers=basic(secrets["write"]))
    # Given a visitor browsing anonymously, then signing up
    send("page", {"anonymousId": "anon-7"})
    send("identify", {"anonymousId": "anon-7", "userId": "user-7", "traits": {"email": "7@x.io", "plan": "free"}})
    send("identify", {"userId": "user-7", "traits": {"plan": "pro"}})
    # And a second device known under another anonymous id, later aliased
    send("identify", {"anonymousId": "anon-8", "userId": "device-8", "traits": {"os": "ios"}})
    send("alias", {"previousId": "device-8", "userId": "user-7"})
    people = dict(server.runtime.clickhouse.query(
        "SELECT distinct_id, person_id FROM identities FINAL WHERE project_id = {p:UInt32}",
        parameters={"p": project_id}).result_rows)
    assert set(people) == {"anon-7", "user-7", "anon-8", "device-8"}
    assert len(set(people.values())) == 1
    [(traits,)] = server.runtime.clickhouse.query(
        "SELECT toJSONString(properties) FROM persons FINAL WHERE project_id = {p:UInt32}",
        parameters={"p": project_id}).result_rows
    assert json.loads(traits) == {"email": "7@x.io", "plan": "pro", "os": "ios"}


def test_receipts_say_which_message_ids_are_stored(server, http, shop):
    _, secrets = shop
    kept = mid()
    http.post("/v1/track", json={"event": "R", "anonymousId": "r", "messageId": kept}, headers=basic(secrets["write"]))
    answer = http.post("/v1/receipts", json={"messageIds": [kept, "never-sent"]}, headers=basic(secrets["write"]))
    assert answer.status_code == 200 and answer.json() == {"stored": [kept], "missing": ["never-sent"]}
    # The sender's write key asks, or an admin key; a read key queries events instead
    admin = http.post("/v1/receipts", json={"messageIds": [kept]}, headers=basic(secrets["admin"]))
    assert admin.status_code == 200 and admin.json() == {"stored": [kept], "missing": []}
    assert http.post("/v1/receipts", json={"messageIds": [kept]}, headers=basic(secrets["read"])).status_code == 403
    too_many = http.post("/v1/receipts", json={"messageIds": ["x"] * 10_001}, headers=basic(secrets["write"]))
    assert too_many.status_code == 400 and "at most 10000" in too_many.json()["error"]


def test_rate_limits_answer_429_with_retry_after(server, http, monkeypatch):
    _, secrets = server.project_with_keys("limited")
    monkeypatch.setattr(server.app.state.api.limiter, "per_second", 3)
    codes = [http.post("/v1/track", json={"event": "x", "anonymousId": "a"}, headers=basic(secrets["write"]))
             for _ in range(12)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited and limited[0].headers["Retry-After"] == "1" and "requests per second" in limited[0].json()["error"]


def test_rollups_equal_raw_after_retries(server, http):
    project_id, secrets = server.project_with_keys("rollup-retries")
    batch = {"batch": [{"type": "track", "event": f"E{i % 3}", "anonymousId": f"p{i % 7}", "messageId": f"m{i}",
                        "properties": {"revenue": i}} for i in range(300)]}
    for _ in range(3):
        assert http.post("/v1/batch", json=batch, headers=basic(secrets["write"])).status_code == 200
    raw = dict(server.runtime.clickhouse.query(
        "SELECT event, count() FROM events WHERE project_id = {p:UInt32} GROUP BY event", parameters={"p": project_id}).result_rows)
    rollup = dict(server.runtime.clickhouse.query(
        "SELECT event, sum(events) FROM events_hourly WHERE project_id = {p:UInt32} GROUP BY event",
        parameters={"p": project_id}).result_rows)
    assert raw == rollup == {"E0": 100, "E1": 100, "E2": 100}
    revenue = server.runtime.clickhouse.query(
        "SELECT sum(revenue) FROM events_daily WHERE project_id = {p:UInt32}", parameters={"p": project_id}).result_rows
    assert revenue == [(sum(range(300)),)]


FULL_CALLS = {
    "page": {"name": "Pricing", "category": "Docs", "properties": {"title": "Pricing", "url": FULL_CONTEXT["page"]["url"]}},
    "screen": {"name": "Settings", "properties": {"variant": "b"}},
    "identify": {"traits": {"email": "full@example.com", "plan": "team", "address": {"city": "Berlin"}}},
    "group": {"groupId": "acme-inc", "traits": {"name": "Acme", "employees": 120}},
    "alias": {"previousId": "anon-full"},
}


@pytest.mark.parametrize("call", sorted(FULL_CALLS))
def test_a_full_message_of_each_call_type_keeps_every_part(server, http, shop, call):
    project_id, secrets = shop
    message_id = mid()
    message = {"type": call, "userId": "user-full", "anonymousId": "anon-full", "messageId": message_id,
               "context": FULL_CONTEXT, "integrations": {"All": False}, "timestamp": "2026-11-28T08:00:00Z",
               "originalTimestamp": "2026-11-28T07:59:58Z", **FULL_CALLS[call]}
    if call == "alias":
        message.pop("anonymousId")
    answer = http.post("/v1/batch", json={"batch": [message], "sentAt": datetime.now(timezone.utc).isoformat()},
                       headers=basic(secrets["write"]))
    assert answer.status_code == 200, answer.text
    [row] = stored(server, project_id, "message_id = {m:String}", m=message_id)
    assert (row["type"], row["user_id"], row["country"], row["browser"], row["library"]) == (
        call, "user-full", "US", "Chrome", "analytics.js")
    assert (row["host"], row["utm_campaign"], row["referrer_class"]) == ("shop.example.com", "nov", "search")
    assert abs(row["ts"] - datetime(2026, 11, 28, 8, tzinfo=timezone.utc)) < timedelta(seconds=5)
    props = json.loads(row["props"])
    expected = {"page": {"title": "Pricing", "url": FULL_CONTEXT["page"]["url"], "name": "Pricing", "category": "Docs"},
                "screen": {"variant": "b", "name": "Settings"},
                "identify": FULL_CALLS["identify"]["traits"],
                "group": {"name": "Acme", "employees": 120, "group_id": "acme-inc"},
                "alias": {"previous_id": "anon-full"}}[call]
    assert props == expected


def test_ingest_metrics_count_what_happened(server, http):
    _, secrets = server.project_with_keys("metered")
    batch = [{"type": "track", "event": "M", "anonymousId": "m", "messageId": "m1"},
             {"type": "track", "event": "M", "anonymousId": "m", "messageId": "m1"},
             {"type": "track", "anonymousId": "m"}]
    http.post("/v1/batch", json={"batch": batch}, headers=basic(secrets["write"]))
    metrics = http.get("/v1/ingest/metrics", headers=basic(secrets["read"])).json()
    assert (metrics["received"], metrics["stored"], metrics["duplicates"], metrics["rejected"]) == (3, 1, 1, 1)
    assert metrics["rejected_by_field"] == {"event": 1}
    assert set(metrics["step_seconds"]) == {"validate", "put_properties", "put_time", "put_page", "put_network", "put_device", "put_row"}
    write_only = http.get("/v1/ingest/metrics", headers=basic(secrets["write"]))
    assert write_only.status_code == 403


def test_a_failed_write_is_answered_503_and_its_retry_is_stored(server, http, shop, monkeypatch):
    project_id, secrets = shop
    real_insert = json_insert.insert
    failures = []

    def failing_once(clickhouse, table, *args, **kwargs):
        if table == "events" and not failures:
            failures.append(1)
            raise OSError("disk on fire")
        return real_insert(clickhouse, table, *args, **kwargs)

    monkeypatch.setattr(json_insert, "insert", failing_once)
    message_id = mid()
    event = {"event": "Fragile", "anonymousId": "f", "messageId": message_id}
    first = http.post("/v1/track", json=event, headers=basic(secrets["write"]))
    assert first.status_code == 503 and "events were not stored" in first.json()["error"]
    assert first.headers["Retry-After"] == "5"
    retry = http.post("/v1/track", json=event, headers=basic(secrets["write"]))
    assert retry.json() == {"success": True, "stored": 1, "duplicates": 0}
    assert len(stored(server, project_id, "message_id = {m:String}", m=message_id)) == 1


def test_a_failed_identity_write_is_redone_by_the_retry(server, http, monkeypatch):
    project_id, secrets = server.project_with_keys("identity-retry")
    real_insert = json_insert.insert
    failures = []

    def failing_once(clickhouse, table, *args, **kwargs):
        if table == "persons" and not failures:
            failures.append(1)
            raise OSError("disk on fire")
        return real_insert(clickhouse, table, *args, **kwargs)

    monkeypatch.setattr(json_insert, "insert", failing_once)
    body = {"userId": "user-r", "anonymousId": "anon-r", "traits": {"plan": "pro"}, "messageId": mid()}
    assert http.post("/v1/identify", json=body, headers=basic(secrets["write"])).status_code == 503
    assert http.post("/v1/identify", json=body, headers=basic(secrets["write"])).status_code == 200
    people = dict(server.runtime.clickhouse.query(
        "SELECT distinct_id, person_id FROM identities FINAL WHERE project_id = {p:UInt32}",
        parameters={"p": project_id}).result_rows)
    assert set(people) == {"user-r", "anon-r"} and len(set(people.values())) == 1
    [(traits,)] = server.runtime.clickhouse.query(
        "SELECT toJSONString(properties) FROM persons FINAL WHERE project_id = {p:UInt32}",
        parameters={"p": project_id}).result_rows
    assert json.loads(traits) == {"plan": "pro"}


def test_deeply_nested_json_is_a_400_not_a_crash(server, http, shop):
    _, secrets = shop
    deep = "[" * 5000 + "]" * 5000
    one = json.dumps({"type": "track", "event": "Deep", "anonymousId": "d"})[:-1] + ', "properties": {"a": ' + deep + "}}"
    answer = http.post("/v1/batch", content='{"batch": [' + one + "]}", headers=basic(secrets["write"]))
    assert answer.status_code == 400
    analysis = http.post("/v1/analyses/trends", content='{"series": ' + deep + "}", headers=basic(secrets["read"]))
    assert analysis.status_code == 400
