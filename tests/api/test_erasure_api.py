"""DELETE /v1/persons/{id} and GET /v1/erasures over real HTTP: a person sent through the Segment API (anonymous,
identified mid-way, a second device, an alias) is erased by one of their ids; afterwards /v1/query finds
nothing of them in events, identities, persons, sessions or the rollups, and the analyses no longer count
them. Another project's key finds no one (404) and removes nothing; read keys are refused (403)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

SHARED_ID = "shared-visitor"  # a distinct id both projects have: each project's is its own person
NOW = datetime.now(UTC)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def message(kind: str, days_ago: float, **fields) -> dict:
    when = (NOW - timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    return {"type": kind, "timestamp": when, "messageId": str(uuid.uuid4()), **fields}


# Over the month boundary when today is early in a month: either way one or two rollup partitions.
JOURNEY = [
    message("page", 6, anonymousId="anon-x1", properties={"path": "/pricing"}),
    message("track", 6, event="signup", anonymousId="anon-x1", properties={"plan": "pro"}),
    message("identify", 5.9, userId="erase-x", anonymousId="anon-x1", traits={"email": "erase-x@example.com"}),
    message("track", 5, event="purchase", userId="erase-x", properties={"revenue": 30}),
    message("page", 2, anonymousId="anon-x2", properties={"path": "/"}),
    message("identify", 1.9, userId="erase-x", anonymousId="anon-x2"),
    message("alias", 1, previousId="erase-x", userId="erase-x-new"),
    message("track", 0.5, event="purchase", userId="erase-x-new", properties={"revenue": 12}),
]
OTHERS = [
    message("page", 4, anonymousId="bystander", properties={"path": "/"}),
    message("identify", 3.5, userId="bystander", anonymousId="bystander-anon"),
    message("track", 3, event="purchase", userId="bystander", properties={"revenue": 5}),
    message("page", 3, anonymousId=SHARED_ID, properties={"path": "/"}),
]
MARKERS = ("erase-x", "anon-x")
ADMINISTER = "administer the project"


@pytest.fixture(scope="module")
def projects(server, http) -> dict[str, tuple[int, dict[str, str]]]:
    made = {"alpha": server.project_with_keys("erasure-alpha"), "beta": server.project_with_keys("erasure-beta")}
    for name, batch in (("alpha", JOURNEY + OTHERS), ("beta", OTHERS)):
        sent = http.post("/v1/batch", json={"batch": [{**m, "messageId": f"{name}-{m['messageId']}"} for m in batch]},
                         headers=bearer(made[name][1]["write"]))
        assert sent.status_code == 200 and sent.json()["stored"] == len(batch)
    return made


def sql(http, projects, name: str, text: str) -> list[list]:
    answer = http.post("/v1/query", json={"sql": text}, headers=bearer(projects[name][1]["read"]))
    assert answer.status_code == 200, answer.text
    return answer.json()["rows"]


def person_of(http, projects, distinct_id: str) -> str:
    [[person]] = sql(http, projects, "alpha", f"SELECT toString(person_id) FROM identities FINAL "
                                              f"WHERE distinct_id = '{distinct_id}'")
    return person


def everything(http, projects, name: str) -> str:
    """Every row of every table a project's SQL can read, as text (rollups as their merged numbers)."""
    tables = [sql(http, projects, name, f"SELECT * FROM {table}") for table in ("events", "identities", "persons")]
    tables.append(sql(http, projects, name, "SELECT session_id, any(distinct_id), sum(events) FROM sessions "
                                            "GROUP BY session_id"))
    return repr([sorted(map(repr, rows)) for rows in tables])  # in no particular order: parts merge meanwhile


def totals(http, projects, name: str) -> list[list]:
    """Events, distinct ids and revenue: from events, and from each rollup."""
    return [sql(http, projects, name, text)[0] for text in (
        "SELECT count(), uniq(distinct_id), sum(toFloat64OrZero(toString(properties.revenue))) FROM events",
        "SELECT sum(events), uniqMerge(distinct_ids), toFloat64(sum(revenue)) FROM events_hourly",
        "SELECT sum(events), uniqMerge(distinct_ids), toFloat64(sum(revenue)) FROM events_daily")]


