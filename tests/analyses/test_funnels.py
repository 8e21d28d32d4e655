"""Funnels against a Python reference and windowFunnel on demo data, and exact hand-written journeys."""

from __future__ import annotations

import statistics

import msgspec
import pandas as pd
import pytest

from nexus.analyses import funnel_persons, funnels
from nexus.analyses.breakdown import OTHER, Breakdown
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import Filter, FilterGroup
from nexus.analyses.funnel_persons import FunnelPersonsRequest
from nexus.analyses.funnels import FunnelRequest, FunnelStep
from nexus.errors import InvalidRequest
from tests.analyses import funnel_reference as ref
from tests.analyses.journeys import at, insert_events, link, new_project, person
from tests.conftest import DEMO_END

STEPS = ["page_view", "signup", "add_to_cart", "purchase"]
WEEK_MS = 7 * 86_400_000


def run(client, project_id, steps, **kwargs):
    request = FunnelRequest(steps=[FunnelStep(s) for s in steps], **kwargs)
    return funnels.run(client, project_id, request, now=DEMO_END)


def counts(result, group=0):
    return [s.persons for s in result.groups[group].steps]


@pytest.fixture(scope="module")
def ordered(client, demo, frame):
    result = run(client, demo, STEPS, date_range=DateRange("-28d"), timezone="UTC", window=7,
                 breakdown=Breakdown("utm_source", "column", limit=3))
    people = ref.person_events(frame, STEPS, pd.Timestamp(result.date_from), pd.Timestamp(result.date_to),
                               WEEK_MS, strict=False)
    return result, people


def test_ordered_counts_and_times_match_the_python_reference(frame, ordered):
    result, people = ordered
    chains = {p: ref.machine(evs, 4, WEEK_MS, strict=False) for p, evs in people.items()}
    chains = {p: c for p, c in chains.items() if c[0] > 0}
    expected = [sum(1 for c in chains.values() if c[0] > k) for k in range(4)]
    assert counts(result) == expected and expected[3] > 0
    for k in range(1, 4):
        gaps = [(c[1][k] - c[1][k - 1]) / 1000 for c in chains.values() if c[0] > k]
        step = result.groups[0].steps[k]
        assert step.avg_seconds == pytest.approx(statistics.mean(gaps))
        assert step.median_seconds == pytest.approx(statistics.median(gaps))
        assert step.dropped == expected[k - 1] - expected[k]
        assert step.conversion_from_previous == pytest.approx(expected[k] / expected[k - 1])
    # The same depths by another route: the earliest next step from every entry.
    assert all(ref.greedy_depth(people[p], 4, WEEK_MS) == c[0] for p, c in chains.items())


def test_ordered_depths_equal_window_funnel(client, demo, ordered):
    result, _ = ordered
    # windowFunnel on millisecond integers, persons resolved with argMax(version) instead of FINAL.
    rows = client.query(
        "SELECT d, count() FROM (SELECT if(i.person = '', e.distinct_id, i.person) AS person, "
        "windowFunnel({w:UInt64})(toUInt64(toUnixTimestamp64Milli(ts)),"
        " event = 'page_view' AND ts < {end:DateTime64(3)}, event = 'signup', event = 'add_to_cart',"
        " event = 'purchase') AS d "
        "FROM events AS e LEFT JOIN (SELECT distinct_id, toString(argMax(person_id, version)) AS person "
        "FROM identities WHERE project_id = {p:UInt32} GROUP BY distinct_id) AS i USING distinct_id "
        "WHERE project_id = {p:UInt32} AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)} + toIntervalDay(7) "
        "GROUP BY person) WHERE d > 0 GROUP BY d",
        parameters={"p": demo, "w": WEEK_MS, "start": result.date_from, "end": result.date_to}).result_rows
    depths = dict(rows)
    assert counts(result) == [sum(n for d, n in depths.items() if d > k) for k in range(4)]


def test_breakdown_takes_the_entry_event_value(frame, ordered):
    result, people = ordered
    chains = {p: ref.machine(evs, 4, WEEK_MS, strict=False) for p, evs in people.items()}
    entered = pd.DataFrame([(frame.at[c[2], "utm_source"], c[0]) for c in chains.values() if c[0] > 0],
                           columns=["value", "depth"])
    top = entered.groupby("value").size().sort_values(ascending=False, kind="stable")
    top = sorted(top.index[:3], key=lambda v: (-top[v], v))
    assert [g.breakdown for g in result.groups] == [None, *top, OTHER]
    for group in result.groups[1:]:
        others = group.breakdown == OTHER
        chosen = entered[~entered["value"].isin(top)] if others else entered[entered["value"] == group.breakdown]
        assert counts(result, result.groups.index(group)) == [int((chosen["depth"] > k).sum()) for k in range(4)]


