"""Paths and a node's persons over HTTP: each project's key sees its own flows only; bad requests are 400s
naming the field."""

from __future__ import annotations

import pytest

from tests.analyses.journeys import insert_events
from tests.api.test_analyses_api import auth

RANGE = {"date_from": "2026-10-01T00:00:00Z", "date_to": "2026-10-02T00:00:00Z"}


def pages(*paths: str) -> list[tuple]:
    return [("page_view", f"2026-10-01T10:0{i}", {}, {"path": p}) for i, p in enumerate(paths)]


@pytest.fixture(scope="module")
def projects(server):
    """Two projects with the same start page: A's visitors go on to /a-secret, B's to /b-secret."""
    (a, a_keys), (b, b_keys) = server.project_with_keys("paths-a"), server.project_with_keys("paths-b")
    insert_events(server.runtime.clickhouse, a, {"a1": pages("/", "/a-secret"), "a2": pages("/", "/a-secret", "/x")})
    insert_events(server.runtime.clickhouse, b, {"b1": pages("/", "/b-secret")})
    return a_keys["read"], b_keys["read"]


def test_each_key_sees_its_own_flows_and_persons(http, projects):
    a_key, b_key = projects
    body = {"start": "/", "step_type": "pages", "date_range": RANGE, "timezone": "UTC"}
    a = http.post("/v1/analyses/paths", json=body, headers=auth(a_key)).json()["result"]
    b = http.post("/v1/analyses/paths", json=body, headers=auth(b_key)).json()["result"]
    assert [(n["id"], n["value"], n["dropped"]) for n in a["nodes"]] == [("0:/", 2, 0), ("1:/a-secret", 2, 1),
                                                                         ("2:/x", 1, 1)]
    assert [(e["source"], e["target"], e["value"]) for e in b["edges"]] == [("0:/", "1:/b-secret", 1)]
    assert "a-secret" not in str(b) and "a1" not in str(b) and "b-secret" not in str(a)
    # A node of A asked with B's key: nobody; with A's: its persons
    listing = {"paths": body, "step": 1, "node": "/a-secret"}
    seen_by_b = http.post("/v1/analyses/paths_persons", json=listing, headers=auth(b_key)).json()["result"]
    seen_by_a = http.post("/v1/analyses/paths_persons", json=listing, headers=auth(a_key)).json()["result"]
    assert seen_by_b["persons"] == [] and [p["person"] for p in seen_by_a["persons"]] == ["a1", "a2"]
    starting_at_a = http.post("/v1/analyses/paths", json={**body, "start": "/a-secret"}, headers=auth(b_key))
    assert starting_at_a.json()["result"]["nodes"] == [] and starting_at_a.json()["result"]["paths"] == 0


@pytest.mark.parametrize(("kind", "body", "field"), [
    ("paths", {"cleaning": [{"pattern": "/item/(\\d+", "replacement": "/item/:id"}]}, "cleaning[0].pattern"),
    ("paths", {"start": "/", "end": "/checkout"}, "end"),
    ("paths", {"nodes_per_step": 1000}, "nodes_per_step"),
    ("paths_persons", {"paths": {"steps": 3}, "step": 3, "node": "/"}, "step"),
])
def test_bad_requests_are_400s_naming_the_field(http, projects, kind, body, field):
    answer = http.post(f"/v1/analyses/{kind}", json=body, headers=auth(projects[0]))
    assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
