"""Goals against pandas on demo data (every number of every line, with a breakdown and a filter), and exact
answers on hand-written journeys: wildcard paths, a person identified mid-way converting on two ids,
events at the edges of buckets and range, values missing or not numbers; saved goals by id, and another
project's goal refused. The overview's goal KPIs equal the goals analysis' conversions."""

from __future__ import annotations

import msgspec
import pandas as pd
import pytest

from nexus.analyses import goals, overview, sessions
from nexus.analyses.breakdown import OTHER
from nexus.errors import InvalidRequest, NotFound
from nexus.meta import goals as saved
from tests.analyses.journeys import insert_events, link, new_project
from tests.conftest import DEMO_END

RANGE = {"date_from": "2026-10-18", "date_to": "2026-10-31"}
DEMO_GOALS = [{"event": "purchase", "value_property": "revenue", "currency": "USD"},
              {"path": "/blog/**", "name": "Blog"},
              {"path": "/*"},
              {"event": "purchase", "where": {"filters": [{"key": "plan", "op": "in", "value": ["pro", "team"]}]},
               "value_property": "revenue"}]


def run(client, project_id, body: dict) -> goals.GoalsResult:
    request = msgspec.convert(body, goals.GoalsRequest)
    return goals.run(client, project_id, request, now=DEMO_END)


def demo_masks(rows: pd.DataFrame) -> list[pd.Series]:
    """DEMO_GOALS by their meaning, written without the wildcard translation: `/blog/**` is a page whose path
    starts with '/blog/', `/*` a page with a single segment."""
    page = rows["type"] == "page"
    purchase = rows["event"] == "purchase"
    return [purchase, page & rows["path"].str.startswith("/blog/"), page & (rows["path"].str.count("/") == 1),
            purchase & rows["plan"].isin(["pro", "team"])]


def reference(frame: pd.DataFrame, start: str, end: str, valued: list[bool], passes=None, by: str | None = None,
              limit: int = 10) -> dict[tuple[int, str], dict[str, list]]:
    """{(goal, label): {measure: [per day..., total]}} by the definition, with pandas (days in UTC)."""
    rows = frame[(frame["ts"] >= pd.Timestamp(start, tz="UTC")) & (frame["ts"] < pd.Timestamp(end, tz="UTC"))]
    rows = rows.assign(bd=rows[by] if by else "", ok=passes(rows) if passes else True)
    rows = rows.sort_values(["person", "ts", "bd"], kind="stable")
    rows = rows.assign(day=rows["ts"].dt.floor("D"),
                       session=(rows.groupby("person")["ts"].diff().gt(pd.Timedelta(minutes=30))
                                | ~rows["person"].duplicated()).cumsum())
    masks = [m & rows["ok"] for m in demo_masks(rows)]
    label = rows["bd"]
    if by:
        weight = sum(rows.loc[m, "bd"].value_counts() for m in masks).fillna(0)
        ranked = sorted(((v, n) for v, n in weight.items() if n > 0), key=lambda item: (-item[1], item[0]))
        top = {v for v, _ in ranked[:limit]}
        label = rows["bd"].where(rows["bd"].isin(top), OTHER)
    rows = rows.assign(label=label, value=rows["revenue"].fillna(0.0))
    days = sorted(rows["day"].unique())
    first = rows.groupby("session").head(1).set_index("session")
    first = first[first["ok"]]
    found = {}
    for index, mask in enumerate(masks):
        converted = set(rows.loc[mask, "session"])
        for value in rows["label"].unique():
            mine, conv = rows[rows["label"] == value], rows[mask & (rows["label"] == value)]
            active = mine[mine["ok"]]
            starts = first[first["label"] == value]
            numbers: dict[str, list] = {name: [] for name in ("conversions", "persons", "active_persons", "sessions",
                                                              "converted_sessions", "value")}
            for day in [*days, None]:
                def pick(part: pd.DataFrame) -> pd.DataFrame:
                    return part if day is None else part[part["day"] == day]  # noqa: B023 (used at once)

                numbers["conversions"].append(len(pick(conv)))
                numbers["persons"].append(pick(conv)["person"].nunique())
                numbers["active_persons"].append(pick(active)["person"].nunique())
                numbers["sessions"].append(len(pick(starts)))
                numbers["converted_sessions"].append(int(pick(starts).index.isin(converted).sum()))
                numbers["value"].append(pick(conv)["value"].sum() if valued[index] else None)
            found[(index, value)] = numbers
    return found


