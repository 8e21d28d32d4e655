"""Sessions against pandas on demo data, and exact splits on hand-written journeys."""

from __future__ import annotations

import pandas as pd
import pytest

from nexus.analyses import sessions
from nexus.analyses.breakdown import OTHER, Breakdown
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import Filter, FilterGroup
from nexus.analyses.sessions import SessionsRequest
from nexus.errors import InvalidRequest
from tests.analyses.journeys import insert_events, link, new_project
from tests.conftest import DEMO_END


def run(client, project_id, **kwargs):
    return sessions.run(client, project_id, SessionsRequest(**kwargs), now=DEMO_END)


def reference_sessions(frame, start, end, gap_minutes=30) -> pd.DataFrame:
    """One row per session, by the definition, with pandas groupby/diff/cumsum."""
    rows = frame[(frame["ts"] >= start) & (frame["ts"] < end)].sort_values(["person", "ts"], kind="stable")
    new = rows.groupby("person")["ts"].diff().gt(pd.Timedelta(minutes=gap_minutes)) | ~rows["person"].duplicated()
    rows = rows.assign(session=new.cumsum(), page=rows["type"].isin(["page", "screen"]))
    pages = rows[rows["page"]]
    grouped = rows.groupby("session")
    return pd.DataFrame({
        "start": grouped["ts"].min(), "duration": (grouped["ts"].max() - grouped["ts"].min()).dt.total_seconds(),
        "events": grouped.size(), "pages": grouped["page"].sum(),
        "entry": pages.groupby("session")["path"].first(), "exit": pages.groupby("session")["path"].last(),
        "utm_source": grouped["utm_source"].first(), "country": grouped["country"].first(),
    }).fillna({"entry": "", "exit": ""})


def test_daily_sessions_match_pandas_in_a_dst_zone(client, demo, frame):
    result = run(client, demo, timezone="Europe/Berlin", date_range=DateRange("2026-10-20", "2026-10-27"))
    expected = reference_sessions(frame, pd.Timestamp(result.date_from), pd.Timestamp(result.date_to))
    expected["bucket"] = expected["start"].dt.tz_convert("Europe/Berlin").dt.normalize()
    line = result.lines[0]
    for i, bucket in enumerate(result.buckets):
        day = expected[expected["bucket"] == pd.Timestamp(bucket)]
        assert line.sessions[i] == len(day) > 0
        assert line.avg_duration[i] == pytest.approx(day["duration"].mean())
        assert line.median_duration[i] == pytest.approx(day["duration"].median())
        assert line.pages_per_session[i] == pytest.approx(day["pages"].mean())
        assert line.bounce_rate[i] == pytest.approx(((day["events"] == 1) & (day["pages"] == 1)).mean())
    assert line.total["sessions"] == len(expected)
    assert line.total["median_duration"] == pytest.approx(expected["duration"].median())
    entries = expected[expected["entry"] != ""]["entry"].value_counts()
    by_count = sorted(entries.items(), key=lambda i: (-i[1], i[0]))[:10]
    assert [(p.path, p.sessions) for p in result.entry_pages] == by_count
    exits = expected[expected["exit"] != ""]["exit"].value_counts()
    assert [(p.path, p.sessions) for p in result.exit_pages] == sorted(exits.items(), key=lambda i: (-i[1], i[0]))[:10]


def test_breakdown_and_filters_apply_to_the_first_event(client, demo, frame):
    result = run(client, demo, timezone="UTC", date_range=DateRange("-7d"), gap_minutes=10,
                 breakdown=Breakdown("utm_source", "column", limit=2),
                 where=FilterGroup([Filter("country", "neq", "US", "column")]))
    expected = reference_sessions(frame, pd.Timestamp(result.date_from), pd.Timestamp(result.date_to), 10)
    expected = expected[expected["country"] != "US"]
    counts = expected["utm_source"].value_counts()
    top = sorted(counts.index, key=lambda v: (-counts[v], v))[:2]
    got = {line.breakdown: line.total["sessions"] for line in result.lines}
    assert got == {**{v: counts[v] for v in top}, OTHER: counts.drop(top).sum()}


def test_gaps_split_strictly_after_the_limit_and_identify_does_not_split(client):
    project = new_project(client)
    person = "00000000-0000-4000-8000-0000000000c1"
    insert_events(client, project, {
        "anon": [("page_view", "2026-10-02T10:00", {}, {"path": "/"}), ("signup", "2026-10-02T10:30")],
        "user": [("page_view", "2026-10-02T11:00:00.001", {}, {"path": "/app"}),
                 ("page_view", "2026-10-02T11:00:00.001", {}, {"path": "/app"})],
        "bouncer": [("page_view", "2026-10-02T12:00", {}, {"path": "/pricing"})],
        "late": [("page_view", "2026-10-02T23:50", {}, {"path": "/late"}),
                 ("page_view", "2026-10-03T00:10", {}, {"path": "/x"})],
    })
    link(client, project, {"anon": person, "user": person})
    result = run(client, project, date_range=DateRange("2026-10-02"))
    line = result.lines[0]
    # anon 10:00 → 10:30 is one session (a gap of exactly 30 minutes), 11:00:00.001 starts another;
    # the late visitor's session is cut at the range end.
    assert line.sessions == [4]
    assert line.total["avg_duration"] == pytest.approx((1800 + 0 + 0 + 0) / 4)
    assert line.bounce_rate == [0.5]  # the bouncer and the cut late session
    assert [(p.path, p.sessions) for p in result.entry_pages] == [("/", 1), ("/app", 1), ("/late", 1), ("/pricing", 1)]
    assert [(p.path, p.sessions) for p in result.exit_pages][0] == ("/", 1)
    hours = run(client, project, date_range=DateRange("2026-10-02"), gap_minutes=60)
    assert hours.lines[0].sessions == [3] and hours.lines[0].pages_per_session == [pytest.approx(5 / 3)]


def test_an_empty_range_and_bad_gaps(client):
    result = run(client, new_project(client), date_range=DateRange("-2d"))
    assert result.lines[0].sessions == [0, 0] and result.lines[0].avg_duration == [None, None]
    assert result.entry_pages == []
    with pytest.raises(InvalidRequest):
        SessionsRequest(gap_minutes=0)