@pytest.mark.parametrize("mode,steps", [("strict", ["signup", "identify", "add_to_cart"]),
                                        ("strict", ["page_view", "page_view", "signup"]),
                                        ("unordered", ["purchase", "add_to_cart", "signup", "page_view"])])
def test_strict_and_unordered_match_the_python_reference(client, demo, frame, mode, steps):
    result = run(client, demo, steps, date_range=DateRange("-28d"), timezone="UTC", window=1, mode=mode)
    people = ref.person_events(frame, steps, pd.Timestamp(result.date_from), pd.Timestamp(result.date_to),
                               86_400_000, strict=mode == "strict", unordered=mode == "unordered")
    n = len(steps)
    chains = [ref.machine(evs, n, 86_400_000, strict=True) if mode == "strict" else ref.unordered(evs, n, 86_400_000)
              for evs in people.values()]
    expected = [sum(1 for c in chains if c[0] > k) for k in range(n)]
    assert counts(result) == expected and expected[-1] > 0
    gaps = [(c[1][1] - c[1][0]) / 1000 for c in chains if c[0] > 1]
    assert result.groups[0].steps[1].median_seconds == pytest.approx(statistics.median(gaps))


def journey_funnel(client, journeys, steps=("view", "signup", "buy"), ids=None, **kwargs):
    project = new_project(client)
    insert_events(client, project, journeys)
    if ids:
        link(client, project, ids)
    kwargs.setdefault("date_range", DateRange("2026-10-01", "2026-10-07"))
    return project, run(client, project, list(steps), **kwargs)


def test_window_edges_are_inclusive_to_the_millisecond(client):
    _, result = journey_funnel(client, {
        "on-edge": [("view", "2026-10-01T10:00"), ("signup", "2026-10-01T11:00"), ("buy", "2026-10-02T10:00")],
        "past-edge": [("view", "2026-10-01T10:00"), ("signup", "2026-10-01T11:00"), ("buy", "2026-10-02T10:00:00.001")],
    }, window=1)
    assert counts(result) == [2, 2, 1]
    assert result.groups[0].steps[1].avg_seconds == 3600 and result.groups[0].steps[2].median_seconds == 82800


def test_same_timestamp_events_count_in_step_order_whatever_the_insert_order(client):
    _, result = journey_funnel(client, {"u": [("buy", "2026-10-02T10:00"), ("signup", "2026-10-02T10:00"),
                                              ("view", "2026-10-02T10:00")]})
    assert counts(result) == [1, 1, 1] and result.groups[0].steps[2].avg_seconds == 0


def test_entry_must_be_in_range_but_conversion_may_finish_after_it(client):
    _, result = journey_funnel(client, {
        "late-finisher": [("view", "2026-10-07T23:00"), ("signup", "2026-10-08T01:00"), ("buy", "2026-10-09T00:00")],
        "early-entrant": [("view", "2026-09-30T23:00"), ("signup", "2026-10-01T01:00"), ("buy", "2026-10-01T02:00")],
        "re-entrant": [("view", "2026-09-30T23:00"), ("view", "2026-10-03T00:00"), ("signup", "2026-10-03T01:00")],
    }, window=3)
    assert counts(result) == [2, 2, 1]


def test_a_person_identified_mid_funnel_is_one_person(client):
    journeys = {"anon-1": [("view", "2026-10-02T10:00")], "user-1": [("signup", "2026-10-02T10:05"),
                                                                       ("buy", "2026-10-02T10:10")]}
    person = "00000000-0000-4000-8000-00000000000a"
    project, linked = journey_funnel(client, journeys, ids={"anon-1": person, "user-1": person})
    assert counts(linked) == [1, 1, 1]
    _, unlinked = journey_funnel(client, journeys)
    assert counts(unlinked) == [1, 0, 0]
    page = funnel_persons.run(client, project, FunnelPersonsRequest(
        funnel=FunnelRequest(steps=[FunnelStep(s) for s in ("view", "signup", "buy")],
                             date_range=DateRange("2026-10-01", "2026-10-07")), step=2, status="converted"),
        now=DEMO_END)
    assert [(p.person, p.depth, p.entered_at) for p in page.persons] == [(person, 3, at("2026-10-02T10:00"))]