def assert_matches(result: goals.GoalsResult, expected: dict) -> None:
    labels = {line.breakdown or "" for line in result.lines}
    assert {(i, label) for i in range(len(result.goals)) for label in labels} == set(expected)
    for line in result.lines:
        numbers = expected[(line.goal, line.breakdown or "")]
        for name, values in numbers.items():
            got = [*getattr(line, name), getattr(line.total, name)]
            assert got == pytest.approx(values), (line.name, line.breakdown, name)
        assert line.total.person_rate == pytest.approx(numbers["persons"][-1] / numbers["active_persons"][-1])
        assert line.total.session_rate == pytest.approx(numbers["converted_sessions"][-1] / numbers["sessions"][-1])
        if numbers["value"][-1] is not None and numbers["persons"][-1]:
            assert line.total.value_per_person == pytest.approx(numbers["value"][-1] / numbers["persons"][-1])


def test_every_number_matches_pandas_on_demo_data(client, demo, frame):
    result = run(client, demo, {"goals": DEMO_GOALS, "date_range": RANGE, "timezone": "UTC"})
    assert [g.name for g in result.goals] == ["purchase", "Blog", "page /*", "purchase"]
    assert [line.currency for line in result.lines] == ["USD", None, None, None]
    expected = reference(frame, "2026-10-18", "2026-11-01", [True, False, False, True])
    assert_matches(result, expected)
    # The demo has conversions of every goal, and a person-rate below 1
    assert all(0 < line.total.conversions and line.total.person_rate < 1 for line in result.lines)


def test_breakdown_and_filter_match_pandas(client, demo, frame):
    body = {"goals": DEMO_GOALS, "date_range": RANGE, "timezone": "UTC",
            "where": {"filters": [{"key": "browser", "source": "column", "op": "neq", "value": "Safari"}]},
            "breakdown": {"key": "country", "source": "column", "limit": 3}}
    result = run(client, demo, body)
    expected = reference(frame, "2026-10-18", "2026-11-01", [True, False, False, True],
                         passes=lambda rows: rows["browser"] != "Safari", by="country", limit=3)
    assert_matches(result, expected)
    assert [line.breakdown for line in result.lines][::4][-1] == OTHER and len(result.lines) == 4 * 4


def test_a_saved_goal_answers_as_its_inline_definition(client, demo):
    goal = saved.create(client, demo, saved.GoalInput(name="Paid", **DEMO_GOALS[0]), "test")
    by_id = run(client, demo, {"goals": [goal.goal_id], "date_range": RANGE})
    inline = run(client, demo, {"goals": [{**DEMO_GOALS[0], "name": "Paid"}], "date_range": RANGE})
    assert by_id.lines == inline.lines and by_id.goals[0].goal_id == goal.goal_id and inline.goals[0].goal_id is None


def test_sessions_are_the_sessions_analysis_sessions(client, demo):
    result = run(client, demo, {"goals": DEMO_GOALS[:1], "date_range": RANGE, "interval": "week"})
    theirs = sessions.run(client, demo, sessions.SessionsRequest(date_range=result.date_range, interval="week"),
                          now=DEMO_END)
    assert result.lines[0].sessions == theirs.lines[0].sessions


def test_the_overview_counts_the_goals_conversions(client, demo):
    first = saved.create(client, demo, saved.GoalInput(name="Docs", path="/docs"), "test")
    second = saved.create(client, demo, saved.GoalInput(name="Bought", event="purchase"), "test")
    body = {"date_range": RANGE, "timezone": "UTC", "goals": [second.goal_id, first.goal_id]}
    shown = overview.run(client, demo, msgspec.convert(body, overview.OverviewRequest), now=DEMO_END)
    counted = run(client, demo, body)
    before = run(client, demo, {**body, "date_range": {"date_from": "2026-10-04", "date_to": "2026-10-17"}})
    assert [(k.goal_id, k.name) for k in shown.goals] == [(second.goal_id, "Bought"), (first.goal_id, "Docs")]
    for kpi, line, previous in zip(shown.goals, counted.lines, before.lines):
        assert kpi.conversions.value == line.total.conversions > 0
        assert kpi.conversions.previous == previous.total.conversions
        assert [p.value for p in kpi.conversions.series] == line.conversions
    # Without goals, none
    assert overview.run(client, demo, overview.OverviewRequest(date_range=shown.date_range), now=DEMO_END).goals == []


def test_wildcards_match_whole_paths_of_page_views_only(client):
    project = new_project(client)
    paths = ["/blog", "/blog/", "/blog/launch", "/blog/a/b", "/bloggers", "/Blog/x", "/docs/python/setup",
             "/docs/setup", "/docs/a/b/setup", "/pricing", "/pricing/", "/a.b", "/axb"]
    journeys = {f"p{i}": [("page_view", "2026-10-01T10:00", {}, {"path": path})] for i, path in enumerate(paths)}
    journeys["tracked"] = [("signup", "2026-10-01T10:00", {}, {"path": "/pricing"})]  # not a page view
    insert_events(client, project, journeys)
    patterns = {"/blog/**": 3, "/blog/*": 2, "/blog**": 5, "/docs/*/setup": 1, "/docs/**/setup": 2, "/pricing": 1,
                "/a.*": 1}
    result = run(client, project, {"goals": [{"path": p} for p in patterns],
                                   "date_range": {"date_from": "2026-10-01"}, "timezone": "UTC"})
    assert {g.definition.path: line.total.conversions for g, line in zip(result.goals, result.lines)} == patterns


