"""Attribution over real HTTP: channel rules read with a read key and changed with an admin key, ad spend imported
as a spend file through /v1/import, both analyses answering with cost and ROAS; another project's key sees none
of a project's rules, spend, goals or touches; bad input gets a 400 naming the field; a change of the rules or
the spend is never answered from the cache."""

from __future__ import annotations

import pytest

from tests.analyses.test_attribution import insert

THEIRS = "ZZB"  # only in beta's data and rules: finding it in an answer to alpha is a leak
RANGE = {"date_from": "2026-10-01", "date_to": "2026-10-31"}
ATTRIBUTION = {"conversion": {"event": "purchase", "value_property": "revenue"}, "date_range": RANGE,
               "models": ["last_touch", "linear"]}
SPEND = "date,channel,campaign,cost\n2026-10-02,Paid search,brand,30\n2026-10-03,Paid search,brand,10.5\n" \
        "2026-09-30,Paid search,brand,1000\n2026-10-04,Email,,4\n2026-10-06,Paid social,retargeting,9\n"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def keys(server) -> dict[str, dict[str, str]]:
    alpha, alpha_keys = server.project_with_keys("alpha")
    beta, beta_keys = server.project_with_keys("beta")
    # Given: in alpha a paid visit and an email visit before purchases; in beta a campaign and a channel of its own
    insert(server.runtime.clickhouse, alpha, {"u1": [("paid", "2026-10-02T10:00"), ("purchase", "2026-10-02T10:05", 81)],
                                              "u2": [("email", "2026-10-05T10:00"), ("purchase", "2026-10-05T10:05", 8)]})
    insert(server.runtime.clickhouse, beta, {"zz": [("paid", "2026-10-02T10:00"), ("purchase", "2026-10-02T10:05", 7)]})
    return {"alpha": alpha_keys, "beta": beta_keys}


def attribute(http, key: str, **body) -> dict:
    answer = http.post("/v1/analyses/attribution", json={**ATTRIBUTION, **body}, headers=bearer(key))
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def by_label(result: dict, model: str = "linear") -> dict[str, dict]:
    return {row["label"]: row for row in result["rows"] if row["model"] == model and row["conversions"]}


def test_channel_rules_read_changed_and_kept_apart(http, keys) -> None:
    alpha, beta = keys["alpha"], keys["beta"]
    shown = http.get("/v1/channels", headers=bearer(alpha["read"]))
    assert shown.status_code == 200 and shown.json()["default"] is True
    rules = {"rules": [{"channel": f"Beta {THEIRS}", "when": [{"field": "utm_medium", "values": ["CPC"]}]},
                       *shown.json()["rules"]], "last_non_direct": False}
    assert http.put("/v1/channels", json=rules, headers=bearer(beta["read"])).status_code == 403
    changed = http.put("/v1/channels", json=rules, headers=bearer(beta["admin"]))
    assert changed.status_code == 200, changed.text
    assert changed.json()["channels"][0] == f"Beta {THEIRS}" and changed.json()["last_non_direct"] is False
    assert http.get("/v1/channels", headers=bearer(beta["read"])).json() == changed.json()
    # Alpha still has the defaults, and nothing of beta's reaches alpha's answers
    mine = http.get("/v1/channels", headers=bearer(alpha["read"]))
    assert mine.json()["default"] is True and THEIRS not in mine.text
    assert THEIRS not in http.post("/v1/analyses/attribution", json=ATTRIBUTION, headers=bearer(alpha["read"])).text
    assert set(by_label(attribute(http, beta["read"]))) == {f"Beta {THEIRS}"}
    reset = http.delete("/v1/channels", headers=bearer(beta["admin"]))
    assert reset.status_code == 200 and reset.json()["default"] is True
    assert set(by_label(attribute(http, beta["read"]))) == {"Paid search"}  # not the cached answer


@pytest.mark.parametrize(("body", "field"), [
    ({"rules": []}, "rules"),
    ({"rules": [{"channel": "A", "when": [{"field": "utm_medium", "op": "like", "values": ["x"]}]}]},
     "rules[0].when[0].op"),
    ({"rules": [{"channel": "A", "when": [{"field": "utm_medium", "op": "regex", "values": ["(x"]}]}]},
     "rules[0].when[0].values"),
    ({"rules": [{"channel": "A"}], "direct_channel": "Nope"}, "direct_channel"),
])
def test_bad_rules_get_a_400_naming_the_field_and_change_nothing(http, keys, body, field) -> None:
    answer = http.put("/v1/channels", json=body, headers=bearer(keys["alpha"]["admin"]))
    assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    assert http.get("/v1/channels", headers=bearer(keys["alpha"]["read"])).json()["default"] is True


