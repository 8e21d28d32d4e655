"""What the checker lets through: the SQL analysts actually write runs unrefused, names resolve the way
the engine resolves them, and every table in the database has been decided on (allowed or refused)."""

from __future__ import annotations

import pytest

from nexus.adhoc import functions, policy
from nexus.adhoc.check import Parameter
from tests.adhoc.conftest import World

ANALYST_QUERIES = [
    "SELECT event, count() AS n, uniq(distinct_id) FROM events WHERE ts >= now() - INTERVAL 7 DAY GROUP BY event "
    "ORDER BY n DESC LIMIT 10",
    "SELECT toStartOfDay(ts) AS day, countIf(event = 'signup') FROM events GROUP BY day ORDER BY day WITH FILL STEP toIntervalDay(1)",
    "WITH firsts AS (SELECT distinct_id, min(ts) AS first FROM events GROUP BY distinct_id) "
    "SELECT toStartOfWeek(first) AS w, count() FROM firsts GROUP BY w",
    "SELECT distinct_id, windowFunnel(86400)(toDateTime(ts), event = 'signup', event = 'purchase') AS level "
    "FROM events GROUP BY distinct_id",
    "SELECT e.distinct_id, i.person_id FROM events AS e LEFT JOIN identities AS i FINAL "
    "ON i.distinct_id = e.distinct_id LIMIT 5",
    "SELECT event, sum(events), uniqMerge(distinct_ids), sum(revenue) FROM events_hourly GROUP BY event",
    "SELECT session_id, min(started_at), max(ended_at), argMinMerge(entry_url) FROM sessions GROUP BY session_id",
    "SELECT CASE WHEN event = 'x' THEN 1 ELSE 0 END, CASE event WHEN 'a' THEN 1 END, if(1, 2, 3), "
    "multiIf(1, 2, 3, 4, 5), 1 IN (1, 2), 'a' LIKE '%a%', arrayMap(x -> x * 2, [1, 2]) FROM events LIMIT 1",
    "SELECT properties.revenue, properties.plan::String, CAST(1 AS String), tuple(1, 2).1, [1, 2][1], "
    "map('a', 1)['a'], 1 BETWEEN 0 AND 2, DATE_DIFF('day', ts, now()), EXTRACT(YEAR FROM ts), "
    "trim(BOTH ' ' FROM ' a '), position('a' IN 'abc'), COUNT(*) OVER () FROM events LIMIT 1",
    "SELECT quantile(0.5)(skew_ms), quantiles(0.1, 0.9)(skew_ms), groupArray(10)(event), count(DISTINCT event), "
    "argMax(event, ts), topK(5)(event), uniqExact(distinct_id), uniqState(distinct_id), sumIfOrNull(1, 0) FROM events",
    "SELECT event, row_number() OVER (PARTITION BY distinct_id ORDER BY ts), lagInFrame(ts) OVER w FROM events "
    "WINDOW w AS (PARTITION BY distinct_id ORDER BY ts) LIMIT 5",
    "SELECT arrayJoin([1, 2]) AS x, groupArrayIf(x, x > 1) FROM numbers(3) GROUP BY ALL",
    "SELECT number FROM numbers(10) WHERE number % 2 = 0 UNION ALL SELECT number FROM system.numbers LIMIT 3",
    "SELECT count() FROM events WHERE distinct_id IN (SELECT distinct_id FROM identities) AND EXISTS (SELECT 1)",
    "SELECT COLUMNS('utm_.*') FROM events LIMIT 1",
    "SELECT * EXCEPT (properties) REPLACE (upper(event) AS event) FROM events LIMIT 1",
    "SELECT 1 INTERSECT SELECT 1 EXCEPT SELECT 2",
    "SELECT event FROM events QUALIFY row_number() OVER (PARTITION BY event ORDER BY ts) = 1",
    "SELECT event, count() FROM events GROUP BY event WITH TOTALS HAVING count() > 1 ORDER BY 2 DESC NULLS LAST",
    "SELECT * FROM values('a UInt8, b String', (1, 'x'))",
    "SELECT retention(event = 'a', event = 'b'), sequenceMatch('(?1)(?2)')(toDateTime(ts), event = 'a', "
    "event = 'b') FROM events GROUP BY distinct_id",
    "SELECT * FROM generate_series(1, 3) AS g, (SELECT 1 AS one) AS t CROSS JOIN system.one",
]


