"""Escapes a caller of project alpha might try through ad-hoc SQL, each with its exact outcome: either
the engine answers with alpha's rows only, or the query is refused with a 403-class error (QueryRefused)
or fails as a 400-class error (QueryFailed) with ClickHouse's reason, and never with a trace of beta."""

from __future__ import annotations

import msgspec
import pytest

from nexus.adhoc.errors import LimitExceeded, QueryRefused, QueryTimeout
from nexus.adhoc.limits import QueryLimits
from nexus.errors import Forbidden, NexusError, QueryFailed
from tests.adhoc.conftest import BETA_MARKERS, World


def answer(world: World, sql: str, params: dict | None = None, **limits: int) -> list[list]:
    result = world.service.answer_json(world.alpha, sql, params, QueryLimits(**limits) if limits else None)
    text = bytes(result.rows).decode()
    assert not any(marker in text for marker in BETA_MARKERS), text
    return msgspec.json.decode(bytes(result.rows))


def failure(world: World, sql: str, params: dict | None = None, **limits: int) -> NexusError:
    with pytest.raises(NexusError) as caught:
        world.service.answer_json(world.alpha, sql, params, QueryLimits(**limits) if limits else None)
    message = str(caught.value)
    assert not any(marker in message for marker in BETA_MARKERS) and world.beta_key_hash not in message, message
    assert "Stack trace" not in message and "Traceback" not in message, message
    return caught.value


ALPHA = "<alpha's project id>"

# Queries that run, and must see alpha's rows only. {beta} is beta's project id; ALPHA, alpha's.
FILTERED = [
    ("every table answers for alpha alone",
     "SELECT groupUniqArray(project_id) FROM (SELECT project_id FROM events UNION ALL SELECT project_id FROM persons "
     "UNION ALL SELECT project_id FROM identities UNION ALL SELECT project_id FROM events_hourly UNION ALL "
     "SELECT project_id FROM events_daily UNION ALL SELECT project_id FROM sessions UNION ALL "
     "SELECT project_id FROM projects UNION ALL SELECT project_id FROM saved_queries)", [[[ALPHA]]]),
    ("asking for beta's id", "SELECT count() FROM events WHERE project_id = {beta}", [[0]]),
    ("beta's marker event", "SELECT count() FROM events WHERE event = 'beta_secret_event'", [[0]]),
    ("join across projects",
     "SELECT count() FROM events AS a INNER JOIN identities AS i ON i.project_id != a.project_id", [[0]]),
    ("join to beta's person by id",
     "SELECT count() FROM identities AS i LEFT JOIN persons AS p ON p.person_id = i.person_id "
     "WHERE i.distinct_id = 'beta-victim' OR p.project_id = {beta}", [[0]]),
    ("subquery in FROM", "SELECT count() FROM (SELECT * FROM events WHERE project_id = {beta})", [[0]]),
    ("IN subquery", "SELECT count() FROM events WHERE distinct_id IN (SELECT distinct_id FROM identities "
                    "WHERE project_id = {beta})", [[0]]),
    ("scalar subquery", "SELECT (SELECT count() FROM events WHERE event = 'beta_secret_event'), "
                        "(SELECT count() FROM persons FINAL WHERE project_id = {beta})", [[0, 0]]),
    ("UNION of beta's rows", "SELECT distinct_id FROM events WHERE project_id = {beta} UNION ALL "
                             "SELECT distinct_id FROM identities WHERE distinct_id = 'beta-victim'", []),
    ("CTE", "WITH e AS (SELECT * FROM events) SELECT count() FROM e WHERE project_id = {beta}", [[0]]),
    ("CTE shadowing a table name", "WITH events AS (SELECT * FROM nexus_db.events WHERE project_id = {beta}) "
                                   "SELECT count() FROM events", [[0]]),
    ("database-qualified name", "SELECT count() FROM nexus_db.events WHERE project_id = {beta}", [[0]]),
    ("quoted identifiers", 'SELECT count() FROM `nexus_db`."events" WHERE event = \'beta_secret_event\'', [[0]]),
    ("FINAL", "SELECT count() FROM persons FINAL WHERE project_id = {beta}", [[0]]),
    ("rollups", "SELECT sum(events) FROM events_daily WHERE event = 'beta_secret_event'", [[0]]),
    ("sessions", "SELECT count() FROM sessions WHERE session_id LIKE 'beta-victim%'", [[0]]),
    ("projects table", "SELECT name FROM projects FINAL ORDER BY name", [["alpha"]]),
    ("saved queries table", "SELECT count() FROM saved_queries WHERE name = 'beta secret query'", [[0]]),
    ("ARRAY JOIN", "SELECT count() FROM events ARRAY JOIN [1, 2] AS x WHERE project_id = {beta}", [[0]]),
    ("window functions", "SELECT max(n) FROM (SELECT count() OVER () AS n FROM events WHERE project_id = {beta})",
     [[0]]),
    ("min and max from part metadata", "SELECT min(project_id), max(project_id) FROM events", [[ALPHA, ALPHA]]),
    ("comment hiding a condition", "SELECT count() FROM events /* WHERE 1 */ WHERE project_id = {beta} -- OR 1",
     [[0]]),
    ("string that looks like SQL", "SELECT count() FROM events WHERE event = 'x'' OR project_id = {beta} --'",
     [[0]]),
]


