"""Stickiness against pandas on demo data, and exact counts on hand-written journeys."""

from __future__ import annotations

import pandas as pd
import pytest

from nexus.analyses import stickiness
from nexus.analyses.breakdown import OTHER, Breakdown
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import Filter, FilterGroup
from nexus.analyses.stickiness import StickinessRequest
from tests.analyses.journeys import insert_events, link, new_project
from tests.analyses.reference import person_trait
from tests.conftest import DEMO_END


def run(client, project_id, **kwargs):
    return stickiness.run(client, project_id, StickinessRequest(**kwargs), now=DEMO_END)


@pytest.mark.parametrize("period,tz,event,filters", [
    ("day", "Europe/Berlin", "page_view", None),
    ("week", "UTC", None, FilterGroup([Filter("device_type", "eq", "mobile", "column")])),
])
def test_active_periods_per_person_match_pandas(client, demo, frame, period, tz, event, filters):
    result = run(client, demo, event=event, where=filters, period=period, timezone=tz, date_range=DateRange("-21d"))
    rows = frame[(frame["ts"] >= pd.Timestamp(result.date_from)) & (frame["ts"] < pd.Timestamp(result.date_to))]
    if event:
        rows = rows[rows["event"] == event]
    if filters:
        rows = rows[rows["device_type"] == "mobile"]
    local = rows["ts"].dt.tz_convert(tz).dt.tz_localize(None)
    active = local.dt.to_period("W-SUN" if period == "week" else "D")
    counts = rows.assign(active=active).groupby("person")["active"].nunique().value_counts()
    assert result.periods == (21 if period == "day" else 3)  # Oct 12 to Nov 1: three Monday weeks
    assert result.persons == [int(counts.get(k, 0)) for k in range(1, result.periods + 1)]
    assert result.cumulative[0] == rows["person"].nunique() > 0


@pytest.mark.parametrize("key,source", [("country", "column"), ("plan", "person")])
def test_breakdown_counts_each_value_from_its_own_events(client, demo, frame, key, source):
    if source == "person":
        frame = frame.assign(**{key: person_trait(client, demo, frame, key)})
    result = run(client, demo, event="page_view", timezone="UTC", date_range=DateRange("-14d"),
                 breakdown=Breakdown(key, source, limit=2))
    rows = frame[(frame["ts"] >= pd.Timestamp(result.date_from)) & (frame["ts"] < pd.Timestamp(result.date_to))
                 & (frame["event"] == "page_view")]
    ranking = rows.groupby(key)["person"].nunique()
    top = sorted(ranking.index, key=lambda v: (-ranking[v], v))[:2]
    assert [b.breakdown for b in result.breakdowns] == [*top, OTHER]
    for group in result.breakdowns:
        mine = rows[rows[key] == group.breakdown] if group.breakdown != OTHER else rows[~rows[key].isin(top)]
        days = mine.assign(day=mine["ts"].dt.date).groupby("person")["day"].nunique().value_counts()
        assert group.persons == [int(days.get(k, 0)) for k in range(1, result.periods + 1)], group.breakdown
    # A person active under two values would count under both: the groups add up to at least everyone.
    assert sum(b.cumulative[0] for b in result.breakdowns) >= result.cumulative[0] == rows["person"].nunique() > 0


def test_days_count_once_per_person_across_ids(client):
    project = new_project(client)
    person = "00000000-0000-4000-8000-0000000000d1"
    insert_events(client, project, {
        "anon": [("open", "2026-10-01T10:00"), ("open", "2026-10-01T11:00")],
        "user": [("open", "2026-10-01T12:00"), ("open", "2026-10-03T09:00")],
        "solo": [("open", "2026-10-02T23:30"), ("open", "2026-10-03T00:30"), ("close", "2026-10-01T10:00")],
        "outside": [("open", "2026-09-30T23:59:59.999")],
    })
    link(client, project, {"anon": person, "user": person})
    utc = run(client, project, event="open", timezone="UTC", date_range=DateRange("2026-10-01", "2026-10-03"))
    assert utc.persons == [0, 2, 0] and utc.cumulative == [2, 2, 0]
    # In Berlin solo's two opens fall on the same local day (Oct 3), the outsider's on Oct 1.
    berlin = run(client, project, event="open", timezone="Europe/Berlin",
                 date_range=DateRange("2026-10-01", "2026-10-03"))
    assert berlin.persons == [2, 1, 0]
    # Any event: solo's close on Oct 1 makes three active days.
    assert run(client, project, timezone="UTC", date_range=DateRange("2026-10-01", "2026-10-03")).persons == [0, 1, 1]


def test_a_person_with_two_values_counts_under_each_with_that_value_s_days(client):
    project = new_project(client)
    insert_events(client, project, {
        "u": [("open", "2026-10-01T10:00", {}, {"country": "DE"}), ("open", "2026-10-02T10:00", {}, {"country": "FR"}),
              ("open", "2026-10-03T10:00", {}, {"country": "FR"})],
        "v": [("open", "2026-10-01T10:00", {}, {"country": "US"})],
    })
    result = run(client, project, event="open", timezone="UTC", date_range=DateRange("2026-10-01", "2026-10-03"),
                 breakdown=Breakdown("country", "column", limit=1))
    assert result.persons == [1, 0, 1]
    assert {b.breakdown: b.persons for b in result.breakdowns} == {"DE": [1, 0, 0], OTHER: [1, 1, 0]}
