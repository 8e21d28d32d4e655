"""Cohorts: membership of each condition against pandas on demo data and on hand-written journeys, the
cohort filter and breakdown in trends, funnels, retention and sessions against references, cohort_size,
static cohorts, and another project's cohort refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pandas as pd
import pytest

from nexus.analyses import cohort_size, funnels, goals, retention, sessions, trends
from nexus.analyses.breakdown import OTHER, Breakdown
from nexus.analyses.cohort_definition import Definition
from nexus.analyses.cohort_membership import members
from nexus.analyses.cohort_store import Cohorts
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import Filter, FilterGroup
from nexus.analyses.funnels import FunnelRequest, FunnelStep
from nexus.analyses.retention import RetentionEvent, RetentionRequest
from nexus.analyses.sessions import SessionsRequest
from nexus.analyses.sql import Params, fetch
from nexus.analyses.trends import Series, TrendsRequest
from nexus.errors import InvalidRequest, NotFound
from nexus.meta import cohorts
from nexus.meta.cohorts import CohortInput, FromAnalysis
from tests.analyses.journeys import at, insert_events, link, new_project, person
from tests.conftest import DEMO_END

NOW = at("2026-10-31T12:00")
P1 = "00000000-0000-4000-8000-000000000001"


def define(client, project_id, conditions, match="all", name=None):
    """A saved dynamic cohort of `conditions` (dicts, as the API takes them)."""
    definition = msgspec.convert({"conditions": conditions, "match": match}, Definition)
    data = CohortInput(name or f"c{len(cohorts.list_all(client, project_id))}", definition)
    return cohorts.create(client, project_id, data, "test")


def member_names(client, project_id, cohort_id, now=NOW) -> set[str]:
    """The members as person ids (or distinct ids of persons never identified): keys matched back to names."""
    stored = cohorts.stored(client, project_id, cohort_id)
    params = Params(project_id, Cohorts({cohort_id: stored}, "UTC", now))
    # Names resolved here by distinct id (not through persons.py's hashed join), then hashed as keys are.
    rows = fetch(client, params.query(
        f"SELECT DISTINCT name FROM (SELECT if(i.person_id = '', e.distinct_id, i.person_id) AS name,"
        f" cityHash64(name) AS key FROM events AS e LEFT ANY JOIN (SELECT distinct_id, toString(person_id) AS person_id"
        f" FROM identities FINAL WHERE project_id = {{project_id:UInt32}}) AS i ON i.distinct_id = e.distinct_id"
        f" WHERE e.project_id = {{project_id:UInt32}}) WHERE key IN ({members(stored, params)})"))
    return {name for (name,) in rows}


def test_performed_counts_within_the_window_edges_and_merged_ids(client):
    # Given u1 identified mid-way as p1 (anon a1's events count for p1), repeated events, and events exactly
    # at the window's edges: [now - 7d, now) includes its start and excludes now.
    project = new_project(client)
    start = NOW - timedelta(days=7)
    insert_events(client, project, {
        "a1": [("buy", "2026-10-25T10:00")],
        "u1": [("buy", "2026-10-30T10:00")],
        "u2": [("buy", start.isoformat()), ("buy", "2026-10-26T00:00")],
        "u3": [("buy", (start - timedelta(milliseconds=1)).isoformat()), ("buy", "2026-10-30T00:00")],
        "u4": [("buy", NOW.isoformat()), ("buy", "2026-10-30T00:00"), ("view", "2026-10-30T00:00")],
        "u5": [("view", "2026-10-30T00:00")],
    })
    link(client, project, {"a1": P1, "u1": P1})
    twice = define(client, project, [{"type": "performed", "event": "buy", "count": 2, "days": 7}])
    assert member_names(client, project, twice.cohort_id) == {P1, "u2"}
    at_most_one = define(client, project, [{"type": "performed", "event": "buy", "operator": "at_most", "count": 1,
                                            "days": 7}])
    assert member_names(client, project, at_most_one.cohort_id) == {"u3", "u4", "u5"}
    exactly_one = define(client, project, [{"type": "performed", "event": "buy", "operator": "exactly", "count": 1,
                                            "days": 7}])
    assert member_names(client, project, exactly_one.cohort_id) == {"u3", "u4"}


def test_performed_but_not_not_since_first_seen_and_traits_on_journeys(client):
    # Given: p1 (a1 then u1) bought 10 days ago and viewed yesterday; u2 bought and refunded this week;
    # u3 first seen 2 days ago; u4 bought 8 days ago and again 3 days ago; traits for p1 and u2.
    project = new_project(client)
    insert_events(client, project, {
        "a1": [("buy", "2026-10-21T12:00")],
        "u1": [("view", "2026-10-30T12:00")],
        "u2": [("buy", "2026-10-28T09:00"), ("refund", "2026-10-29T09:00")],
        "u3": [("view", "2026-10-29T12:00")],
        "u4": [("buy", "2026-10-23T12:00"), ("buy", "2026-10-28T12:00")],
    })
    link(client, project, {"a1": P1, "u1": P1})
    person(client, project, P1, {"plan": "pro"})
    person(client, project, "00000000-0000-4000-8000-000000000002", {"plan": "free"})
    link(client, project, {"u2": "00000000-0000-4000-8000-000000000002"})
    p2 = "00000000-0000-4000-8000-000000000002"

    def names(conditions, match="all"):
        return member_names(client, project, define(client, project, conditions, match).cohort_id)

    # "has not done buy since 7 days": bought before the last 7 days, not in them (the anonymous id counts).
    assert names([{"type": "not_since", "event": "buy", "days": 7}]) == {P1}
    assert names([{"type": "performed_but_not", "event": "buy", "not_event": "refund", "days": 7}]) == {"u4"}
    assert names([{"type": "first_seen", "date_range": {"date_from": "2026-10-29", "date_to": "2026-10-31"}}]) \
        == {"u3"}
    assert names([{"type": "person", "where": {"filters": [{"key": "plan", "source": "person", "value": "pro"}]}}]) \
        == {P1}
    # Not pro: persons without traits hold a negative trait condition too, as filters read a missing value.
    assert names([{"type": "person", "where": {"filters": [
        {"key": "plan", "source": "person", "op": "neq", "value": "pro"}]}}]) == {p2, "u3", "u4"}
    # Nested: (pro OR first seen this week) AND viewed in the last 3 days.
    assert names([{"type": "group", "match": "any", "conditions": [
        {"type": "person", "where": {"filters": [{"key": "plan", "source": "person", "value": "pro"}]}},
        {"type": "first_seen", "date_range": {"date_from": "2026-10-26", "date_to": "2026-10-31"}}]},
        {"type": "performed", "event": "view", "days": 3}]) == {P1, "u3"}
    # A funnel buy → refund within a day: u2 reached step 1; step 0 but not 1: p1 and u4.
    funnel = {"steps": [{"event": "buy"}, {"event": "refund"}], "window": 1, "date_range": {"date_from": "-30d"}}
    assert names([{"type": "funnel", "funnel": funnel, "step": 1}]) == {p2}
    assert names([{"type": "funnel", "funnel": funnel, "step": 0}]) == {P1, "u4"}


def test_identity_merges_after_definition_apply_when_used(client):
    # Given a cohort of persons with 2+ buys, and two ids with one buy each, linked only later
    project = new_project(client)
    insert_events(client, project, {"x": [("buy", "2026-10-30T10:00")], "y": [("buy", "2026-10-30T11:00")]})
    cohort = define(client, project, [{"type": "performed", "event": "buy", "count": 2, "days": 7}])
    assert member_names(client, project, cohort.cohort_id) == set()
    link(client, project, {"x": P1, "y": P1})
    assert member_names(client, project, cohort.cohort_id) == {P1}


# ---- demo data against pandas ----

def reference_members(frame: pd.DataFrame, traits: pd.Series, item: dict, now: pd.Timestamp) -> set[str]:
    """The members of a definition (as the API takes it) by its documented meaning, from the frame."""
    everyone = set(frame["person"])
    kind = item.get("type", "group")
    if kind == "group":
        found = [reference_members(frame, traits, c, now) for c in item["conditions"]]
        return set.intersection(*found) if item.get("match", "all") == "all" else set.union(*found)
    since = now - pd.Timedelta(days=item.get("days", 30))
    recent = frame[(frame["ts"] >= since) & (frame["ts"] < now)]
    if kind == "performed":
        rows = recent if item.get("event") is None else recent[recent["event"] == item["event"]]
        if "plan" in item.get("where", {}).get("filters", [{}])[0].get("key", ""):
            rows = rows[rows["plan"] == item["where"]["filters"][0]["value"]]
        counts = rows.groupby("person").size().reindex(list(everyone), fill_value=0)
        count = item.get("count", 1)
        compare = {"at_least": counts >= count, "at_most": counts <= count,
                   "exactly": counts == count}[item.get("operator", "at_least")]
        return set(counts[compare].index)
    if kind == "performed_but_not":
        return set(recent.loc[recent["event"] == item["event"], "person"]) - set(
            recent.loc[recent["event"] == item["not_event"], "person"])
    if kind == "not_since":
        of_event = frame[frame["event"] == item["event"]]
        return set(of_event.loc[of_event["ts"] < since, "person"]) - set(recent.loc[recent["event"] == item["event"],
                                                                                      "person"])
    if kind == "first_seen":
        first = frame.groupby("person")["ts"].min()
        start, end = pd.Timestamp(item["start"]), pd.Timestamp(item["end"])
        return set(first[(first >= start) & (first < end)].index)
    if kind == "person":
        leaf = item["where"]["filters"][0]
        return {p for p in everyone if traits.get(p, "") == leaf["value"]}
    raise AssertionError(kind)


DEMO_CONDITIONS = [
    {"type": "performed", "event": "purchase", "count": 2, "days": 14},
    {"type": "performed", "event": "page_view", "operator": "at_most", "count": 3, "days": 7},
    {"type": "performed", "event": "add_to_cart", "operator": "exactly", "count": 1, "days": 10,
     "where": {"filters": [{"key": "plan", "value": "pro"}]}},
    {"type": "performed_but_not", "event": "add_to_cart", "not_event": "purchase", "days": 14},
    {"type": "not_since", "event": "purchase", "days": 10},
    {"type": "person", "where": {"filters": [{"key": "plan", "source": "person", "value": "team"}]}},
    {"type": "group", "match": "any", "conditions": [
        {"type": "performed", "event": "signup", "days": 5},
        {"type": "group", "conditions": [{"type": "performed", "event": "purchase", "days": 30},
                                         {"type": "not_since", "event": "page_view", "days": 3}]}]},
]


@pytest.fixture(scope="module")
def traits(client, demo, frame) -> pd.Series:
    from tests.analyses.reference import persons_frame
    plans = persons_frame(client, demo)["properties"].map(lambda p: "" if p.get("plan") is None else str(p["plan"]))
    return plans


@pytest.mark.parametrize("condition", DEMO_CONDITIONS, ids=lambda c: c["type"])
def test_membership_matches_pandas_on_demo_data(client, demo, frame, traits, condition):
    cohort = define(client, demo, [condition], name=f"demo {msgspec.json.encode(condition).decode()[:150]}")
    expected = reference_members(frame, traits, condition, pd.Timestamp(DEMO_END))
    assert member_names(client, demo, cohort.cohort_id, DEMO_END) == expected and expected


def test_first_seen_and_funnel_step_match_pandas_on_demo_data(client, demo, frame):
    from tests.analyses import funnel_reference as ref
    first_seen = define(client, demo, [{"type": "first_seen", "date_range": {
        "date_from": "2026-10-10", "date_to": "2026-10-20"}}], name="demo first seen")
    expected = reference_members(frame, pd.Series(dtype=str), {"type": "first_seen", "start": "2026-10-10T00:00Z",
                                                                "end": "2026-10-21T00:00Z"}, pd.Timestamp(DEMO_END))
    assert member_names(client, demo, first_seen.cohort_id, DEMO_END) == expected and expected
    steps = ["page_view", "signup", "purchase"]
    funnel = {"steps": [{"event": s} for s in steps], "window": 3,
              "date_range": {"date_from": "2026-10-10", "date_to": "2026-10-24"}, "timezone": "UTC"}
    dropped = define(client, demo, [{"type": "funnel", "funnel": funnel, "step": 1}], name="demo signed up, no buy")
    start, end = pd.Timestamp("2026-10-10T00:00Z"), pd.Timestamp("2026-10-25T00:00Z")
    people = ref.person_events(frame, steps, start, end, 3 * 86_400_000, strict=False)
    depths = {p: ref.machine(evs, 3, 3 * 86_400_000, strict=False)[0] for p, evs in people.items()}
    expected = {p for p, depth in depths.items() if depth == 2}
    assert member_names(client, demo, dropped.cohort_id, DEMO_END) == expected and expected


# ---- the cohort filter and breakdown in analyses ----

BUYERS = [{"type": "performed", "event": "purchase", "days": 30}]
PRO = [{"type": "person", "where": {"filters": [{"key": "plan", "source": "person", "value": "pro"}]}}]


@pytest.fixture(scope="module")
def demo_cohorts(client, demo, frame, traits):
    """Two overlapping cohorts of the demo project and their members by the pandas reference."""
    buyers = define(client, demo, BUYERS, name="demo buyers")
    pro = define(client, demo, PRO, name="demo pro")
    now = pd.Timestamp(DEMO_END)
    return {"buyers": (buyers, reference_members(frame, traits, {"type": "group", "conditions": BUYERS}, now)),
            "pro": (pro, reference_members(frame, traits, {"type": "group", "conditions": PRO}, now))}


def in_cohort(cohort, op="in"):
    return FilterGroup([Filter(cohort.cohort_id, op, source="cohort")])


def test_trends_filtered_and_broken_down_by_cohorts_match_pandas(client, demo, frame, demo_cohorts):
    (buyers, buyer_ids), (pro, pro_ids) = demo_cohorts["buyers"], demo_cohorts["pro"]
    request = {"series": [Series("page_view"), Series("page_view", "persons_exact")], "date_range": DateRange("-14d"),
                   "timezone": "UTC"}
    inside = trends.run(client, demo, TrendsRequest(**request, where=in_cohort(buyers)), now=DEMO_END)
    outside = trends.run(client, demo, TrendsRequest(**request, where=in_cohort(buyers, "not_in")), now=DEMO_END)
    views = frame[(frame["event"] == "page_view") & (frame["ts"] >= pd.Timestamp(inside.date_from))
                  & (frame["ts"] < pd.Timestamp(inside.date_to))]
    for result, chosen in ((inside, views[views["person"].isin(buyer_ids)]),
                           (outside, views[~views["person"].isin(buyer_ids)])):
        days = chosen["ts"].dt.floor("D")
        assert result.lines[0].values == [float((days == pd.Timestamp(b)).sum()) for b in result.buckets]
        assert result.lines[1].total == chosen["person"].nunique() > 0
    # By cohorts: each person's events in every cohort they are in, and in OTHER when in none.
    split = trends.run(client, demo, TrendsRequest(**request, breakdown=Breakdown(
        source="cohort", cohorts=[buyers.cohort_id, pro.cohort_id])), now=DEMO_END)
    totals = {(line.series, line.breakdown): line.total for line in split.lines}
    for name, members_ in (("demo buyers", buyer_ids), ("demo pro", pro_ids),
                           (OTHER, set(views["person"]) - buyer_ids - pro_ids)):
        assert totals[(0, name)] == views["person"].isin(members_).sum() > 0
        assert totals[(1, name)] == views.loc[views["person"].isin(members_), "person"].nunique()


def test_funnel_filtered_and_broken_down_by_cohorts_match_the_reference(client, demo, frame, demo_cohorts):
    from tests.analyses import funnel_reference as ref
    (buyers, buyer_ids), (pro, pro_ids) = demo_cohorts["buyers"], demo_cohorts["pro"]
    steps = ["page_view", "signup", "add_to_cart"]
    request = {"steps": [FunnelStep(s) for s in steps], "date_range": DateRange("2026-10-10", "2026-10-24"),
                   "timezone": "UTC", "window": 2}
    start, end, window = pd.Timestamp("2026-10-10T00:00Z"), pd.Timestamp("2026-10-25T00:00Z"), 2 * 86_400_000
    depths = {p: ref.machine(evs, 3, window, strict=False)[0]
              for p, evs in ref.person_events(frame, steps, start, end, window, strict=False).items()}

    def expected(persons_):
        return [sum(1 for p, d in depths.items() if d > k and p in persons_) for k in range(3)]

    pro_funnel = funnels.run(client, demo, FunnelRequest(**request, where=in_cohort(pro)), now=DEMO_END)
    assert [s.persons for s in pro_funnel.groups[0].steps] == expected(pro_ids)
    not_pro = funnels.run(client, demo, FunnelRequest(**request, where=in_cohort(pro, "not_in")), now=DEMO_END)
    assert [s.persons for s in not_pro.groups[0].steps] == expected(set(depths) - pro_ids)
    split = funnels.run(client, demo, FunnelRequest(**request, breakdown=Breakdown(
        source="cohort", cohorts=[buyers.cohort_id, pro.cohort_id])), now=DEMO_END)
    groups = {g.breakdown: [s.persons for s in g.steps] for g in split.groups}
    # Everyone counted once (a person in both cohorts too), each cohort its members, OTHER the rest.
    assert groups[None] == expected(set(depths))
    assert groups["demo buyers"] == expected(buyer_ids) and groups["demo pro"] == expected(pro_ids)
    assert groups[OTHER] == expected(set(depths) - buyer_ids - pro_ids)
    assert len(buyer_ids & pro_ids & set(depths)) > 0  # the overlap the counting rule is about


def test_retention_filtered_and_broken_down_by_cohorts_match_pandas(client, demo, frame, demo_cohorts):
    from tests.analyses.test_retention import reference
    (buyers, buyer_ids), (pro, pro_ids) = demo_cohorts["buyers"], demo_cohorts["pro"]
    request = {"start": RetentionEvent("signup"), "returning": RetentionEvent(), "period": "day", "periods": 7,
                   "date_range": DateRange("-21d"), "timezone": "UTC"}
    starts, returns = (lambda f: f["event"] == "signup"), (lambda f: f["event"].notna())
    filtered = retention.run(client, demo, RetentionRequest(**request, where=in_cohort(pro)), now=DEMO_END)
    sizes, cells = reference(frame[frame["person"].isin(pro_ids)], filtered, starts, returns, "day", 7, "first_time")
    assert {c.period: c.persons for c in filtered.cohorts if c.persons} == sizes
    assert {(c.period, k): n for c in filtered.cohorts for k, n in enumerate(c.counts) if n} == cells
    split = retention.run(client, demo, RetentionRequest(**request, breakdown=Breakdown(
        source="cohort", cohorts=[buyers.cohort_id, pro.cohort_id])), now=DEMO_END)
    whole = retention.run(client, demo, RetentionRequest(**request), now=DEMO_END)
    assert split.cohorts == whole.cohorts  # everyone once, whatever their cohorts
    by_name = {b.breakdown: b for b in split.breakdowns}
    assert by_name["demo pro"].cohorts == filtered.cohorts
    sizes, _ = reference(frame[frame["person"].isin(buyer_ids)], split, starts, returns, "day", 7, "first_time")
    assert {c.period: c.persons for c in by_name["demo buyers"].cohorts if c.persons} == sizes


def test_sessions_filtered_and_broken_down_by_cohorts_match_pandas(client, demo, frame, demo_cohorts):
    from tests.analyses.test_sessions import reference_sessions
    (buyers, buyer_ids), (pro, pro_ids) = demo_cohorts["buyers"], demo_cohorts["pro"]
    request = {"date_range": DateRange("-7d"), "timezone": "UTC"}
    result = sessions.run(client, demo, SessionsRequest(**request, where=in_cohort(buyers)), now=DEMO_END)
    span = pd.Timestamp(result.date_from), pd.Timestamp(result.date_to)
    assert result.lines[0].total["sessions"] == len(reference_sessions(frame[frame["person"].isin(buyer_ids)], *span))
    split = sessions.run(client, demo, SessionsRequest(**request, breakdown=Breakdown(
        source="cohort", cohorts=[buyers.cohort_id, pro.cohort_id])), now=DEMO_END)
    totals = {line.breakdown: line.total["sessions"] for line in split.lines}
    assert totals["demo pro"] == len(reference_sessions(frame[frame["person"].isin(pro_ids)], *span)) > 0
    assert totals["demo buyers"] == result.lines[0].total["sessions"]


def test_goals_broken_down_by_cohorts_are_each_cohort_s_goals_by_pandas(client, demo, frame, demo_cohorts):
    """Each cohort's lines are the goals of its members alone (events, conversions, sessions), computed by the
    goals' pandas reference on their rows; OTHER's are those of persons in neither."""
    from tests.analyses.test_goals import DEMO_GOALS, RANGE, assert_matches, reference
    (buyers, buyer_ids), (pro, pro_ids) = demo_cohorts["buyers"], demo_cohorts["pro"]
    split = goals.run(client, demo, msgspec.convert(
        {"goals": DEMO_GOALS, "date_range": RANGE, "timezone": "UTC",
         "breakdown": {"source": "cohort", "cohorts": [buyers.cohort_id, pro.cohort_id]}}, goals.GoalsRequest),
        now=DEMO_END)
    valued = [g.get("value_property") is not None for g in DEMO_GOALS]
    expected = {}
    for label, members_ in (("demo buyers", buyer_ids), ("demo pro", pro_ids),
                            (OTHER, set(frame["person"]) - buyer_ids - pro_ids)):
        alone = reference(frame[frame["person"].isin(members_)], "2026-10-18", "2026-11-01", valued)
        expected.update({(goal, label): numbers for (goal, _), numbers in alone.items()})
    assert {line.breakdown for line in split.lines} == {"demo buyers", "demo pro", OTHER}
    assert_matches(split, expected)


def test_cohort_size_over_time_equals_membership_at_each_day(client):
    project = new_project(client)
    insert_events(client, project, {"u1": [("buy", "2026-10-27T10:00")], "u2": [("buy", "2026-10-29T10:00")],
                                    "u3": [("view", "2026-10-29T10:00")]})
    cohort = define(client, project, [{"type": "performed", "event": "buy", "days": 2}])
    result = cohort_size.run(client, project, cohort_size.CohortSizeRequest(
        cohort=cohort.cohort_id, date_range=DateRange("2026-10-26", "2026-10-31"), timezone="UTC"), now=NOW)
    # At the end of each day: buys in the 2 days before it. The last day ends at the clock (12:00).
    assert result.sizes == [0, 1, 1, 1, 1, 0] and result.size == 0
    assert [b.day for b in result.buckets] == [26, 27, 28, 29, 30, 31]


def test_another_projects_cohort_is_not_found(client, demo, demo_cohorts):
    other = new_project(client)
    buyers, _ = demo_cohorts["buyers"]
    with pytest.raises(NotFound):
        trends.run(client, other, TrendsRequest(series=[Series()], where=in_cohort(buyers)), now=DEMO_END)
    with pytest.raises(NotFound):
        funnels.run(client, other, FunnelRequest(steps=[FunnelStep("a"), FunnelStep("b")], breakdown=Breakdown(
            source="cohort", cohorts=[buyers.cohort_id])), now=DEMO_END)
    with pytest.raises(NotFound):
        cohorts.get(client, other, buyers.cohort_id)


@pytest.mark.parametrize("definition,field", [
    ({"conditions": []}, "conditions"),
    ({"conditions": [{"type": "performed", "event": "x", "days": 0}]}, "conditions[0].days"),
    ({"conditions": [{"type": "performed", "event": "x", "operator": "more"}]}, "conditions[0].operator"),
    ({"conditions": [{"type": "performed", "event": "x", "count": -1}]}, "conditions[0].count"),
    ({"conditions": [{"type": "unknown"}]}, "conditions[0].type"),
    ({"conditions": [{"type": "person", "where": {"filters": [{"key": "plan", "value": "x"}]}}]},
     "conditions[0].where"),
    ({"conditions": [{"type": "funnel", "funnel": {"steps": [{"event": "a"}, {"event": "b"}]}, "step": 2}]},
     "conditions[0].step"),
    ({"conditions": [{"type": "performed", "where": {"filters": [
        {"key": "c_abcdefghijkl", "source": "cohort", "op": "in"}]}}]}, "conditions[0].where"),
])
def test_malformed_definitions_name_their_field(definition, field):
    with pytest.raises(InvalidRequest) as refused:
        cohorts.decode_input({"name": "x", "definition": definition})
    assert refused.value.field == f"definition.{field}"


def test_unknown_event_names_are_allowed_and_flagged(client):
    project = new_project(client)
    insert_events(client, project, {"u1": [("buy", "2026-10-27T10:00")]})
    insert_events(client, project, {"u1": [("buy", (datetime.now(UTC) - timedelta(days=1)).isoformat(),
                                             {"plan": "pro"})]})
    person(client, project, P1, {"tier": "gold"})
    cohort = define(client, project, [
        {"type": "performed", "event": "buy", "where": {"filters": [{"key": "plan", "value": "pro"},
                                                                    {"key": "colour", "value": "red"}]}},
        {"type": "not_since", "event": "nope"},
        {"type": "person", "where": {"filters": [{"key": "tier", "source": "person", "value": "gold"},
                                                 {"key": "size", "source": "person", "value": "xl"}]}}])
    assert cohort.warnings == ["event 'nope' has never been sent in this project",
                               "event property 'colour' has not been seen in this project",
                               "person property 'size' has not been seen in this project"]


def test_a_static_cohort_of_a_retention_cell_holds_its_persons(client):
    from nexus.analyses import retention_persons
    project = new_project(client)
    insert_events(client, project, {"u1": [("signup", "2026-10-26T10:00"), ("use", "2026-10-27T10:00")],
                                    "u2": [("signup", "2026-10-26T11:00")],
                                    "u3": [("signup", "2026-10-26T12:00"), ("use", "2026-10-27T09:00")]})
    body = {"retention": {"start": {"event": "signup"}, "returning": {"event": "use"}, "periods": 2,
                          "date_range": {"date_from": "2026-10-26", "date_to": "2026-10-27"}, "timezone": "UTC"},
            "cohort": "2026-10-26", "k": 1}
    made = cohorts.create_from_analysis(client, project, FromAnalysis("came back", "retention_persons", body), "t")
    assert (made.kind, made.source) == ("static", "retention_persons")
    listed = retention_persons.run(client, project, msgspec.convert(body, retention_persons.Request), now=NOW)
    assert member_names(client, project, made.cohort_id) == {p.person for p in listed.persons} == {"u1", "u3"}


def test_stickiness_and_lifecycle_by_cohorts_count_each_member_in_each_of_their_cohorts(client, demo, demo_cohorts):
    from nexus.analyses import lifecycle, stickiness
    (buyers, _), (pro, _) = demo_cohorts["buyers"], demo_cohorts["pro"]
    by = Breakdown(source="cohort", cohorts=[buyers.cohort_id, pro.cohort_id])
    for module, request in ((stickiness, stickiness.StickinessRequest), (lifecycle, lifecycle.LifecycleRequest)):
        common = {"event": "page_view", "date_range": DateRange("-14d"), "timezone": "UTC"}
        split = module.run(client, demo, request(**common, breakdown=by), now=DEMO_END)
        whole = module.run(client, demo, request(**common), now=DEMO_END)
        pro_only = module.run(client, demo, request(**common, where=in_cohort(pro)), now=DEMO_END)
        groups = {b.breakdown: b for b in split.breakdowns}
        if module is stickiness:
            assert split.persons == whole.persons  # everyone once
            assert groups["demo pro"].persons == pro_only.persons and sum(pro_only.persons) > 0
        else:
            assert (split.new, split.dormant) == (whole.new, whole.dormant)
            assert groups["demo pro"].new == pro_only.new and sum(pro_only.new) > 0


def test_live_counts_the_cohorts_persons_only(client):
    from nexus.analyses import live
    project = new_project(client)
    recent = (NOW - timedelta(minutes=5)).isoformat()
    insert_events(client, project, {"u1": [("buy", recent), ("view", recent)], "u2": [("view", recent)]})
    buyers = define(client, project, [{"type": "performed", "event": "buy", "days": 1}])
    result = live.run(client, project, live.LiveRequest(minutes=30, where=in_cohort(buyers)), now=NOW)
    assert (result.events, result.persons) == (2, 1)
    result = live.run(client, project, live.LiveRequest(minutes=30, where=in_cohort(buyers, "not_in")), now=NOW)
    assert (result.events, result.persons) == (1, 1)
