"""Saved dashboards as a journey: a project starts with its default dashboard, whose every tile runs on
its data and agrees with counts made in Python; an analyst saves, renames, reorders and deletes
dashboards, each change visible to the very next read; tiles that could not run are refused, naming
the value at fault; another project's dashboards and saved queries do not exist for it."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import msgspec
import pytest

from nexus.adhoc import saved
from nexus.adhoc.sandbox import QueryService
from nexus.analyses import registry
from nexus.errors import InvalidRequest, NotFound
from nexus.meta import dashboards, projects
from nexus.meta.dashboards import DashboardInput, Tile
from nexus.services.analyses import AnalysisService
from nexus.store.client import parse_url
from tests.analyses.journeys import at, insert_events

NOW = datetime(2026, 10, 20, 15, 0, tzinfo=timezone.utc)
# Three people over the default tiles' last 30 days (2026-09-21 .. 2026-10-20, UTC), and one event of
# u1 before them, which the 30-day tiles must leave out.
JOURNEYS = {
    "u1": [("signup", "2026-09-10T09:00"), ("page_view", "2026-09-21T00:30"), ("page_view", "2026-09-21T00:50"),
           ("purchase", "2026-09-21T02:00"), ("page_view", "2026-10-19T10:00")],
    "u2": [("page_view", "2026-10-01T12:00"), ("page_view", "2026-10-01T12:10"), ("signup", "2026-10-05T08:00")],
    "u3": [("page_view", "2026-10-20T09:00"), ("page_view", "2026-10-20T11:00"), ("purchase", "2026-10-20T11:20")],
}
IN_RANGE = [(who, event, at(when)) for who, events in JOURNEYS.items() for event, when in events
            if at(when) >= datetime(2026, 9, 21, tzinfo=timezone.utc)]


def tile(kind: str = "trends", request: dict | None = None, **fields) -> Tile:
    body = request if request is not None else {"series": [{"metric": "events"}]}
    return Tile(**{"title": f"{kind} tile", "kind": kind, "request": body, "chart": "line", **fields})


@pytest.fixture(scope="module")
def project(client) -> int:
    project_id = projects.create(client, "dashboards").project_id
    insert_events(client, project_id, JOURNEYS)
    return project_id


@pytest.fixture(scope="module")
def other(client) -> int:
    return projects.create(client, "dashboards-other").project_id


@pytest.fixture(scope="module")
def analyses(client, redis, project) -> AnalysisService:
    # The session's Redis may hold another module's cached answers for the same project number.
    redis.client.flushdb()
    return AnalysisService(client, redis.client, clock=lambda: NOW)


def test_a_new_project_has_one_default_dashboard_and_ensuring_it_again_changes_nothing(client, project) -> None:
    (default,) = dashboards.list_all(client, project)
    assert (default.name, default.is_default, default.dashboard_id) == ("Default", True, dashboards.DEFAULT_ID)
    assert default.tiles == list(dashboards.DEFAULT_TILES)
    again = dashboards.ensure_default(client, project)
    assert again == default  # the same record: not written again (its updated_at would move)
    stored = client.query("SELECT count() FROM dashboards WHERE project_id = {p:UInt32}", parameters={"p": project})
    assert stored.result_rows[0][0] == 1


def test_every_default_tile_runs_and_agrees_with_python(analyses, project) -> None:
    results = {}
    for default_tile in dashboards.DEFAULT_TILES:
        request = registry.decode(default_tile.kind, default_tile.request)
        results[default_tile.tile_id] = analyses.answer(project, default_tile.kind, request).decoded()
    days = Counter(when.date() for _, _, when in IN_RANGE)
    events_per_day = results["t_default0"]
    assert len(events_per_day.buckets) == 30
    assert {b.date(): v for b, v in zip(events_per_day.buckets, events_per_day.lines[0].values) if v} == days
    persons_per_day = results["t_default1"]
    expected_persons = Counter(day for day, _ in {(when.date(), who) for who, _, when in IN_RANGE})
    assert {b.date(): v for b, v in zip(persons_per_day.buckets, persons_per_day.lines[0].values) if v} == \
        expected_persons
    top_events = results["t_default2"]
    assert {line.breakdown: line.total for line in top_events.lines} == Counter(e for _, e, _ in IN_RANGE)
    # Sessions: a person's events split at gaps over 30 minutes (u1: 00:30, 00:50 | 02:00 | 10-19;
    # u2: 12:00, 12:10 | 10-05; u3: 09:00 | 11:00, 11:20)
    assert sum(results["t_default3"].lines[0].sessions) == 3 + 2 + 2
    active = {who for who, _, _ in IN_RANGE}
    assert sum(results["t_default5"].persons) == len(active)  # each person active on some number of days
    lifecycle = results["t_default4"]  # every person's first active week lies in the last 8 weeks
    assert sum(lifecycle.new) == len(JOURNEYS)
    retention = results["t_default6"]
    assert sum(c.persons for c in retention.cohorts) == len(JOURNEYS)


def test_save_rename_reorder_resize_and_delete_each_visible_at_once(client, project) -> None:
    # Given a dashboard of two tiles, the first without an id
    first, second = tile(), tile("stickiness", {"period": "day"}, chart="bar", tile_id="t_keep0002")
    created = dashboards.create(client, project, DashboardInput("Growth <b>&</b> \"ünïcode\"", "as typed",
                                                                [first, second]), "nx_key0001")
    assert created.tiles[0].tile_id.startswith("t_") and len(created.tiles[0].tile_id) == 10
    assert created.tiles[1].tile_id == "t_keep0002" and created.created_by == "nx_key0001"
    # Then the next read sees it, strings as given
    assert dashboards.get(client, project, created.dashboard_id) == created
    assert [d.name for d in dashboards.list_all(client, project)] == ["Default", "Growth <b>&</b> \"ünïcode\""]

    # When it is renamed, its tiles swapped and resized, one added: ids stay, the new one gets its own
    kept = [msgspec.structs.replace(created.tiles[1], width=12, height=600), created.tiles[0]]
    replaced = dashboards.replace(client, project, created.dashboard_id,
                                  DashboardInput("Growth", tiles=[*kept, tile(chart="number", width=3)]))
    assert [t.tile_id for t in replaced.tiles][:2] == ["t_keep0002", created.tiles[0].tile_id]
    assert replaced.tiles[0].width == 12 and replaced.tiles[2].tile_id not in {t.tile_id for t in kept}
    assert (replaced.created_at, replaced.created_by, replaced.is_default) == (created.created_at, "nx_key0001", False)
    assert dashboards.get(client, project, created.dashboard_id) == replaced
    # and changed again at once, the last write wins
    for n in range(3):
        dashboards.replace(client, project, created.dashboard_id, DashboardInput(f"Growth {n}"))
    assert dashboards.get(client, project, created.dashboard_id).name == "Growth 2"

    # Then deleting it removes it, and its name is free again
    dashboards.delete(client, project, created.dashboard_id)
    with pytest.raises(NotFound):
        dashboards.get(client, project, created.dashboard_id)
    assert [d.name for d in dashboards.list_all(client, project)] == ["Default"]
    again = dashboards.create(client, project, DashboardInput("Growth 2"), "nx_key0001")
    dashboards.delete(client, project, again.dashboard_id)


@pytest.mark.parametrize(("data", "field", "reason"), [
    (DashboardInput("x" * 201), "name", "length <= 200"),
    (DashboardInput(" "), "name", "blank"),
    (DashboardInput("Default"), "name", "already exists"),
    (DashboardInput("d", "y" * 2001), "description", "length <= 2000"),
    (DashboardInput("d", tiles=[tile()] * 51), "tiles", "length <= 50"),
    (DashboardInput("d", tiles=[tile(chart="pie3d")]), "tiles[0].chart", "Invalid enum value 'pie3d'"),
    (DashboardInput("d", tiles=[tile(), tile(width=13)]), "tiles[1].width", "<= 12"),
    (DashboardInput("d", tiles=[tile(height=100)]), "tiles[0].height", ">= 200"),
    (DashboardInput("d", tiles=[tile(title="")]), "tiles[0].title", "length >= 1"),
    (DashboardInput("d", tiles=[tile("cohorts")]), "tiles[0].kind", "no analysis 'cohorts'"),
    (DashboardInput("d", tiles=[tile(), tile(request={"series": [{"metric": "revenue_x"}]})]),
     "tiles[1].request.series[0].metric", "revenue_x"),
    (DashboardInput("d", tiles=[tile(request={"series": [{}], "date_range": {"date_from": "soon"}})]),
     "tiles[0].request.date_range.date_from", "cannot read date 'soon'"),
    (DashboardInput("d", tiles=[tile("funnel", {"steps": [{"event": "a"}]})]), "tiles[0].request.steps",
     "2 to 10 steps"),
    (DashboardInput("d", tiles=[tile(tile_id="t_same0000"), tile(tile_id="t_same0000")]), "tiles[1].tile_id",
     "earlier tile"),
    (DashboardInput("d", tiles=[tile(tile_id="x")]), "tiles[0].tile_id", "not a tile id"),
    (DashboardInput("d", tiles=[tile("sql", {"query_id": "q_AAAAAAAAAAAA"})]), "tiles[0].request.query_id",
     "no saved query 'q_AAAAAAAAAAAA' in this project"),
    (DashboardInput("d", tiles=[tile("sql", {"sql": "SELECT 1"})]), "tiles[0].request", "unknown field `sql`"),
])
def test_what_could_not_be_shown_is_refused_naming_the_field(client, project, data, field, reason) -> None:
    before = dashboards.list_all(client, project)
    with pytest.raises(InvalidRequest, match=reason) as refused:
        dashboards.create(client, project, data, "k")
    assert refused.value.field == field and str(refused.value).startswith(field)
    assert dashboards.list_all(client, project) == before


def test_a_replace_that_is_refused_leaves_the_dashboard_as_it_was(client, project) -> None:
    created = dashboards.create(client, project, DashboardInput("Steady", tiles=[tile()]), "k")
    with pytest.raises(InvalidRequest):
        dashboards.replace(client, project, created.dashboard_id, DashboardInput("Steady", tiles=[tile("nope")]))
    with pytest.raises(InvalidRequest, match="already exists"):
        dashboards.replace(client, project, created.dashboard_id, DashboardInput("Default"))
    assert dashboards.get(client, project, created.dashboard_id) == created
    dashboards.delete(client, project, created.dashboard_id)


def test_a_saved_query_tile_names_one_of_the_project_s_queries(client, database_url, project, other) -> None:
    service = QueryService(parse_url(database_url), client)
    query = saved.create(service, project, saved.SavedQueryInput("by event", "SELECT count() FROM events WHERE "
                                                                 "event = {e:String}"), "k")
    theirs = saved.create(service, other, saved.SavedQueryInput("theirs", "SELECT 1"), "k")
    good = dashboards.create(client, project, DashboardInput("SQL", tiles=[
        tile("sql", {"query_id": query.query_id, "params": {"e": "signup"}}, chart="number")]), "k")
    assert good.tiles[0].request == {"query_id": query.query_id, "params": {"e": "signup"}}
    with pytest.raises(InvalidRequest, match="declares no parameter 'x'") as unknown:
        dashboards.create(client, project, DashboardInput("SQL 2", tiles=[
            tile("sql", {"query_id": query.query_id, "params": {"x": 1}})]), "k")
    assert unknown.value.field == "tiles[0].request.params"
    # Another project's query is missing, in the same words as one that never existed
    with pytest.raises(InvalidRequest, match=f"no saved query '{theirs.query_id}' in this project$"):
        dashboards.create(client, project, DashboardInput("SQL 3", tiles=[tile("sql", {"query_id": theirs.query_id})]),
                          "k")
    dashboards.delete(client, project, good.dashboard_id)


def test_another_project_s_dashboard_does_not_exist_for_this_one(client, project, other) -> None:
    theirs = dashboards.create(client, other, DashboardInput("their secret board", tiles=[tile()]), "k")
    for action in (lambda i: dashboards.get(client, project, i),
                   lambda i: dashboards.replace(client, project, i, DashboardInput("mine now")),
                   lambda i: dashboards.delete(client, project, i)):
        for dashboard_id in (theirs.dashboard_id, "d_AAAAAAAAAAAA"):
            with pytest.raises(NotFound, match=f"^no dashboard '{dashboard_id}' in this project$"):
                action(dashboard_id)
    assert "their secret board" not in {d.name for d in dashboards.list_all(client, project)}
    assert dashboards.get(client, other, theirs.dashboard_id) == theirs  # untouched
    # The same name may exist in two projects
    mine = dashboards.create(client, project, DashboardInput("their secret board"), "k")
    dashboards.delete(client, project, mine.dashboard_id)


def test_the_default_is_made_once_even_when_ensured_after_it_was_deleted(client) -> None:
    project_id = projects.create(client, "dashboards-deleted-default").project_id
    dashboards.delete(client, project_id, dashboards.DEFAULT_ID)
    assert dashboards.list_all(client, project_id) == []
    # Ensured again (its id is fixed, so concurrent ensures write one record): one default again
    dashboards.ensure_default(client, project_id)
    dashboards.ensure_default(client, project_id)
    assert [(d.dashboard_id, d.is_default) for d in dashboards.list_all(client, project_id)] == \
        [(dashboards.DEFAULT_ID, True)]
