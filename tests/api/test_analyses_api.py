"""The analyses over HTTP: every kind answers as the module does, results are cached until new data
arrives, ?explain=1 reproduces the numbers, ?format= returns the table, bad requests are 400s."""

from __future__ import annotations

import base64
import io
import json
import math
from datetime import datetime, timedelta

import msgspec
import pyarrow.ipc as ipc
import pytest

from nexus.analyses import registry
from nexus.services import analyses as services_analyses
from nexus.demo.load import load
from tests.analyses.example_cohort import save_example_cohort
from tests.analyses.test_registry import BODIES
from tests.conftest import DEMO_END

FIXED_RANGE = {"date_from": "2026-10-01T00:00:00Z", "date_to": "2026-11-01T00:00:00Z"}


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


@pytest.fixture(scope="module")
def project(server):
    project_id, secrets = server.project_with_keys("analysed")
    load(server.runtime.clickhouse, project_id, 20_000, seed=11, end=DEMO_END)
    save_example_cohort(server.runtime.clickhouse, project_id)  # the cohort cohort_size's body names
    return project_id, secrets


def fixed(kind: str) -> dict:
    """The registry test's body for `kind`, over a fixed range so the answer does not move with the clock."""
    body = json.loads(json.dumps(BODIES[kind]))
    if kind in ("live", "persons", "person", "experiment", "predictions"):  # no range: the minutes ending now;
        return body  # persons of all time; an experiment's own dates; the latest scoring run
    nested = {"funnel_persons": "funnel", "paths_persons": "paths", "retention_persons": "retention"}
    target = body[nested[kind]] if kind in nested else body
    target["date_range"] = FIXED_RANGE
    return body


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_every_kind_answers_what_the_module_computes(server, http, project, kind):
    project_id, secrets = project
    answer = http.post(f"/v1/analyses/{kind}", json=fixed(kind), headers=auth(secrets["read"]))
    assert answer.status_code == 200, answer.text
    # Live's window moves with the clock: the module is asked for the answer's own minutes
    now = datetime.fromisoformat(answer.json()["result"]["date_to"]) - timedelta(minutes=1) if kind == "live" else None
    expected = registry.run(server.runtime.clickhouse, project_id, kind, registry.decode(kind, fixed(kind)), now=now)
    assert answer.json()["kind"] == kind
    assert answer.json()["result"] == json.loads(msgspec.json.encode(expected))


def test_results_are_cached_until_new_data_arrives(server, http, project):
    project_id, secrets = project
    body = {"series": [{"event": "cache_probe"}], "interval": "day", "date_range": FIXED_RANGE}
    first = http.post("/v1/analyses/trends", json=body, headers=auth(secrets["read"])).json()
    again = http.post("/v1/analyses/trends", json=body, headers=auth(secrets["read"])).json()
    assert (first["cached"], again["cached"]) == (False, True) and first["result"] == again["result"]
    assert sum(v or 0 for line in first["result"]["lines"] for v in line["values"]) == 0
    # When an event arrives for the project, the next answer is computed afresh and counts it
    stored = http.post("/v1/track", json={"event": "cache_probe", "anonymousId": "c", "timestamp": "2026-10-15T10:00:00Z"},
                       headers=auth(secrets["write"]))
    assert stored.status_code == 200
    fresh = http.post("/v1/analyses/trends", json=body, headers=auth(secrets["read"])).json()
    assert fresh["cached"] is False and sum(fresh["result"]["lines"][0]["values"]) == 1


@pytest.mark.parametrize("source", ["events", "auto"])  # auto: the hourly rollup, whose times bind as DateTime
def test_explain_gives_sql_that_reproduces_the_numbers(server, http, project, source):
    project_id, secrets = project
    body = {"series": [{"event": "purchase", "metric": "sum", "property": "revenue"}], "date_range": FIXED_RANGE,
            "source": source, "timezone": "UTC"}
    answer = http.post("/v1/analyses/trends?explain=1", json=body, headers=auth(secrets["read"])).json()
    sql, params = answer["explain"]["sql"], answer["explain"]["params"]
    assert params["project_id"] == project_id and "{project_id:UInt32}" in sql
    assert ("FROM events_hourly" in sql) == (source == "auto")
    rows = server.runtime.clickhouse.query(sql, parameters=params).result_rows
    assert rows  # the SQL runs as given, with the parameters as given


def test_the_table_of_a_result_as_csv_and_arrow(server, http, project):
    _, secrets = project
    body = {"event": "page_view", "period": "day", "date_range": FIXED_RANGE}
    csv = http.post("/v1/analyses/stickiness?format=csv", json=body, headers=auth(secrets["read"]))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert len(csv.text.splitlines()) > 1
    arrow = http.post("/v1/analyses/stickiness?format=arrow", json=body, headers=auth(secrets["read"]))
    table = ipc.open_stream(io.BytesIO(arrow.content)).read_all()
    assert table.num_rows == len(csv.text.splitlines()) - 1
    by_value = http.post("/v1/analyses/retention?format=arrow", json=fixed("retention"), headers=auth(secrets["read"]))
    cells = ipc.open_stream(io.BytesIO(by_value.content)).read_all().to_pylist()
    everyone = [c for c in cells if c["breakdown"] is None]
    assert len({c["breakdown"] for c in cells}) > 2  # everyone, values, $other
    assert sum(c["persons"] or 0 for c in cells if c["breakdown"] is not None) == sum(c["persons"] or 0 for c in everyone)


