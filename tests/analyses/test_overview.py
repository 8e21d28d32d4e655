"""Overview against pandas on demo data (KPIs, sparklines, sessions, top lists), the filter each top list
names, the sessions analysis' own numbers, exact numbers on hand-written journeys, and refusals."""

from __future__ import annotations

import pandas as pd
import pytest

from nexus.analyses import overview, registry, sessions
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import Filter, FilterGroup
from nexus.analyses.overview import OverviewRequest
from nexus.analyses.sessions import SessionsRequest
from nexus.errors import InvalidRequest
from tests.analyses.journeys import link, new_project
from tests.analyses.typed_events import frame_with, insert, page
from tests.conftest import DEMO_END

BERLIN_WEEK = DateRange("2026-10-20", "2026-10-26")  # Berlin leaves summer time on 2026-10-25
LISTED = {"events": "event", "pages": "path", "referrers": "referrer_domain", "countries": "country",
          "browsers": "browser", "os": "os", "devices": "device_type"}


def run(client, project_id, **kwargs):
    return overview.run(client, project_id, OverviewRequest(**kwargs), now=DEMO_END)


@pytest.fixture(scope="module")
def wide(client, demo, frame) -> pd.DataFrame:
    """The demo's events with every column the overview reads; persons as the shared reference resolved them."""
    events = frame_with(client, demo, frame, "ts, event, type, distinct_id, path, referrer_domain, referrer_class,"
                        " country, browser, os, device_type, toString(properties.revenue) AS revenue")
    events["revenue"] = pd.to_numeric(events["revenue"], errors="coerce").fillna(0.0)
    return events.sort_values(["person", "ts"], kind="stable").reset_index(drop=True)


def within(rows: pd.DataFrame, start, end) -> pd.DataFrame:
    return rows[(rows["ts"] >= pd.Timestamp(start)) & (rows["ts"] < pd.Timestamp(end))]


def reference_sessions(rows: pd.DataFrame, passes: pd.Series) -> pd.DataFrame:
    """One row per session of `rows` (one period's events), by the definition, with pandas diff/cumsum."""
    rows = rows.assign(passes=passes.loc[rows.index], page=rows["type"].isin(["page", "screen"]))
    new = rows.groupby("person")["ts"].diff().gt(pd.Timedelta(minutes=30)) | ~rows["person"].duplicated()
    rows = rows.assign(session=new.cumsum())
    grouped = rows.groupby("session")
    return pd.DataFrame({
        "person": grouped["person"].first(), "start": grouped["ts"].min(), "passes": grouped["passes"].first(),
        "duration": (grouped["ts"].max() - grouped["ts"].min()).dt.total_seconds(),
        "bounce": (grouped.size() == 1) & grouped["page"].first(),
        "entry": rows[rows["page"]].groupby("session")["path"].first(),
    }).fillna({"entry": ""})


def expected_kpis(rows: pd.DataFrame, passes: pd.Series) -> dict[str, float | None]:
    chosen = rows[passes.loc[rows.index]]
    found = reference_sessions(rows, passes)
    found = found[found["passes"]]
    return {"events": len(chosen), "persons": chosen["person"].nunique(), "sessions": len(found),
            "bounce_rate": found["bounce"].mean() if len(found) else None,
            "avg_session_duration": found["duration"].mean() if len(found) else None,
            "revenue": chosen["revenue"].sum()}


def kpis(result) -> dict[str, overview.Kpi]:
    return {kpi.name: kpi for kpi in result.kpis}