@pytest.mark.parametrize("title, sql, expected", FILTERED, ids=[case[0] for case in FILTERED])
def test_alpha_sees_only_its_own_rows(world: World, title: str, sql: str, expected: list) -> None:
    sql = sql.format(beta=world.beta).replace("nexus_db", world.service.address.database)
    assert answer(world, sql) == msgspec.json.decode(msgspec.json.encode(expected).replace(
        f'"{ALPHA}"'.encode(), str(world.alpha).encode()))


def test_a_plain_count_is_alpha_s_count_not_the_table_s(world: World) -> None:
    assert answer(world, "SELECT count() FROM events") == [[world.alpha_events]]
    assert answer(world, "SELECT count() FROM events WHERE event = 'alpha_event'") == [[5]]


# Queries refused before they run: a 403 (QueryRefused is Forbidden) naming the reason.
REFUSED = [
    ("api keys", "SELECT key_hash FROM api_keys", "table 'api_keys' is not available"),
    ("api keys, qualified", "SELECT key_hash FROM nexus_db.api_keys", "is not available"),
    ("api keys, quoted", "SELECT * FROM `api_keys`", "table 'api_keys' is not available"),
    ("api keys behind a comment", "SELECT * FROM /* events */ api_keys", "table 'api_keys' is not available"),
    ("api keys through IN", "SELECT count() FROM events WHERE distinct_id IN api_keys", "table 'api_keys'"),
    ("api keys in a scalar subquery", "SELECT (SELECT any(key_hash) FROM api_keys)", "table 'api_keys'"),
    ("api keys in a UNION branch", "SELECT distinct_id FROM events UNION ALL SELECT key_hash FROM api_keys",
     "table 'api_keys'"),
    ("api keys under a CTE of the same name", "WITH api_keys AS (SELECT 1) SELECT * FROM api_keys",
     "table 'api_keys'"),
    ("a CTE defined in another scope", "SELECT * FROM (WITH api_keys AS (SELECT 1) SELECT 1) AS x, api_keys",
     "table 'api_keys'"),
    ("schema migrations", "SELECT * FROM schema_migrations", "table 'schema_migrations'"),
    ("query limits", "SELECT * FROM query_limits", "table 'query_limits'"),
    ("a materialized view (reads its table unfiltered)", "SELECT sum(events) FROM events_hourly_mv",
     "table 'events_hourly_mv'"),
    ("another database", "SELECT count() FROM intruder_target.events", "table 'intruder_target.events'"),
    ("system tables", "SELECT name FROM system.tables", "table 'system.tables'"),
    ("system settings", "SELECT * FROM system.settings", "table 'system.settings'"),
    ("information schema", "SELECT * FROM INFORMATION_SCHEMA.TABLES", "is not available"),
    ("merge()", "SELECT count() FROM merge(currentDatabase(), '^events$')", "table function 'merge'"),
    ("merge() with a regexp database", "SELECT count() FROM merge(REGEXP('.*'), '^events$')", "table function 'merge'"),
    ("cluster()", "SELECT count() FROM cluster('default', nexus_db.events)", "table function 'cluster'"),
    ("remote()", "SELECT count() FROM remote('127.0.0.1', nexus_db.events)", "table function 'remote'"),
    ("remoteSecure()", "SELECT 1 FROM remoteSecure('127.0.0.1', system.one)", "table function 'remoteSecure'"),
    ("view()", "SELECT * FROM view(SELECT key_hash FROM api_keys)", "table function 'view'"),
    ("file()", "SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function 'file'"),
    ("url()", "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')", "table function 'url'"),
    ("executable()", "SELECT * FROM executable('id', 'LineAsString', 'x String')", "table function 'executable'"),
    ("python() (chDB reads Python objects)", "SELECT * FROM python(world)", "table function 'python'"),
    ("s3()", "SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV')", "table function 's3'"),
    ("mergeTreeIndex()", "SELECT * FROM mergeTreeIndex(currentDatabase(), events)", "table function 'mergeTreeIndex'"),
    ("the file() function", "SELECT file('/etc/passwd')", "function 'file' is not allowed"),
    ("joinGet", "SELECT joinGet('api_keys', 'key_hash', 1)", "function 'joinGet' is not allowed"),
    ("dictGet", "SELECT dictGet('d', 'x', toUInt64(1))", "function 'dictGet' is not allowed"),
    ("hasColumnInTable", "SELECT hasColumnInTable('default', 'api_keys', 'key_hash')", "not allowed"),
    ("sleep", "SELECT sleep(3)", "function 'sleep' is not allowed"),
    ("file() through APPLY", "SELECT * APPLY(file) FROM (SELECT '/etc/hostname' AS x)", "function 'file' is not allowed"),
    ("sleep through APPLY", "SELECT * APPLY(sleep) FROM (SELECT 3 AS x)", "function 'sleep' is not allowed"),
    ("sleepEachRow", "SELECT sleepEachRow(1) FROM numbers(3)", "function 'sleepEachRow' is not allowed"),
    ("server settings", "SELECT getServerSetting('path')", "function 'getServerSetting' is not allowed"),
    ("SETTINGS readonly = 0", "SELECT 1 SETTINGS readonly = 0", "SETTINGS is not allowed"),
    ("SETTINGS removing the row filter",
     "SELECT count() FROM events SETTINGS additional_table_filters = {'events': '1'}", "SETTINGS is not allowed"),
    ("SETTINGS in a subquery", "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)", "SETTINGS is not allowed"),
    ("INTO OUTFILE", "SELECT * FROM events INTO OUTFILE '/tmp/nexus-leak.csv'", "INTO OUTFILE is not allowed"),
    ("FORMAT", "SELECT 1 FORMAT TabSeparated", "FORMAT is not allowed"),
    ("a table named by a parameter", "SELECT * FROM {t:Identifier}", "table names cannot come from query parameters"),
    ("a column named by a parameter", "SELECT {t:Identifier} FROM events", "Identifier parameters are not allowed"),
    ("INSERT", "INSERT INTO events (project_id, event) VALUES (2, 'x')", "only SELECT queries"),
    ("INSERT SELECT", "INSERT INTO events (project_id, event) SELECT 2, 'x'", "only SELECT queries"),
    ("DROP", "DROP TABLE events", "only SELECT queries"),
    ("ALTER DELETE", "ALTER TABLE events DELETE WHERE 1", "only SELECT queries"),
    ("TRUNCATE", "TRUNCATE TABLE events", "only SELECT queries"),
    ("CREATE", "CREATE TABLE t (a UInt8) ENGINE = Memory", "only SELECT queries"),
    ("SET", "SET readonly = 0", "only SELECT queries"),
    ("SYSTEM", "SYSTEM SHUTDOWN", "only SELECT queries"),
    ("KILL", "KILL QUERY WHERE 1", "only SELECT queries"),
    ("SHOW", "SHOW TABLES", "only SELECT queries"),
    ("DESCRIBE", "DESCRIBE TABLE api_keys", "only SELECT queries"),
    ("EXPLAIN", "EXPLAIN SELECT * FROM api_keys", "only SELECT queries"),
    ("USE", "USE system", "only SELECT queries"),
    # More than one statement is refused before anything runs, like any other statement but one SELECT.
    ("two statements", "SELECT 1; DROP TABLE events", "only a single SELECT"),
    ("a second statement after a comment", "SELECT count() FROM events -- x\n; SELECT * FROM api_keys",
     "only a single SELECT"),
]


