"""Event and property names for pickers come from what the project actually sent."""

from __future__ import annotations

from nexus.analyses import catalog
from tests.analyses.journeys import insert_events, new_project, person
from tests.conftest import DEMO_END


def test_event_names_most_frequent_first(client):
    project = new_project(client)
    insert_events(client, project, {"u": [("view", "2026-10-01T10:00"), ("view", "2026-10-02T10:00"),
                                          ("buy", "2026-10-02T11:00", {"revenue": 3.5, "plan": "pro"})]})
    assert [(e.name, e.events, str(e.last_seen)) for e in catalog.event_names(client, project)] == [
        ("view", 2, "2026-10-02"), ("buy", 1, "2026-10-02")]


def test_properties_of_an_event_then_persons_then_columns(client):
    project = new_project(client)
    insert_events(client, project, {"u": [("buy", "2026-10-20T11:00", {"revenue": 3.5, "plan": "pro"}),
                                          ("buy", "2026-10-21T11:00", {"revenue": 4}),
                                          ("view", "2026-10-21T11:00", {"path_hint": "x"}),
                                          ("buy", "2026-08-01T11:00", {"ancient": 1})]})
    person(client, project, "00000000-0000-4000-8000-0000000000f1", {"email": "a@b.c"})
    found = catalog.properties(client, project, "buy", now=DEMO_END)
    assert [(p.key, p.source, p.types, p.seen) for p in found if p.source != "column"] == [
        ("plan", "event", ["String"], 1), ("revenue", "event", ["Float64", "Int64"], 2), ("email", "person", ["String"], 1)]
    assert "utm_source" in [p.key for p in found if p.source == "column"]
    assert {p.seen for p in found if p.source == "column"} == {None}
    assert "path_hint" in [p.key for p in catalog.properties(client, project, now=DEMO_END)]