@pytest.mark.parametrize("where", [None, FilterGroup([Filter("event", "eq", "page_view", "column")])])
def test_kpis_and_sparklines_match_pandas_in_a_dst_zone(client, demo, wide, where):
    # Given a week in Berlin across the fall-back change; filtered to page views, a session counts when
    # its first event is one (the sessions analysis' rule)
    result = run(client, demo, date_range=BERLIN_WEEK, timezone="Europe/Berlin", where=where)
    passes = wide["event"] == "page_view" if where else pd.Series(True, index=wide.index)
    current = within(wide, result.date_from, result.date_to)
    previous = within(wide, result.previous_range.date_from, result.previous_range.date_to)
    # Then the period before is the 7 local days before, and every number matches pandas'
    assert (result.previous_range.date_from, result.previous_range.date_to) == (
        pd.Timestamp("2026-10-13", tz="Europe/Berlin"), result.date_from)
    now, before, got = expected_kpis(current, passes), expected_kpis(previous, passes), kpis(result)
    assert list(got) == list(overview.KPIS)
    for name in overview.KPIS:
        assert got[name].value == pytest.approx(now[name]), name
        assert got[name].previous == pytest.approx(before[name]), name
        change = (now[name] - before[name]) / before[name] if before[name] else None  # page views earn no revenue
        assert got[name].change == pytest.approx(change), name
    # And each sparkline has the week's 7 local days, the 25-hour day among them
    days = current.assign(day=current["ts"].dt.tz_convert("Europe/Berlin").dt.normalize())
    assert [pd.Timestamp(p.t) for p in got["events"].series] == list(pd.date_range(
        "2026-10-20", periods=7, tz="Europe/Berlin"))
    for i, point in enumerate(got["events"].series):
        expected = expected_kpis(days[days["day"] == pd.Timestamp(point.t)], passes)
        assert point.value == expected["events"] > 0
        assert got["persons"].series[i].value == expected["persons"]
        assert got["revenue"].series[i].value == pytest.approx(expected["revenue"])
    sessions_by_day = reference_sessions(current, passes)
    sessions_by_day = sessions_by_day[sessions_by_day["passes"]]
    sessions_by_day = sessions_by_day.groupby(sessions_by_day["start"].dt.tz_convert("Europe/Berlin").dt.normalize())
    assert [p.value for p in got["sessions"].series] == [sessions_by_day.size()[pd.Timestamp(p.t)]
                                                         for p in got["sessions"].series]
    assert [p.value for p in got["bounce_rate"].series] == pytest.approx(
        [sessions_by_day["bounce"].mean()[pd.Timestamp(p.t)] for p in got["bounce_rate"].series])
    assert [p.value for p in got["avg_session_duration"].series] == pytest.approx(
        [sessions_by_day["duration"].mean()[pd.Timestamp(p.t)] for p in got["avg_session_duration"].series])


def expected_list(rows: pd.DataFrame, column: str, top: int) -> list[tuple[str, int, int]]:
    counts = rows.groupby(column).agg(events=("person", "size"), persons=("person", "nunique"))
    ranked = sorted(((str(v), int(r.events), int(r.persons)) for v, r in counts.iterrows()), key=lambda r: (-r[2], r[0]))
    return ranked[:top]


def test_top_lists_match_pandas(client, demo, wide):
    where = FilterGroup([Filter("country", "neq", "US", "column")])
    result = run(client, demo, date_range=DateRange("-14d"), timezone="UTC", where=where, top=4)
    rows = within(wide, result.date_from, result.date_to)
    rows = rows[rows["country"] != "US"]
    lists = {top.dimension: top for top in result.top}
    assert list(lists) == [d.name for d in overview.DIMENSIONS]
    for name, column in LISTED.items():
        chosen = rows[rows["path"] != ""] if name == "pages" else rows
        chosen = chosen[chosen["referrer_class"] != "internal"] if name == "referrers" else chosen
        assert [(r.value, r.events, r.persons) for r in lists[name].rows] == expected_list(chosen, column, 4), name
        assert lists[name].filter == overview.FilterTarget(column, "column")
    # Entry pages: each passing session's first page view, over the range's own sessions
    found = reference_sessions(rows, pd.Series(True, index=rows.index))
    found = found[found["entry"] != ""]
    entries = found.groupby("entry").agg(events=("person", "size"), persons=("person", "nunique"))
    expected = sorted(((p, int(r.events), int(r.persons)) for p, r in entries.iterrows()), key=lambda r: (-r[2], r[0]))
    assert [(r.value, r.events, r.persons) for r in lists["entry_pages"].rows] == expected[:4]
    assert lists["entry_pages"].filter == overview.FilterTarget("path", "column")
    # The direct row is labelled, and still filters by its value ''
    direct = [row for row in lists["referrers"].rows if row.value == ""]
    assert [row.label for row in direct] == ["(direct)"]