def test_an_empty_table_keeps_its_header(server, http, project):
    _, secrets = project
    body = {"funnel": {"steps": [{"event": "nobody_did_this"}, {"event": "nor_this"}], "date_range": FIXED_RANGE},
            "step": 1}
    csv = http.post("/v1/analyses/funnel_persons?format=csv", json=body, headers=auth(secrets["read"]))
    assert csv.status_code == 200 and csv.text.splitlines() == ['"person","depth","entered_at"']
    arrow = http.post("/v1/analyses/funnel_persons?format=arrow", json=body, headers=auth(secrets["read"]))
    table = ipc.open_stream(io.BytesIO(arrow.content)).read_all()
    assert table.num_rows == 0 and table.column_names == ["person", "depth", "entered_at"]


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("/v1/analyses/flows", {}, 404, "no analysis 'flows'"),
        ("/v1/analyses/trends", {"series": []}, 400, "1 to"),
        ("/v1/analyses/trends", {"series": [{"event": "x"}], "interval": "fortnight"}, 400, "interval"),
        ("/v1/analyses/funnel", {"steps": [{"event": "a"}]}, 400, ""),
        ("/v1/analyses/trends?format=xlsx", {"series": [{"event": "x"}]}, 400, "format must be"),
        ("/v1/analyses/trends?format=csv&explain=1", {"series": [{"event": "x"}]}, 400, "JSON results only"),
        ("/v1/analyses/trends?explain=maybe", {"series": [{"event": "x"}]}, 400, "explain: "),
    ],
)
def test_bad_requests_say_why(server, http, project, path, body, status, reason):
    _, secrets = project
    answer = http.post(path, json=body, headers=auth(secrets["read"]))
    assert answer.status_code == status and reason in answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"series": [{"event": "x", "where": {"filters": [{"key": "a;drop", "value": "x"}]}}]},
         "series[0].where.filters[0]", "property name 'a;drop' must match"),
        ({"series": [{"event": "x", "where": {"filters": [{"key": "n", "op": "gt", "value": "abc"}]}}]},
         "series[0].where.filters[0]", "needs a number"),
        # Checked when the request arrives, also when no row would reach match(); (?=...) is Perl, not RE2
        ({"series": [{"event": "no_such_event"}], "where": {"filters": [{"key": "p", "op": "regex", "value": "(("}]}},
         "where.filters[0]", "not a valid RE2 pattern (missing ): (()"),
        ({"series": [{"event": "x"}], "where": {"filters": [{"key": "p", "op": "not_regex", "value": "a(?=b)"}]}},
         "where.filters[0]", "not a valid RE2 pattern"),
        ({"series": [{"event": "x"}], "where": {"filters": [{"key": "p", "op": "is_set", "value": "y"}]}},
         "where.filters[0]", "takes no value"),
        ({"series": [{"event": "x"}], "breakdown": {"key": "plan", "limit": 0}}, "breakdown", "limit"),
        ({"series": [{"event": "x"}], "interval": 7}, "interval", "Expected `str`"),
    ],
)
def test_a_refused_value_is_named_by_its_path(server, http, project, body, field, reason):
    _, secrets = project
    answer = http.post("/v1/analyses/trends", json=body, headers=auth(secrets["read"]))
    assert answer.status_code == 400 and answer.json()["field"] == field and reason in answer.json()["error"]


def test_analyses_need_a_read_key(server, http, project):
    _, secrets = project
    denied = http.post("/v1/analyses/trends", json={"series": [{"event": "x"}]}, headers=auth(secrets["write"]))
    assert denied.status_code == 403
    anonymous = http.post("/v1/analyses/trends?format=xml", json={"series": [{"event": "x"}]})
    assert anonymous.status_code == 401  # the key is checked before anything else is looked at


def test_pickers_list_event_and_property_names(server, http, project):
    _, secrets = project
    names = http.get("/v1/events/names", headers=auth(secrets["read"])).json()
    assert {"page_view", "signup", "purchase"} <= {n["name"] for n in names}
    # Property names come from recent events: send one now (the demo data ends on a fixed date)
    http.post("/v1/track", json={"event": "purchase", "anonymousId": "p", "properties": {"revenue": 5, "plan": "pro"}},
              headers=auth(secrets["write"]))
    props = http.get("/v1/properties", params={"event": "purchase"}, headers=auth(secrets["read"]))
    assert props.status_code == 200
    assert {"revenue", "plan"} <= {p["key"] for p in props.json() if p["source"] == "event"}


