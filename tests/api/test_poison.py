"""One tenant's poison events cannot fail another's writes, over real HTTP: the review's `{"p.q": 1,
"p": {"q": 2}}` through the Segment and PostHog endpoints, alone and while another project sends."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid

import httpx
import msgspec
import pytest

from nexus.ingest import properties

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security


POISON = {"p.q": 1, "p": {"q": 2}}
TWICE = "p.q is given twice (a key with dots names the same path as nested objects)"


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


@pytest.fixture(scope="module")
def tenant_a(server):
    return server.project_with_keys("poison-a")


@pytest.fixture(scope="module")
def tenant_b(server):
    return server.project_with_keys("poison-b")


def stored(server, project_id: int) -> dict[str, dict]:
    rows = server.runtime.clickhouse.query(
        "SELECT message_id, toJSONString(properties) FROM events WHERE project_id = {p:UInt32}",
        parameters={"p": project_id}).result_rows
    return {message_id: json.loads(props) for message_id, props in rows}


def traits(server, project_id: int) -> list[dict]:
    rows = server.runtime.clickhouse.query(
        "SELECT toJSONString(properties) FROM persons FINAL WHERE project_id = {p:UInt32}",
        parameters={"p": project_id}).result_rows
    return [json.loads(r[0]) for r in rows]


def test_the_poison_on_track_is_refused_with_its_field_and_reason(server, http, tenant_a):
    project_id, keys = tenant_a
    answer = http.post("/v1/track", json={"event": "x", "userId": "u", "properties": POISON},
                       headers=basic(keys["write"]))
    assert answer.status_code == 400
    assert answer.json() == {"success": False, "stored": 0, "duplicates": 0, "rejected": 1,
                             "errors": [{"index": 0, "field": "properties.p.q", "reason": TWICE}]}


def test_a_batch_stores_all_but_its_poisoned_events(server, http, tenant_a):
    project_id, keys = tenant_a
    ids = [str(uuid.uuid4()) for _ in range(5)]
    batch = [
        {"type": "track", "event": "ok", "userId": "u1", "messageId": ids[0], "properties": {"p.q": 1, "p": {"r": 2}}},
        {"type": "track", "event": "bad", "userId": "u1", "messageId": ids[1], "properties": POISON},
        {"type": "identify", "userId": "u1", "messageId": ids[2], "traits": {"plan": 1, "plan.tier": "pro"}},
        {"type": "page", "userId": "u1", "messageId": ids[3], "name": "Home", "properties": {"name.x": 1}},
        {"type": "track", "event": "ok", "userId": "u1", "messageId": ids[4], "properties": {"n": 1}},
    ]
    answer = http.post("/v1/batch", json={"batch": batch}, headers=basic(keys["write"]))
    assert answer.status_code == 400
    assert answer.json()["stored"] == 2
    assert [(e["index"], e["field"]) for e in answer.json()["errors"]] == [
        (1, "properties.p.q"), (2, "traits.plan"), (3, "properties.name")]
    # The dotted key is stored nested, as the JSON column stores every dotted key
    rows = stored(server, project_id)
    assert rows[ids[0]] == {"p": {"q": 1, "r": 2}} and rows[ids[4]] == {"n": 1}
    assert ids[1] not in rows and ids[2] not in rows and ids[3] not in rows


def test_the_poison_through_posthog_capture(server, http, tenant_a):
    project_id, keys = tenant_a
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    body = {"api_key": keys["write"], "batch": [
        {"event": "clicked", "distinct_id": "ph-1", "uuid": ids[0], "properties": POISON},
        {"event": "clicked", "distinct_id": "ph-1", "uuid": ids[1], "properties": {"p": {"q": 2}}},
    ]}
    answer = http.post("/capture", json=body)
    assert answer.status_code == 400
    assert answer.json()["stored"] == 1
    assert [(e["index"], e["field"], e["reason"]) for e in answer.json()["errors"]] == [(0, "properties.p.q", TWICE)]
    assert ids[1] in stored(server, project_id) and ids[0] not in stored(server, project_id)


def test_a_corrected_resend_of_a_refused_event_is_stored(server, http, tenant_a):
    project_id, keys = tenant_a
    message_id = str(uuid.uuid4())
    event = {"event": "x", "userId": "u", "messageId": message_id, "properties": POISON}
    assert http.post("/v1/track", json=event, headers=basic(keys["write"])).status_code == 400
    event["properties"] = {"p": {"q": 2}}
    answer = http.post("/v1/track", json=event, headers=basic(keys["write"]))
    assert answer.json() == {"success": True, "stored": 1, "duplicates": 0}
    assert stored(server, project_id)[message_id] == {"p": {"q": 2}}


def test_identify_traits_dotted_after_nested_update_the_person(server, http):
    # Given a person whose stored traits hold p.q nested (the store reads every path back nested)
    project_id, keys = server.project_with_keys("poison-traits")
    first = http.post("/v1/identify", json={"userId": "t1", "traits": {"p": {"q": 1}, "plan": "free"}},
                      headers=basic(keys["write"]))
    assert first.status_code == 200
    # When a later identify names the same path with a dotted key (which used to fail the whole block)
    later = http.post("/v1/identify", json={"userId": "t1", "traits": {"p.q": 2, "r.s": 3}},
                      headers=basic(keys["write"]))
    # Then the person's traits take the latest value of each top-level trait
    assert later.status_code == 200, later.text
    assert traits(server, project_id) == [{"p": {"q": 2}, "plan": "free", "r": {"s": 3}}]


def send_at_once(server, a_keys: dict, b_keys: dict, seconds: float) -> tuple[list, list, list[str]]:
    """Three clients of A sending the poison and three of B sending valid batches of 20, for `seconds`:
    A's answers, B's answers, and the messageIds B sent."""
    answers_a: list[httpx.Response] = []
    answers_b: list[httpx.Response] = []
    sent_b: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def send_a() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while time.monotonic() < deadline:
                answer = client.post("/v1/track", headers=basic(a_keys["write"]), json={
                    "event": "x", "userId": "a", "properties": {**POISON, "secret": "A-SECRET"}})
                with lock:
                    answers_a.append(answer)

    def send_b() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while time.monotonic() < deadline:
                ids = [str(uuid.uuid4()) for _ in range(20)]
                batch = [{"type": "track", "event": "valid", "userId": f"b{i}", "messageId": m,
                          "properties": {"p": {"q": i}, "n": i}} for i, m in enumerate(ids)]
                answer = client.post("/v1/batch", json={"batch": batch}, headers=basic(b_keys["write"]))
                with lock:
                    answers_b.append(answer)
                    sent_b.extend(ids)

    threads = [threading.Thread(target=send_a) for _ in range(3)] + [threading.Thread(target=send_b) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers_a and answers_b
    return answers_a, answers_b, sent_b


def assert_b_untouched(server, b: int, answers_b: list[httpx.Response], sent_b: list[str]) -> None:
    """Every one of B's calls was stored, none answered 503, and none mentions A's data."""
    assert {r.status_code for r in answers_b} == {200}
    assert all(r.json()["stored"] == 20 for r in answers_b)
    assert not [r.text for r in answers_b if "p.q" in r.text or "A-SECRET" in r.text]
    assert set(stored(server, b)) >= set(sent_b) and len(stored(server, b)) == len(sent_b)


def test_two_projects_sending_at_once_a_poison_and_valid_events(server, tenant_a, tenant_b):
    # Given project A's clients sending the poison and project B's sending valid batches, at once, for 3 s
    (a, a_keys), (b, b_keys) = tenant_a, tenant_b
    before_a = len(stored(server, a))
    answers_a, answers_b, sent_b = send_at_once(server, a_keys, b_keys, 3)
    # Then B is untouched
    assert_b_untouched(server, b, answers_b, sent_b)
    # And every one of A's calls was refused (400, never retried into an outage), nothing of it stored
    assert {r.status_code for r in answers_a} == {400}
    assert {r.json()["errors"][0]["field"] for r in answers_a} == {"properties.p.q"}
    assert len(stored(server, a)) == before_a


def test_two_projects_at_once_when_the_poison_gets_past_the_pipeline(server, monkeypatch, caplog):
    # Given a poison the pipeline does not know (its checks turned off), so that it reaches the writer's
    # shared inserts, while B sends valid batches
    monkeypatch.setattr(properties, "to_json", lambda value, field: msgspec.json.encode(value).decode())
    (a, a_keys), (b, b_keys) = server.project_with_keys("poison-late-a"), server.project_with_keys("poison-late-b")
    with caplog.at_level("WARNING", logger="nexus.ingest.writer"):
        answers_a, answers_b, sent_b = send_at_once(server, a_keys, b_keys, 2)
    shared = [r for r in caplog.records if "refused a block" in r.getMessage() and r.args[0] > 1]
    assert shared, "no insert held A's poison beside other requests"
    # Then the writer isolates it: B is untouched, and A's poison is refused as its own event, 400
    assert_b_untouched(server, b, answers_b, sent_b)
    assert {r.status_code for r in answers_a} == {400}
    assert {r.json()["errors"][0]["field"] for r in answers_a} == {"properties"}
    assert all("Duplicate path" in r.json()["errors"][0]["reason"] for r in answers_a)
    assert stored(server, a) == {}


def test_rejections_inside_properties_are_counted_by_column_not_by_key(server, http):
    # Every key a sender makes up would otherwise be a field of the project's metrics hash in Redis
    project_id, keys = server.project_with_keys("poison-metrics")
    batch = [{"type": "track", "event": "x", "userId": "u", "properties": {f"k{i}.q": 1, f"k{i}": {"q": 2}}}
             for i in range(5)] + [{"type": "identify", "userId": "u", "traits": {"t": 1, "t.u": 2}}]
    # Test modules share one redis-server and number their projects from 1 each: count what this adds
    before = http.get("/v1/ingest/metrics", headers=basic(keys["read"])).json()["rejected_by_field"]
    assert http.post("/v1/batch", json={"batch": batch}, headers=basic(keys["write"])).status_code == 400
    after = http.get("/v1/ingest/metrics", headers=basic(keys["read"])).json()["rejected_by_field"]
    added = {field: after[field] - before.get(field, 0) for field in after}
    assert {field: n for field, n in added.items() if n} == {"properties": 5, "traits": 1}
