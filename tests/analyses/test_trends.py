"""Trends against pandas on demo data, rollup equals raw, and exact numbers on hand-written journeys."""

from __future__ import annotations

import re

import msgspec
import pandas as pd
import pytest

from nexus.analyses import trends
from nexus.analyses.breakdown import OTHER, Breakdown
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import Filter, FilterGroup
from nexus.analyses.trends import Series, TrendsRequest
from nexus.errors import InvalidRequest
from nexus.ingest import pipeline, wire
from tests.analyses.journeys import at, insert_events, link, new_project
from tests.analyses.reference import person_trait
from tests.conftest import DEMO_END


def run(client, project_id, **kwargs):
    return trends.run(client, project_id, TrendsRequest(**kwargs), now=DEMO_END)


def by_bucket(result, line=0):
    return dict(zip([pd.Timestamp(b) for b in result.buckets], result.lines[line].values))


def local_days(frame, tz, start, end):
    chosen = frame[(frame["ts"] >= start) & (frame["ts"] < end)]
    return chosen.assign(bucket=chosen["ts"].dt.tz_convert(tz).dt.normalize())


def test_daily_metrics_match_pandas_across_a_dst_change(client, demo, frame):
    # Given four weeks in Berlin, which leave summer time on 2026-10-25 (a 25-hour day)
    result = run(client, demo, timezone="Europe/Berlin", date_range=DateRange("-28d"), series=[
        Series("page_view"), Series("page_view", "persons_exact"), Series("purchase", "sum", "revenue"),
        Series("purchase", "p90", "revenue"), Series("purchase", "avg", "revenue"), Series(metric="sessions")])
    rows = local_days(frame, "Europe/Berlin", result.date_from, result.date_to)
    views, purchases = rows[rows["event"] == "page_view"], rows[rows["event"] == "purchase"]
    expected = [
        views.groupby("bucket").size(), views.groupby("bucket")["person"].nunique(),
        purchases.groupby("bucket")["revenue"].sum(), purchases.groupby("bucket")["revenue"].quantile(0.9),
        purchases.groupby("bucket")["revenue"].mean(),
        rows[rows["session_id"] != ""].groupby("bucket")["session_id"].nunique(),
    ]
    assert len(result.buckets) == 28 and result.source == "events"
    assert pd.Timestamp("2026-10-25", tz="Europe/Berlin") in by_bucket(result)
    for index, reference in enumerate(expected):
        got = by_bucket(result, index)
        for bucket, value in reference.items():
            assert got[bucket] == pytest.approx(value), (index, bucket)
        assert sum(v for v in got.values() if v is not None) == pytest.approx(reference.sum())
    assert result.lines[0].total == len(views)
    assert result.lines[1].total == views["person"].nunique()  # distinct over the range, not a sum


def test_breakdown_keeps_the_top_values_and_merges_the_rest_into_other(client, demo, frame):
    result = run(client, demo, timezone="UTC", date_range=DateRange("-14d"), series=[Series("page_view", "persons")],
                 breakdown=Breakdown("country", "column", limit=3))
    rows = local_days(frame, "UTC", result.date_from, result.date_to)
    views = rows[rows["event"] == "page_view"]
    top = views.groupby("country").size().sort_values(ascending=False).index[:3]
    assert [line.breakdown for line in result.lines] == [*top, OTHER]
    others = views[~views["country"].isin(top)]
    assert result.lines[-1].total == others["person"].nunique()  # a distinct count of the rest, not a sum
    for line in result.lines[:3]:
        subset = views[views["country"] == line.breakdown]
        assert line.total == subset["person"].nunique()
        assert line.values == [float(subset[subset["bucket"] == b]["person"].nunique()) for b in result.buckets]


