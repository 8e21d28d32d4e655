"""Saved goals over real HTTP: read keys read, admin keys change; another project's key gets 404 on every
goal route and cannot use the project's goals in an analysis; bad definitions get a 400 naming the field,
never a traceback, and leave what is stored as it was; a changed goal is not answered from the cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.analyses.journeys import insert_events

THEIR_NAME = "beta's secret goal ZZB"  # exists only in beta: finding it in an answer to alpha is a leak
PURCHASE = {"name": "Purchases <b>", "event": "purchase", "value_property": "revenue", "currency": "EUR"}
# Yesterday: warnings read the properties of recent events, so the events here are recent.
DAY = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
RANGE = {"date_from": DAY, "date_to": DAY}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def keys(server) -> dict[str, dict[str, str]]:
    alpha, alpha_keys = server.project_with_keys("alpha")
    beta, beta_keys = server.project_with_keys("beta")
    # Given: one purchase and one signup in alpha, a purchase worth a marker amount in beta
    insert_events(server.runtime.clickhouse, alpha, {
        "u1": [("purchase", f"{DAY}T10:00", {"revenue": 30}), ("signup", f"{DAY}T11:00")]})
    insert_events(server.runtime.clickhouse, beta, {"zz": [("purchase", f"{DAY}T10:00", {"revenue": 777})]})
    return {"alpha": alpha_keys, "beta": beta_keys}


@pytest.fixture(scope="module")
def victim(http, keys) -> dict:
    """A goal of alpha's that refused PUTs must leave as it is."""
    created = http.post("/v1/goals", json={"name": "Victim", "path": "/pricing"},
                        headers=bearer(keys["alpha"]["admin"]))
    assert created.status_code == 201, created.text
    return created.json()


@pytest.fixture(scope="module")
def beta_goal(http, keys) -> dict:
    created = http.post("/v1/goals", json={"name": THEIR_NAME, "description": "ZZB", "event": "purchase",
                                           "value_property": "revenue"}, headers=bearer(keys["beta"]["admin"]))
    assert created.status_code == 201, created.text
    return created.json()


def test_create_read_replace_and_delete(http, keys) -> None:
    admin, read = bearer(keys["alpha"]["admin"]), bearer(keys["alpha"]["read"])
    created = http.post("/v1/goals", json=PURCHASE, headers=admin)
    assert created.status_code == 201, created.text
    goal = created.json()
    assert goal["goal_id"].startswith("g_") and goal["name"] == PURCHASE["name"]  # as given, escaped where shown
    assert goal["definition"] == {"event": "purchase", "path": None, "where": None, "value_property": "revenue",
                                  "currency": "EUR"}
    assert goal["warnings"] == [] and goal["created_by"].startswith("nx_")
    assert http.get(f"/v1/goals/{goal['goal_id']}", headers=read).json() == goal  # read back at once

    # PUT: a page goal with a filter on a property alpha never sent, which is allowed and flagged
    body = {"name": "Blog readers", "path": "/blog/**", "where": {"filters": [{"key": "campaign", "value": "x"}]}}
    replaced = http.put(f"/v1/goals/{goal['goal_id']}", json=body, headers=admin)
    assert replaced.status_code == 200, replaced.text
    shown = http.get(f"/v1/goals/{goal['goal_id']}", headers=read).json()
    assert shown == replaced.json() and shown["definition"]["path"] == "/blog/**"
    assert shown["created_at"] == goal["created_at"] and shown["goal_id"] == goal["goal_id"]
    assert [w.split(":")[0] for w in shown["warnings"]] == ["where"] and "'campaign'" in shown["warnings"][0]
    assert [g["name"] for g in http.get("/v1/goals", headers=read).json()["goals"]].count("Blog readers") == 1

    deleted = http.delete(f"/v1/goals/{goal['goal_id']}", headers=admin)
    assert deleted.status_code == 204 and deleted.content == b""
    assert http.get(f"/v1/goals/{goal['goal_id']}", headers=read).status_code == 404
    assert goal["goal_id"] not in {g["goal_id"] for g in http.get("/v1/goals", headers=read).json()["goals"]}


