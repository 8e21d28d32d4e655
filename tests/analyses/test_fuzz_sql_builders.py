"""Property-based tests of the SQL builders every analysis shares — filters, breakdowns, date ranges and time zones
(hypothesis), and the goal path patterns and path-cleaning rules: whatever a request puts in them, it is refused with InvalidRequest when decoded or built, or its SQL
runs on the engine (chDB) without error; and no request value reaches the SQL text — every placeholder is bound,
the only quoted literals are the builders' own constants, and every quoted name is a property name the strict
pattern admits. Requests go through the registry as the API sends them (trends from events or rollups, funnels),
over a small project whose events and traits hold text, numbers, booleans, nested objects and arrays. Bounded
(max_examples, no deadline: the machine is shared); no example database is written."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.analyses import funnel_chain, paths, registry
from nexus.analyses.filters import Operator
from nexus.analyses.properties import PROPERTY_NAME
from nexus.errors import InvalidRequest
from nexus.event_columns import FILTERABLE
from tests.analyses.journeys import insert_events, link, new_project, person

FUZZ = settings(max_examples=50, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
# The quoted literals the builders write themselves (tests/analyses/test_registry.py holds every kind to them).
CONSTANTS = {"'UTC'", "''", "'page'", "'screen'", "'track'", "'new'", "'returning'", "'resurrecting'", "'dormant'",
             "'day'", "'month'", f"'{funnel_chain.TOO_MANY_EVENTS}'", f"'{paths.TOO_MANY_NAMES}'"}

HOSTILE = st.sampled_from(["'", "''", '"', "`", "\\", "\\'", "{p1:String}", "{project_id:UInt32}", "}", "{", "\x00",
                           "😀", "a.b", "$set", "a b", "a`b", "x' OR 1=1 --", "1e309", "-0", "NaN", "inf", "\u202e",
                           "(?i)pro", "[", "*", "a" * 101, "properties.plan", "e.event", "null", "true"])
TEXT = st.one_of(st.text(max_size=20), HOSTILE)
NUMBER = st.one_of(st.integers(min_value=-(2**80), max_value=2**80), st.floats(allow_nan=False),
                   st.sampled_from([0, -1, 2**63, 10**400, 1e308]))
SCALAR = st.one_of(TEXT, NUMBER, st.booleans(), st.none())
KEY = st.one_of(st.sampled_from(["plan", "revenue", "n", "flag", "nested.x", "nested", "tags", "$browser", "missing",
                                 "a-b", "_"]), TEXT)
SOURCE = st.one_of(st.sampled_from(["event", "person", "column"]), TEXT)
COLUMN = st.one_of(st.sampled_from(sorted(FILTERABLE)), TEXT)


def mostly(valid: st.SearchStrategy[Any], anything: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three in four well-formed (hostile text in the values only, so most examples reach the engine), else anything."""
    return st.one_of(valid, valid, valid, anything)


VALID_KEY = st.sampled_from(["plan", "revenue", "n", "flag", "nested.x", "nested", "tags", "$browser", "missing", "a-b"])
WORDS = st.one_of(st.text(max_size=12), HOSTILE)
PATTERN = st.sampled_from(["'", "\\{p1:String\\}", "(?i)pro", ".*", "a|b", "^$", "[']", "\\d+", "\\\\", "`"])


@st.composite
def well_formed_leaf(draw: st.DrawFn) -> dict[str, Any]:
    source = draw(st.sampled_from(["event", "person", "column"]))
    key = draw(st.sampled_from(sorted(FILTERABLE)) if source == "column" else VALID_KEY)
    op = draw(st.sampled_from(Operator.__args__))
    if op in ("is_set", "is_not_set"):
        value = None
    elif op in ("in", "not_in"):
        value = draw(st.one_of(st.lists(WORDS, min_size=1, max_size=4), st.lists(NUMBER, min_size=1, max_size=4)))
    elif op in ("gt", "gte", "lt", "lte"):
        value = draw(NUMBER)
    elif op in ("regex", "not_regex"):
        value = draw(PATTERN)
    else:
        value = draw(st.one_of(WORDS, NUMBER, st.booleans()))
    return {"key": key, "source": source, "op": op, "value": value}


@st.composite
def any_leaf(draw: st.DrawFn) -> dict[str, Any]:
    source = draw(SOURCE)
    return {"key": draw(COLUMN if source == "column" else KEY), "source": source,
            "op": draw(st.one_of(st.sampled_from(Operator.__args__), TEXT)),
            "value": draw(st.one_of(SCALAR, st.lists(SCALAR, max_size=4), st.dictionaries(TEXT, SCALAR, max_size=2)))}