def test_series_of_one_metric_read_together_count_each_event_in_every_series_it_matches(client, demo, frame):
    # Given series of one metric that overlap (the same event twice, once filtered; any event) and one of
    # another metric, broken down and compared with the week before
    series = [Series("page_view", "persons_exact"), Series("signup", "persons_exact"),
              Series("page_view", "persons_exact", where=FilterGroup([Filter("country", "eq", "US", "column")])),
              Series(metric="persons_exact"), Series("page_view")]
    result = run(client, demo, timezone="UTC", date_range=DateRange("-7d"), series=series,
                 breakdown=Breakdown("country", "column", limit=2), compare=True)
    now_from, now_to = pd.Timestamp(result.date_from), pd.Timestamp(result.date_to)
    before = pd.Timestamp(result.previous_buckets[0])
    matches = [frame["event"] == "page_view", frame["event"] == "signup",
               (frame["event"] == "page_view") & (frame["country"] == "US"), frame["event"] != "",
               frame["event"] == "page_view"]
    for index, matched in enumerate(matches):
        events = frame[matched]
        # each series' top countries by its events in the range (ties by name), for both periods
        per_country = local_days(events, "UTC", now_from, now_to).groupby("country").size()
        top = sorted(per_country.index, key=lambda c: (-per_country[c], c))[:2]
        for lines, buckets, lo, hi in ((result.lines, result.buckets, now_from, now_to),
                                       (result.previous, result.previous_buckets, before, now_from)):
            mine = [line for line in lines if line.series == index]
            assert [line.breakdown for line in mine][:2] == top, index
            rows = local_days(events, "UTC", lo, hi)
            for line in mine:
                subset = (rows[~rows["country"].isin(top)] if line.breakdown == OTHER
                          else rows[rows["country"] == line.breakdown])
                persons = index < 4  # the last series counts events
                per_day = subset.groupby("bucket")["person"].nunique() if persons else subset.groupby("bucket").size()
                assert line.values == [float(per_day.get(pd.Timestamp(b), 0)) for b in buckets], (index, line.breakdown)
                assert line.total == (subset["person"].nunique() if persons else len(subset)), (index, line.breakdown)


def test_person_property_breakdown_and_filter(client, demo, frame):
    result = run(client, demo, timezone="UTC", date_range=DateRange("-7d"), series=[Series("page_view")],
                 breakdown=Breakdown("plan", "person"), where=FilterGroup([Filter("plan", "is_set", source="person")]))
    rows = local_days(frame, "UTC", result.date_from, result.date_to)
    views = rows[rows["event"] == "page_view"]
    views = views.assign(plan=person_trait(client, demo, views, "plan"))
    expected = views[views["plan"] != ""].groupby("plan").size().to_dict()
    assert {line.breakdown: line.total for line in result.lines} == expected


def test_compare_gives_the_period_before_with_the_same_length(client, demo, frame):
    result = run(client, demo, timezone="UTC", date_range=DateRange("-7d"), series=[Series("signup")], compare=True)
    assert result.previous_buckets[0] == result.buckets[0] - pd.Timedelta(days=7)
    start = pd.Timestamp(result.previous_buckets[0])
    signups = frame[(frame["event"] == "signup") & (frame["ts"] >= start) & (frame["ts"] < result.date_from)]
    expected = signups.groupby(signups["ts"].dt.normalize()).size()
    assert result.previous[0].values == [float(expected.get(pd.Timestamp(b), 0)) for b in result.previous_buckets]


ROLLUP_CASES = {
    "UTC days": ({"timezone": "UTC", "date_range": DateRange("-28d")}, "events_hourly"),
    "Berlin hours over DST": ({"timezone": "Europe/Berlin", "interval": "hour",
                               "date_range": DateRange("2026-10-24", "2026-10-26")}, "events_hourly"),
    "New York weeks": ({"timezone": "America/New_York", "interval": "week", "date_range": DateRange("-5w")},
                       "events_hourly"),
    "months with compare": ({"timezone": "UTC", "interval": "month", "date_range": DateRange("-2m"), "compare": True},
                            "events_hourly"),
    "daily by country": ({"timezone": "UTC", "date_range": DateRange("-14d"),
                          "breakdown": Breakdown("utm_source", "column", 2),
                          "where": FilterGroup([Filter("country", "in", ["US", "DE", "IN"], "column"),
                                                Filter("browser", "neq", "Safari", "column")])}, "events_daily"),
}


@pytest.mark.parametrize("case", ROLLUP_CASES)
def test_rollup_equals_raw(client, demo, case):
    settings, table = ROLLUP_CASES[case]
    series = [Series("page_view"), Series("purchase", "sum", "revenue"), Series(metric="distinct_ids"),
              Series("signup", where=FilterGroup([Filter("event", "eq", "signup", "column")]))]
    rolled = run(client, demo, series=series, **settings)
    raw = run(client, demo, series=series, source="events", **settings)
    assert rolled.source == table and raw.source == "events"
    assert rolled.lines == raw.lines and rolled.previous == raw.previous
    assert sum(line.total for line in raw.lines) > 0