@pytest.mark.parametrize("title, sql, reason", REFUSED, ids=[case[0] for case in REFUSED])
def test_escapes_are_refused_before_running(world: World, client, title: str, sql: str, reason: str) -> None:
    client.command("CREATE DATABASE IF NOT EXISTS intruder_target")
    client.command("CREATE TABLE IF NOT EXISTS intruder_target.events (project_id UInt32) ENGINE = Memory")
    error = failure(world, sql.replace("nexus_db", world.service.address.database), {"t": "api_keys"}
                    if "{t:" in sql else None)
    assert isinstance(error, QueryRefused) and isinstance(error, Forbidden), repr(error)
    assert reason in str(error)


# Malformed input fails with the engine's reason, as a 400 (QueryFailed), before anything runs.
MALFORMED = [
    ("an unterminated comment", "SELECT 1 /* SETTINGS readonly = 0", "Syntax error"),
    ("an unterminated string", "SELECT 'abc", "Syntax error"),
]


@pytest.mark.parametrize("title, sql, reason", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_malformed_input_fails_with_the_engine_s_reason(world: World, title: str, sql: str, reason: str) -> None:
    error = failure(world, sql)
    assert type(error) is QueryFailed and reason in str(error), repr(error)


def test_a_type_error_over_beta_s_values_cannot_leak_them(world: World) -> None:
    # Given a conversion that would quote the value it fails on, pointed at beta's person
    error = failure(world, "SELECT toUInt8(any(distinct_id)) FROM identities WHERE distinct_id = 'beta-victim'")
    # Then it fails on the empty value alpha's filtered view has (failure() checks beta's id is absent)
    assert isinstance(error, QueryFailed) and "Cannot parse UInt8 from String" in str(error)


def test_slow_queries_stop_at_the_key_s_time_limit(world: World) -> None:
    cartesian = "SELECT count() FROM events AS a, events AS b, events AS c WHERE a.ts < b.ts AND b.ts < c.ts"
    error = failure(world, cartesian, max_seconds=1)
    assert isinstance(error, QueryTimeout) and "Timeout exceeded" in str(error)
    error = failure(world, "SELECT count() FROM numbers_mt(100000000000)", max_seconds=1, max_rows_to_read=0)
    assert isinstance(error, QueryTimeout)


def test_huge_reads_and_results_and_memory_stop_at_their_limits(world: World) -> None:
    error = failure(world, "SELECT count() FROM numbers(100000000)", max_rows_to_read=10_000_000)
    assert isinstance(error, LimitExceeded) and "max_rows_to_read" in str(error)
    error = failure(world, "SELECT number FROM system.numbers", max_rows_to_read=1_000_000)
    assert isinstance(error, LimitExceeded)
    error = failure(world, "SELECT * FROM events", max_result_rows=100)
    assert isinstance(error, LimitExceeded) and "Limit for result exceeded" in str(error)
    error = failure(world, "SELECT groupArray(number) FROM numbers(50000000)", max_memory_bytes=50_000_000)
    assert isinstance(error, LimitExceeded) and "memory limit" in str(error).lower()
