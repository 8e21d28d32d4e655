"""Unordered funnels: every step counts wherever it falls in the window, step 0 included, so the answer
does not depend on the order the steps are listed in."""

from __future__ import annotations

import itertools
import random
import statistics
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from nexus.analyses import funnels
from nexus.analyses.dates import DateRange
from nexus.analyses.funnels import FunnelRequest, FunnelStep
from tests.analyses import funnel_reference as ref
from tests.analyses.journeys import insert_events, link, new_project
from tests.analyses.reference import events_frame
from tests.conftest import DEMO_END

NAMES = ["page_view", "signup", "add_to_cart", "purchase"]
RANGE = DateRange("2025-01-01", "2025-01-02")  # two whole UTC days


def run(client, project_id, steps, **kwargs):
    request = FunnelRequest(steps=[FunnelStep(s) for s in steps], mode="unordered", **kwargs)
    return funnels.run(client, project_id, request, now=DEMO_END)


def counts(result):
    return [s.persons for s in result.groups[0].steps]


@pytest.mark.parametrize("steps", [["page_view", "signup"], ["signup", "page_view"]])
def test_a_step_0_event_after_the_range_end_counts_whatever_the_order(client, steps):
    # Given a signup late on the range's only day and a page view early the next day, within a day's window
    project = new_project(client)
    insert_events(client, project, {"u": [("signup", "2025-01-01T23:00"), ("page_view", "2025-01-02T01:00")]})
    # When the steps are listed either way, then the person did both steps (the page view's order did not
    # matter; before, [page_view, signup] gave [1, 0]: step 0 was read only inside the range)
    result = run(client, project, steps, date_range=DateRange("2025-01-01", "2025-01-01"), window=1)
    assert counts(result) == [1, 1]
    assert result.groups[0].steps[1].median_seconds == 7200


@pytest.fixture(scope="module")
def random_journeys(client):
    """~120 distinct ids with 1-8 events each (steps and an unrelated event), in visits starting from a
    day before the range to a day after it, some exactly one window apart, every tenth id linked to the
    next as one person; returns (project, frame)."""
    rng = random.Random(12)
    start = datetime(2024, 12, 31, tzinfo=timezone.utc)
    journeys = {}
    for p in range(120):
        events, moments = [], []
        visit = start + timedelta(milliseconds=rng.randrange(4 * 86_400_000))
        for _ in range(rng.randint(1, 8)):
            if moments and rng.random() < 0.15:  # an edge: exactly one window (an hour or a day) later
                moment = rng.choice(moments) + rng.choice([timedelta(hours=1), timedelta(days=1)])
            else:  # most within 90 minutes of the visit, some up to a day and a half later
                spread = rng.choice([90 * 60_000, 36 * 3_600_000])
                moment = visit + timedelta(milliseconds=rng.randrange(spread))
            moments.append(moment)
            events.append((rng.choice([*NAMES, "other"]), moment.isoformat(timespec="milliseconds")))
        journeys[f"u{p}"] = events
    project = new_project(client)
    insert_events(client, project, journeys)
    pairs = {f"u{p + d}": f"00000000-0000-4000-8000-{p:012d}" for p in range(0, 120, 10) for d in (0, 1)}
    link(client, project, pairs)
    return project, events_frame(client, project)


@pytest.mark.parametrize("window,unit", [(1, "hour"), (1, "day")])
def test_any_order_of_any_steps_matches_the_reference_and_every_other_order(client, random_journeys, window, unit):
    project, frame = random_journeys
    window_ms = window * {"hour": 3_600_000, "day": 86_400_000}[unit]
    rng = random.Random(window_ms)
    for size in (2, 3, 4):
        chosen = rng.sample(NAMES, size)
        every = list(itertools.permutations(chosen))
        orders = rng.sample(every, min(3, len(every)))
        results = [run(client, project, list(order), date_range=RANGE, window=window, window_unit=unit)
                   for order in orders]
        people = ref.unordered_from_times(frame, chosen, pd.Timestamp(results[0].date_from),
                                          pd.Timestamp(results[0].date_to), window_ms)
        expected = [sum(1 for depth, _ in people.values() if depth > k) for k in range(size)]
        assert expected[0] > expected[-1] > 0, (chosen, expected)  # the data tells the orders apart
        gaps = [[(times[k] - times[k - 1]) / 1000 for depth, times in people.values() if depth > k]
                for k in range(1, size)]
        for order, result in zip(orders, results):
            assert counts(result) == expected, order
            for k, step in enumerate(result.groups[0].steps[1:], 1):
                assert step.avg_seconds == pytest.approx(statistics.mean(gaps[k - 1])), (order, k)
                assert step.median_seconds == pytest.approx(statistics.median(gaps[k - 1])), (order, k)