def test_clicking_a_row_gives_an_overview_of_that_rows_events_and_persons(client, demo):
    # Given an overview already filtered, and each list's first row (and the last of two)
    where = FilterGroup([Filter("device_type", "neq", "tablet", "column")])
    result = run(client, demo, date_range=DateRange("-7d"), where=where, top=3)
    for top in result.top:
        if top.dimension == "entry_pages":
            continue
        for row in (top.rows[0], top.rows[-1]) if top.dimension in ("referrers", "pages") else top.rows[:1]:
            # When the row's filter is added to the overview's
            clicked = FilterGroup([*where.filters, Filter(top.filter.key, "eq", row.value, top.filter.source)])
            narrowed = kpis(run(client, demo, date_range=DateRange("-7d"), where=clicked))
            # Then the overview counts the row's events and persons
            assert (narrowed["events"].value, narrowed["persons"].value) == (row.events, row.persons), top.dimension


def test_sessions_and_entry_pages_equal_the_sessions_analysis(client, demo):
    where = FilterGroup([Filter("event", "eq", "page_view", "column")])
    result = run(client, demo, date_range=DateRange("-14d"), timezone="America/New_York", where=where)
    got = kpis(result)
    for period, date_range in (("value", DateRange("-14d")), ("previous", DateRange(
            result.previous_range.date_from.isoformat(), result.previous_range.date_to.isoformat()))):
        answer = sessions.run(client, demo, SessionsRequest(date_range=date_range, timezone="America/New_York",
                                                            where=where), now=DEMO_END)
        total = answer.lines[0].total
        assert getattr(got["sessions"], period) == total["sessions"]
        assert getattr(got["bounce_rate"], period) == pytest.approx(total["bounce_rate"])
        assert getattr(got["avg_session_duration"], period) == pytest.approx(total["avg_duration"])
        if period == "value":
            assert [p.value for p in got["sessions"].series] == answer.lines[0].sessions
            entries = [(r.value, r.events) for r in result.top[2].rows]
            assert sorted(entries) == sorted((p.path, p.sessions) for p in answer.entry_pages)


@pytest.fixture(scope="module")
def journeys(client) -> int:
    project = new_project(client)
    insert(client, project, [
        # anon (then u1, the same person): lands from google, reads two pages, signs up, buys twice
        page("anon", "2026-10-30T10:00", "/", referrer_domain="google.com", referrer_class="search", country="DE"),
        page("anon", "2026-10-30T10:10", "/pricing", referrer_domain="shop.test", referrer_class="internal",
             country="DE"),
        {"distinct_id": "u1", "ts": "2026-10-30T10:20", "event": "purchase", "path": "/checkout",
         "properties": {"revenue": 0.1}, "country": "DE"},
        {"distinct_id": "u1", "ts": "2026-10-30T11:00", "event": "purchase", "properties": {"revenue": 0.2}},
        # bouncer: one page view, direct
        page("bouncer", "2026-10-31T09:00", "/blog", country="FR"),
        # earlier: one visit in the period before
        page("old", "2026-10-27T12:00", "/", country="FR"),
    ])
    link(client, project, {"anon": "00000000-0000-4000-8000-00000000000a", "u1": "00000000-0000-4000-8000-00000000000a"})
    return project