def revenue(http, read_key: str) -> dict:
    """The trends analysis's revenue over the last two weeks, and whether the answer came from the cache."""
    body = {"series": [{"event": "purchase", "metric": "sum", "property": "revenue"}],
            "date_range": {"date_from": "-14d"}, "interval": "month"}
    answer = http.post("/v1/analyses/trends", json=body, headers=bearer(read_key))
    assert answer.status_code == 200, answer.text
    return {"cached": answer.json()["cached"], "total": answer.json()["result"]["lines"][0]["total"]}


def test_erasing_a_person_by_any_of_their_ids(server, http, projects):
    alpha = projects["alpha"]
    person = person_of(http, projects, "anon-x1")
    beta_before = everything(http, projects, "beta"), totals(http, projects, "beta")
    assert [m for m in MARKERS if m in everything(http, projects, "alpha")] == list(MARKERS)
    assert totals(http, projects, "alpha") == [[12, 6, 47.0]] * 3
    revenue(http, alpha[1]["read"])
    assert revenue(http, alpha[1]["read"]) == {"cached": True, "total": 47}  # until the erasure

    # When alpha's admin key erases the person by their second device's id
    answer = http.delete("/v1/persons/anon-x2", headers=bearer(alpha[1]["admin"]))

    # Then the answer counts what went, and nothing of them is left to query
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["distinct_ids"] == 4 and record["rows"]["events"] == len(JOURNEY)
    assert record["rows"]["identities"] >= 4 and record["rows"]["persons"] >= 1
    assert record["erased_by"] == server.runtime.clickhouse.query(
        "SELECT key_id FROM api_keys FINAL WHERE project_id = {p:UInt32} AND scope = 'admin'",
        parameters={"p": alpha[0]}).result_rows[0][0]
    text = everything(http, projects, "alpha")
    assert not [m for m in (*MARKERS, person) if m in text]
    assert totals(http, projects, "alpha") == [[4, 2, 5.0]] * 3
    # ... nor in the analyses, and the other project's data is as it was
    assert revenue(http, alpha[1]["read"]) == {"cached": False, "total": 5}
    assert (everything(http, projects, "beta"), totals(http, projects, "beta")) == beta_before

    # And the erasure is listed, without any id of the person; a second erasure finds no one
    listed = http.get("/v1/erasures", headers=bearer(alpha[1]["admin"])).json()["erasures"]
    assert [e["erasure_id"] for e in listed] == [record["erasure_id"]]
    assert not [m for m in (*MARKERS, person) if m in repr(listed)]
    for name in (person, "anon-x1", "erase-x-new"):
        again = http.delete(f"/v1/persons/{name}", headers=bearer(alpha[1]["admin"]))
        assert again.status_code == 404 and again.json() == {"error": f"no person {name!r} in this project"}


def test_after_the_erasure_their_ids_start_a_new_person(http, projects):
    """The server's identity resolver cached erase-x's person while ingesting the journey: the erasure makes it
    drop that cache, so an identify after it links the ids to a new person, not to the erased one."""
    alpha = projects["alpha"]
    [[erased]] = [[e["erasure_id"]] for e in http.get("/v1/erasures", headers=bearer(alpha[1]["admin"])).json()[
        "erasures"]][-1:]
    assert erased
    later = [message("identify", 0.1, userId="erase-x", anonymousId="anon-x9", messageId="alpha-later-1")]
    assert http.post("/v1/batch", json={"batch": later}, headers=bearer(alpha[1]["write"])).json()["stored"] == 1
    rows = sql(http, projects, "alpha", "SELECT distinct_id, toString(person_id) FROM identities "
                                        "WHERE distinct_id LIKE '%-x%' ORDER BY distinct_id")
    assert [r[0] for r in rows] == ["anon-x9", "erase-x"] and rows[0][1] == rows[1][1]
    assert sql(http, projects, "alpha", f"SELECT count() FROM persons WHERE toString(person_id) = '{rows[0][1]}'"
               ) == [[1]]


