"""Experiments over real HTTP: read keys read, admin keys change, write keys assign; assignments are stable
across a change of end date or description and recorded as exposures through ingest, which the experiment
analysis then counts; another project's key gets 404 on every route and none of its data; bad input gets a
400 naming the field, never a traceback; a changed experiment is not answered from the cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nexus.meta.experiment_assignment import assign
from nexus.meta.experiments import Variant

START = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT00:00:00Z")
CHECKOUT = {"key": "checkout", "name": "Checkout <b>", "hypothesis": "A shorter form sells more",
            "variants": [{"key": "control"}, {"key": "short"}], "start": START,
            "primary_metric": {"event": "purchase"},
            "secondary_metrics": [{"event": "purchase", "measure": "sum", "value_property": "revenue"}],
            "baseline": 0.1, "mde": 0.2}
THEIRS = {**CHECKOUT, "key": "zzb-secret", "hypothesis": "beta's secret ZZB"}
IDS = [f"visitor-{i}" for i in range(40)]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def keys(server, http) -> dict[str, dict[str, str]]:
    _, alpha = server.project_with_keys("alpha")
    _, beta = server.project_with_keys("beta")
    for project, body in ((alpha, CHECKOUT), (beta, THEIRS)):
        created = http.post("/v1/experiments", json=body, headers=bearer(project["admin"]))
        assert created.status_code == 201, created.text
    return {"alpha": alpha, "beta": beta}


def test_create_read_replace_and_delete(http, keys) -> None:
    admin, read = bearer(keys["alpha"]["admin"]), bearer(keys["alpha"]["read"])
    body = {**CHECKOUT, "key": "pricing", "variants": [{"key": "a"}, {"key": "b"}, {"key": "c", "weight": 2}]}
    created = http.post("/v1/experiments", json=body, headers=admin)
    assert created.status_code == 201, created.text
    shown = created.json()
    assert shown["key"] == "pricing" and shown["name"] == "Checkout <b>" and shown["created_by"].startswith("nx_")
    assert shown["definition"]["exposure_event"] == "$experiment_exposure"
    assert shown["definition"]["variants"][2] == {"key": "c", "weight": 2.0}
    assert shown["sample_size"] == 3_835  # baseline 10%, +20% relative, alpha 0.05, power 0.8 (Cohen's h)
    assert http.get("/v1/experiments/pricing", headers=read).json() == shown
    replaced = http.put("/v1/experiments/pricing", json={**body, "description": "longer", "end": "2099-01-01T00:00:00Z"},
                        headers=admin)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["description"] == "longer" and replaced.json()["created_at"] == shown["created_at"]
    assert [e["key"] for e in http.get("/v1/experiments", headers=read).json()["experiments"]] == ["checkout", "pricing"]
    assert http.delete("/v1/experiments/pricing", headers=admin).status_code == 204
    assert http.get("/v1/experiments/pricing", headers=read).status_code == 404
    # A key is unique in its project, and does not change
    assert http.post("/v1/experiments", json=CHECKOUT, headers=admin).json()["field"] == "key"
    moved = http.put("/v1/experiments/checkout", json={**CHECKOUT, "key": "other"}, headers=admin)
    assert moved.status_code == 400 and moved.json()["field"] == "key"


def test_scopes(http, keys) -> None:
    read, write = bearer(keys["alpha"]["read"]), bearer(keys["alpha"]["write"])
    assert http.post("/v1/experiments", json=CHECKOUT, headers=read).status_code == 403
    assert http.put("/v1/experiments/checkout", json=CHECKOUT, headers=read).status_code == 403
    assert http.delete("/v1/experiments/checkout", headers=read).status_code == 403
    assert http.post("/v1/experiments", content=b"{not json", headers=read).status_code == 403  # learns nothing
    assert http.get("/v1/experiments", headers=write).status_code == 403
    assert http.get("/v1/experiments/checkout/assign?distinct_id=a").status_code == 401
    assert http.get("/v1/experiments/checkout/assign?distinct_id=a", headers=write).status_code == 200
    assert http.get("/v1/experiments/checkout/assign?distinct_id=a", headers=read).status_code == 403


def test_assignments_are_stable_and_recorded_exposures_are_analysed(http, keys) -> None:
    write, admin, read = (bearer(keys["alpha"][s]) for s in ("write", "admin", "read"))
    one = http.get("/v1/experiments/checkout/assign", params={"distinct_id": IDS[0]}, headers=write).json()
    variants = [Variant("control"), Variant("short")]
    assert one == {"experiment": "checkout", "running": True, "recorded": None,
                   "assignments": [{"distinct_id": IDS[0], "variant": assign("checkout", variants, IDS[0])}]}
    many = http.post("/v1/experiments/checkout/assign", json={"distinct_ids": IDS}, headers=write).json()
    before = [a["variant"] for a in many["assignments"]]
    assert before == [assign("checkout", variants, i) for i in IDS] and set(before) == {"control", "short"}
    # When the end date and the description change, nobody moves
    http.put("/v1/experiments/checkout", json={**CHECKOUT, "description": "now with notes",
                                                "end": "2099-01-01T00:00:00Z"}, headers=admin)
    again = http.post("/v1/experiments/checkout/assign", json={"distinct_ids": IDS}, headers=write).json()
    assert [a["variant"] for a in again["assignments"]] == before
    # Recorded: each id's exposure is an event, once, whatever the number of asks
    recorded = http.post("/v1/experiments/checkout/assign", json={"distinct_ids": IDS, "record": True}, headers=write)
    assert recorded.status_code == 200 and recorded.json()["recorded"] == len(IDS), recorded.text
    assert http.get("/v1/experiments/checkout/assign", params={"distinct_id": IDS[0], "record": "true"},
                    headers=write).json()["recorded"] == 0  # already stored: a duplicate
    answer = http.post("/v1/analyses/experiment", json={"experiment": "checkout"}, headers=read)
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result["exposed"] == [before.count("control"), before.count("short")]
    assert result["required_sample_size"] == 3_835 and result["name"] == "Checkout <b>"
    assert "not enough data yet" in result["verdict"]
    csv = http.post("/v1/analyses/experiment?format=csv", json={"experiment": "checkout"}, headers=read)
    assert csv.status_code == 200 and csv.text.splitlines()[0].startswith('"metric","name","variant","n","mean"')


def test_a_changed_experiment_is_not_answered_from_the_cache(http, keys) -> None:
    admin, read = bearer(keys["alpha"]["admin"]), bearer(keys["alpha"]["read"])
    body = {"experiment": "checkout", "timezone": "UTC"}
    first = http.post("/v1/analyses/experiment", json=body, headers=read).json()
    assert http.post("/v1/analyses/experiment", json=body, headers=read).json()["cached"] is True
    http.put("/v1/experiments/checkout", json={**CHECKOUT, "mde": 0.5}, headers=admin)
    after = http.post("/v1/analyses/experiment", json=body, headers=read).json()
    assert after["cached"] is False
    assert after["result"]["required_sample_size"] < first["result"]["required_sample_size"]


def test_another_project_s_key_gets_404_everywhere_and_none_of_its_data(http, keys) -> None:
    theirs = "/v1/experiments/zzb-secret"
    for scope in ("read", "admin", "write"):
        headers = bearer(keys["alpha"][scope])
        answers = {
            "get": http.get(theirs, headers=headers),
            "put": http.put(theirs, json=THEIRS, headers=headers),
            "delete": http.delete(theirs, headers=headers),
            "assign": http.get(f"{theirs}/assign", params={"distinct_id": "a"}, headers=headers),
            "assign_many": http.post(f"{theirs}/assign", json={"distinct_ids": ["a"]}, headers=headers),
            "analysis": http.post("/v1/analyses/experiment", json={"experiment": "zzb-secret"}, headers=headers),
        }
        allowed = {"read": {"get", "analysis"}, "admin": set(answers), "write": {"assign", "assign_many"}}[scope]
        for name, answer in answers.items():
            assert answer.status_code == (404 if name in allowed else 403), (scope, name, answer.text)
        listing = http.get("/v1/experiments", headers=headers)
        for answer in (*answers.values(), listing):
            assert "ZZB" not in answer.text and "zzb" not in answer.text.replace("'zzb-secret'", ""), answer.text
    assert http.get(theirs, headers=bearer(keys["beta"]["read"])).json()["hypothesis"] == "beta's secret ZZB"


@pytest.mark.parametrize(("change", "status", "field"), [
    ({"variants": [{"key": "only"}]}, 400, "variants"),
    ({"variants": [{"key": "a"}, {"key": "b", "weight": -1}]}, 400, "variants[1].weight"),
    ({"primary_metric": {"event": "purchase", "measure": "sum"}}, 400, "primary_metric.value_property"),
    ({"primary_metric": {"path": "pricing"}}, 400, "primary_metric.path"),
    ({"start": "yesterday"}, 400, "start"),
    ({"end": "2000-01-01T00:00:00Z"}, 400, "end"),
    ({"power": 1}, 400, "power"),
    ({"baseline": 2}, 400, "baseline"),
    ({"targeting": {"filters": [{"key": "plan", "op": "gt", "value": "x"}]}}, 400, "targeting.filters[0]"),
    ({"colour": "red"}, 400, None),
    ({"secondary_metrics": [{"goal": "g_AAAAAAAAAAAA"}]}, 404, None),
    ({"targeting": {"filters": [{"source": "cohort", "key": "c_AAAAAAAAAAAA", "op": "in"}]}}, 404, None),
])
def test_bad_definitions_get_a_4xx_naming_the_field(http, keys, change, status, field) -> None:
    admin = bearer(keys["alpha"]["admin"])
    before = http.get("/v1/experiments", headers=admin).json()
    for answer in (http.post("/v1/experiments", json={**CHECKOUT, **change, "key": "fresh"}, headers=admin),
                   http.put("/v1/experiments/checkout", json={**CHECKOUT, **change}, headers=admin)):
        assert answer.status_code == status and answer.json().get("field") == field, answer.text
        assert "Traceback" not in answer.text and answer.json()["error"]
    assert http.get("/v1/experiments", headers=admin).json() == before  # nothing stored, nothing changed


def test_bad_assign_requests_name_the_field(http, keys) -> None:
    write = bearer(keys["alpha"]["write"])
    cases = [(http.get("/v1/experiments/checkout/assign", headers=write), "distinct_id"),
             (http.get("/v1/experiments/checkout/assign", params={"distinct_id": ""}, headers=write), "distinct_id"),
             (http.post("/v1/experiments/checkout/assign", json={"distinct_ids": []}, headers=write), "distinct_ids"),
             (http.post("/v1/experiments/checkout/assign", json={"distinct_ids": ["a"] * 10_001}, headers=write),
              "distinct_ids"),
             (http.post("/v1/experiments/checkout/assign", json={"distinct_ids": ["a", "x" * 201]}, headers=write),
              "distinct_ids[1]"),
             (http.post("/v1/experiments/checkout/assign", json={"distinct_ids": "a"}, headers=write), "distinct_ids"),
             (http.get("/v1/experiments/checkout/assign", params={"distinct_id": "a", "id_type": "x"}, headers=write),
              "id_type"),
             (http.post("/v1/experiments/checkout/assign", json={"distinct_ids": ["a"], "id_type": "x"},
                        headers=write), "id_type"),
             (http.post("/v1/analyses/experiment", json={"experiment": {"key": "x"}},
                        headers=bearer(keys["alpha"]["read"])), "experiment.variants")]
    # An inline definition's own checks name the exact field inside it
    for change, field in (({"variants": [{"key": "a"}, {"key": "a b"}]}, "experiment.variants[1].key"),
                          ({"secondary_metrics": [{"event": ""}]}, "experiment.secondary_metrics[0].event")):
        inline = {**{k: v for k, v in CHECKOUT.items() if k != "hypothesis"}, "key": "inline", **change}
        cases.append((http.post("/v1/analyses/experiment", json={"experiment": inline},
                                headers=bearer(keys["alpha"]["read"])), field))
    for answer, field in cases:
        assert answer.status_code == 400 and answer.json().get("field") == field, answer.text
    missing = http.get("/v1/experiments/nope/assign", params={"distinct_id": "a"}, headers=write)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_a_started_experiment_keeps_its_variants_and_weights(http, keys) -> None:
    admin = bearer(keys["alpha"]["admin"])
    reweighted = [{"key": "control"}, {"key": "short", "weight": 3}]
    # Before its start an experiment's variants may change: nobody is assigned yet
    upcoming = {**CHECKOUT, "key": "upcoming",
                "start": (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT00:00:00Z")}
    assert http.post("/v1/experiments", json=upcoming, headers=admin).status_code == 201
    changed = http.put("/v1/experiments/upcoming", json={**upcoming, "variants": reweighted}, headers=admin)
    assert changed.status_code == 200 and changed.json()["definition"]["variants"][1]["weight"] == 3
    assert http.delete("/v1/experiments/upcoming", headers=admin).status_code == 204
    # After it, new weights or keys would move people between variants: refused, nothing stored
    for variants in (reweighted, [{"key": "control"}, {"key": "long"}]):
        refused = http.put("/v1/experiments/checkout", json={**CHECKOUT, "variants": variants}, headers=admin)
        assert refused.status_code == 400 and refused.json()["field"] == "variants", refused.text
        assert "create a new experiment" in refused.json()["error"]
    assert http.get("/v1/experiments/checkout", headers=admin).json()["definition"]["variants"] == [
        {"key": "control", "weight": 1.0}, {"key": "short", "weight": 1.0}]


def test_recorded_exposures_keep_an_anonymous_id_anonymous(server, http, keys) -> None:
    # An id is stored as the anonymous id it may be, unless the caller says it is a user id
    write = bearer(keys["alpha"]["write"])
    assign = "/v1/experiments/checkout/assign"
    assert http.get(assign, params={"distinct_id": "anon-7", "record": "true"}, headers=write).json()["recorded"] == 1
    assert http.post(assign, json={"distinct_ids": ["user-7"], "record": True, "id_type": "user"},
                     headers=write).json()["recorded"] == 1
    stored = server.runtime.clickhouse.query(
        "SELECT distinct_id, user_id, anonymous_id FROM events WHERE event = '$experiment_exposure'"
        " AND distinct_id IN ('anon-7', 'user-7') ORDER BY distinct_id").result_rows
    assert stored == [("anon-7", "", "anon-7"), ("user-7", "user-7", "")]
