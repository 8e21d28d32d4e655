"""PostHog SDK payloads sent to the PostHog-compatible paths land as the same event model."""

from __future__ import annotations

import base64
import gzip
import json
import uuid

import pytest


@pytest.fixture(scope="module")
def project(server):
    return server.project_with_keys("posthog")


def rows(server, project_id: int, ids: list[str]) -> list[dict]:
    result = server.runtime.clickhouse.query(
        "SELECT * EXCEPT properties, toJSONString(properties) AS props FROM events "
        "WHERE project_id = {p:UInt32} AND message_id IN {ids:Array(String)} ORDER BY ts",
        parameters={"p": project_id, "ids": ids})
    return [dict(zip(result.column_names, r)) for r in result.result_rows]


def posthog_js_batch(token: str, ids: list[str]) -> list[dict]:
    return [
        {"uuid": ids[0], "event": "$pageview", "timestamp": "2026-11-28T09:00:00.000Z",
         "properties": {"token": token, "distinct_id": "anon-ph", "$device_id": "anon-ph", "$is_identified": False,
                        "$current_url": "https://app.example.com/docs?utm_source=hn", "$pathname": "/docs",
                        "$referrer": "https://news.ycombinator.com/", "$session_id": "sess-1",
                        "$lib": "web", "$lib_version": "1.200.0", "$browser": "Firefox"}},
        {"uuid": ids[1], "event": "signed_up", "timestamp": "2026-11-28T09:01:00.000Z",
         "properties": {"token": token, "distinct_id": "anon-ph", "$is_identified": False, "plan": "pro",
                        "$session_id": "sess-1"}},
    ]


@pytest.mark.parametrize("path", ["/e/", "/batch/", "/i/v0/e/", "/capture"])
def test_posthog_js_gzip_batches_are_stored(server, http, project, path):
    project_id, secrets = project
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    body = gzip.compress(json.dumps(posthog_js_batch(secrets["write"], ids)).encode())
    answer = http.post(f"{path}?compression=gzip-js&ver=1.200.0", content=body,
                       headers={"Content-Type": "text/plain"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == 1 and answer.json()["stored"] == 2
    view, signup = rows(server, project_id, ids)
    assert (view["type"], view["event"], view["anonymous_id"], view["session_id"]) == ("page", "page_view", "anon-ph", "sess-1")
    assert (view["path"], view["utm_source"], view["referrer_class"]) == ("/docs", "hn", "social")
    assert (signup["event"], json.loads(signup["props"])["plan"]) == ("signed_up", "pro")


def test_posthog_python_batches_with_api_key_and_identify(server, http, project):
    project_id, secrets = project
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    payload = {"api_key": secrets["write"], "batch": [
        {"event": "$identify", "distinct_id": "user-ph", "uuid": ids[0], "timestamp": "2026-11-28T09:02:00+00:00",
         "properties": {"$anon_distinct_id": "anon-ph", "$set": {"email": "ph@example.com"}, "$lib": "posthog-python"}},
        {"event": "invoice paid", "distinct_id": "user-ph", "uuid": ids[1], "timestamp": "2026-11-28T09:03:00+00:00",
         "properties": {"amount": 120, "$lib": "posthog-python"}},
    ]}
    answer = http.post("/batch/", json=payload)
    assert answer.status_code == 200, answer.text
    identify, paid = rows(server, project_id, ids)
    assert (identify["type"], identify["user_id"], identify["anonymous_id"]) == ("identify", "user-ph", "anon-ph")
    assert (paid["distinct_id"], paid["library"]) == ("user-ph", "posthog-python")
    people = dict(server.runtime.clickhouse.query(
        "SELECT distinct_id, person_id FROM identities FINAL WHERE project_id = {p:UInt32} "
        "AND distinct_id IN ('user-ph', 'anon-ph')", parameters={"p": project_id}).result_rows)
    assert len(people) == 2 and len(set(people.values())) == 1


def test_base64_form_bodies_are_read(server, http, project):
    project_id, secrets = project
    event_id = str(uuid.uuid4())
    event = {"event": "clicked", "properties": {"token": secrets["write"], "distinct_id": "d1"}, "uuid": event_id}
    data = base64.b64encode(json.dumps(event).encode()).decode()
    answer = http.post("/e/", data={"data": data}, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200, answer.text
    assert len(rows(server, project_id, [event_id])) == 1


def test_a_dropped_event_is_never_answered_200(server, http, project):
    _, secrets = project
    payload = {"api_key": secrets["write"], "batch": [{"event": "ok", "distinct_id": "d"}, {"event": "no id"}]}
    answer = http.post("/batch/", json=payload)
    assert answer.status_code == 400
    assert answer.json()["stored"] == 1 and [e["index"] for e in answer.json()["errors"]] == [1]


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b'{"event": "x", "distinct_id": "d"}', {}, 401, "API key is required"),
        (b'{"api_key": "nx_wrong", "event": "x", "distinct_id": "d"}', {}, 401, "not valid"),
        (b"\x00\x01garbage", {}, 400, ""),
    ],
)
def test_bad_capture_requests(server, http, body, headers, status, reason):
    answer = http.post("/capture/", content=body, headers=headers)
    assert answer.status_code == status and reason in answer.json()["error"]


def test_a_json_body_labelled_as_a_form_is_read_as_json(server, http, project):
    # Given a client that sends its JSON batch with Content-Type application/x-www-form-urlencoded
    project_id, secrets = project
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    answer = http.post("/e/", content=json.dumps(posthog_js_batch(secrets["write"], ids)).encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"})
    # Then it is stored, not refused as an "empty body"
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 2 and len(rows(server, project_id, ids)) == 2


@pytest.mark.parametrize(("body", "reason"), [
    (b"api_key=nx_x&ver=1.0", "form body without a `data` field"),
    (base64.b64encode(b'{"event": "x"}'), "form body without a `data` field"),
    (b"", "empty body"),
])
def test_a_form_body_without_events_says_why(http, body, reason):
    answer = http.post("/e/", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 400 and answer.json()["error"].startswith(reason), answer.text
