"""Features as of a cutoff: the SQL equals a pandas computation of the documented definitions on demo data,
hand-written journeys give exact answers, and nothing at or after the cutoff changes any feature."""

from __future__ import annotations

import zlib
from datetime import timedelta

import pandas as pd
import pytest

from nexus.demo.load import load
from nexus.predict import features
from tests.analyses.journeys import at, insert_events, link, new_project
from tests.conftest import DEMO_END
from tests.predict import reference


@pytest.mark.parametrize("days_before_end", [3, 20])
def test_features_equal_the_pandas_reference_on_demo_data(client, demo_project: int, days_before_end: int) -> None:
    cutoff = DEMO_END - timedelta(days=days_before_end)
    found = features.extract(client, demo_project, cutoff).set_index("person_id")
    expected = reference.features(reference.rows(client, demo_project), cutoff)
    assert len(found) > 1000
    assert sorted(found.index) == sorted(expected.index)
    expected = expected.loc[found.index].set_axis(found.index)
    pd.testing.assert_frame_equal(found[features.NUMERIC], expected[features.NUMERIC], rtol=1e-9, atol=1e-9)
    for column in features.CATEGORICAL:
        assert (found[column] == expected[column]).all(), column


def test_a_journey_through_an_identity_merge(client) -> None:
    # Given an anonymous visit from a campaign, a signup that links the user id to the same person, and a
    # purchase; cutoff 2026-10-31 00:00.
    project = new_project(client)
    person = "9c5f4a7e-0000-4000-8000-000000000001"
    link(client, project, {"anon-1": person, "user-1": person})
    insert_events(client, project, {
        "anon-1": [("page_view", "2026-10-01T10:00", {}, {"utm_source": "google", "country": "FR"}),
                   ("page_view", "2026-10-01T10:20")],
        "user-1": [("signup", "2026-10-01T10:40", {"plan": "free"}, {"country": "DE"}),
                   ("page_view", "2026-10-25T09:00", {}, {"country": "DE"}),
                   ("purchase", "2026-10-25T09:10", {"plan": "pro", "revenue": 49}, {"country": "DE"}),
                   ("page_view", "2026-10-30T12:00", {}, {"country": "GB"})],
        "other": [("page_view", "2026-10-31T00:00")],  # at the cutoff: not before it, so no row
        # two events in the same millisecond: the latest country is the one with the larger CRC-32
        "tied": [("page_view", "2026-10-20T08:00", {}, {"country": "DE"}),
                 ("page_view", "2026-10-20T08:00", {}, {"country": "FR"})],
    })
    # When
    found = features.extract(client, project, at("2026-10-31T00:00")).set_index("person_id")
    # Then one person through both ids, and the tied one
    assert sorted(found.index) == sorted([person, "tied"])
    assert found.loc["tied", "country"] == max(["DE", "FR"], key=lambda c: zlib.crc32(c.encode()))
    row = found.loc[person]
    assert row["days_since_last"] == 0.5
    assert row["tenure_days"] == pytest.approx(29 + 14 / 24)
    assert (row["events_7d"], row["events_30d"], row["events_90d"]) == (3, 6, 6)
    assert (row["active_days_7d"], row["active_days_30d"], row["active_days_total"]) == (2, 3, 3)
    assert row["events_per_active_day_30d"] == 2
    # sessions: 10:00–10:40 (two 20-minute gaps), 25th 09:00–09:10, 30th 12:00
    assert (row["sessions_30d"], row["sessions_90d"]) == (3, 3)
    assert row["session_minutes_90d"] == pytest.approx((40 + 10 + 0) / 3)
    assert row["distinct_events_90d"] == 3
    assert row["trend_14d"] == 1.0  # 3 events in days 0–13, none in 14–27
    assert (row["revenue_90d"], row["revenue_total"], row["purchases_90d"]) == (49, 49, 1)
    assert (row["channel"], row["country"], row["plan"]) == ("google", "GB", "pro")


def test_nothing_at_or_after_the_cutoff_changes_any_feature(client) -> None:
    # Given a small demo project of its own and its features ten days before the data ends
    project = new_project(client)
    load(client, project, 8_000, seed=5, end=DEMO_END)
    cutoff = DEMO_END - timedelta(days=10)
    before = features.extract(client, project, cutoff)
    # When 80 linked ids and a new one get events at and after the cutoff, with revenue, another plan,
    # country, device and channel
    linked = client.query("SELECT distinct_id FROM identities FINAL WHERE project_id = {p:UInt32} ORDER BY distinct_id "
                          "LIMIT 80", parameters={"p": project}).result_rows
    later = {d: [("purchase", (cutoff + timedelta(minutes=m)).isoformat(), {"revenue": 999, "plan": "team"},
                  {"country": "ZZ", "device_type": "tv", "utm_source": "later"}) for m in (0, 1, 60 * 24 * 3)]
             for d in [row[0] for row in linked] + ["brand-new-person"]}
    insert_events(client, project, later)
    after = features.extract(client, project, cutoff)
    # Then no feature of anyone changed, and nobody new appeared
    pd.testing.assert_frame_equal(before, after)
    # while a later cutoff does see the events
    assert features.extract(client, project, cutoff + timedelta(days=4))["revenue_total"].max() >= 999 * 3
