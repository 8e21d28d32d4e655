"""Errors mapped by cause, through the real server on the real engine and a real redis-server: an engine too
busy to take a query and a stopped Redis answer 503 with Retry-After on every route; SQL Nexus wrote that
fails answers 500 with an error id that the log has with the SQL, and nothing of the engine's text; a
caller's limit is a 400 naming the limit and how to raise it; a caller's syntax error is a 400 with the
engine's message; a second statement is refused (403) before anything runs."""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import chdb
import httpx
import pytest

from nexus import redis_server
from nexus.meta import keys, projects

# Routes of every area, each with the scope of key it needs and a body that reaches the store.
ROUTES = [
    ("POST", "/v1/track", "write", {"event": "probe", "anonymousId": "a1"}),
    ("POST", "/v1/batch", "write", {"batch": [{"type": "track", "event": "probe", "anonymousId": "a2"}]}),
    ("POST", "/v1/query", "read", {"sql": "SELECT count() FROM events"}),
    ("POST", "/v1/analyses/trends", "read", {"series": [{"event": "probe"}], "date_range": {"date_from": "-3d"}}),
    ("GET", "/v1/schema", "read", None),
    ("GET", "/v1/events/names", "read", None),
    ("GET", "/v1/keys", "admin", None),
]


_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def redis_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("redis")


@pytest.fixture(scope="module")
def redis(redis_dir: Path) -> Iterator[redis_server.RedisHandle]:
    """This module's own redis-server (not the session's): a test stops it and starts it again."""
    handle = redis_server.start_embedded(redis_dir)
    yield handle
    handle.close()


@pytest.fixture()
def project(server) -> tuple[int, dict[str, str], dict[str, str]]:
    """A new project: its keys' secrets and ids by scope (new keys: no process has them cached)."""
    project = projects.create(server.runtime.clickhouse, f"errors-{next(_numbers)}")
    made = {scope: keys.create(server.runtime.clickhouse, project.project_id, scope) for scope in ("write", "read", "admin")}
    return project.project_id, {s: secret for s, (_, secret) in made.items()}, {s: k.key_id for s, (k, _) in made.items()}


def call(http: httpx.Client, method: str, path: str, secret: str, body: dict | None) -> httpx.Response:
    # Every body is new, so no answer comes from the analyses cache.
    return http.request(method, path, json=body, headers={"Authorization": f"Bearer {secret}"})


def assert_unavailable(answer: httpx.Response, route: str) -> None:
    assert answer.status_code == 503, (route, answer.status_code, answer.text)
    assert int(answer.headers["Retry-After"]) > 0, route
    assert "retry" in answer.json()["error"], (route, answer.text)


@contextmanager
def engine_busy(engine_dir: Path, clients: list) -> Iterator[None]:
    """The engine answering TOO_MANY_SIMULTANEOUS_QUERIES to the server's clients: a query of its own runs
    in another connection, and the clients may run only when no other query does."""
    conn = chdb.connect(str(engine_dir))
    stream = conn.send_query("SELECT sleepEachRow(0.5) FROM numbers(120) SETTINGS max_block_size = 1", "TSV")
    started = threading.Event()
    threading.Thread(target=lambda: (stream.fetch(), started.set()), daemon=True).start()
    assert started.wait(10)
    for client in clients:
        client.set_client_setting("max_concurrent_queries_for_all_users", 1)
    try:
        yield
    finally:
        stream.cancel()
        conn.close()
        for client in clients:  # (a SET is a query too: after the other one is gone)
            client.set_client_setting("max_concurrent_queries_for_all_users", 0)


def test_a_busy_engine_answers_503_with_retry_after_on_every_route(server, http, project, engine_dir: Path) -> None:
    _, secrets, _ = project
    clients = [server.runtime.clickhouse, server.runtime.ingest().writer.clickhouse]
    # Given keys no process has looked up yet: the lookup itself meets the busy engine
    with engine_busy(engine_dir, clients):
        for method, path, scope, body in ROUTES:
            assert_unavailable(call(http, method, path, secrets[scope], body), path)
    # Given keys just used (cached for seconds): each route's own work meets the busy engine
    for method, path, scope, body in ROUTES:
        assert call(http, method, path, secrets[scope], body).status_code == 200, path
    with engine_busy(engine_dir, clients):
        for method, path, scope, body in ROUTES:
            if path == "/v1/analyses/trends":  # another request than the one just answered (and cached)
                body = {**body, "date_range": {"date_from": "-5d"}}
            answer = call(http, method, path, secrets[scope], body)
            assert_unavailable(answer, path)
            assert "TOO_MANY_SIMULTANEOUS_QUERIES" in answer.json()["error"], (path, answer.text)
    # Then, the engine free again, the same requests succeed
    for method, path, scope, body in ROUTES:
        assert call(http, method, path, secrets[scope], body).status_code == 200, path


