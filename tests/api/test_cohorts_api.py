"""Cohorts over real HTTP: read keys read, admin keys change; CSV and analysis-made static cohorts; the
cohort filter through /v1/analyses; another project's key gets 404 on every route and none of its data,
and its cohort is unusable in this project's analyses; bad definitions get a 400 naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.analyses.journeys import insert_events, link

THEIR_NAME = "beta's secret cohort ZZB"  # exists only in beta: finding it in an answer to alpha is a leak
P1 = "00000000-0000-4000-8000-0000000000a1"
BUYERS = {"conditions": [{"type": "performed", "event": "buy", "count": 2, "days": 7}]}
NOW_RANGE = {"date_from": "-7d"}


def ago(hours: float) -> str:
    """A time `hours` before now: the API's windows end at its clock."""
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def world(server) -> dict:
    """Alpha: a1 (anonymous, then identified as p1) buys twice, u2 buys once, u3 only views; beta: its own buyer."""
    alpha, alpha_keys = server.project_with_keys("alpha")
    beta, beta_keys = server.project_with_keys("beta")
    client = server.runtime.clickhouse
    insert_events(client, alpha, {"a1": [("buy", ago(50)), ("view", ago(49.9))],
                                  "u1": [("buy", ago(26)), ("view", ago(25.9))],
                                  "u2": [("buy", ago(26)), ("view", ago(25))],
                                  "u3": [("view", ago(24))]})
    link(client, alpha, {"a1": P1, "u1": P1})
    insert_events(client, beta, {"zzb-buyer": [("buy", ago(30)), ("buy", ago(20))]})
    return {"alpha": alpha_keys, "beta": beta_keys}


@pytest.fixture(scope="module")
def beta_cohort(http, world) -> dict:
    created = http.post("/v1/cohorts", json={"name": THEIR_NAME, "definition": BUYERS},
                        headers=bearer(world["beta"]["admin"]))
    assert created.status_code == 201, created.text
    return created.json()


def size(http, secret, cohort_id) -> int:
    answer = http.post("/v1/analyses/cohort_size", json={"cohort": cohort_id, "date_range": NOW_RANGE,
                                                          "timezone": "UTC"}, headers=bearer(secret))
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]["sizes"][-1]


def test_create_read_use_replace_and_delete(http, world) -> None:
    admin, read = bearer(world["alpha"]["admin"]), bearer(world["alpha"]["read"])
    created = http.post("/v1/cohorts", json={"name": "Buyers <b>2+</b>", "definition": BUYERS}, headers=admin)
    assert created.status_code == 201, created.text
    cohort = created.json()
    assert (cohort["name"], cohort["kind"], cohort["warnings"]) == ("Buyers <b>2+</b>", "dynamic", [])
    assert http.get(f"/v1/cohorts/{cohort['cohort_id']}", headers=read).json() == cohort
    assert [c["cohort_id"] for c in http.get("/v1/cohorts", headers=read).json()["cohorts"]] == [cohort["cohort_id"]]
    persons = http.get(f"/v1/cohorts/{cohort['cohort_id']}/persons", headers=read).json()
    assert persons == {"persons": [P1], "has_more": False}
    assert size(http, world["alpha"]["read"], cohort["cohort_id"]) == 1
    # The filter through the API: views of the cohort's persons, and of everyone else.
    body = {"series": [{"event": "view"}], "date_range": NOW_RANGE, "timezone": "UTC",
            "where": {"filters": [{"key": cohort["cohort_id"], "source": "cohort", "op": "in"}]}}
    answer = http.post("/v1/analyses/trends", json=body, headers=read).json()
    assert answer["result"]["lines"][0]["total"] == 2
    # A changed definition is a new answer, not the cached one (the key holds the definition).
    replaced = http.put(f"/v1/cohorts/{cohort['cohort_id']}", headers=admin, json={
        "name": "Buyers", "definition": {"conditions": [{"type": "performed", "event": "buy", "days": 7}]}})
    assert replaced.status_code == 200 and replaced.json()["name"] == "Buyers"
    again = http.post("/v1/analyses/trends", json=body, headers=read).json()
    assert again["result"]["lines"][0]["total"] == 3 and again["cached"] is False
    assert http.delete(f"/v1/cohorts/{cohort['cohort_id']}", headers=admin).status_code == 204
    assert http.get(f"/v1/cohorts/{cohort['cohort_id']}", headers=read).status_code == 404
    assert http.post("/v1/analyses/trends", json=body, headers=read).status_code == 404