def leaf() -> st.SearchStrategy[dict[str, Any]]:
    return mostly(well_formed_leaf(), any_leaf())


GROUP = st.recursive(
    st.fixed_dictionaries({"filters": st.lists(leaf(), min_size=1, max_size=3)}, optional={"match": st.sampled_from(["all", "any"])}),
    lambda inner: st.fixed_dictionaries({"filters": st.lists(leaf(), max_size=2), "groups": st.lists(inner, max_size=2)},
                                        optional={"match": st.one_of(st.sampled_from(["all", "any"]), TEXT)}),
    max_leaves=6)
BREAKDOWN = mostly(
    st.one_of(st.fixed_dictionaries({"key": VALID_KEY, "source": st.sampled_from(["event", "person"])}),
              st.fixed_dictionaries({"key": st.sampled_from(sorted(FILTERABLE)), "source": st.just("column")})).flatmap(
        lambda b: st.fixed_dictionaries({**{k: st.just(v) for k, v in b.items()},
                                         "limit": st.integers(min_value=1, max_value=100)})),
    st.fixed_dictionaries({"key": KEY}, optional={"source": SOURCE, "limit": st.one_of(
        st.integers(min_value=-5, max_value=120), st.just(2**64), TEXT)}))
DATE = mostly(st.one_of(st.builds(lambda n, unit: f"-{n}{unit}", st.integers(min_value=1, max_value=400),
                                   st.sampled_from("hdwm")),
                         st.sampled_from(["today", "yesterday", "this_week", "last_week", "this_month", "last_month",
                                          "this_year", "2026-03-29T02:30", "2026-10-25T02:30", "2026-10-01"])), st.one_of(
    st.builds(lambda n, unit: f"-{n}{unit}", st.integers(min_value=0, max_value=99999), st.sampled_from("hdwmyx")),
    st.sampled_from(["today", "yesterday", "this_week", "last_week", "this_month", "last_month", "this_year", "-7d",
                     "2026-10-01", "2026-03-29T02:30", "2026-10-25T02:30", "2026-10-01T10:00:00+14:00", "1969-12-31",
                     "2199-12-31", "2026-13-45", "2026-02-30", "0001-01-01", "9999-12-31T23:59", "T10:00"]),
    st.dates().map(str), st.datetimes().map(lambda d: d.isoformat(timespec="minutes")), TEXT))
ZONE = mostly(st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham",
                               "Australia/Lord_Howe", "Asia/Tokyo", "Etc/GMT+12"]), TEXT)
INTERVAL = mostly(st.sampled_from(["hour", "day", "week", "month"]), st.one_of(st.just("minute"), TEXT))


@pytest.fixture(scope="module")
def project(client) -> int:
    """A few events, ids and traits whose properties hold every JSON type a filter may meet."""
    project_id = new_project(client, "Europe/Berlin")
    insert_events(client, project_id, {
        "u1": [("page_view", "2026-10-28T10:00", {"plan": "pro", "n": 3, "flag": True, "nested": {"x": "a'b"}},
                {"path": "/item/123"}),
               ("signup", "2026-10-28T10:05", {"plan": "team", "revenue": "12.5", "tags": ["a", "b"]}),
               ("purchase", "2026-10-30T09:00", {"revenue": 99.99, "n": -1, "$browser": "Firefox"})],
        "u2": [("page_view", "2026-10-31T23:30", {"plan": None, "n": "7", "nested": {"x": 1}}, {"path": "/blog/a'b/"}),
               ("signup", "2026-11-01T00:30", {"plan": "{p1:String}", "revenue": 1e308, "flag": "false"})],
        "anon": [("page_view", "2026-10-29T08:00", {"plan": "pro' OR '1'='1", "a-b": 1}, {"path": "/"}),
                 ("page_view", "2026-10-29T08:01", {}, {"path": "/item/456"})],
    })
    link(client, project_id, {"u1": "00000000-0000-4000-8000-000000000001", "anon": "00000000-0000-4000-8000-000000000001"})
    person(client, project_id, "00000000-0000-4000-8000-000000000001", {"plan": "pro", "n": 2, "nested": {"x": True}})
    return project_id


