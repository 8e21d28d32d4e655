"""Persons over HTTP: identities made by real identify and alias calls show as one person in the list and the
profile, another project's key finds nothing of them, bad parameters are 400s naming the parameter."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from nexus.analyses import registry


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


@pytest.fixture(scope="module")
def shop(server, http):
    """A project where anon-7 browsed, signed up as user-7 (identify), and a phone was aliased to them."""
    project_id, secrets = server.project_with_keys("persons-shop")

    def send(call: str, body: dict) -> None:
        answer = http.post(f"/v1/{call}", json={**body, "messageId": uuid.uuid4().hex}, headers=auth(secrets["write"]))
        assert answer.status_code == 200, answer.text

    send("page", {"anonymousId": "anon-7", "timestamp": "2026-11-01T10:00:00Z"})
    send("identify", {"anonymousId": "anon-7", "userId": "user-7", "timestamp": "2026-11-01T10:05:00Z",
                      "traits": {"email": "ada@example.com", "plan": "free"}})
    send("track", {"userId": "user-7", "event": "purchase", "properties": {"revenue": 20},
                   "timestamp": "2026-11-01T10:06:00Z"})
    send("identify", {"userId": "user-7", "traits": {"plan": "pro"}, "timestamp": "2026-11-02T09:00:00Z"})
    send("track", {"anonymousId": "phone-1", "event": "open", "timestamp": "2026-11-03T08:00:00Z"})
    send("alias", {"previousId": "phone-1", "userId": "user-7", "timestamp": "2026-11-03T08:01:00Z"})
    send("track", {"anonymousId": "walker", "event": "open", "timestamp": "2026-11-04T08:00:00Z"})
    return project_id, secrets


def test_identify_and_alias_make_one_person_in_list_and_profile(http, shop):
    _, secrets = shop
    listing = http.get("/v1/persons", headers=auth(secrets["read"]))
    assert listing.status_code == 200, listing.text
    rows = listing.json()["persons"]
    assert [r["person"] for r in rows][0] == "walker" and len(rows) == 2
    ada = rows[1]
    assert (ada["distinct_ids"], ada["events"], ada["revenue"]) == (["anon-7", "phone-1", "user-7"], 6, 20.0)
    assert json.loads(ada["traits"]) == {"email": "ada@example.com", "plan": "pro"}
    found = http.get("/v1/persons", params={"q": "ADA@"}, headers=auth(secrets["read"])).json()["persons"]
    assert [r["person"] for r in found] == [ada["person"]]
    filtered = http.get("/v1/persons", params={"filters": json.dumps({"filters": [{"key": "revenue", "op": "gt",
                                                                                    "value": 10}]})},
                        headers=auth(secrets["read"])).json()["persons"]
    assert [r["person"] for r in filtered] == [ada["person"]]
    profile = http.get(f"/v1/persons/{ada['person']}", params={"limit": 2}, headers=auth(secrets["read"]))
    assert profile.status_code == 200, profile.text
    body = profile.json()
    assert body["distinct_ids"] == ["anon-7", "phone-1", "user-7"]
    assert body["sessions"] == 3  # 11-01 10:00–10:06, 11-02 09:00, 11-03 08:00–08:01
    assert {t["key"]: (t["value"], t["last_set"]) for t in body["traits"]} == {
        "email": ('"ada@example.com"', "2026-11-01T10:05:00Z"), "plan": ('"pro"', "2026-11-02T09:00:00Z")}
    assert [e["event"] for e in body["timeline"]] == ["alias", "open"] and body["next_cursor"]
    rest = http.get(f"/v1/persons/{ada['person']}", params={"cursor": body["next_cursor"], "limit": 10},
                    headers=auth(secrets["read"])).json()
    assert [e["event"] for e in rest["timeline"]] == ["identify", "purchase", "identify", "page_view"]
    assert http.get("/v1/persons/walker", headers=auth(secrets["read"])).json()["events"] == 1


def test_another_projects_key_finds_no_one(server, http, shop):
    _, secrets = shop
    _, others = server.project_with_keys("persons-other")
    ada = http.get("/v1/persons", params={"q": "ada"}, headers=auth(secrets["read"])).json()["persons"][0]["person"]
    for who in (ada, "walker", "user-7"):
        answer = http.get(f"/v1/persons/{who}", headers=auth(others["read"]))
        assert answer.status_code == 404 and who not in answer.text.replace(f"{who!r}", ""), answer.text
    assert http.get("/v1/persons/nobody", headers=auth(secrets["read"])).status_code == 404
    assert http.get("/v1/persons", headers=auth(others["read"])).json() == {
        "sort": "last_seen", "persons": [], "next_cursor": None}
    assert http.get("/v1/persons", headers=auth(secrets["write"])).status_code in (401, 403)


@pytest.mark.parametrize("params,field", [
    ({"cursor": "not-a-cursor"}, "cursor"), ({"sort": "name"}, "sort"), ({"limit": "0"}, "limit"),
    ({"limit": "5000"}, "limit"), ({"limit": "many"}, "limit"), ({"filters": "{not json"}, "filters"),
    ({"filters": json.dumps({"filters": [{"key": "a b"}]})}, "filters.filters[0]"),
    ({"filters": json.dumps({"match": "some"})}, "filters.match"),
])
def test_bad_list_parameters_are_400s_naming_the_parameter(http, shop, params, field):
    _, secrets = shop
    answer = http.get("/v1/persons", params=params, headers=auth(secrets["read"]))
    assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    assert "Traceback" not in answer.text


@pytest.mark.parametrize("params,field", [({"cursor": "%%%"}, "cursor"), ({"limit": "0"}, "limit"),
                                          ({"limit": "x"}, "limit")])
def test_bad_profile_parameters_are_400s_naming_the_parameter(http, shop, params, field):
    _, secrets = shop
    answer = http.get("/v1/persons/walker", params=params, headers=auth(secrets["read"]))
    assert answer.status_code == 400 and answer.json()["field"] == field, answer.text


def test_the_answers_are_the_analyses_results(server, http, shop):
    project_id, secrets = shop
    listing = http.get("/v1/persons", params={"sort": "events", "limit": 1}, headers=auth(secrets["read"])).json()
    expected = registry.run(server.runtime.clickhouse, project_id, "persons",
                            registry.decode("persons", {"sort": "events", "limit": 1}))
    assert listing["persons"][0]["person"] == expected.persons[0].person
    assert listing["next_cursor"] == expected.next_cursor