def test_unknown_event_and_value_property_are_allowed_and_flagged(http, keys) -> None:
    answer = http.post("/v1/goals", json={"name": "Trial", "event": "trial_started", "value_property": "mrr"},
                       headers=bearer(keys["alpha"]["admin"]))
    assert answer.status_code == 201, answer.text
    assert [w.split(":")[0] for w in answer.json()["warnings"]] == ["event", "value_property"]


def test_read_keys_read_and_admin_keys_change(http, keys, victim) -> None:
    read, write = bearer(keys["alpha"]["read"]), bearer(keys["alpha"]["write"])
    path = f"/v1/goals/{victim['goal_id']}"
    assert http.post("/v1/goals", json=PURCHASE, headers=read).status_code == 403
    assert http.put(path, json=PURCHASE, headers=read).status_code == 403
    assert http.delete(path, headers=read).status_code == 403
    assert http.post("/v1/goals", content=b"{not json", headers=read).status_code == 403  # learns nothing
    assert http.get("/v1/goals", headers=write).status_code == 403
    assert http.get(path, headers=write).status_code == 403
    assert http.get("/v1/goals").status_code == 401
    assert http.get(path, headers=read).json()["name"] == "Victim"  # nothing changed


def test_another_project_s_key_gets_404_on_every_goal_route_and_reads_none_of_it(http, keys, beta_goal) -> None:
    their_id = beta_goal["goal_id"]
    for scope in ("read", "admin"):
        headers = bearer(keys["alpha"][scope])
        answers = [http.get(f"/v1/goals/{their_id}", headers=headers),
                   http.put(f"/v1/goals/{their_id}", json={"name": "taken", "event": "x"}, headers=headers),
                   http.delete(f"/v1/goals/{their_id}", headers=headers),
                   http.post("/v1/analyses/goals", json={"goals": [their_id], "date_range": RANGE}, headers=headers),
                   http.post("/v1/analyses/overview", json={"goals": [their_id], "date_range": RANGE},
                             headers=headers)]
        expected = [404, 404, 404, 404, 404] if scope == "admin" else [404, 403, 403, 404, 404]
        assert [a.status_code for a in answers] == expected, [a.text for a in answers]
        # the same answer as for an id that never existed
        missing = http.get("/v1/goals/g_AAAAAAAAAAAA", headers=headers).json()["error"]
        assert answers[0].json()["error"] == missing.replace("g_AAAAAAAAAAAA", their_id)
        assert "goals[0]" in answers[3].json()["error"]
        listing = http.get("/v1/goals", headers=headers)
        for answer in (*answers, listing):
            assert "ZZB" not in answer.text and "beta" not in answer.text and "777" not in answer.text, answer.text
    assert http.get(f"/v1/goals/{their_id}", headers=bearer(keys["beta"]["read"])).json() == beta_goal


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"name": "b"}, "event", "either an event or a path"),
    ({"name": "b", "event": "purchase", "path": "/x"}, "path", "not both"),
    ({"name": "b", "path": "blog/*"}, "path", "starts with '/'"),
    ({"name": "b", "path": "/blog/***"}, "path", "ambiguous"),
    ({"name": "b", "path": "/search?q=*"}, "path", "no query string"),
    ({"name": "b", "event": "purchase", "currency": "EUR"}, "currency", "without a value_property"),
    ({"name": "b", "event": "purchase", "value_property": "revenue", "currency": "eur"}, "currency", "ISO 4217"),
    ({"name": "b", "event": "purchase", "value_property": "re venue"}, "value_property", "not a property name"),
    ({"name": "b", "event": ""}, "event", "1 to 200 characters"),
    ({"name": "b", "event": "purchase", "where": {"filters": [{"key": "plan", "op": "gt", "value": "x"}]}},
     "where.filters[0]", "needs a number"),
    ({"name": "b", "event": "purchase", "colour": "red"}, None, "unknown field `colour`"),
    ({"name": " ", "event": "purchase"}, "name", "cannot be blank"),
    ({"name": "n" * 201, "event": "purchase"}, "name", "length <= 200"),
    ({"event": "purchase"}, None, "missing required field `name`"),
])
def test_bad_definitions_get_a_400_naming_the_field(http, keys, victim, body, field, words) -> None:
    admin = bearer(keys["alpha"]["admin"])
    before = http.get("/v1/goals", headers=admin).json()
    for answer in (http.post("/v1/goals", json=body, headers=admin),
                   http.put(f"/v1/goals/{victim['goal_id']}", json=body, headers=admin)):
        assert answer.status_code == 400, answer.text
        assert answer.json().get("field") == field and words in answer.json()["error"], answer.text
        assert "Traceback" not in answer.text
    assert http.get("/v1/goals", headers=admin).json() == before  # nothing stored, nothing changed