def test_static_cohorts_from_csv_and_from_a_funnel_drop_off(http, world) -> None:
    admin, read = bearer(world["alpha"]["admin"]), bearer(world["alpha"]["read"])
    # A CSV of a distinct id (resolved to its person) and a person without events (listed by size only).
    csv = b"id\nu1\nu3\nnobody\n"
    created = http.post("/v1/cohorts/upload", params={"name": "Uploaded"}, content=csv, headers=admin)
    assert created.status_code == 201, created.text
    cohort = created.json()
    assert (cohort["kind"], cohort["source"], cohort["definition"]) == ("static", "csv", None)
    assert http.get(f"/v1/cohorts/{cohort['cohort_id']}/persons", headers=read).json()["persons"] == [P1, "u3"]
    assert size(http, world["alpha"]["read"], cohort["cohort_id"]) == 3
    replaced = http.put(f"/v1/cohorts/{cohort['cohort_id']}/members", content=b"u2\n", headers=admin)
    assert replaced.status_code == 200, replaced.text
    assert http.get(f"/v1/cohorts/{cohort['cohort_id']}/persons", headers=read).json()["persons"] == ["u2"]
    assert size(http, world["alpha"]["read"], cohort["cohort_id"]) == 1  # a new list is a new answer, not the cached
    # The persons who viewed but did not buy afterwards: u3 only, as funnel_persons lists them.
    funnel = {"steps": [{"event": "view"}, {"event": "buy"}], "date_range": NOW_RANGE, "timezone": "UTC"}
    listed = http.post("/v1/analyses/funnel_persons", json={"funnel": funnel, "step": 1}, headers=read).json()
    made = http.post("/v1/cohorts/from-analysis", headers=admin, json={
        "name": "Viewed, never bought", "kind": "funnel_persons", "request": {"funnel": funnel, "step": 1}})
    assert made.status_code == 201, made.text
    members = http.get(f"/v1/cohorts/{made.json()['cohort_id']}/persons", headers=read).json()["persons"]
    assert members == [p["person"] for p in listed["result"]["persons"]] == ["u2", "u3"]


def test_another_projects_key_finds_nothing_and_cannot_use_its_cohort(http, world, beta_cohort) -> None:
    their_id = beta_cohort["cohort_id"]
    for secret in (world["alpha"]["read"], world["alpha"]["admin"]):
        headers = bearer(secret)
        answers = [http.get(f"/v1/cohorts/{their_id}", headers=headers),
                   http.get(f"/v1/cohorts/{their_id}/persons", headers=headers),
                   http.put(f"/v1/cohorts/{their_id}", json={"name": "x", "definition": BUYERS}, headers=headers),
                   http.put(f"/v1/cohorts/{their_id}/members", content=b"x\n", headers=headers),
                   http.delete(f"/v1/cohorts/{their_id}", headers=headers),
                   http.post("/v1/analyses/cohort_size", json={"cohort": their_id}, headers=headers),
                   http.post("/v1/analyses/trends", headers=headers, json={
                       "series": [{"event": "buy"}], "where": {"filters": [
                           {"key": their_id, "source": "cohort", "op": "not_in"}]}}),
                   http.post("/v1/analyses/funnel", headers=headers, json={
                       "steps": [{"event": "view"}, {"event": "buy"}],
                       "breakdown": {"source": "cohort", "cohorts": [their_id]}})]
        if secret == world["alpha"]["admin"]:
            assert [a.status_code for a in answers] == [404] * len(answers), [a.text for a in answers]
        else:
            assert [a.status_code for a in answers] == [404, 404, 403, 403, 403, 404, 404, 404]
        for answer in (*answers, http.get("/v1/cohorts", headers=headers)):
            assert "ZZB" not in answer.text and "zzb" not in answer.text, answer.text
    assert http.get(f"/v1/cohorts/{their_id}", headers=bearer(world["beta"]["read"])).json() == beta_cohort


