"""Issue: four connections of one read key that started large streamed queries and stopped reading held
all four ad-hoc SQL slots past the time limit (429 for everyone at t+75 s), and a 200 MB JSON answer grew
the server by 1 GB. Now one key holds at most half the slots and one project all but one, the time
limit covers sending (a client that stops reading is cut off and its query cancelled), and a JSON
answer is bounded in bytes as well as rows."""

from __future__ import annotations

import base64
import socket
import time

import pytest

from nexus.adhoc import limits

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security

HUGE = "SELECT number, repeat('x', 200) AS padding FROM numbers(100000000)"


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    return {"NEXUS_QUERY_MAX_CONCURRENT": "4", "NEXUS_QUERY_MAX_JSON_BYTES": "2000000"}


@pytest.fixture(scope="module")
def service(server):
    queries = server.runtime.queries
    queries.slots.queue_seconds = 0.5  # a full share answers 429 at once instead of after 10 s
    return queries


@pytest.fixture(scope="module")
def two_projects(server):
    a_id, a_keys = server.project_with_keys("a")
    _, b_keys = server.project_with_keys("b")
    second_read = server.project_with_keys  # noqa: F841 (documented below)
    from nexus.meta import keys
    _, a_second_read = keys.create(server.runtime.clickhouse, a_id, "read")
    return {"a": a_keys["read"], "a2": a_second_read, "b": b_keys["read"]}


def stalled_stream(server, key: str, sql: str = HUGE) -> socket.socket:
    """A client that asks for a large CSV result, reads the status line, then stops reading. The engine's
    blocks of this result (about 13 MB each) are larger than the sockets' buffers, so the server's
    writes block."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)))
    body = ('{"sql": "%s", "format": "csv"}' % sql).encode()
    auth = base64.b64encode(f"{key}:".encode()).decode()
    connection.sendall(b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       + f"Authorization: Basic {auth}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    assert connection.recv(12) == b"HTTP/1.1 200"
    return connection


def run(http, key: str, sql: str = "SELECT 1", **body):
    return http.post("/v1/query", json={"sql": sql, **body}, headers={"Authorization": f"Bearer {key}"})


def test_one_key_cannot_take_every_slot(server, http, service, two_projects) -> None:
    # Given one key holding two stalled streams, half of the four slots
    stalled = [stalled_stream(server, two_projects["a"]) for _ in range(2)]
    try:
        # Then the same key waits and is refused, saying its share is full
        refused = run(http, two_projects["a"])
        assert refused.status_code == 429 and "with this key (2 of 4 at most)" in refused.json()["error"]
        assert refused.headers["Retry-After"] == "2"
        # And another key of the project, and another project, still run queries
        stalled.append(stalled_stream(server, two_projects["a2"]))
        refused = run(http, two_projects["a2"])
        assert refused.status_code == 429 and "for this project (3 of 4 at most)" in refused.json()["error"]
        assert run(http, two_projects["b"]).json()["rows"] == [[1]]
    finally:
        for connection in stalled:
            connection.close()


def test_a_client_that_stops_reading_is_cut_off_at_the_time_limit(server, http, service, two_projects) -> None:
    # Given a key whose queries may take 2 s, and two of its streams that stop being read
    key_id = server.runtime.clickhouse.query("SELECT key_id FROM api_keys FINAL WHERE key_hash = "
                                             "lower(hex(SHA256({k:String})))", parameters={"k": two_projects["a"]}
                                             ).result_rows[0][0]
    limits.set_for_key(server.runtime.clickhouse, 0, key_id, max_seconds=2)
    stalled = [stalled_stream(server, two_projects["a"]) for _ in range(2)]
    try:
        started = time.monotonic()
        # When the limit has passed, the server has let go of both: the key runs queries again
        while run(http, two_projects["a"]).status_code == 429:
            assert time.monotonic() - started < 8, "the stalled streams still hold their slots"
        assert 1.5 < time.monotonic() - started
        # And each stalled connection was cut: read on, and the body ends without its last chunk
        for connection in stalled:
            connection.settimeout(10)
            received = b""
            while chunk := connection.recv(1 << 20):
                received = received[-100:] + chunk
            assert not received.endswith(b"\r\n0\r\n\r\n")
    finally:
        for connection in stalled:
            connection.close()
        limits.set_for_key(server.runtime.clickhouse, 0, key_id)


def test_a_slow_reader_is_cut_at_the_limit_even_while_it_reads(server, http, two_projects) -> None:
    key = two_projects["a2"]
    key_id = server.runtime.clickhouse.query("SELECT key_id FROM api_keys FINAL WHERE key_hash = "
                                             "lower(hex(SHA256({k:String})))", parameters={"k": key}
                                             ).result_rows[0][0]
    limits.set_for_key(server.runtime.clickhouse, 0, key_id, max_seconds=1)
    try:
        with http.stream("POST", "/v1/query", json={"sql": HUGE, "format": "csv"},
                         headers={"Authorization": f"Bearer {key}"}) as answer:
            assert answer.status_code == 200
            with pytest.raises(Exception) as cut:  # the body ends early: httpx reports an incomplete read
                for _ in answer.iter_bytes(1 << 16):
                    time.sleep(0.01)
            assert "incomplete" in str(cut.value).lower() or "closed" in str(cut.value).lower(), repr(cut.value)
    finally:
        limits.set_for_key(server.runtime.clickhouse, 0, key_id)


def test_a_json_answer_is_bounded_in_bytes(http, two_projects) -> None:
    answer = run(http, two_projects["b"], "SELECT repeat('x', 1000) FROM numbers(20000)")
    assert answer.status_code == 400, answer.text[:300]
    assert "larger than 2000000 bytes (NEXUS_QUERY_MAX_JSON_BYTES)" in answer.json()["error"]
    # a small answer of the same shape still comes back, and the large one streams
    assert run(http, two_projects["b"], "SELECT repeat('x', 1000) FROM numbers(100)").json()["row_count"] == 100
    streamed = run(http, two_projects["b"], "SELECT repeat('x', 1000) FROM numbers(20000)", format="csv")
    assert streamed.status_code == 200 and len(streamed.content) > 20_000_000