def test_a_stopped_redis_answers_503_with_retry_after_on_every_route(server, http, project, redis,
                                                                    redis_dir: Path) -> None:
    _, secrets, _ = project
    for method, path, scope, body in ROUTES:
        assert call(http, method, path, secrets[scope], body).status_code == 200, path
    # When the redis-server stops (its data saved; the server's client keeps its address)
    redis.close()
    try:
        for method, path, scope, body in ROUTES:
            answer = call(http, method, path, secrets[scope], body)
            assert_unavailable(answer, path)
            assert "Redis is unavailable" in answer.json()["error"], answer.text
        assert http.get("/health/ready").status_code == 503
    finally:
        restarted = redis_server.start_embedded(redis_dir)
        redis.client, redis.process = restarted.client, restarted.process
    # Then, Redis back at the same address, every route answers again
    for method, path, scope, body in ROUTES:
        assert call(http, method, path, secrets[scope], body).status_code == 200, path


def test_nexus_s_own_sql_failing_is_a_500_with_an_id_that_the_log_has_with_the_sql(server, http, project, caplog) -> None:
    _, secrets, _ = project
    client = server.runtime.clickhouse
    # Given a store whose identities table is gone (analyses resolve persons through it)
    client.command("RENAME TABLE identities TO identities_gone")
    try:
        with caplog.at_level(logging.ERROR, logger="nexus.api"):
            answer = http.post("/v1/analyses/funnel", json={"steps": [{"event": "a"}, {"event": "b"}]},
                               headers={"Authorization": f"Bearer {secrets['read']}"})
    finally:
        client.command("RENAME TABLE identities_gone TO identities")
    # Then the caller gets an id, and nothing of the SQL or of the engine's text
    assert answer.status_code == 500, answer.text
    body = answer.json()
    assert set(body) == {"error", "error_id"} and re.fullmatch(r"[0-9a-f]{12}", body["error_id"])
    assert body["error_id"] in body["error"]
    for engine_text in ("identities", "UNKNOWN_TABLE", "DB::Exception", "Code:", "SELECT"):
        assert engine_text not in answer.text, engine_text
    # And the log has, under that id, the statement, its parameters and the engine's reason
    logged = [r.getMessage() for r in caplog.records if body["error_id"] in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    sql = logged[0].split("SQL: ", 1)[1]
    assert sql.lstrip().startswith(("SELECT", "WITH")) and "identities" in sql and "{project_id:UInt32}" in sql
    assert "UNKNOWN_TABLE" in logged[0] and "parameters: {" in logged[0]


def test_a_caller_s_sql_fails_with_the_engine_s_reason_or_its_key_s_limit(server, http, project) -> None:
    _, secrets, key_ids = project
    read = {"Authorization": f"Bearer {secrets['read']}"}
    # A syntax error and an unknown column: 400 with the engine's message
    answer = http.post("/v1/query", json={"sql": "SELEC 1"}, headers=read)
    assert answer.status_code == 400 and answer.json()["error"].startswith("Syntax error"), answer.text
    answer = http.post("/v1/query", json={"sql": "SELECT no_such_column FROM events"}, headers=read)
    assert answer.status_code == 400 and "no_such_column" in answer.json()["error"], answer.text
    # Two statements: refused before anything runs, like every statement but a single SELECT
    answer = http.post("/v1/query", json={"sql": "SELECT 1; SELECT 2"}, headers=read)
    assert answer.status_code == 403 and "only a single SELECT" in answer.json()["error"], answer.text
    # A limit of the key's: 400 naming it and how an admin raises it
    admin = {"Authorization": f"Bearer {secrets['admin']}"}
    assert http.put(f"/v1/keys/{key_ids['read']}/limits", json={"max_rows_to_read": 10}, headers=admin).status_code == 200
    answer = http.post("/v1/query", json={"sql": "SELECT count() FROM numbers(1000)"}, headers=read)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["limit"] == "max_rows_to_read"
    assert "--max-rows-to-read" in body["error"] and f"PUT /v1/keys/KEY_ID/limits" in body["error"]
    streamed = http.post("/v1/query", json={"sql": "SELECT count() FROM numbers(1000)", "format": "csv"}, headers=read)
    assert streamed.status_code == 400 and streamed.json()["limit"] == "max_rows_to_read"