def answer_or_refusal(client, project_id: int, kind: str, body: dict[str, Any]) -> None:
    """Decode, explain and run a request: InvalidRequest is the only failure allowed, and the SQL binds every value."""
    try:
        request = registry.decode(kind, body)
        sql, params = registry.explain(client, project_id, kind, request, now=NOW)
        registry.run(client, project_id, kind, request, now=NOW)
    except InvalidRequest:
        return
    # Every placeholder is bound (a bound value the SQL does not use is harmless: minute buckets bind a zone they
    # do not need).
    assert set(re.findall(r"\{(\w+):", sql)) <= set(params)
    assert set(re.findall(r"'(?:[^'\\]|\\.)*'", sql)) <= CONSTANTS
    for name in re.findall(r"`([^`]*)`", sql):
        assert PROPERTY_NAME.fullmatch(name), name


@FUZZ
@given(where=GROUP, source=st.sampled_from(["auto", "events", "rollup"]),
       metric=mostly(st.sampled_from(["events", "persons", "distinct_ids", "sum", "avg", "p90"]), TEXT),
       prop=mostly(VALID_KEY, KEY))
def test_any_filter_group_is_refused_or_runs_with_every_value_bound(client, project, where, source, metric, prop):
    series = {"event": "signup", "metric": metric, "where": where}
    if metric in ("sum", "avg", "p90"):
        series["property"] = prop
    answer_or_refusal(client, project, "trends", {"series": [series], "source": source, "where": where,
                                                  "date_range": {"date_from": "-14d"}})
    answer_or_refusal(client, project, "funnel", {"steps": [{"event": "page_view", "where": where}, {"event": "signup"}],
                                                  "date_range": {"date_from": "-14d"}})


@FUZZ
@given(breakdown=BREAKDOWN, source=st.sampled_from(["auto", "events", "rollup"]))
def test_any_breakdown_is_refused_or_runs_with_every_value_bound(client, project, breakdown, source):
    answer_or_refusal(client, project, "trends", {"series": [{"event": "page_view"}], "breakdown": breakdown,
                                                  "source": source, "date_range": {"date_from": "-14d"}})
    answer_or_refusal(client, project, "funnel", {"steps": [{"event": "page_view"}, {"event": "signup"}],
                                                  "breakdown": breakdown, "date_range": {"date_from": "-14d"}})


@FUZZ
@given(date_from=DATE, date_to=st.one_of(st.none(), DATE), zone=st.one_of(st.none(), ZONE),
       interval=INTERVAL, compare=st.booleans())
def test_any_date_range_zone_and_interval_is_refused_or_runs(client, project, date_from, date_to, zone, interval,
                                                             compare):
    body: dict[str, Any] = {"series": [{"event": "page_view"}], "interval": interval, "compare": compare,
                            "date_range": {"date_from": date_from, "date_to": date_to}}
    if zone is not None:
        body["timezone"] = zone
    answer_or_refusal(client, project, "trends", body)
    answer_or_refusal(client, project, "retention", {"start": {"event": "page_view"}, "returning": {},
                                                     "date_range": body["date_range"], **({"timezone": zone} if zone else {})})


PATH_TEXT = st.one_of(st.text(alphabet=st.characters(codec="utf-8"), max_size=15).map(lambda t: "/" + t), HOSTILE,
                      st.sampled_from(["/blog/**", "/item/*", "/*/x", "/", "/a?b", "/a#b", "/***", "/%s", "/\\d+"]))
RE2_PATTERN = st.one_of(PATTERN, st.sampled_from(["^/item/(\\d+)$", "(a)(b)", "(", "\\", "$", "(?P<n>x)"]), TEXT)


@settings(FUZZ, max_examples=30)
@given(goal=PATH_TEXT, cleaning=st.lists(st.fixed_dictionaries(
    {"pattern": RE2_PATTERN}, optional={"replacement": st.one_of(st.sampled_from(["\\1", "\\2", ":id", "'", ""]),
                                                                  TEXT)}), max_size=3),
       exclude=st.lists(TEXT, max_size=3))
def test_any_goal_path_pattern_and_path_cleaning_rule_is_refused_or_runs(client, project, goal, cleaning, exclude):
    answer_or_refusal(client, project, "goals", {"goals": [{"path": goal}], "date_range": {"date_from": "-14d"}})
    answer_or_refusal(client, project, "paths", {"start": "/", "step_type": "pages", "cleaning": cleaning,
                                                 "exclude": exclude, "date_range": {"date_from": "-14d"}})