def test_exact_numbers_on_journeys(client, journeys):
    result = run(client, journeys, date_range=DateRange("2026-10-30", "2026-10-31"), timezone="UTC")
    got = kpis(result)
    assert {name: (k.value, k.previous, k.change) for name, k in got.items()} == {
        "events": (5, 0, None), "persons": (2, 0, None),
        # anon/u1: 10:00 → 10:20 is one session, 11:00 (40 minutes later) another; the bouncer's one
        "sessions": (3, 0, None), "bounce_rate": (pytest.approx(1 / 3), None, None),
        "avg_session_duration": (pytest.approx(1200 / 3), None, None),
        "revenue": (0.3, 0, None)}  # 0.1 + 0.2 added exactly (as floats: 0.30000000000000004)
    assert [(p.t.day, p.value) for p in got["revenue"].series] == [(30, 0.3), (31, 0)]
    assert [p.value for p in got["avg_session_duration"].series] == [pytest.approx(600), 0]
    lists = {top.dimension: [(r.label, r.value, r.events, r.persons) for r in top.rows] for top in result.top}
    assert lists["referrers"] == [("(direct)", "", 3, 2), ("google.com", "google.com", 1, 1)]  # internal left out
    assert lists["pages"] == [("/", "/", 1, 1), ("/blog", "/blog", 1, 1), ("/checkout", "/checkout", 1, 1),
                              ("/pricing", "/pricing", 1, 1)]
    assert lists["entry_pages"] == [("/", "/", 1, 1), ("/blog", "/blog", 1, 1)]  # the 11:00 session has no page
    assert lists["countries"] == [("(none)", "", 1, 1), ("DE", "DE", 3, 1), ("FR", "FR", 1, 1)]
    # Top lists are cut to `top` rows, and nothing else is
    one = run(client, journeys, date_range=DateRange("2026-10-30", "2026-10-31"), timezone="UTC", top=1)
    assert one.kpis == result.kpis and [len(top.rows) for top in one.top] == [1] * len(overview.DIMENSIONS)
    assert [(top.rows[0].value, top.rows[0].events) for top in one.top][:4] == [
        ("page_view", 3), ("/", 1), ("/", 1), ("", 3)]
    # A range without sessions has no averages, and the period before it had some
    later = kpis(run(client, journeys, date_range=DateRange("2026-11-01")))
    assert (later["bounce_rate"].value, later["bounce_rate"].previous) == (None, 1.0)
    assert later["events"].change == -1.0 and later["events"].series[0].value == 0


def test_another_projects_events_never_appear(client, demo, journeys):
    # Given the demo project and the journeys project in the same store, on the same days
    mine = run(client, journeys, date_range=DateRange("-7d"))
    theirs = run(client, demo, date_range=DateRange("-7d"))
    # Then each counts its own events only
    assert kpis(mine)["events"].value == 6 and kpis(theirs)["events"].value > 1000
    assert {r.value for r in mine.top[0].rows} == {"page_view", "purchase"}
    assert "/blog" not in {r.value for r in theirs.top[1].rows} and "google.com" not in {r.value for r in theirs.top[3].rows}


@pytest.mark.parametrize(("body", "field"), [
    ({"top": 0}, "top"), ({"top": 101}, "top"), ({"interval": "fortnight"}, "interval"),
    ({"interval": "minute", "date_range": {"date_from": "-30d"}}, "interval"),
    ({"date_range": {"date_from": "soon"}}, "date_range.date_from"), ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"where": {"filters": [{"key": "bad key"}]}}, "where.filters[0]"), ({"breakdown": {"key": "x"}}, "breakdown"),
])
def test_bad_requests_name_their_field(client, journeys, body, field):
    with pytest.raises(InvalidRequest) as refused:
        registry.run(client, journeys, "overview", registry.decode("overview", body), now=DEMO_END)
    assert refused.value.field == field, str(refused.value)