def test_names_are_unique_within_a_project(http, keys, victim) -> None:
    admin = bearer(keys["alpha"]["admin"])
    other = http.post("/v1/goals", json={"name": "Other", "event": "signup"}, headers=admin).json()
    for answer in (http.post("/v1/goals", json={"name": "Victim", "event": "x"}, headers=admin),
                   http.put(f"/v1/goals/{other['goal_id']}", json={"name": "Victim", "event": "x"}, headers=admin)):
        assert answer.status_code == 400 and answer.json()["field"] == "name", answer.text
    kept = http.put(f"/v1/goals/{victim['goal_id']}", json={"name": "Victim", "path": "/pricing"}, headers=admin)
    assert kept.status_code == 200, kept.text  # a goal keeps its own name
    # Another project may use the same name
    assert http.post("/v1/goals", json={"name": "Victim", "event": "x"},
                     headers=bearer(keys["beta"]["admin"])).status_code == 201


def test_inline_definitions_in_an_analysis_are_checked_the_same_way(http, keys) -> None:
    answer = http.post("/v1/analyses/goals", json={"goals": [{"event": "purchase"}, {"path": "blog"}]},
                       headers=bearer(keys["alpha"]["read"]))
    assert answer.status_code == 400 and answer.json()["field"] == "goals[1].path", answer.text
    answer = http.post("/v1/analyses/goals", json={"goals": []}, headers=bearer(keys["alpha"]["read"]))
    assert answer.status_code == 400 and answer.json()["field"] == "goals", answer.text


def test_a_changed_goal_is_not_answered_from_the_cache(http, keys) -> None:
    admin, read = bearer(keys["alpha"]["admin"]), bearer(keys["alpha"]["read"])
    goal = http.post("/v1/goals", json={"name": "Converts", "event": "purchase", "value_property": "revenue"},
                     headers=admin).json()
    body = {"goals": [goal["goal_id"]], "date_range": RANGE, "timezone": "UTC"}
    first = http.post("/v1/analyses/goals", json=body, headers=read).json()
    again = http.post("/v1/analyses/goals", json=body, headers=read).json()
    assert (first["cached"], again["cached"]) == (False, True)
    total = first["result"]["lines"][0]["total"]
    assert (total["conversions"], total["value"]) == (1, 30)
    # When: the goal now counts signups, with no value
    http.put(f"/v1/goals/{goal['goal_id']}", json={"name": "Converts", "event": "signup"}, headers=admin)
    after = http.post("/v1/analyses/goals", json=body, headers=read).json()
    assert after["cached"] is False
    assert after["result"]["goals"][0]["definition"]["event"] == "signup"
    total = after["result"]["lines"][0]["total"]
    assert (total["conversions"], total["value"]) == (1, None)
    # The overview's goal KPIs read the saved goal too
    overview = http.post("/v1/analyses/overview", json=body, headers=read).json()["result"]
    assert [(k["goal_id"], k["name"], k["conversions"]["value"]) for k in overview["goals"]] == [
        (goal["goal_id"], "Converts", 1.0)]


def test_the_openapi_document_lists_the_routes(http) -> None:
    paths = http.get("/schema/openapi.json").json()["paths"]
    assert set(paths["/v1/goals"]) == {"get", "post"}
    assert set(paths["/v1/goals/{goal_id}"]) == {"get", "put", "delete"}


def test_unknown_ids_of_every_shape_are_404(http, keys) -> None:
    admin = bearer(keys["alpha"]["admin"])
    for goal_id in ("g_AAAAAAAAAAAA", "nope", "g_%27%20OR%201%3D1", "x" * 300):
        answer = http.get(f"/v1/goals/{goal_id}", headers=admin)
        assert answer.status_code == 404 and isinstance(answer.json()["error"], str), goal_id