def test_revenue_sums_alike_from_the_rollups_and_raw_events_in_any_order(client):
    # Float addition depends on its order (0.1 + 0.2 + 0.3, and 1e16 - 1e16 + 1): the rollup adds per hour
    # and then the hours, raw events add in storage order (by id); sums must still agree to the last digit.
    project = new_project(client)
    insert_events(client, project, {
        "c": [("purchase", "2026-10-05T01:10", {"revenue": 0.1}), ("purchase", "2026-10-06T01:00", {"revenue": 1e16})],
        "b": [("purchase", "2026-10-05T02:20", {"revenue": 0.2}), ("purchase", "2026-10-06T02:00", {"revenue": -1e16})],
        "a": [("purchase", "2026-10-05T03:00", {"revenue": 0.3}), ("purchase", "2026-10-06T03:00", {"revenue": 1.0})],
    })
    settings = {"series": [Series("purchase", "sum", "revenue")], "timezone": "UTC",
                "date_range": DateRange("2026-10-05", "2026-10-06")}
    rolled, raw = run(client, project, **settings), run(client, project, source="events", **settings)
    assert rolled.source == "events_hourly"
    assert rolled.lines[0].values == raw.lines[0].values == [0.6, 1.0]
    assert rolled.lines[0].total == raw.lines[0].total == 1.6


@pytest.mark.parametrize("settings", [
    {"timezone": "Asia/Kolkata"},  # half-hour offset: days do not start on a UTC hour
    {"timezone": "UTC", "interval": "minute", "date_range": DateRange("-2h")},
    {"timezone": "UTC", "where": FilterGroup([Filter("plan", "eq", "pro")])},  # an event property
    {"timezone": "UTC", "date_range": DateRange("2026-10-20T10:30", "2026-10-25")},  # starts mid-hour
])
def test_questions_the_rollups_cannot_answer_read_raw_events(client, demo, settings):
    assert run(client, demo, series=[Series("page_view")], **settings).source == "events"
    with pytest.raises(InvalidRequest, match="rollups"):
        run(client, demo, series=[Series("page_view")], source="rollup", **settings)


def test_hour_buckets_on_the_long_dst_day_and_events_out_of_order(client):
    project = new_project(client, "Europe/Berlin")
    # 00:30 and 01:30 UTC are both 02:30 local on 2026-10-25: the repeated hour is two buckets.
    insert_events(client, project, {"u1": [("view", "2026-10-25T01:30"), ("view", "2026-10-25T00:30"),
                                           ("view", "2026-10-24T22:00"), ("view", "2026-10-25T22:59:59.999")]})
    hours = run(client, project, series=[Series("view")], interval="hour", date_range=DateRange("2026-10-25"))
    assert len(hours.buckets) == 25 and hours.timezone == "Europe/Berlin"  # the project's zone by default
    assert [b.isoformat() for b in hours.buckets[2:4]] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    assert hours.lines[0].values[:4] == [1, 0, 1, 1] and hours.lines[0].values[-1] == 1
    days = run(client, project, series=[Series("view")], date_range=DateRange("2026-10-24", "2026-10-26"))
    assert days.lines[0].values == [0, 4, 0]


def test_every_filter_operator_on_exact_journeys(client):
    project = new_project(client)
    insert_events(client, project, {
        "a": [("buy", "2026-10-01T10:00", {"plan": "pro", "revenue": 10, "tag": "Summer-Sale"})],
        "b": [("buy", "2026-10-01T11:00", {"plan": "team", "revenue": "25.5"}, {"country": "DE"})],
        "c": [("buy", "2026-10-01T12:00", {"plan": "free", "revenue": "n/a", "vip": True})],
        "d": [("buy", "2026-10-01T13:00", {})],
    })
    cases = [
        (Filter("plan", "eq", "pro"), 1), (Filter("plan", "neq", "pro"), 3), (Filter("tag", "contains", "sale"), 1),
        (Filter("tag", "not_contains", "sale"), 3), (Filter("plan", "regex", "^(pro|team)$"), 2),
        (Filter("plan", "not_regex", "^p"), 3), (Filter("revenue", "gt", 10), 1), (Filter("revenue", "gte", 10), 2),
        (Filter("revenue", "lt", 25.5), 1), (Filter("revenue", "lte", 100), 2), (Filter("revenue", "eq", 10), 1),
        (Filter("revenue", "is_set"), 3), (Filter("revenue", "is_not_set"), 1),
        (Filter("plan", "in", ["pro", "free"]), 2),
        (Filter("plan", "not_in", ["pro", "free"]), 2), (Filter("revenue", "in", [10, 25.5]), 2),
        (Filter("country", "eq", "DE", "column"), 1), (Filter("country", "is_not_set", source="column"), 3),
        (Filter("vip", "eq", True), 1), (Filter("plan", "eq", "pro' OR 1=1 --"), 0),
    ]
    for item, expected in cases:
        result = run(client, project, series=[Series("buy")], date_range=DateRange("2026-10-01"),
                     where=FilterGroup([item]))
        assert result.lines[0].total == expected, item
    either = FilterGroup([Filter("plan", "eq", "pro")], [FilterGroup([Filter("revenue", "gt", 20),
                                                                       Filter("country", "eq", "DE", "column")])],
                         match="any")
    assert run(client, project, series=[Series("buy")], date_range=DateRange("2026-10-01"),
               where=either).lines[0].total == 2


