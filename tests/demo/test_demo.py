"""Demo data has the shape it promises, checked with pandas on the stored rows; rollups equal raw."""

from __future__ import annotations

import json
from decimal import Decimal

import pandas as pd
import pytest

from nexus.demo.generator import generate
from nexus.demo.load import load
from nexus.errors import InvalidRequest
from nexus.meta import projects
from tests.conftest import DEMO_END

EVENTS = 60_000
FUNNEL = ["page_view", "signup", "add_to_cart", "purchase"]


@pytest.fixture(scope="module")
def project(client):
    created = projects.create(client, "demo-test")
    assert load(client, created.project_id, EVENTS, seed=7, end=DEMO_END) == EVENTS
    return created


@pytest.fixture(scope="module")
def events(client, project) -> pd.DataFrame:
    frame = client.query_df(
        "SELECT e.*, i.person_id AS person FROM events AS e "
        "LEFT JOIN (SELECT distinct_id, person_id FROM identities FINAL WHERE project_id = {p:UInt32}) AS i "
        "USING distinct_id WHERE e.project_id = {p:UInt32}",
        parameters={"p": project.project_id},
    )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.sort_values(["anonymous_id", "ts", "message_id"]).reset_index(drop=True)


def test_the_same_seed_gives_the_same_events_and_another_seed_others():
    first = next(generate(1, 5_000, seed=3, end=DEMO_END)).events
    again = next(generate(1, 5_000, seed=3, end=DEMO_END)).events
    other = next(generate(1, 5_000, seed=4, end=DEMO_END)).events
    assert first.equals(again) and not first.equals(other)
    assert first.num_rows == 5_000


def test_exactly_the_asked_number_of_events_lands_before_the_end(events):
    assert len(events) == EVENTS
    assert events["message_id"].is_unique
    assert events["ts"].max() < pd.Timestamp(DEMO_END)
    assert events["ts"].min() >= pd.Timestamp(DEMO_END) - pd.Timedelta(weeks=8)


def test_every_id_resolves_to_a_person_and_signups_merge_two_ids(events):
    assert events["person"].notna().all()
    signed_up = events.loc[events["event"] == "signup", "person"]
    ids_per_person = events[events["person"].isin(signed_up)].groupby("person")["distinct_id"].nunique()
    assert (ids_per_person == 2).all()


def test_the_funnel_drops_off_at_every_step(events):
    # Reference: per person, the deepest step reached in order (each step after the previous one), in one
    # pass over all events in time order (a pandas sort per person took half a minute).
    deepest = {}
    ordered = events.sort_values(["person", "ts"], kind="stable")
    for person, name in zip(ordered["person"].tolist(), ordered["event"].tolist()):
        step = deepest.get(person, 0)
        if step < len(FUNNEL) and name == FUNNEL[step]:
            step += 1
        deepest[person] = step
    reached = [sum(1 for d in deepest.values() if d > k) for k in range(len(FUNNEL))]
    assert reached[0] > reached[1] > reached[2] > reached[3] > 0, reached
    assert 0.3 < reached[1] / reached[0] < 0.55  # roughly 42% of visitors sign up
    assert 0.3 < reached[3] / reached[2] < 0.95


def test_retention_decays_with_days_since_signup(events):
    signups = events[events["event"] == "signup"].set_index("person")["ts"].dt.floor("D")
    active = events[events["person"].isin(signups.index)].assign(day=lambda f: f["ts"].dt.floor("D"))
    active["k"] = (active["day"] - active["person"].map(signups)).dt.days
    last_day = pd.Timestamp(DEMO_END) - pd.Timedelta(days=1)

    def share(k: int) -> float:
        eligible = signups[signups + pd.Timedelta(days=k) <= last_day].index
        returned = active[(active["k"] == k) & active["person"].isin(eligible)]["person"].nunique()
        return returned / len(eligible)

    curve = [share(k) for k in (1, 3, 7, 14, 21)]
    assert all(a > b for a, b in zip(curve, curve[1:])), curve
    assert curve[0] > 3 * curve[-1]


def test_sessions_split_exactly_at_thirty_minute_gaps(events):
    gap = events.groupby("anonymous_id")["ts"].diff()
    new_session = events["session_id"] != events.groupby("anonymous_id")["session_id"].shift()
    starts_after_gap = gap.isna() | (gap > pd.Timedelta(minutes=30))
    assert (new_session == starts_after_gap).all()
    assert events["session_id"].nunique() > events["anonymous_id"].nunique()


