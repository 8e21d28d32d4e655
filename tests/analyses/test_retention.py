"""Retention against pandas on demo data, and exact cohorts on hand-written journeys."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from nexus.analyses import retention
from nexus.analyses.breakdown import OTHER, Breakdown
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import Filter, FilterGroup
from nexus.analyses.retention import RetentionEvent, RetentionRequest
from nexus.errors import InvalidRequest
from tests.analyses.journeys import insert_events, link, new_project
from tests.analyses.reference import person_trait
from tests.conftest import DEMO_END


def run(client, project_id, start, returning, **kwargs):
    request = RetentionRequest(start=RetentionEvent(*start), returning=RetentionEvent(*returning), **kwargs)
    return retention.run(client, project_id, request, now=DEMO_END)


def period_of(ts: pd.Series, period: str, tz: str) -> pd.Series:
    day = ts.dt.tz_convert(tz).dt.date
    if period == "week":
        return day.map(lambda d: d - timedelta(days=d.weekday()))
    return day.map(lambda d: d.replace(day=1)) if period == "month" else day


def later(start: date, period: str, k: int) -> date:
    if period == "month":
        month = start.month - 1 + k
        return date(start.year + month // 12, month % 12 + 1, 1)
    return start + timedelta(days=k * (7 if period == "week" else 1))


def reference(frame, result, starts, returns, period, periods, mode):
    """Cells by the definition, from the frame: {(cohort, k): persons}, and cohort sizes."""
    tz = result.timezone
    cohorts = [c.period for c in result.cohorts]
    frame = frame.assign(p=period_of(frame["ts"], period, tz))
    first, last = cohorts[0], cohorts[-1]
    if mode == "first_time":
        firsts = frame[starts(frame) & (frame["p"] <= last)].groupby("person")["p"].min()
        members = {(person, p) for person, p in firsts.items() if p >= first}
    else:
        chosen = frame[starts(frame) & (frame["p"] >= first) & (frame["p"] <= last)]
        members = set(zip(chosen["person"], chosen["p"]))
    came_back = set(zip(frame.loc[returns(frame), "person"], frame.loc[returns(frame), "p"]))
    sizes = pd.Series([p for _, p in members]).value_counts().to_dict()
    cells = {}
    for person, cohort in members:
        for k in range(periods + 1):
            if (person, later(cohort, period, k)) in came_back:
                cells[(cohort, k)] = cells.get((cohort, k), 0) + 1
    return sizes, cells


@pytest.mark.parametrize("period,periods,mode,tz,start,returning", [
    ("day", 14, "first_time", "Europe/Berlin", ("signup",), (None,)),
    ("day", 10, "recurring", "UTC", ("page_view",), ("purchase",)),
    ("week", 4, "first_time", "America/New_York", ("page_view",),
     ("page_view", FilterGroup([Filter("path", "eq", "/pricing", "column")]))),
    ("month", 2, "recurring", "UTC", ("signup", FilterGroup([Filter("plan", "in", ["pro", "team"])])), (None,)),
])
def test_cohorts_match_pandas(client, demo, frame, period, periods, mode, tz, start, returning):
    result = run(client, demo, start, returning, period=period, periods=periods, start_mode=mode, timezone=tz,
                 date_range=DateRange("-35d"))

    def matcher(event, group=None):
        def match(f):
            chosen = pd.Series(True, index=f.index) if event is None else f["event"] == event
            if group is not None:
                leaf = group.filters[0]
                column = f[leaf.key] if leaf.key in f else f["properties"].map(lambda p: str(p.get(leaf.key, "")))
                chosen &= column.isin(leaf.value if isinstance(leaf.value, list) else [leaf.value])
            return chosen
        return match

    sizes, cells = reference(frame, result, matcher(*start), matcher(*returning), period, periods, mode)
    assert sum(sizes.values()) > 0 and sum(cells.values()) > 0
    for cohort in result.cohorts:
        assert cohort.persons == sizes.get(cohort.period, 0), cohort.period
        for k, count in enumerate(cohort.counts):
            if count is not None:
                assert count == cells.get((cohort.period, k), 0), (cohort.period, k)
    observed = [[c.counts[k] for c in result.cohorts if c.counts[k] is not None] for k in range(periods + 1)]
    sizes_seen = [[c.persons for c in result.cohorts if c.counts[k] is not None] for k in range(periods + 1)]
    assert result.average == [sum(o) / sum(s) if sum(s) else None for o, s in zip(observed, sizes_seen)]


@pytest.mark.parametrize("mode,start,key,source,limit", [
    ("first_time", "signup", "country", "column", 3),
    ("recurring", "page_view", "utm_source", "column", 2),
    ("recurring", "page_view", "plan", "person", 2),  # the person's trait: the same on every start event
])
def test_breakdown_by_the_start_event_matches_pandas(client, demo, frame, mode, start, key, source, limit):
    if source == "person":
        frame = frame.assign(**{key: person_trait(client, demo, frame, key)})
    result = run(client, demo, (start,), (None,), periods=7, start_mode=mode, timezone="UTC",
                 date_range=DateRange("-14d"), breakdown=Breakdown(key, source, limit=limit))
    cohorts = [c.period for c in result.cohorts]
    first, last = cohorts[0], cohorts[-1]
    f = frame.assign(p=period_of(frame["ts"], "day", "UTC"))
    # The start event that puts a person in a cohort: their first (then least value) — ever, or per day.
    starts = f[(f["event"] == start) & (f["p"] <= last)].sort_values(["person", "ts", key], kind="stable")
    if mode == "first_time":
        chosen = starts.groupby("person").head(1)
        chosen = chosen[chosen["p"] >= first]
    else:
        chosen = starts[starts["p"] >= first].groupby(["person", "p"]).head(1)
    members = pd.DataFrame({"person": chosen["person"], "cohort": chosen["p"], "value": chosen[key]})
    ranking = members.groupby("value").size().sort_values(ascending=False, kind="stable")
    top = sorted(ranking.index, key=lambda v: (-ranking[v], v))[:limit]
    members["label"] = members["value"].where(members["value"].isin(top), OTHER)
    active = set(zip(f["person"], f["p"]))
    assert [b.breakdown for b in result.breakdowns] == [*top, OTHER]
    for group in result.breakdowns:
        mine = members[members["label"] == group.breakdown]
        sizes = mine.groupby("cohort").size()
        for cohort in group.cohorts:
            assert cohort.persons == sizes.get(cohort.period, 0)
            expected = [sum((person, later(cohort.period, "day", k)) in active
                            for person in mine.loc[mine["cohort"] == cohort.period, "person"])
                        for k in range(len(cohort.counts))]
            assert [c for c in cohort.counts if c is not None] == expected[:len([c for c in cohort.counts if c is not None])]
    totals = [sum(b.cohorts[i].persons for b in result.breakdowns) for i in range(len(cohorts))]
    assert totals == [c.persons for c in result.cohorts] and sum(totals) > 0


def test_first_time_and_recurring_cohorts_on_journeys(client):
    project = new_project(client)
    person = "00000000-0000-4000-8000-0000000000b1"
    insert_events(client, project, {
        # a veteran: first started before the range, starts again inside it
        "veteran": [("start", "2026-09-20T10:00"), ("start", "2026-10-02T10:00"), ("back", "2026-10-03T10:00")],
        # a newcomer whose return comes before the start in the same day, then two days later,
        # from another id of the same person
        "anon-n": [("back", "2026-10-01T08:00"), ("start", "2026-10-01T09:00")],
        "user-n": [("back", "2026-10-03T23:59:59.999")],
        # the last day of the range: its later cells are beyond `now`
        "late": [("start", "2026-10-31T12:00"), ("back", "2026-10-31T13:00")],
    })
    link(client, project, {"anon-n": person, "user-n": person})
    first = run(client, project, ("start",), ("back",), periods=3, date_range=DateRange("2026-10-01", "2026-10-31"))
    by_day = {c.period: c for c in first.cohorts}
    assert len(first.cohorts) == 31
    assert by_day[date(2026, 10, 1)].counts == [1, 0, 1, 0] and by_day[date(2026, 10, 1)].persons == 1
    assert by_day[date(2026, 10, 2)].persons == 0  # the veteran started before the range
    assert by_day[date(2026, 10, 31)].counts == [1, None, None, None]
    assert by_day[date(2026, 10, 30)].counts == [0, 0, None, None]
    recurring = run(client, project, ("start",), ("back",), periods=3, start_mode="recurring",
                    date_range=DateRange("2026-10-01", "2026-10-31"))
    assert {c.period: c.counts for c in recurring.cohorts}[date(2026, 10, 2)] == [0, 1, 0, 0]
    assert recurring.average[1] == 0.5  # of the Oct 1 and Oct 2 starters (Oct 31 not yet observable), one


def test_weeks_start_on_monday_in_the_requested_zone(client):
    project = new_project(client)
    # Sunday 23:30 UTC is already Monday in Berlin: the return lands in the next Berlin week.
    insert_events(client, project, {"u": [("start", "2026-10-07T10:00"), ("back", "2026-10-11T23:30")]})
    utc = run(client, project, ("start",), ("back",), period="week", periods=1, timezone="UTC",
              date_range=DateRange("2026-10-05", "2026-10-11"))
    berlin = run(client, project, ("start",), ("back",), period="week", periods=1, timezone="Europe/Berlin",
                 date_range=DateRange("2026-10-05", "2026-10-11"))
    assert [c.period for c in utc.cohorts] == [date(2026, 10, 5)]
    assert utc.cohorts[0].counts == [1, 0] and berlin.cohorts[0].counts == [0, 1]


def test_an_empty_project_gives_empty_cohorts(client):
    result = run(client, new_project(client), ("start",), ("back",), periods=2, date_range=DateRange("-3d"))
    assert [c.persons for c in result.cohorts] == [0, 0, 0]
    assert result.average == [None, None, None]


def test_too_many_periods_are_refused():
    with pytest.raises(InvalidRequest):
        RetentionRequest(start=RetentionEvent(), returning=RetentionEvent(), periods=101)