def test_another_project_s_key_erases_nothing(http, projects):
    alpha, beta = projects["alpha"], projects["beta"]
    before = everything(http, projects, "beta"), totals(http, projects, "beta")
    # alpha's person, by its person id: beta's admin key finds no one, and removes nothing of alpha's
    alpha_before = everything(http, projects, "alpha")
    answer = http.delete(f"/v1/persons/{person_of(http, projects, 'bystander')}", headers=bearer(beta[1]["admin"]))
    assert answer.status_code == 404 and everything(http, projects, "alpha") == alpha_before
    # A distinct id both projects have: alpha's key erases alpha's visitor only
    assert http.delete(f"/v1/persons/{SHARED_ID}", headers=bearer(alpha[1]["admin"])).status_code == 200
    assert sql(http, projects, "alpha", f"SELECT count() FROM events WHERE distinct_id = '{SHARED_ID}'") == [[0]]
    assert (everything(http, projects, "beta"), totals(http, projects, "beta")) == before
    assert http.get("/v1/erasures", headers=bearer(beta[1]["admin"])).json() == {"erasures": []}


def test_only_admin_keys_erase_or_list(http, projects):
    alpha = projects["alpha"]
    for scope in ("read", "write"):
        answer = http.delete("/v1/persons/bystander", headers=bearer(alpha[1][scope]))
        assert answer.status_code == 403 and answer.json() == {"error": f"this {scope} key cannot {ADMINISTER}"}
        assert http.get("/v1/erasures", headers=bearer(alpha[1][scope])).status_code == 403
    assert http.delete("/v1/persons/bystander").status_code == 401
    assert sql(http, projects, "alpha", "SELECT count() FROM events WHERE distinct_id = 'bystander'") == [[3]]


def test_an_overlong_id_is_refused_naming_the_field(http, projects):
    answer = http.delete("/v1/persons/" + "x" * 1001, headers=bearer(projects["alpha"][1]["admin"]))
    assert answer.status_code == 400 and answer.json()["field"] == "person_id"


def test_ad_hoc_sql_can_neither_read_nor_write_the_erasures(http, projects):
    for text in ("SELECT * FROM erasures", "INSERT INTO erasures (project_id) VALUES (1)",
                 "ALTER TABLE erasures DELETE WHERE 1"):
        answer = http.post("/v1/query", json={"sql": text}, headers=bearer(projects["alpha"][1]["admin"]))
        assert answer.status_code in (400, 403), (text, answer.text)


def test_ids_with_spaces_accents_and_slashes_are_erased_percent_encoded(server, http):
    """Ids are as sent: any text, '/' included (the id is the rest of the path)."""
    _, keys = server.project_with_keys("erasure-odd-ids")
    batch = [message("page", 1, anonymousId="odd id é", properties={"path": "/"}, messageId="odd-1"),
             message("page", 1, anonymousId="tenant/42", properties={"path": "/"}, messageId="odd-2"),
             message("page", 1, anonymousId="tenant", properties={"path": "/"}, messageId="odd-3")]
    assert http.post("/v1/batch", json={"batch": batch}, headers=bearer(keys["write"])).json()["stored"] == 3
    answer = http.delete("/v1/persons/odd%20id%20%C3%A9", headers=bearer(keys["admin"]))
    assert answer.status_code == 200 and answer.json()["rows"]["events"] == 1
    assert http.get("/v1/persons/tenant%2F42", headers=bearer(keys["read"])).json()["events"] == 1
    answer = http.delete("/v1/persons/tenant%2F42", headers=bearer(keys["admin"]))
    assert answer.status_code == 200 and answer.json()["rows"]["events"] == 1
    assert http.get("/v1/persons/tenant%2F42", headers=bearer(keys["read"])).status_code == 404
    assert http.get("/v1/persons/tenant", headers=bearer(keys["read"])).json()["events"] == 1  # untouched