@pytest.mark.parametrize(
    "body",
    [
        {"series": [{"event": "x"}], "date_range": {"date_from": "-2100y"}},
        {"series": [{"event": "x"}], "date_range": {"date_from": "2026-01-01", "date_to": "9999-12-31"}},
        {"series": [{"event": "x"}], "timezone": "Europe"},
        {"series": [{"event": "x"}], "timezone": "right/UTC"},  # a file of the zone folder, not a zone ClickHouse knows
        {"series": [{"event": "x"}], "timezone": "localtime"},  # the host's zone
        {"series": [{"event": "x", "where": {"filters": [{"key": "n", "op": "gt", "value": 10 ** 400}]}}]},
    ],
)
def test_extreme_requests_are_400s(server, http, project, body):
    _, secrets = project
    answer = http.post("/v1/analyses/trends", json=body, headers=auth(secrets["read"]))
    assert answer.status_code == 400, answer.text


def test_a_century_of_daily_stickiness_is_refused_quickly(server, http, project):
    _, secrets = project
    body = {"event": "page_view", "period": "day", "date_range": {"date_from": "1970-01-01", "date_to": "2199-01-01"}}
    answer = http.post("/v1/analyses/stickiness", json=body, headers=auth(secrets["read"]))
    assert answer.status_code == 400 and "more than 20000" in answer.json()["error"]


def test_the_explain_of_a_cached_answer_is_the_sql_that_computed_it(server, http, project, monkeypatch):
    project_id, secrets = project
    service = server.runtime.analyses
    body = {"series": [{"event": "page_view"}], "date_range": {"date_from": "-3d"}, "timezone": "UTC"}
    # Given an answer computed on one day, with a range relative to that day
    monkeypatch.setattr(service, "clock", lambda: DEMO_END)
    first = http.post("/v1/analyses/trends?explain=1", json=body, headers=auth(secrets["read"])).json()
    # When the same question comes a day later, before the cache entry expires
    monkeypatch.setattr(service, "clock", lambda: DEMO_END + timedelta(days=1))
    again = http.post("/v1/analyses/trends?explain=1", json=body, headers=auth(secrets["read"])).json()
    # Then it is the cached answer, with the SQL and parameters of its own day, not of the next
    assert (first["cached"], again["cached"]) == (False, True)
    assert again["explain"] == first["explain"] and again["result"] == first["result"]
    later = registry.explain(server.runtime.clickhouse, project_id, "trends", registry.decode("trends", body),
                             now=DEMO_END + timedelta(days=1))
    assert later.params != {k: v for k, v in first["explain"]["params"].items()}  # a rebuilt one would differ


def test_a_new_definition_of_the_analyses_never_serves_an_older_answer(http, project, monkeypatch):
    _, secrets = project
    body = {"series": [{"event": "signup"}], "date_range": FIXED_RANGE}
    assert http.post("/v1/analyses/trends", json=body, headers=auth(secrets["read"])).json()["cached"] in (False, True)
    assert http.post("/v1/analyses/trends", json=body, headers=auth(secrets["read"])).json()["cached"] is True
    # An upgrade changes the code of the analyses, hence the version in every cache key
    monkeypatch.setattr(services_analyses, "DEFINITIONS", "another-version")
    assert http.post("/v1/analyses/trends", json=body, headers=auth(secrets["read"])).json()["cached"] is False


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_explained_sql_runs_through_the_query_api_with_the_same_rows(server, http, project, kind):
    # Given the explain of an analysis, shown to a user who wants to run it themselves
    project_id, secrets = project
    explain = http.post(f"/v1/analyses/{kind}?explain=1", json=fixed(kind), headers=auth(secrets["read"])).json()["explain"]
    # When they send its SQL and parameters to the ad-hoc SQL API, in its sandbox
    answer = http.post("/v1/query", json={"sql": explain["sql"], "params": explain["params"], "format": "ndjson"},
                       headers=auth(secrets["read"]))
    assert answer.status_code == 200, answer.text
    # Then they get the rows the analysis read, as the engine gives them outside the sandbox (in any order:
    # the analyses order their answers in Python; float averages to 9 digits: threads add in any order)
    direct = server.runtime.clickhouse.raw_query(explain["sql"], parameters=explain["params"], fmt="JSONEachRow",
                                                 settings=explain["settings"])
    ours, theirs = _rows(answer.text), _rows(direct.decode())
    assert answer.text.strip() and len(ours) == len(theirs)
    assert all(_close(a, b) for a, b in zip(ours, theirs)), (ours, theirs)


def _rows(ndjson: str) -> list[dict]:
    """The rows, sorted by their text with floats to 6 digits (so that last-bit differences sort alike)."""
    rows = [json.loads(line) for line in ndjson.splitlines()]
    key = [json.loads(line, parse_float=lambda text: f"{float(text):.6g}") for line in ndjson.splitlines()]
    return [row for _, row in sorted(zip((json.dumps(k, sort_keys=True) for k in key), rows), key=lambda kr: kr[0])]


def _close(a, b) -> bool:
    """Equal, but floats only to 1e-9 relative (a boundary case of rounding to n digits would differ)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b
