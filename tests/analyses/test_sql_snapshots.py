"""The SQL every analysis generates, frozen in one readable file per request (`snapshots/<kind>__<case>.sql`),
so a change to generated SQL shows up in review as a diff of those files.

Each file holds the request, the pinned clock and zone, the bound parameters and the SQL of
`registry.explain`, laid out by ClickHouse's own `formatQuery` (one clause per line, so a diff shows what
changed). When a change to the SQL is meant, rewrite the files and review their diff:

    NEXUS_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/analyses/test_sql_snapshots.py

The project's number is left out (`<the project>`), the clock and the project's zone are pinned, so the files
change only when the SQL does — or when a new chDB lays it out differently: then the diff is layout only.
"""

from __future__ import annotations

import difflib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from nexus.analyses import registry
from nexus.meta import projects
from tests.analyses.example_cohort import EXAMPLE_COHORT, save_example_cohort
from tests.analyses.test_registry import BODIES

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("NEXUS_UPDATE_SNAPSHOTS") == "1"
NOW = datetime(2026, 10, 31, 12, 30, tzinfo=UTC)  # relative ranges resolve against this
ZONE = "Europe/Berlin"  # the project's, for requests without a timezone (Berlin leaves summer time on 10-25)
STEPS = [{"event": "page_view"}, {"event": "signup"}, {"event": "purchase"}]

CASES: dict[str, dict] = {
    # Each kind as a request with nothing optional, and as the registry test sends it
    **{f"{kind}__example": body for kind, body in BODIES.items()},
    "trends__defaults": {"series": [{"event": "page_view"}]},
    "funnel__defaults": {"steps": STEPS[:2]},
    "funnel_persons__defaults": {"funnel": {"steps": STEPS[:2]}, "step": 1},
    "retention__defaults": {"start": {"event": "signup"}, "returning": {}},
    "sessions__defaults": {},
    "stickiness__defaults": {"event": "page_view"},
    "lifecycle__defaults": {"event": "page_view"},
    "overview__defaults": {},
    "live__defaults": {},
    "events__defaults": {},
    # The variants that take another path through the code
    "trends__daily_rollup": {
        "series": [{"event": "purchase", "metric": "sum", "property": "revenue"}, {"metric": "distinct_ids"}],
        "interval": "week", "timezone": "UTC", "date_range": {"date_from": "last_month"},
        "where": {"filters": [{"key": "country", "source": "column", "op": "in", "value": ["DE", "FR"]}]},
        "breakdown": {"key": "browser", "source": "column", "limit": 5}},
    "trends__raw_quantiles_by_person": {
        "series": [{"event": "purchase", "metric": "p90", "property": "revenue", "label": "p90"},
                   {"metric": "persons"}],
        "interval": "hour", "timezone": "Asia/Kolkata", "date_range": {"date_from": "-24h"},
        "where": {"match": "any", "filters": [
            {"key": "plan", "source": "person", "op": "is_set"},
            {"key": "path", "source": "column", "op": "regex", "value": "^/pricing"}]},
        "breakdown": {"key": "plan", "source": "person", "limit": 3}},
    "funnel__strict_hours": {
        "steps": [STEPS[0], {"event": "signup", "where": {"filters": [{"key": "plan", "value": "pro"}]}}, STEPS[2]],
        "mode": "strict", "window": 6, "window_unit": "hour", "date_range": {"date_from": "-14d"},
        "where": {"filters": [{"key": "device_type", "source": "column", "op": "neq", "value": "bot"}]}},
    "funnel__unordered_by_trait": {"steps": STEPS, "mode": "unordered", "window": 2,
                                   "date_range": {"date_from": "2026-10-01", "date_to": "2026-10-28"},
                                   "breakdown": {"key": "plan", "source": "person"}},
    "funnel_persons__converted_other": {
        "funnel": {"steps": STEPS, "breakdown": {"key": "utm_source", "source": "column", "limit": 2}},
        "step": 2, "status": "converted", "breakdown_value": "$other", "limit": 50, "offset": 100},
    "retention__recurring_weeks": {
        "start": {"event": "signup", "where": {"filters": [{"key": "plan", "op": "in", "value": ["pro", "team"]}]}},
        "returning": {"event": "purchase"}, "start_mode": "recurring", "period": "week", "periods": 4,
        "date_range": {"date_from": "-8w"}, "timezone": "America/New_York"},
    "sessions__hourly_by_trait": {"interval": "hour", "gap_minutes": 10, "date_range": {"date_from": "yesterday"},
                                  "breakdown": {"key": "plan", "source": "person"}},
    "stickiness__weeks_by_trait": {"event": "purchase", "period": "week", "date_range": {"date_from": "-6w"},
                                   "breakdown": {"key": "plan", "source": "person", "limit": 2}},
    "lifecycle__months_filtered": {"event": None, "period": "month", "date_range": {"date_from": "-6m"},
                                   "where": {"filters": [{"key": "revenue", "op": "gt", "value": 10}]}},
    "overview__hourly_by_trait": {"interval": "hour", "date_range": {"date_from": "yesterday"}, "top": 5,
                                  "where": {"filters": [{"key": "plan", "source": "person", "value": "pro"}]}},
    "events__next_page": {"event": "purchase", "limit": 50, "before": "WzE3OTM0OTA3Nzk1MjIsIm0tNDIiXQ",
                          "where": {"filters": [{"key": "revenue", "op": "gt", "value": 10}]}},
    "goals__defaults": {"goals": [{"event": "purchase"}]},
    "goals__pages_by_trait": {"goals": [{"path": "/docs/*/setup", "where": {"filters": [
        {"key": "plan", "source": "person", "value": "pro"}]}}, {"path": "/pricing"}], "interval": "week",
        "gap_minutes": 10, "date_range": {"date_from": "-8w"}, "breakdown": {"key": "plan", "source": "person"}},
    "paths__defaults": {},
    "paths__back_in_sessions_by_events": {"end": "purchase", "step_type": "events", "collapse_repeats": False,
                                          "gap_minutes": 10, "steps": 3, "exclude": ["identify"],
                                          "where": {"filters": [{"key": "plan", "source": "person", "value": "pro"}]}},
    "paths_persons__defaults": {"paths": {"start": "/"}, "step": 1, "node": "/pricing"},
    "cohort_size__defaults": {"cohort": EXAMPLE_COHORT},
    "attribution__defaults": {"conversion": {"event": "purchase"}},
    "attribution__pages_by_source": {
        "conversion": {"path": "/pricing", "where": {"filters": [{"key": "plan", "source": "person", "value": "pro"}]}},
        "by": "source", "position_first": 0.3, "position_last": 0.5, "lookback_days": 7, "gap_minutes": 10},
    "conversion_paths__defaults": {"conversion": {"event": "purchase"}},
    "predictions__defaults": {},
    "trends__in_cohort_by_cohort": {"series": [{"event": "page_view"}], "where": {"filters": [
        {"key": EXAMPLE_COHORT, "source": "cohort", "op": "not_in"}]},
        "breakdown": {"source": "cohort", "cohorts": [EXAMPLE_COHORT]}},
    "funnel__by_cohort": {"steps": STEPS[:2], "breakdown": {"source": "cohort", "cohorts": [EXAMPLE_COHORT]}},
    "experiment__defaults": {"experiment": {"key": "x", "variants": [{"key": "a"}, {"key": "b"}],
                                            "start": "2026-10-01T00:00:00Z", "primary_metric": {"event": "purchase"}}},
    "experiment__cohort_targeting_hours": {"experiment": {
        "key": "pricing-page", "variants": [{"key": "a", "weight": 2}, {"key": "b"}, {"key": "c"}],
        "start": "2026-10-20T08:00:00+02:00", "end": "2026-10-30T00:00:00Z", "exposure_event": "pricing_seen",
        "conversion_window": 36, "window_unit": "hour",
        "primary_metric": {"path": "/docs/*/setup", "measure": "count", "where": {"filters": [
            {"key": "plan", "source": "person", "value": "pro"}]}},
        "targeting": {"filters": [{"key": EXAMPLE_COHORT, "source": "cohort", "op": "in"}]}},
        "timezone": "America/New_York", "cuped": False, "correction": "bh"},
}