def test_read_keys_read_and_admin_keys_change(http, world) -> None:
    read, write = bearer(world["alpha"]["read"]), bearer(world["alpha"]["write"])
    assert http.post("/v1/cohorts", json={"name": "x", "definition": BUYERS}, headers=read).status_code == 403
    assert http.post("/v1/cohorts", content=b"{not json", headers=read).status_code == 403
    assert http.post("/v1/cohorts/upload", params={"name": "x"}, content=b"a\n", headers=read).status_code == 403
    assert http.get("/v1/cohorts", headers=write).status_code == 403
    assert http.get("/v1/cohorts").status_code == 401


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"name": "b", "definition": {"conditions": [{"type": "performed", "event": "buy", "days": 0}]}},
     "definition.conditions[0].days", "days must be"),
    ({"name": "b", "definition": {"conditions": [{"type": "performed", "operator": "more"}]}},
     "definition.conditions[0].operator", "Invalid enum value 'more'"),
    ({"name": "b", "definition": {"conditions": [{"type": "group", "conditions": []}]}},
     "definition.conditions[0].conditions", "at least one condition"),
    ({"name": "b", "definition": {"conditions": [{"type": "first_seen", "date_range": {"date_from": "soon"}}]}},
     "definition.conditions[0].date_range.date_from", "soon"),
    ({"definition": BUYERS}, None, "missing required field `name`"),
])
def test_bad_definitions_get_a_400_naming_the_field(http, world, body, field, words) -> None:
    admin = bearer(world["alpha"]["admin"])
    answer = http.post("/v1/cohorts", json=body, headers=admin)
    assert answer.status_code == 400, answer.text
    assert answer.json().get("field") == field and words in answer.json()["error"], answer.text
    assert "Traceback" not in answer.text


def test_bad_uploads_and_pages_name_their_field(http, world) -> None:
    admin = bearer(world["alpha"]["admin"])
    empty = http.post("/v1/cohorts/upload", params={"name": "empty"}, content=b"id\n\n", headers=admin)
    assert empty.status_code == 400 and empty.json()["field"] == "file"
    kind = http.post("/v1/cohorts/from-analysis", headers=admin,
                     json={"name": "n", "kind": "trends", "request": {"series": [{}]}})
    assert kind.status_code == 400 and kind.json()["field"] == "kind"
    page = http.get("/v1/cohorts/c_AAAAAAAAAAAA/persons", params={"limit": 0}, headers=admin)
    assert page.status_code == 400 and page.json()["field"] == "limit", page.text
    page = http.get("/v1/cohorts/c_AAAAAAAAAAAA/persons", params={"offset": "many"}, headers=admin)
    assert page.status_code == 400 and "offset" in page.text and "Traceback" not in page.text, page.text


def test_the_openapi_document_lists_the_routes(http) -> None:
    paths = http.get("/schema/openapi.json").json()["paths"]
    assert set(paths["/v1/cohorts"]) == {"get", "post"}
    assert set(paths["/v1/cohorts/{cohort_id}"]) == {"get", "put", "delete"}
    assert {"/v1/cohorts/upload", "/v1/cohorts/from-analysis", "/v1/cohorts/{cohort_id}/persons",
            "/v1/cohorts/{cohort_id}/members"} <= set(paths)


def test_unknown_ids_of_every_shape_are_404(http, world) -> None:
    admin = bearer(world["alpha"]["admin"])
    for cohort_id in ("c_AAAAAAAAAAAA", "nope", "c_%27%20OR%201%3D1", "x" * 300):
        for answer in (http.get(f"/v1/cohorts/{cohort_id}", headers=admin),
                       http.get(f"/v1/cohorts/{cohort_id}/persons", headers=admin)):
            assert answer.status_code == 404 and isinstance(answer.json()["error"], str), cohort_id