def test_campaigns_mark_landing_pages_and_revenue_marks_purchases(events):
    tagged = events[events["utm_source"] != ""]
    assert set(tagged["event"]) == {"page_view"}
    assert tagged.apply(lambda r: f"utm_source={r.utm_source}" in r.url, axis=1).all()
    assert set(tagged["utm_source"]) == {"google", "facebook", "twitter", "newsletter"}
    revenue = events["properties"].map(lambda p: (p if isinstance(p, dict) else json.loads(p)).get("revenue"))
    assert (revenue.notna() == (events["event"] == "purchase")).all()
    assert (revenue.dropna().astype(float) > 0).all()


def test_visitors_vary_in_browser_os_country_and_plan(events):
    assert events["browser"].nunique() >= 5 and events["os"].nunique() >= 4
    assert events["country"].nunique() >= 8 and set(events["device_type"]) == {"desktop", "mobile", "tablet"}
    plans = events[events["event"] == "signup"]["properties"].map(lambda p: p["plan"])
    assert set(plans) == {"free", "pro", "team"}


def test_hourly_rollup_equals_raw(client, project, events):
    rollup = client.query_df(
        "SELECT hour, event, sum(events) AS events, sum(revenue) AS revenue FROM events_hourly "
        "WHERE project_id = {p:UInt32} GROUP BY hour, event ORDER BY hour, event",
        parameters={"p": project.project_id},
    )
    raw = events.assign(hour=events["ts"].dt.floor("h").dt.tz_localize(None),
                        revenue=events["properties"].map(lambda p: Decimal(str(p.get("revenue", 0)))))
    expected = raw.groupby(["hour", "event"], as_index=False).agg(events=("ts", "size"), revenue=("revenue", "sum"))
    rollup["hour"] = pd.to_datetime(rollup["hour"]).dt.tz_localize(None)
    merged = expected.merge(rollup, on=["hour", "event"], how="outer", suffixes=("", "_rollup"))
    assert len(merged) == len(expected) == len(rollup)
    assert (merged["events"] == merged["events_rollup"]).all()
    assert (merged["revenue"] == merged["revenue_rollup"]).all()  # Decimal sums: exact


def test_daily_rollup_distinct_ids_equal_raw(client, project, events):
    rollup = dict(client.query(
        "SELECT day, uniqMerge(distinct_ids) FROM events_daily WHERE project_id = {p:UInt32} GROUP BY day",
        parameters={"p": project.project_id},
    ).result_rows)
    expected = events.groupby(events["ts"].dt.date)["distinct_id"].nunique().to_dict()
    # uniq() counts exactly below 65,536 values per state: daily ids here are far fewer.
    assert rollup == expected


def test_sessions_rollup_equals_raw(client, project, events):
    rollup = client.query_df(
        "SELECT session_id, min(started_at) AS started_at, max(ended_at) AS ended_at, sum(events) AS events, "
        "sum(pageviews) AS pageviews, argMinMerge(entry_url) AS entry_url, argMaxMerge(exit_url) AS exit_url "
        "FROM sessions WHERE project_id = {p:UInt32} GROUP BY session_id",
        parameters={"p": project.project_id},
    ).set_index("session_id").sort_index()
    views = events[events["type"] == "page"]
    expected = pd.DataFrame({
        "started_at": events.groupby("session_id")["ts"].min(),
        "ended_at": events.groupby("session_id")["ts"].max(),
        "events": events.groupby("session_id").size(),
        "pageviews": views.groupby("session_id").size(),
        "entry_url": views.sort_values("ts").groupby("session_id")["url"].first(),
        "exit_url": views.sort_values("ts").groupby("session_id")["url"].last(),
    }).fillna({"pageviews": 0, "entry_url": "", "exit_url": ""}).sort_index()
    assert list(rollup.index) == list(expected.index)
    for column in ("events", "pageviews"):
        assert (rollup[column].astype(int) == expected[column].astype(int)).all(), column
    for column in ("started_at", "ended_at"):
        assert (pd.to_datetime(rollup[column], utc=True) == expected[column]).all(), column
    assert (rollup["entry_url"] == expected["entry_url"]).all()
    assert (rollup["exit_url"] == expected["exit_url"]).all()


def test_a_project_with_events_is_refused(client, project):
    with pytest.raises(InvalidRequest, match="already has 60000 events"):
        load(client, project.project_id, 10, end=DEMO_END)