@pytest.fixture(scope="module")
def project(client) -> int:
    project_id = projects.create(client, "snapshots", ZONE).project_id
    save_example_cohort(client, project_id)  # the one cohort_size's example names
    return project_id


def render(client, project_id: int, name: str) -> str:
    kind = name.split("__")[0]
    request = registry.decode(kind, CASES[name])
    sql, params = registry.explain(client, project_id, kind, request, now=NOW)
    formatted = client.query("SELECT formatQuery({sql:String})", parameters={"sql": sql}).result_rows[0][0]
    lines = [f"-- {kind}: {json.dumps(CASES[name])}",
             f"-- now {NOW:%Y-%m-%dT%H:%M:%SZ}, project time zone {ZONE}",
             "-- parameters:",
             *(f"--   {key} = {'<the project>' if key == 'project_id' else json.dumps(msgspec.to_builtins(value))}"
               for key, value in params.items()),
             "", formatted.strip(), ""]
    return "\n".join(lines)


def test_every_kind_has_snapshots():
    assert {name.split("__")[0] for name in CASES} == set(registry.ANALYSES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_sql_equals_its_snapshot(client, project, name):
    path = SNAPSHOTS / f"{name}.sql"
    actual = render(client, project, name)
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"{path.name} is missing: NEXUS_UPDATE_SNAPSHOTS=1 writes it"
    expected = path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            f"snapshots/{path.name}", "generated now"))
        pytest.fail(f"the generated SQL changed; if that is meant, NEXUS_UPDATE_SNAPSHOTS=1 rewrites it:\n{diff}")


def test_no_snapshot_is_left_without_its_request():
    stale = {path.stem for path in SNAPSHOTS.glob("*.sql")} - set(CASES)
    if UPDATE:
        for name in stale:
            (SNAPSHOTS / f"{name}.sql").unlink()
        return
    assert not stale, f"snapshots without a case (NEXUS_UPDATE_SNAPSHOTS=1 removes them): {sorted(stale)}"