def test_repeated_steps_need_separate_events_and_out_of_order_inserts_do_not_matter(client):
    _, result = journey_funnel(client, {"once": [("view", "2026-10-02T10:00")],
                                        "twice": [("view", "2026-10-02T10:05"), ("view", "2026-10-02T10:00")]},
                               steps=("view", "view"))
    assert counts(result) == [2, 1]


def test_strict_breaks_on_an_intervening_event_and_unordered_ignores_order(client):
    journeys = {"direct": [("view", "2026-10-02T10:00"), ("signup", "2026-10-02T10:01")],
                "detour": [("view", "2026-10-02T10:00"), ("other", "2026-10-02T10:00:30"),
                           ("signup", "2026-10-02T10:01")],
                "retry": [("view", "2026-10-02T10:00"), ("other", "2026-10-02T10:00:30"), ("view", "2026-10-02T11:00"),
                          ("signup", "2026-10-02T11:01")],
                "backwards": [("signup", "2026-10-02T09:00"), ("view", "2026-10-02T10:00")]}
    assert counts(journey_funnel(client, journeys, steps=("view", "signup"), mode="strict")[1]) == [4, 2]
    assert counts(journey_funnel(client, journeys, steps=("view", "signup"))[1]) == [4, 3]
    assert counts(journey_funnel(client, journeys, steps=("view", "signup"), mode="unordered")[1]) == [4, 4]


@pytest.mark.parametrize("mode", ["ordered", "strict"])
def test_runs_of_entries_and_of_other_events_keep_their_first_and_last(client, mode):
    def views(hour, *sources):
        return [("view", f"2026-10-02T{hour}:0{i}", {}, {"utm_source": s}) for i, s in enumerate(sources)]
    journeys = {
        "stays": views(10, "a", "b", "c"),  # reaches step 0 only: its first entry gives the value
        "converts": [*views(11, "x", "b", "y"), ("signup", "2026-10-02T11:04")],  # the last entry converts
        "broken": [("view", "2026-10-02T12:00"), *[("other", f"2026-10-02T12:0{i}") for i in range(1, 4)],
                   ("signup", "2026-10-02T12:05")],
        "rejoined": [("view", "2026-10-02T13:00"), ("other", "2026-10-02T13:01"), ("other", "2026-10-02T13:02"),
                     *views(13, "-", "-", "-", "z")[3:], ("signup", "2026-10-02T13:05")],
    }
    _, result = journey_funnel(client, journeys, steps=("view", "signup"), mode=mode,
                               breakdown=Breakdown("utm_source", "column", limit=10))
    by_value = {g.breakdown: counts(result, i) for i, g in enumerate(result.groups)}
    strict = mode == "strict"
    assert by_value == {None: [4, 2 if strict else 3], "a": [1, 0], "y": [1, 1], "": [1, 0 if strict else 1],
                        "z": [1, 1]}
    assert result.groups[0].steps[1].median_seconds == 120  # y → 11:04, z → 13:05 (and, ordered, broken 12:00 → 12:05)


def test_step_filters_and_dropped_off_persons_page_by_page(client):
    journeys = {f"u{i}": [("view", "2026-10-02T10:00", {"page": "/pricing" if i % 2 else "/"}),
                          *([("signup", "2026-10-02T10:05")] if i % 3 == 0 else [])] for i in range(7)}
    project, result = journey_funnel(client, journeys, steps=("view", "signup"))
    assert counts(result) == [7, 3]
    pricing = FilterGroup([Filter("page", "eq", "/pricing")])
    request = FunnelRequest(steps=[FunnelStep("view", pricing), FunnelStep("signup")],
                            date_range=DateRange("2026-10-01", "2026-10-07"))
    assert counts(funnels.run(client, project, request, now=DEMO_END)) == [3, 1]  # u1, u3, u5 of which u3
    unfiltered = msgspec.structs.replace(request, steps=[FunnelStep("view"), FunnelStep("signup")])
    pages = [funnel_persons.run(client, project, FunnelPersonsRequest(
        funnel=unfiltered, step=1, limit=3, offset=offset), now=DEMO_END) for offset in (0, 3)]
    assert [[p.person for p in page.persons] for page in pages] == [["u1", "u2", "u4"], ["u5"]]
    assert [page.has_more for page in pages] == [True, False]