def test_spend_gives_cost_per_conversion_and_roas_and_stays_in_its_project(http, keys) -> None:
    alpha, beta = keys["alpha"], keys["beta"]
    before = attribute(http, alpha["read"])
    assert before["cost"] is None and by_label(before)["Paid search"]["roas"] is None
    assert http.post("/v1/import?table=ad_spend", content=SPEND, headers=bearer(alpha["write"])).status_code == 403
    stored = http.post("/v1/import?table=ad_spend", content=SPEND, headers=bearer(alpha["admin"]))
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"table": "ad_spend", "rows": 5, "stored": 5, "first_day": "2026-09-30",
                             "last_day": "2026-10-06", "cost": 1053.5}
    # Then: the range's days only (not 09-30), by channel; not answered from the cache of `before`
    result = attribute(http, alpha["read"])
    paid, email = by_label(result)["Paid search"], by_label(result)["Email"]
    assert result["cost"] == 53.5 and (paid["cost"], email["cost"]) == (40.5, 4.0)
    assert (paid["cost_per_conversion"], paid["roas"]) == (40.5, 2.0) and email["roas"] == 2.0
    # A channel with spend and no touch is listed, at its cost, without conversions
    social = [row for row in result["rows"] if row["label"] == "Paid social" and row["model"] == "linear"]
    assert [(r["conversions"], r["cost"], r["cost_per_conversion"], r["roas"]) for r in social] == [(0.0, 9.0, None, 0.0)]
    campaigns = attribute(http, alpha["read"], by="campaign")
    costs = {row["label"]: row["cost"] for row in campaigns["rows"] if row["model"] == "linear"}
    assert costs == {"brand": 40.5, "weekly": 0.0, "retargeting": 9.0} and campaigns["cost"] == 49.5
    assert by_label(attribute(http, alpha["read"], by="source"))["google"]["cost"] is None
    # A corrected file replaces the days it names, never adds to them
    again = http.post("/v1/import?table=ad_spend", content="date,channel,campaign,cost\n2026-10-02,Paid search,brand,20\n",
                      headers=bearer(alpha["admin"]))
    assert again.status_code == 200
    assert by_label(attribute(http, alpha["read"]))["Paid search"]["cost"] == 30.5
    # Beta's key sees none of it
    assert attribute(http, beta["read"])["cost"] is None
    ndjson = '{"date": "2026-10-02", "channel": "Paid search", "cost": 3}\n'
    assert http.post("/v1/import?table=ad_spend", content=ndjson, headers=bearer(beta["admin"])).status_code == 200
    assert attribute(http, beta["read"])["cost"] == 3.0 and attribute(http, alpha["read"])["cost"] == 43.5


@pytest.mark.parametrize(("query", "content", "field"), [
    ("table=ad_spend", "date,channel,cost\n2026-10-02,Paid search,lots\n", "cost"),
    ("table=ad_spend", "date,channel,cost\n2026-10-02,Paid search,-1\n", "cost"),
    ("table=ad_spend", "date,channel,cost\n02/10/2026,Paid search,1\n", "date"),
    ("table=ad_spend", "date,channel,cost\n2026-10-02,,1\n", "channel"),
    ("table=ad_spend", "day,channel,cost\n2026-10-02,Paid search,1\n", "date"),
    ("table=spend", "date,channel,cost\n", "table"),
])
def test_bad_spend_files_get_a_400_naming_the_field(http, keys, query, content, field) -> None:
    answer = http.post(f"/v1/import?{query}", content=content, headers=bearer(keys["beta"]["admin"]))
    assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    assert "Traceback" not in answer.text


def test_another_project_s_goal_is_not_found_and_bad_requests_name_the_field(http, keys) -> None:
    goal = http.post("/v1/goals", json={"name": f"beta goal {THEIRS}", "event": "purchase"},
                     headers=bearer(keys["beta"]["admin"]))
    assert goal.status_code == 201, goal.text
    for kind in ("attribution", "conversion_paths"):
        answer = http.post(f"/v1/analyses/{kind}", json={"conversion": goal.json()["goal_id"], "date_range": RANGE},
                           headers=bearer(keys["alpha"]["read"]))
        assert answer.status_code == 404 and THEIRS not in answer.text and "conversion" in answer.text, answer.text
    for body, field in (({"lookback_days": 400}, "lookback_days"), ({"models": ["last_click"]}, "models[0]"),
                        ({"position_first": 2}, "position_first")):
        answer = http.post("/v1/analyses/attribution", json={**ATTRIBUTION, **body}, headers=bearer(keys["alpha"]["read"]))
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.text


def test_conversion_paths_over_http(http, keys) -> None:
    answer = http.post("/v1/analyses/conversion_paths", json={"conversion": ATTRIBUTION["conversion"], "date_range": RANGE},
                       headers=bearer(keys["alpha"]["read"]))
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert [(p["path"], p["conversions"], p["value"], p["avg_seconds_to_convert"]) for p in result["paths"]] == [
        (["Email"], 1, 8.0, 300.0), (["Paid search"], 1, 81.0, 300.0)]
    table = http.post("/v1/analyses/conversion_paths?format=csv", json={"conversion": ATTRIBUTION["conversion"],
                      "date_range": RANGE}, headers=bearer(keys["alpha"]["read"]))
    assert table.status_code == 200 and table.text.splitlines()[1] == "\"Email\",1,8,0,1,300,1"
