"""The persons of a retention cell are exactly as many as the cell counts (demo data, with a breakdown group),
and on a journey they are the persons expected, merged identities resolved."""

from __future__ import annotations

from datetime import date

import pytest

from nexus.analyses import registry, retention, retention_persons
from nexus.analyses.retention import RetentionEvent, RetentionRequest
from nexus.analyses.retention_persons import RetentionPersonsRequest
from nexus.analyses.dates import DateRange
from nexus.errors import InvalidRequest
from tests.analyses.journeys import insert_events, link, new_project
from tests.conftest import DEMO_END

PERSON = "00000000-0000-4000-8000-000000000009"
WEEKS = {"start": {"event": "signup"}, "returning": {}, "period": "week", "periods": 3,
         "date_range": {"date_from": "-5w"}, "breakdown": {"key": "plan", "source": "person", "limit": 1}}


def names(client, project, **fields) -> list[str]:
    found, offset = [], 0
    while True:
        page = retention_persons.run(client, project, RetentionPersonsRequest(limit=40, offset=offset, **fields),
                                     now=DEMO_END)
        found += [p.person for p in page.persons]
        if not page.has_more:
            return found
        offset += 40


def test_each_cell_lists_as_many_persons_as_it_counts(client, demo):
    request = registry.decode("retention", WEEKS)
    result = retention.run(client, demo, request, now=DEMO_END)
    checked = 0
    for cohort in result.cohorts[:2]:
        assert len(set(names(client, demo, retention=request, cohort=cohort.period, k=None))) == cohort.persons
        for k, count in enumerate(cohort.counts):
            if count:
                listed = names(client, demo, retention=request, cohort=cohort.period, k=k)
                assert len(listed) == len(set(listed)) == count and listed == sorted(listed)
                checked += 1
    group = result.breakdowns[0]
    assert len(names(client, demo, retention=request, cohort=group.cohorts[0].period, k=0,
                     breakdown_value=group.breakdown)) == group.cohorts[0].counts[0]
    assert checked >= 4


def test_a_merged_person_is_listed_once_under_their_person_id(client):
    project = new_project(client)
    insert_events(client, project, {"anon": [("signup", "2026-10-01T10:00")], "user": [("buy", "2026-10-02T10:00")],
                                    "solo": [("signup", "2026-10-01T11:00")]})
    link(client, project, {"anon": PERSON, "user": PERSON})
    request = RetentionRequest(start=RetentionEvent("signup"), returning=RetentionEvent(), periods=2,
                               date_range=DateRange("2026-10-01", "2026-10-03"), timezone="UTC")
    run = lambda k: [p.person for p in retention_persons.run(
        client, project, RetentionPersonsRequest(retention=request, cohort=date(2026, 10, 1), k=k)).persons]
    assert run(None) == run(0) == [PERSON, "solo"]
    assert run(1) == [PERSON] and run(2) == []


def test_bad_cells_are_refused_naming_the_field():
    body = {"retention": {"start": {}, "returning": {}, "periods": 2}, "cohort": "2026-10-01"}
    for extra, field in [({"k": 3}, "k"), ({"limit": 0}, "limit"), ({"breakdown_value": "x"}, "breakdown_value"),
                         ({"cohort": "someday"}, "cohort")]:
        with pytest.raises(InvalidRequest) as refused:
            registry.decode("retention_persons", {**body, **extra})
        assert refused.value.field == field, extra
