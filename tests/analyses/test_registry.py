"""Every analysis kind decodes from JSON, runs, and explains itself with every placeholder bound."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import msgspec
import pytest

from nexus.analyses import funnel_chain, paths, registry
from nexus.analyses.dates import DateRange
from nexus.errors import InvalidRequest, NotFound
from tests.analyses.example_cohort import EXAMPLE_COHORT, save_example_cohort
from tests.conftest import DEMO_END

BODIES = {
    "trends": {"series": [{"event": "purchase", "metric": "sum", "property": "revenue"}], "interval": "week",
               "date_range": {"date_from": "-14d"}, "breakdown": {"key": "plan"}, "compare": True},
    "funnel": {"steps": [{"event": "page_view"}, {"event": "signup", "where": {"filters": [
        {"key": "plan", "op": "in", "value": ["pro", "team"]}]}}], "window": 3, "mode": "ordered",
        "breakdown": {"key": "country", "source": "column", "limit": 3}},
    "funnel_persons": {"funnel": {"steps": [{"event": "page_view"}, {"event": "signup"}]}, "step": 1, "limit": 5},
    "retention": {"start": {"event": "signup"}, "returning": {}, "period": "week", "periods": 3,
                  "date_range": {"date_from": "-4w"}, "breakdown": {"key": "plan", "source": "person", "limit": 2}},
    "sessions": {"breakdown": {"key": "utm_source", "source": "column"}, "gap_minutes": 20,
                 "where": {"match": "any", "filters": [{"key": "country", "source": "column", "value": "US"},
                                                       {"key": "plan", "source": "person", "op": "is_set"}]}},
    "stickiness": {"event": "page_view", "period": "week", "date_range": {"date_from": "this_month"}},
    "lifecycle": {"event": "page_view", "date_range": {"date_from": "-7d"}, "timezone": "Asia/Tokyo",
                  "breakdown": {"key": "device_type", "source": "column", "limit": 1}},
    "overview": {"date_range": {"date_from": "-14d"}, "interval": "week", "top": 3,
                 "where": {"filters": [{"key": "device_type", "source": "column", "op": "neq", "value": "bot"}]}},
    "live": {"minutes": 60, "latest": 5, "where": {"filters": [{"key": "country", "source": "column", "value": "US"}]}},
    "events": {"event": "page_view", "limit": 10, "date_range": {"date_from": "-3d"},
               "where": {"filters": [{"key": "plan", "source": "person", "op": "is_set"}]}},
    "persons": {"q": "example.com", "sort": "revenue", "limit": 20,
                "where": {"filters": [{"key": "plan", "source": "person", "op": "is_set"}]}},
    # The demo's person of user-11-1 (its person ids come from the generator's seeded random numbers)
    "person": {"person": "db5b5fab-8f4d-4e27-9da1-494c73cf256d", "limit": 10, "gap_minutes": 20},
    "retention_persons": {"retention": {"start": {"event": "signup"}, "returning": {}, "period": "week",
                                        "periods": 3, "date_range": {"date_from": "-4w"}},
                          "cohort": "2026-10-12", "k": 1, "limit": 5},
    "paths": {"start": "/", "step_type": "pages", "within": "window", "window": 2, "window_unit": "hour", "steps": 4,
              "nodes_per_step": 3, "cleaning": [{"pattern": "^/blog/.*", "replacement": "/blog/*"}],
              "exclude": ["/about"], "date_range": {"date_from": "-14d"},
              "where": {"filters": [{"key": "country", "source": "column", "value": "US"}]}},
    "paths_persons": {"paths": {"end": "purchase", "date_range": {"date_from": "-14d"}}, "step": 1,
                      "node": "add_to_cart", "limit": 5},
    "goals": {"goals": [{"event": "purchase", "value_property": "revenue", "currency": "USD"}, {"path": "/blog/**"}],
              "date_range": {"date_from": "-14d"}, "breakdown": {"key": "country", "source": "column", "limit": 3},
              "where": {"filters": [{"key": "device_type", "source": "column", "op": "neq", "value": "bot"}]}},
    "cohort_size": {"cohort": EXAMPLE_COHORT, "interval": "week", "date_range": {"date_from": "-4w"}},
    "experiment": {"experiment": {
        "key": "new-checkout", "variants": [{"key": "control"}, {"key": "treatment"}],
        "start": "2026-10-11T00:00:00Z", "end": "2026-10-31T00:00:00Z", "primary_metric": {"event": "purchase"},
        "secondary_metrics": [{"event": "purchase", "measure": "sum", "value_property": "revenue"}],
        "targeting": {"filters": [{"key": "device_type", "source": "column", "op": "neq", "value": "bot"}]}}},
    "attribution": {"conversion": {"event": "purchase", "value_property": "revenue"}, "by": "campaign",
                    "models": ["first_touch", "time_decay", "markov", "shapley"], "lookback_days": 14,
                    "half_life_days": 3, "limit": 5, "date_range": {"date_from": "-14d"}},
    "conversion_paths": {"conversion": {"event": "signup"}, "by": "source", "limit": 5,
                         "date_range": {"date_from": "-14d"}},
    "predictions": {"bins": 5, "top": 10},
}


@pytest.fixture(scope="module", autouse=True)
def example_cohort(client, demo) -> None:
    save_example_cohort(client, demo)


def test_every_kind_has_a_body_here():
    assert set(BODIES) == set(registry.ANALYSES)


@pytest.mark.parametrize("kind", BODIES)
def test_each_kind_decodes_runs_encodes_and_explains(client, demo, kind):
    request = registry.decode(kind, json.dumps(BODIES[kind]).encode())
    assert isinstance(request, registry.module(kind).Request)
    result = registry.run(client, demo, kind, request, now=DEMO_END)
    assert isinstance(result, registry.module(kind).Result)
    assert json.loads(msgspec.json.encode(result))  # the API can encode it as is
    sql, params = registry.explain(client, demo, kind, request, now=DEMO_END)
    assert set(re.findall(r"\{(\w+):", sql)) == set(params)
    # No request value is spliced into the SQL text.
    assert set(re.findall(r"'[^']*'", sql)) <= {"'UTC'", "''", "'page'", "'screen'", "'track'", "'new'", "'returning'",
                                                 "'resurrecting'", "'dormant'", "'day'", "'month'",
                                                 f"'{funnel_chain.TOO_MANY_EVENTS}'", f"'{paths.TOO_MANY_NAMES}'"}


def test_unknown_kinds_and_malformed_bodies_are_refused():
    with pytest.raises(NotFound):
        registry.module("flows")
    with pytest.raises(InvalidRequest, match="invalid trends request"):
        registry.decode("trends", b'{"series": [], "extra": 1}')
    with pytest.raises(InvalidRequest):
        registry.decode("funnel", {"steps": [{"event": "a"}, {"event": "b"}], "mode": "sideways"})
    with pytest.raises(InvalidRequest):
        registry.decode("trends", {"series": [{"event": "a", "where": {"filters": [{"key": "a b", "value": 1}]}}]})


@pytest.mark.parametrize("kind", BODIES)
def test_every_kind_has_a_table(client, demo, kind):
    from nexus.analyses import tables

    result = registry.run(client, demo, kind, registry.decode(kind, BODIES[kind]), now=DEMO_END)
    table = tables.table(kind, result)
    assert table.num_rows or kind in ("funnel_persons", "predictions")  # the demo project is never scored here
    assert table.column_names == list(tables.TABLES[kind][0]) and len(set(table.column_names)) == table.num_columns


FUNNEL = {"steps": [{"event": "a"}, {"event": "b"}]}


@pytest.mark.parametrize(("kind", "body", "field"), [
    # Refused while decoding: a missing or unknown field, a value a check refuses, an enum
    ("funnel", {}, "steps"),
    ("trends", {"series": [{"event": "x"}], "colour": "red"}, "colour"),
    ("funnel_persons", {"funnel": {}, "step": 1}, "funnel.steps"),
    ("trends", {"series": []}, "series"),
    ("trends", {"series": [{"event": str(i)} for i in range(11)]}, "series"),
    ("trends", {"series": [{"metric": "mode"}]}, "series[0].metric"),
    ("trends", {"series": [{"metric": "sum"}]}, "series[0].property"),
    ("trends", {"series": [{"where": {"filters": [{"key": "n", "op": "gt", "value": 10 ** 400}]}}]},
     "series[0].where.filters[0]"),
    ("funnel", {"steps": [{"event": "a"}]}, "steps"),
    ("funnel", {**FUNNEL, "window": 0}, "window"),
    ("funnel_persons", {"funnel": {**FUNNEL, "window": 400}, "step": 1}, "funnel.window"),
    ("funnel_persons", {"funnel": FUNNEL, "step": 2}, "step"),
    ("funnel_persons", {"funnel": FUNNEL, "step": 1, "limit": 0}, "limit"),
    ("funnel_persons", {"funnel": FUNNEL, "step": 1, "offset": -1}, "offset"),
    ("funnel_persons", {"funnel": FUNNEL, "step": 1, "breakdown_value": "x"}, "breakdown_value"),
    ("retention", {"start": {}, "returning": {}, "periods": 101}, "periods"),
    ("sessions", {"gap_minutes": 0}, "gap_minutes"),
    # Refused when run: the range, the time zone, and what they make too large
    ("trends", {"series": [{}], "date_range": {"date_from": "2026-10-02", "date_to": "2026-10-01"}}, "date_range"),
    ("trends", {"series": [{}], "date_range": {"date_from": "someday"}}, "date_range.date_from"),
    ("trends", {"series": [{}], "date_range": {"date_from": "-0d"}}, "date_range.date_from"),
    ("trends", {"series": [{}], "date_range": {"date_from": "-9999y"}}, "date_range.date_from"),
    ("trends", {"series": [{}], "date_range": {"date_from": "-7d", "date_to": "later"}}, "date_range.date_to"),
    ("trends", {"series": [{}], "date_range": {"date_from": "1960-01-01"}}, "date_range"),
    ("trends", {"series": [{}], "timezone": "Mars/Olympus"}, "timezone"),
    ("trends", {"series": [{}], "interval": "minute", "date_range": {"date_from": "-30d"}}, "interval"),
    ("trends", {"series": [{"metric": "median", "property": "n"}], "source": "rollup"}, "source"),
    ("stickiness", {"event": "x", "date_range": {"date_from": "1970-01-01", "date_to": "2199-01-01"}}, "period"),
    ("funnel", {**FUNNEL, "date_range": {"date_from": "1990-01-01", "date_to": "2026-01-01"}}, "date_range"),
    ("funnel_persons", {"funnel": {**FUNNEL, "date_range": {"date_from": "2026-10-02", "date_to": "2026-10-01"}},
                        "step": 1},
     "funnel.date_range"),
    ("funnel_persons", {"funnel": {**FUNNEL, "timezone": "Nowhere"}, "step": 1}, "funnel.timezone"),
])
def test_every_refusal_names_its_field(client, demo, kind, body, field):
    with pytest.raises(InvalidRequest) as refused:
        registry.run(client, demo, kind, registry.decode(kind, body), now=DEMO_END)
    assert refused.value.field == field, str(refused.value)


@pytest.mark.parametrize(("kind", "body", "field", "choices"), [
    ("trends", {"series": [{}], "interval": "fortnight"}, "interval", "minute, hour, day, week, month"),
    ("funnel", {**FUNNEL, "mode": 3}, "mode", "ordered, strict, unordered"),
    ("funnel_persons", {"funnel": {**FUNNEL, "window_unit": "year"}, "step": 1}, "funnel.window_unit",
     "second, minute, hour, day, week"),
    ("retention", {"start": {"where": {"groups": [{"match": "most"}]}}, "returning": {}}, "start.where.groups[0].match",
     "all, any"),
    ("sessions", {"breakdown": {"key": "country", "source": "columns"}}, "breakdown.source", "event, person, column, cohort"),
])
def test_an_enum_refusal_lists_the_valid_values(kind, body, field, choices):
    with pytest.raises(InvalidRequest, match=f"use one of {choices}$") as refused:
        registry.decode(kind, body)
    assert refused.value.field == field


@pytest.mark.parametrize("kind", BODIES)
def test_without_a_date_range_the_last_7_days_are_asked_and_the_result_says_so(client, demo, kind):
    # Given a request of each kind without a range, in the demo project's zone (UTC), on 2026-10-31 at noon
    if kind == "live":
        pytest.skip("live has no date range: it reads the minutes ending now")
    if kind in ("persons", "person"):
        pytest.skip("persons and profiles have no date range: they read all time")
    if kind == "experiment":
        pytest.skip("an experiment has no date range: it reads from its start to its end or now")
    if kind == "predictions":
        pytest.skip("predictions have no date range: they read the latest scoring run")
    body = json.loads(json.dumps(BODIES[kind]))
    target = body["funnel"] if kind == "funnel_persons" else body["retention"] if kind == "retention_persons" \
        else body["paths"] if kind == "paths_persons" else body
    target.pop("date_range", None)
    target.pop("timezone", None)
    result = registry.run(client, demo, kind, registry.decode(kind, body), now=datetime(2026, 10, 31, 12, tzinfo=UTC))
    # Then it asked for today and the 6 days before, and says so: as asked and as resolved
    assert result.date_range == DateRange("-7d", None)
    assert (result.timezone, result.date_from, result.date_to) == ("UTC", datetime(2026, 10, 25, tzinfo=UTC),
                                                                   datetime(2026, 11, 1, tzinfo=UTC))
    assert json.loads(msgspec.json.encode(result))["date_range"] == {"date_from": "-7d", "date_to": None}