def test_unique_persons_follow_identities_and_empty_buckets(client):
    project = new_project(client)
    insert_events(client, project, {"anon-1": [("view", "2026-10-02T09:00")],
                                    "user-1": [("view", "2026-10-02T09:05"), ("view", "2026-10-03T09:05")],
                                    "anon-2": [("view", "2026-10-02T10:00")]})
    link(client, project, {"anon-1": "00000000-0000-4000-8000-000000000001",
                           "user-1": "00000000-0000-4000-8000-000000000001"})
    result = run(client, project, date_range=DateRange("2026-10-01", "2026-10-04"),
                 series=[Series("view", "persons"), Series("view", "distinct_ids"), Series("view", "avg", "price")])
    assert result.lines[0].values == [0, 2, 1, 0] and result.lines[0].total == 2
    assert result.lines[1].values == [0, 3, 1, 0] and result.lines[1].total == 3
    assert result.lines[2].values == [None] * 4 and result.lines[2].total is None


def test_an_empty_range_gives_zero_lines(client):
    project = new_project(client)
    result = run(client, project, series=[Series("view"), Series("view", "persons")], date_range=DateRange("-3d"),
                 breakdown=None)
    assert [line.values for line in result.lines] == [[0, 0, 0], [0, 0, 0]]
    assert result.date_from == at("2026-10-30T00:00") and result.date_to == at("2026-11-02T00:00")


@pytest.mark.parametrize("bad", [
    lambda: Filter("plan`; DROP TABLE events; --", "eq", "x"),
    lambda: Filter("ip", "eq", "1.2.3.4", "column"),
    lambda: Filter("revenue", "gt", "ten"),
    lambda: Filter("plan", "in", []),
    lambda: Series("purchase", "sum"),
    lambda: Series("purchase", "revenue_total", "revenue"),
    lambda: Breakdown("country", "column", limit=0),
    lambda: TrendsRequest(series=[]),
])
def test_invalid_requests_are_refused(bad):
    with pytest.raises(InvalidRequest):
        bad()


def test_explain_returns_the_sql_with_every_value_bound(client, demo):
    pro = FilterGroup([Filter("plan", "eq", "pro")])
    request = TrendsRequest(series=[Series("purchase", "sum", "revenue", where=pro)], timezone="UTC")
    sql, params = trends.explain(client, demo, request, now=DEMO_END)
    assert set(re.findall(r"'[^']*'", sql)) <= {"'UTC'", "''"}  # no literal but the column type's zone
    assert "purchase" in params.values() and ["pro"] in params.values()
    assert set(re.findall(r"\{(\w+):", sql)) == set(params)


def test_a_page_call_and_a_track_call_named_page_view_share_the_name_and_the_type_tells_them_apart(client):
    # Given what ingest stores for a Segment page call and for a track call named page_view
    received = at("2026-10-02T10:00")
    processed = pipeline.process(
        [wire.decode_message(msgspec.json.encode(body), i) for i, body in enumerate([
            {"type": "page", "anonymousId": "a", "name": "Home", "timestamp": "2026-10-02T10:00:00Z"},
            {"type": "track", "anonymousId": "b", "event": "page_view", "timestamp": "2026-10-02T10:00:00Z"}])],
        pipeline.Source(1, received), pipeline.Rules())
    stored = list(zip(processed.columns["event"], processed.columns["type"]))
    assert stored == [("page_view", "page"), ("page_view", "track")]
    project = new_project(client)
    insert_events(client, project, {distinct_id: [(event, "2026-10-02T10:00", {}, {"type": kind})]
                                    for distinct_id, (event, kind) in zip("ab", stored)})
    # When trends count page_view, then both count; filtered on the typed column, only the page call
    week = DateRange("2026-10-01", "2026-10-07")
    assert run(client, project, series=[Series("page_view")], date_range=week).lines[0].total == 2
    pages = FilterGroup([Filter("type", value="page", source="column")])
    assert run(client, project, series=[Series("page_view", where=pages)], date_range=week).lines[0].total == 1
