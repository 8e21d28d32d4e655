"""Live against pandas on generated data, exact windows on hand-written events, projects apart, refusals."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pandas as pd
import pytest

from nexus.analyses import live, registry
from nexus.analyses.filters import Filter, FilterGroup
from nexus.analyses.live import LiveRequest
from nexus.demo.load import load
from nexus.errors import InvalidRequest
from nexus.meta import projects
from tests.analyses.journeys import at, link, new_project
from tests.analyses.reference import events_frame
from tests.analyses.typed_events import frame_with, insert, page
from tests.conftest import DEMO_END

NOW = at("2026-10-31T12:30:20")


@pytest.fixture(scope="module")
def generated(client) -> int:
    project = projects.create(client, f"live-{uuid.uuid4().hex[:8]}").project_id
    load(client, project, 4000, seed=5, end=DEMO_END)
    return project


@pytest.mark.parametrize("where", [None, FilterGroup([Filter("country", "in", ["US", "DE"], "column")])])
def test_the_last_day_matches_pandas(client, generated, where):
    # Given generated events, and now just before their end: the window is the day's 1440 minutes
    now = DEMO_END - timedelta(milliseconds=1)
    result = live.run(client, generated, LiveRequest(minutes=1440, latest=100, where=where), now=now)
    rows = frame_with(client, generated, events_frame(client, generated),
                      "ts, event, distinct_id, path, country, browser, message_id")
    rows = rows[(rows["ts"] >= pd.Timestamp("2026-10-31", tz="UTC")) & (rows["ts"] < pd.Timestamp(DEMO_END))]
    rows = rows[rows["country"].isin(["US", "DE"])] if where else rows
    # Then the counts, the minutes and the newest events are pandas'
    assert (result.date_from, result.date_to) == (at("2026-10-31T00:00"), DEMO_END)
    assert (result.events, result.persons) == (len(rows), rows["person"].nunique())
    assert 5 < result.events and len(result.series) == 1440  # enough events that the comparison means something
    per_minute = rows.groupby(rows["ts"].dt.floor("min")).size()
    assert {pd.Timestamp(p.t): p.events for p in result.series if p.events} == per_minute.to_dict()
    newest = rows.sort_values(["ts", "message_id"], ascending=[False, True]).head(100)
    assert [(pd.Timestamp(e.timestamp), e.event, e.distinct_id, e.path, e.country, e.browser) for e in result.latest] == [
        (r.ts, r.event, r.distinct_id, r.path, r.country, r.browser) for r in newest.itertuples()]


@pytest.fixture(scope="module")
def journeys(client) -> tuple[int, int]:
    mine, other = new_project(client), new_project(client)
    insert(client, mine, [
        page("a", "2026-10-31T12:00:59.999", "/early"),  # just before the window
        page("a", "2026-10-31T12:01:00", "/", country="DE", browser="Firefox"),  # its first instant
        {"distinct_id": "b", "ts": "2026-10-31T12:15:30", "event": "signup", "country": "DE", "browser": "Firefox"},
        page("c", "2026-10-31T12:30:10", "/pricing", country="FR", browser="Safari"),
        page("c", "2026-10-31T12:30:50", "/docs", country="FR", browser="Safari"),  # after now, its minute
        page("c", "2026-10-31T12:31:00", "/late"),  # after the window
    ])
    link(client, mine, {"a": "00000000-0000-4000-8000-0000000000b1", "b": "00000000-0000-4000-8000-0000000000b1"})
    insert(client, other, [page("x", "2026-10-31T12:10", "/other", country="DE")])
    return mine, other


def test_the_window_is_the_minutes_ending_with_the_current_one(client, journeys):
    mine, other = journeys
    result = live.run(client, mine, LiveRequest(), now=NOW)
    assert (result.date_from, result.date_to, result.minutes) == (at("2026-10-31T12:01"), at("2026-10-31T12:31"), 30)
    assert (result.events, result.persons) == (4, 2)  # a and b are one person
    assert [(p.t.minute, p.events) for p in result.series if p.events] == [(1, 1), (15, 1), (30, 2)]
    assert [p.t for p in result.series] == [at("2026-10-31T12:01") + timedelta(minutes=i) for i in range(30)]
    assert [(e.timestamp, e.event, e.distinct_id, e.path, e.country, e.browser) for e in result.latest] == [
        (at("2026-10-31T12:30:50"), "page_view", "c", "/docs", "FR", "Safari"),
        (at("2026-10-31T12:30:10"), "page_view", "c", "/pricing", "FR", "Safari"),
        (at("2026-10-31T12:15:30"), "signup", "b", "", "DE", "Firefox"),
        (at("2026-10-31T12:01"), "page_view", "a", "/", "DE", "Firefox")]
    # A shorter window, fewer latest events, a filter
    short = live.run(client, mine, LiveRequest(minutes=1, latest=1,
                                               where=FilterGroup([Filter("country", "eq", "FR", "column")])), now=NOW)
    assert (short.events, short.persons, [e.path for e in short.latest]) == (2, 1, ["/docs"])
    # The other project, on the same minutes, sees its own event only
    theirs = live.run(client, other, LiveRequest(), now=NOW)
    assert (theirs.events, [e.path for e in theirs.latest]) == (1, ["/other"])


def test_an_empty_window(client, journeys):
    result = live.run(client, journeys[0], LiveRequest(minutes=5), now=at("2026-11-20T00:00"))
    assert (result.events, result.persons, result.latest) == (0, 0, [])
    assert [p.events for p in result.series] == [0] * 5


@pytest.mark.parametrize(("body", "field"), [
    ({"minutes": 0}, "minutes"), ({"minutes": 1441}, "minutes"), ({"latest": 0}, "latest"), ({"latest": 101}, "latest"),
    ({"where": {"filters": [{"key": "country", "source": "columns"}]}}, "where.filters[0].source"),
    ({"date_range": {"date_from": "-1d"}}, "date_range"),
])
def test_bad_requests_name_their_field(body, field):
    with pytest.raises(InvalidRequest) as refused:
        registry.decode("live", body)
    assert refused.value.field == field, str(refused.value)
