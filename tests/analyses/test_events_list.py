"""The events list against pandas on generated data, paged to the end; paging while events arrive; ties at
one millisecond; projects apart; refusals."""

from __future__ import annotations

import base64
import json
import uuid

import pandas as pd
import pytest

from nexus.analyses import events, registry
from nexus.analyses.dates import DateRange
from nexus.analyses.events import EventsRequest
from nexus.analyses.filters import Filter, FilterGroup
from nexus.demo.load import load
from nexus.errors import InvalidRequest
from nexus.meta import projects
from tests.analyses.journeys import at, link, new_project
from tests.analyses.reference import events_frame, person_trait
from tests.analyses.typed_events import frame_with, insert, page
from tests.conftest import DEMO_END


def run(client, project_id, **kwargs):
    return events.run(client, project_id, EventsRequest(**kwargs), now=DEMO_END)


def every_page(client, project_id, **kwargs) -> list[events.EventsResult]:
    pages = [run(client, project_id, **kwargs)]
    while pages[-1].next_cursor is not None:
        pages.append(run(client, project_id, **kwargs, before=pages[-1].next_cursor))
    return pages


@pytest.fixture(scope="module")
def generated(client) -> int:
    project = projects.create(client, f"events-{uuid.uuid4().hex[:8]}").project_id
    load(client, project, 3000, seed=9, end=DEMO_END)
    return project


@pytest.fixture(scope="module")
def reference(client, generated) -> pd.DataFrame:
    persons = events_frame(client, generated)
    rows = frame_with(client, generated, persons, "ts, event, distinct_id, path, country, browser, os, device_type,"
                                                  " message_id, toJSONString(properties) AS properties")
    rows["plan"] = person_trait(client, generated, rows, "plan")
    return rows


@pytest.mark.parametrize(("kwargs", "chosen"), [
    ({}, lambda rows: rows),
    ({"event": "page_view", "where": FilterGroup([Filter("country", "eq", "US", "column")])},
     lambda rows: rows[(rows["event"] == "page_view") & (rows["country"] == "US")]),
    ({"where": FilterGroup([Filter("plan", "eq", "pro", "person")])}, lambda rows: rows[rows["plan"] == "pro"]),
])
def test_paging_to_the_end_lists_pandas_rows_newest_first(client, generated, reference, kwargs, chosen):
    pages = every_page(client, generated, date_range=DateRange("-5d"), limit=25, **kwargs)
    start, end = pd.Timestamp(pages[0].date_from), pd.Timestamp(pages[0].date_to)
    expected = chosen(reference[(reference["ts"] >= start) & (reference["ts"] < end)])
    expected = expected.sort_values(["ts", "message_id"], ascending=False)
    got = [row for p in pages for row in p.rows]
    assert len(expected) > 25 and len(pages) == -(-len(expected) // 25)
    assert all(len(p.rows) == 25 for p in pages[:-1]) and pages[-1].next_cursor is None
    assert [(pd.Timestamp(r.timestamp), r.event, r.distinct_id, r.person_id, r.path, r.country, r.browser, r.os,
             r.device_type, r.message_id, json.loads(r.properties)) for r in got] == [
        (r.ts, r.event, r.distinct_id, None if r.person == r.distinct_id else r.person, r.path, r.country, r.browser, r.os, r.device_type, r.message_id,
         json.loads(r.properties)) for r in expected.itertuples()]


def test_pages_stay_in_place_while_events_arrive(client):
    # Given five events, three of them at one millisecond, read two at a time
    project = new_project(client)
    same = "2026-10-30T12:00:00.123"
    insert(client, project, [page("a", "2026-10-30T11:00", "/1", message_id="m-a"),
                             page("a", same, "/2", message_id="m-b"), page("b", same, "/3", message_id="m-c"),
                             page("b", same, "/4", message_id="m-d"), page("c", "2026-10-30T13:00", "/5", message_id="m-e")])
    link(client, project, {"a": "00000000-0000-4000-8000-0000000000e1"})
    first = run(client, project, limit=2)
    assert [r.message_id for r in first.rows] == ["m-e", "m-d"]
    # When newer events arrive, and one at the cursor's own millisecond with a later message id
    insert(client, project, [page("d", "2026-10-30T14:00", "/6", message_id="m-f"),
                             page("d", same, "/7", message_id="m-z")])
    second = run(client, project, limit=2, before=first.next_cursor)
    third = run(client, project, limit=2, before=second.next_cursor)
    # Then the next pages continue after the last row read, nothing repeated, nothing skipped
    assert [r.message_id for r in second.rows + third.rows] == ["m-c", "m-b", "m-a"]
    assert third.next_cursor is None
    assert [(r.distinct_id, r.person_id) for r in second.rows + third.rows] == [
        ("b", None), ("a", "00000000-0000-4000-8000-0000000000e1"), ("a", "00000000-0000-4000-8000-0000000000e1")]
    # And a fresh first page shows the new events first
    assert [r.message_id for r in run(client, project, limit=3).rows] == ["m-f", "m-e", "m-z"]


def test_another_projects_events_never_appear(client, generated):
    mine = new_project(client)
    insert(client, mine, [page("x", "2026-10-31T23:59:59.999", "/mine", message_id="only-mine")])
    assert [r.message_id for r in run(client, mine).rows] == ["only-mine"]
    # A cursor is a place in the order, not a key to another project's rows
    theirs = run(client, generated, limit=1)
    assert "only-mine" not in {r.message_id for r in run(client, generated, limit=1000).rows}
    assert run(client, mine, before=theirs.next_cursor).rows == []


def cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(("body", "field"), [
    ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"before": "not a cursor!"}, "before"),
    ({"before": cursor({"ms": 1})}, "before"), ({"before": cursor([-1, "m"])}, "before"),
    ({"before": cursor([1, 2])}, "before"), ({"event": 3}, "event"),
    ({"date_range": {"date_from": "-7d", "date_to": "never"}}, "date_range.date_to"),
])
def test_bad_requests_name_their_field(client, generated, body, field):
    with pytest.raises(InvalidRequest) as refused:
        registry.run(client, generated, "events", registry.decode("events", body), now=DEMO_END)
    assert refused.value.field == field, str(refused.value)
