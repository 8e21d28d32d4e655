"""Lifecycle against pandas on demo data, and exact statuses on hand-written journeys."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from nexus.analyses import lifecycle
from nexus.analyses.breakdown import OTHER, Breakdown
from nexus.analyses.dates import DateRange
from nexus.analyses.lifecycle import LifecycleRequest
from tests.analyses.journeys import insert_events, link, new_project
from tests.analyses.reference import person_trait
from tests.conftest import DEMO_END


def run(client, project_id, **kwargs):
    return lifecycle.run(client, project_id, LifecycleRequest(**kwargs), now=DEMO_END)


def reference(frame, event, tz, periods, step):
    rows = frame if event is None else frame[frame["event"] == event]
    day = rows["ts"].dt.tz_convert(tz).dt.date
    rows = rows.assign(p=day.map(lambda d: d - timedelta(days=d.weekday())) if step == 7 else day)
    rows = rows[rows["ts"] < pd.Timestamp(periods[-1] + timedelta(days=step), tz=tz)]
    first = rows.groupby("person")["p"].min()
    active = set(zip(rows["person"], rows["p"]))
    people = rows["person"].unique()
    out = {s: [] for s in ("new", "returning", "resurrecting", "dormant")}
    for p in periods:
        before = p - timedelta(days=step)
        now = {x for x in people if (x, p) in active}
        prev = {x for x in people if (x, before) in active}
        out["new"].append(sum(1 for x in now if first[x] == p))
        out["returning"].append(sum(1 for x in now if first[x] != p and x in prev))
        out["resurrecting"].append(sum(1 for x in now if first[x] != p and x not in prev))
        out["dormant"].append(len(prev - now))
    return out


@pytest.mark.parametrize("period,tz,event", [("day", "America/New_York", "page_view"), ("week", "UTC", None)])
def test_statuses_match_pandas(client, demo, frame, period, tz, event):
    result = run(client, demo, event=event, period=period, timezone=tz, date_range=DateRange("-14d"))
    expected = reference(frame, event, tz, result.periods, 7 if period == "week" else 1)
    assert sum(expected["new"]) > 0 and sum(expected["resurrecting"]) > 0
    for status, values in expected.items():
        assert getattr(result, status) == values, status


@pytest.mark.parametrize("key,source", [("browser", "column"), ("plan", "person")])
def test_breakdown_classifies_each_value_from_its_own_events(client, demo, frame, key, source):
    if source == "person":
        frame = frame.assign(**{key: person_trait(client, demo, frame, key)})
    result = run(client, demo, event="page_view", timezone="UTC", date_range=DateRange("-14d"),
                 breakdown=Breakdown(key, source, limit=2))
    views = frame[(frame["event"] == "page_view") & (frame["ts"] < pd.Timestamp(result.periods[-1] + timedelta(days=1), tz="UTC"))]
    ranking = views.groupby(key)["person"].nunique()
    top = sorted(ranking.index, key=lambda v: (-ranking[v], v))[:2]
    assert sorted(b.breakdown for b in result.breakdowns) == sorted([*top, OTHER])
    for group in result.breakdowns:
        mine = views[views[key] == group.breakdown] if group.breakdown != OTHER else views[~views[key].isin(top)]
        expected = reference(mine, None, "UTC", result.periods, 1)
        for status, values in expected.items():
            assert getattr(group, status) == values, (group.breakdown, status)
    assert sum(sum(b.new) for b in result.breakdowns) >= sum(result.new) > 0


def test_new_returning_resurrecting_and_dormant_on_journeys(client):
    project = new_project(client)
    person = "00000000-0000-4000-8000-0000000000e1"
    insert_events(client, project, {
        "old": [("use", "2026-09-01T10:00"), ("use", "2026-10-02T10:00"), ("use", "2026-10-03T10:00")],
        "anon": [("use", "2026-10-01T10:00")],
        "user": [("use", "2026-10-02T10:00"), ("use", "2026-10-04T10:00")],
        "eve": [("use", "2026-09-30T10:00")],
    })
    link(client, project, {"anon": person, "user": person})
    result = run(client, project, event="use", timezone="UTC", date_range=DateRange("2026-10-01", "2026-10-04"))
    assert result.periods == [date(2026, 10, d) for d in (1, 2, 3, 4)]
    assert result.new == [1, 0, 0, 0]
    assert result.returning == [0, 1, 1, 0]
    assert result.resurrecting == [0, 1, 0, 1]
    assert result.dormant == [1, 0, 1, 1]