def test_a_person_identified_mid_way_converts_once_on_two_ids(client):
    project = new_project(client)
    insert_events(client, project, {
        "anon1": [("page_view", "2026-10-01T10:00", {}, {"path": "/pricing"}),
                  ("purchase", "2026-10-01T10:05", {"revenue": 20})],
        "user1": [("purchase", "2026-10-01T10:20", {"revenue": 30}),
                  ("page_view", "2026-10-01T11:30", {}, {"path": "/"})],  # 70 minutes later: a second session
        "other": [("page_view", "2026-10-01T12:00", {}, {"path": "/"})],
    })
    link(client, project, {"anon1": "00000000-0000-0000-0000-00000000000a",
                           "user1": "00000000-0000-0000-0000-00000000000a"})
    result = run(client, project, {"goals": [{"event": "purchase", "value_property": "revenue"}],
                                   "date_range": {"date_from": "2026-10-01"}, "timezone": "UTC"})
    assert result.lines[0].total == goals.GoalTotals(
        conversions=2, persons=1, active_persons=2, person_rate=0.5, sessions=3, converted_sessions=1,
        session_rate=1 / 3, value=50.0, value_per_person=50.0)


def test_events_at_the_edges_of_buckets_and_range(client):
    project = new_project(client, "Europe/Berlin")
    insert_events(client, project, {"u": [
        ("purchase", "2026-09-30T21:59:59.999+00:00"),  # 23:59:59.999 in Berlin, the day before the range
        ("purchase", "2026-09-30T22:00:00+00:00"),  # Berlin's midnight: the first day's first instant
        ("purchase", "2026-10-01T21:59:59.999+00:00"),  # the first day's last instant
        ("purchase", "2026-10-01T22:00:00+00:00"),  # the second day's first instant
        ("purchase", "2026-10-02T22:00:00+00:00"),  # the range's end: excluded
    ]})
    result = run(client, project, {"goals": [{"event": "purchase"}],
                                   "date_range": {"date_from": "2026-10-01", "date_to": "2026-10-02"}})
    line = result.lines[0]
    assert (result.timezone, line.conversions, line.persons, line.total.conversions) == ("Europe/Berlin", [2, 1],
                                                                                         [1, 1], 3)
    # Sessions: the first day's last instant and the second day's first are one session, of the day it began
    assert (line.sessions, line.converted_sessions, line.value, line.total.value) == ([2, 0], [2, 0], [None, None],
                                                                                      None)


def test_missing_and_non_numeric_values_count_zero(client):
    project = new_project(client)
    values = {"v1": 10, "v2": "abc", "v3": None, "v4": "5.5", "v5": True}
    insert_events(client, project, {
        person: [("purchase", "2026-10-01T10:00", {} if value is None else {"amount": value})]
        for person, value in values.items()})
    result = run(client, project, {"goals": [{"event": "purchase", "value_property": "amount", "currency": "EUR"}],
                                   "date_range": {"date_from": "2026-10-01"}, "timezone": "UTC"})
    total = result.lines[0].total
    assert (total.conversions, total.persons, total.value, total.value_per_person) == (5, 5, 15.5, 3.1)
    assert result.lines[0].currency == "EUR"


def test_another_project_s_goal_cannot_be_used(client, demo):
    theirs = new_project(client)
    goal = saved.create(client, theirs, saved.GoalInput(name="Theirs", event="purchase"), "test")
    for kind, body in ((goals, {"goals": [{"event": "x"}, goal.goal_id]}),
                       (overview, {"goals": [goal.goal_id]})):
        request = msgspec.convert(body, kind.Request)
        with pytest.raises(NotFound, match=r"goals\[\d\]: no goal"):
            kind.run(client, demo, request, now=DEMO_END)
        with pytest.raises(NotFound):
            kind.explain(client, demo, request, now=DEMO_END)


@pytest.mark.parametrize(("body", "field"), [
    ({"goals": []}, "goals"),
    ({"goals": [{"event": "a"}] * 11}, "goals"),
    ({"goals": [{"path": "/x", "event": "a"}]}, "goals[0].path"),
    ({"goals": [{"path": "x"}]}, "goals[0].path"),
    ({"goals": [{"event": "a", "currency": "USD"}]}, "goals[0].currency"),
    ({"goals": [{"event": "a"}], "gap_minutes": 0}, "gap_minutes"),
])
def test_malformed_requests_name_the_field(body, field):
    from nexus.analyses import registry

    with pytest.raises(InvalidRequest) as caught:
        registry.decode("goals", body)
    assert caught.value.field == field