def test_dropped_off_persons_of_one_breakdown_group_also_of_other(client):
    # Entry plans: pro ×3, free ×2, team ×1 and trial ×1; with the top 2, team and trial are OTHER.
    plans = ["pro", "pro", "pro", "free", "free", "team", "trial"]
    journeys = {f"u{i}": [("view", "2026-10-02T10:00", {"plan": plan}),
                          *([("signup", "2026-10-02T10:05")] if i == 2 else [])] for i, plan in enumerate(plans)}
    project, _ = journey_funnel(client, journeys, steps=("view", "signup"))
    funnel = FunnelRequest(steps=[FunnelStep("view"), FunnelStep("signup")], breakdown=Breakdown("plan", limit=2),
                           date_range=DateRange("2026-10-01", "2026-10-07"))
    groups = {g.breakdown: g.steps[1].dropped for g in funnels.run(client, project, funnel, now=DEMO_END).groups}
    assert groups == {None: 6, "pro": 2, "free": 2, OTHER: 2}
    for label, expected in (("pro", ["u0", "u1"]), ("free", ["u3", "u4"]), (OTHER, ["u5", "u6"]), ("team", [])):
        page = funnel_persons.run(client, project, FunnelPersonsRequest(funnel=funnel, step=1, breakdown_value=label),
                                  now=DEMO_END)
        assert [p.person for p in page.persons] == expected, label


def test_ten_steps_with_a_person_trait_breakdown(client):
    steps = [f"s{i}" for i in range(10)]
    project, result = journey_funnel(client, {
        "a": [(s, f"2026-10-02T10:{i:02d}") for i, s in enumerate(steps)],
        "b": [(s, f"2026-10-02T11:{i:02d}") for i, s in enumerate(steps[:4])],
    }, steps=steps, ids={"a": "00000000-0000-4000-8000-00000000000c"}, breakdown=Breakdown("plan", "person"))
    assert counts(result) == [2, 2, 2, 2, 1, 1, 1, 1, 1, 1]
    assert [g.breakdown for g in result.groups] == [None, ""]  # no person row yet: no trait
    person(client, project, "00000000-0000-4000-8000-00000000000c", {"plan": "pro"})
    request = FunnelRequest(steps=[FunnelStep(s) for s in steps], date_range=DateRange("2026-10-01", "2026-10-07"),
                            breakdown=Breakdown("plan", "person"))
    with_trait = funnels.run(client, project, request, now=DEMO_END)  # (a 10-step funnel takes seconds)
    by_plan = {g.breakdown: counts(with_trait, i) for i, g in enumerate(with_trait.groups)}
    assert by_plan == {None: [2, 2, 2, 2, 1, 1, 1, 1, 1, 1], "": [1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
                       "pro": [1] * 10}


def test_an_empty_range_gives_zero_steps(client):
    _, result = journey_funnel(client, {"u": [("view", "2026-09-01T10:00")]}, breakdown=Breakdown("plan"))
    assert [g.breakdown for g in result.groups] == [None] and counts(result) == [0, 0, 0]
    assert result.groups[0].steps[1].avg_seconds is None


@pytest.mark.parametrize("bad", [
    lambda: FunnelRequest(steps=[FunnelStep("a")]),
    lambda: FunnelRequest(steps=[FunnelStep(str(i)) for i in range(11)]),
    lambda: FunnelRequest(steps=[FunnelStep("a"), FunnelStep("b")], window=0),
    lambda: FunnelRequest(steps=[FunnelStep("a"), FunnelStep("b")], window=400),
    lambda: FunnelPersonsRequest(funnel=FunnelRequest(steps=[FunnelStep("a"), FunnelStep("b")]), step=0),
])
def test_invalid_funnels_are_refused(bad):
    with pytest.raises(InvalidRequest):
        bad()


def test_a_funnel_over_more_than_34_years_is_refused(client):
    request = FunnelRequest(steps=[FunnelStep("a"), FunnelStep("b")], date_range=DateRange("1990-01-01", "2026-01-01"))
    with pytest.raises(InvalidRequest, match="span at most 34 years"):
        funnels.run(client, new_project(client), request, now=DEMO_END)
