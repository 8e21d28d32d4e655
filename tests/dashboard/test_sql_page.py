"""The SQL explorer without a browser: its parameter box, its cells, the chart it makes of a real sandbox
answer (checked against pandas over the same rows), and saving queries through the dashboard's Reader,
which takes an admin key as POST /v1/queries does."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

from nexus.adhoc.sandbox import Column, QueryService
from nexus.dashboard.pages import sql_result
from nexus.dashboard.pages.sql_result import BarChart, Choice, TimeChart
from nexus.dashboard.session import Dashboard, Reader
from nexus.dashboard.signin import SignIns
from nexus.errors import Forbidden, InvalidRequest
from nexus.settings import load
from nexus.meta import keys, projects
from nexus.store.client import parse_url

# Per hour of Berlin's wall clock: the engine writes the bucket as Berlin's wall time, so the chart must
# read it in that zone to place it at the right instant.
HOURLY = ("SELECT toStartOfHour(toDateTime(ts, 'Europe/Berlin')) AS hour, event, count() AS n, "
          "toDecimal64(count() / 2, 1) AS half FROM events GROUP BY hour, event ORDER BY hour, event")


class Runtime:
    """What a Reader uses of the process's runtime: the engine's client, Redis, the ad-hoc sandbox, settings."""

    def __init__(self, client, redis, queries: QueryService):
        self.clickhouse = client
        self.redis = redis
        self.queries = queries
        self.settings = load({})


@pytest.fixture(scope="module")
def service(client, database_url) -> QueryService:
    return QueryService(parse_url(database_url), client)


@pytest.fixture(scope="module")
def project(client) -> int:
    project_id = projects.create(client, "sql page").project_id
    # Given 2 signups and 3 page views across two hours, and one page view in another project
    times = [datetime(2026, 10, 20, 9, m, tzinfo=timezone.utc) for m in (1, 2)] + \
            [datetime(2026, 10, 20, 10, m, tzinfo=timezone.utc) for m in (5, 6, 7)]
    names = ["signup", "page_view", "page_view", "signup", "page_view"]
    rows = [[project_id, t, name, "track", f"m{i}", "u1"] for i, (t, name) in enumerate(zip(times, names))]
    rows.append([project_id + 1000, times[0], "page_view", "track", "other", "u2"])
    client.insert("events", rows, column_names=["project_id", "ts", "event", "type", "message_id", "distinct_id"])
    return project_id


def reader(client, redis, service: QueryService, project_id: int, scope: str) -> Reader:
    signins = SignIns(client, redis.client, hours=1)
    viewer = signins.viewer(signins.sign_in(keys.create(client, project_id, scope)[1], None))
    dashboard = Dashboard(Runtime(client, redis, service), signins)  # type: ignore[arg-type]
    return Reader(dashboard, viewer, viewer.grant(project_id))


def test_parameters_are_a_json_object_and_a_mistake_names_its_field() -> None:
    assert sql_result.parse_params("") == {} and sql_result.parse_params("  \n") == {}
    assert sql_result.parse_params('{"event": "signup", "days": 7}') == {"event": "signup", "days": 7}
    with pytest.raises(InvalidRequest, match="not valid JSON: .* line 1, column 12") as bad:
        sql_result.parse_params('{"days": 7,}')
    assert bad.value.field == "params"
    with pytest.raises(InvalidRequest, match="must be a JSON object") as listed:
        sql_result.parse_params("[7]")
    assert listed.value.field == "params"
    with pytest.raises(InvalidRequest, match="'my day' is not a parameter name") as named:
        sql_result.parse_params('{"my day": 7}')
    assert named.value.field == "params.my day"


def test_cells_are_text() -> None:
    assert [sql_result.cell_text(v) for v in (None, "<b>x</b>", True, 3, 2.5, [1, "a"], {"k": None})] == \
        ["NULL", "<b>x</b>", "true", "3", "2.5", '[1, "a"]', '{"k": null}']
    columns = [Column("n", "UInt8"), Column("n", "String")]  # a result may repeat a name
    assert sql_result.grid(columns, [[1, "a"], [None, "b"]]) == {"c0": ["1", "NULL"], "c1": ["a", "b"]}


def test_column_types() -> None:
    assert sql_result.is_time("Nullable(DateTime64(3, 'UTC'))") and sql_result.is_time("Date32")
    assert not sql_result.is_time("String") and not sql_result.is_time("UInt32")
    assert all(sql_result.is_number(t) for t in ("UInt64", "Nullable(Float32)", "Decimal(18, 2)", "Int8"))
    assert not any(sql_result.is_number(t) for t in ("String", "LowCardinality(String)", "Array(UInt8)", "Bool"))
    assert sql_result.time_zone("LowCardinality(Nullable(DateTime('Asia/Tokyo')))") == "Asia/Tokyo"
    assert sql_result.time_zone("DateTime64(3, 'Europe/Berlin')") == "Europe/Berlin"
    assert sql_result.time_zone("Date") == "UTC"


def test_a_first_chart_draws_the_measure_over_what_varies() -> None:
    # the columns of a trends card's SQL (its explain), which the card's link opens here
    explain = [Column("series", "UInt8"), Column("current", "UInt8"), Column("label", "String"),
               Column("bucket", "UInt32"), Column("is_total", "UInt64"), Column("value", "Float64")]
    rows = [[0, 1, "", 1795651200, 0, 4509.0], [0, 1, "", 1795737600, 0, 4531.0], [0, 1, "", 0, 1, 9040.0]]
    assert sql_result.default_choice(explain, rows) == Choice("bucket", "value")
    timed = [Column("event", "String"), Column("day", "Date"), Column("n", "UInt64")]
    assert sql_result.default_choice(timed, [["a", "2026-10-01", 1]]) == Choice("day", "n")
    assert sql_result.default_choice([Column("e", "String")], [["a"]]) is None


def test_a_chart_of_a_sandbox_answer_matches_pandas_over_the_same_rows(client, service, project) -> None:
    # When the query runs in the sandbox, as the page runs it
    answer = service.answer_json(project, HOURLY)
    rows = sql_result.rows_of(answer)
    chart = sql_result.chart_data(answer.columns, rows, Choice("hour", "half", "event"))
    # Then each series holds the values pandas computes from the same events (project's only), per hour
    events = client.query_df("SELECT ts, event FROM events WHERE project_id = {p:UInt32}", parameters={"p": project})
    events["hour"] = pd.to_datetime(events["ts"], utc=True).dt.floor("h")
    expected = events.groupby(["event", "hour"]).size().div(2).round(1)
    assert isinstance(chart, TimeChart) and chart.timezone == "Europe/Berlin" and chart.note == ""
    drawn = {(line.label, t): v for line in chart.series for t, v in zip(line.times, line.values)}
    assert drawn == {(event, hour.to_pydatetime()): value for (event, hour), value in expected.items()}
    assert all(line.times == sorted(line.times) for line in chart.series)


def test_rows_sharing_x_and_series_are_added_up_and_said_so() -> None:
    columns = [Column("day", "Date"), Column("browser", "String"), Column("n", "UInt64")]
    rows = [["2026-10-02", "a", 1], ["2026-10-01", "a", 2], ["2026-10-01", "a", 3], [None, "a", 9]]
    chart = sql_result.chart_data(columns, rows, Choice("day", "n"))
    assert isinstance(chart, TimeChart) and chart.series[0].label == "n"
    assert chart.series[0].values == [5.0, 1.0]
    assert chart.series[0].times == [datetime(2026, 10, d, tzinfo=timezone.utc) for d in (1, 2)]
    assert chart.note == "1 row with the same day was added up; 1 row without a day is left out"


def test_a_chart_over_text_is_bars_in_the_result_order() -> None:
    columns = [Column("event", "String"), Column("browser", "String"), Column("n", "Nullable(UInt64)")]
    rows = [["view", "ff", 5], ["view", "chrome", None], ["buy", "ff", 2]]
    chart = sql_result.chart_data(columns, rows, Choice("event", "n", "browser"))
    assert chart == BarChart(["view · ff", "view · chrome", "buy · ff"], [5.0, None, 2.0])
    many = sql_result.chart_data(columns[:1] + columns[2:], [[str(i), i] for i in range(100)], Choice("event", "n"))
    assert len(many.labels) == sql_result.MAX_BARS and many.note == "the first 60 of 100 bars are drawn"


def test_a_chart_choice_the_result_cannot_draw_says_which_field() -> None:
    columns = [Column("event", "String"), Column("n", "UInt64")]
    with pytest.raises(InvalidRequest, match="not numbers") as text:
        sql_result.chart_data(columns, [["a", 1]], Choice("n", "event"))
    assert text.value.field == "y"
    with pytest.raises(InvalidRequest, match="no column 'gone'") as gone:
        sql_result.chart_data(columns, [["a", 1]], Choice("gone", "n"))
    assert gone.value.field == "x"


def test_saving_takes_an_admin_key_and_records_it_as_the_author(client, redis, service, project) -> None:
    admin = reader(client, redis, service, project, "admin")
    kept = admin.save_query("hourly", "SELECT count() FROM events WHERE event = {e:String}", {"e": "signup"})
    assert (kept.created_by, kept.default_params) == (admin.grant.key_id, {"e": "signup"})
    # a read key lists and runs saved queries, but cannot add one
    viewer = reader(client, redis, service, project, "read")
    assert [q.query_id for q in viewer.saved_queries()] == [kept.query_id]
    with pytest.raises(Forbidden, match="admin key"):
        viewer.save_query("mine", "SELECT 1", {})
    answer = viewer.query(kept.sql, kept.default_params, 10)
    assert sql_result.rows_of(answer) == [[2]]
    # the sandbox's checks apply before anything is stored
    with pytest.raises(InvalidRequest, match="does not declare"):
        admin.save_query("typo", "SELECT 1", {"e": "x"})
    assert [q.name for q in admin.saved_queries()] == ["hourly"]