@pytest.mark.parametrize("sql", ANALYST_QUERIES)
def test_the_sql_analysts_write_runs(world: World, sql: str) -> None:
    world.service.answer_json(world.alpha, sql)


def test_validation_reports_tables_and_parameters(world: World) -> None:
    checked = world.service.validate(world.alpha, (
        "SELECT event, count() FROM events WHERE ts >= {since:DateTime64(3)} AND event IN {names:Array(String)} "
        "AND distinct_id IN (SELECT distinct_id FROM identities) AND ts < {since:DateTime64(3)} + 1 GROUP BY event"))
    assert checked.tables == ("events", "identities")
    assert checked.parameters == (Parameter("since", "DateTime64(3)"), Parameter("names", "Array(String)"))


def test_names_resolve_as_the_engine_resolves_them(client) -> None:
    catalog = functions.load(client)
    assert catalog.resolve("DATE_DIFF").name == "dateDiff"
    assert catalog.resolve("COUNT").name == "count"
    assert catalog.resolve("uniqMergeState").name == "uniq"
    assert catalog.resolve("argMinStateIf").name == "argMin"
    assert catalog.resolve("file").name == "file"
    assert catalog.resolve("noSuchFunction") is None
    assert catalog.resolve("lengthIf") is None  # a combinator only follows an aggregate function


def test_every_table_of_the_database_has_been_decided_on(client) -> None:
    """A migration that adds a table fails here until the table is allowed (filtered by project) or
    listed as refused: ad-hoc SQL never gains a table by accident."""
    tables = {name for (name,) in client.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
              .result_rows}
    # jobs and schedules: a schedule holds its webhook's signing secret
    refused = {"api_keys", "query_limits", "schema_migrations", "events_hourly_mv", "events_daily_mv", "sessions_mv",
               "jobs", "schedules",
               "cohorts", "cohort_members",  # cohorts: a static cohort's members are uploaded ids, not events
               "goals",  # goals: read through GET /v1/goals and the goals analysis
               "experiments",  # experiments: read through GET /v1/experiments and the experiment analysis
               "erasures",  # erasures: who erased persons when; admin only, through GET /v1/erasures
               "channel_rules",  # channel rules: read through GET /v1/channels and the attribution analyses
               "ad_spend"}  # ad spend: a project's costs, read by the attribution analysis only
    assert tables - set(policy.PROJECT_TABLES) == refused
    for table, column in policy.PROJECT_TABLES.items():
        columns = dict(client.query("SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                                    "AND table = {t:String}", parameters={"t": table}).result_rows)
        assert columns.get(column) == "UInt32", table


def test_allowed_table_functions_and_system_tables_read_nothing_stored(client) -> None:
    engine_functions = {name for (name,) in client.query("SELECT name FROM system.table_functions").result_rows}
    assert policy.TABLE_FUNCTIONS <= engine_functions
    assert policy.TABLE_FUNCTIONS <= {"numbers", "numbers_mt", "generate_series", "generateSeries", "values"}


ARGUMENTS = {"numbers": "3", "numbers_mt": "3", "generate_series": "1, 3", "generateSeries": "1, 3",
             "values": "'a UInt8', 1, 2, 3"}


def test_every_table_function_and_system_table_the_errors_offer_runs_in_the_sandbox(world: World) -> None:
    # A refusal lists what is allowed instead: each of those must really run under readonly=1.
    assert set(ARGUMENTS) == policy.TABLE_FUNCTIONS
    for name, arguments in ARGUMENTS.items():
        assert world.service.answer_json(world.alpha, f"SELECT count() FROM {name}({arguments})").row_count == 1
    for table in policy.SYSTEM_TABLES:
        answer = world.service.answer_json(world.alpha, f"SELECT count() FROM (SELECT * FROM system.{table} LIMIT 3)")
        assert answer.row_count == 1, table
