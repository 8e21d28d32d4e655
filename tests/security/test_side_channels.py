"""Issue: A's ad-hoc conditions were evaluated on B's rows (parts mixed both projects after merges), so
`rows_read`, `bytes_read` and the run time said whether B's rows matched, and B's property values were
read out one character at a time. Now parts never mix projects (migration 008) and the sandbox prunes
B's partitions before anything A wrote is evaluated: what A's query reads cannot depend on B's data."""

from __future__ import annotations

import string
import uuid

import httpx
import pytest

from nexus.adhoc import policy
from tests.security.conftest import B_MARKERS, B_SECRET, events, read_headers, send

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security

B_RUN = uuid.uuid4().hex[:8]  # the start of B's message ids

# A's probes, each aimed at B's data through a different kind of column. `{nonce}` changes the text
# each time, as the attack did, so no cache of the engine can answer in B's place.
PROBES = {
    "typed column": "SELECT count() FROM events WHERE startsWith(url, 'https://b.example/ZZS') "
                    "AND length(distinct_id) < {nonce}",
    "JSON property": "SELECT count() FROM events WHERE startsWith(toString(properties.secret), 'ZZS') "
                     "AND length(distinct_id) < {nonce}",
    "skip-indexed event name": "SELECT count() FROM events WHERE event = 'zz_secret_event' "
                               "AND length(distinct_id) < {nonce}",
    "bloom-indexed message id": f"SELECT count() FROM events WHERE message_id = '{B_RUN}-b-victim-0-1' "
                                "AND length(distinct_id) < {nonce}",
    "sorting key": "SELECT count() FROM events WHERE distinct_id = 'b-victim-0' AND length(url) < {nonce}",
    "person traits": "SELECT count() FROM persons WHERE startsWith(toString(properties.secret), 'ZZS') "
                     "AND length(toString(person_id)) < {nonce}",
    "identities": "SELECT count() FROM identities WHERE distinct_id = 'b-victim-0' "
                  "AND length(toString(person_id)) < {nonce}",
    "sessions rollup": "SELECT count() FROM sessions WHERE startsWith(referrer_domain, 'b.example') "
                       "AND length(session_id) < {nonce}",
    "daily rollup": "SELECT sum(events) FROM events_daily WHERE event = 'zz_secret_event' AND toUInt32(day) > {nonce} - 1000000",
    "hourly rollup": "SELECT sum(events) FROM events_hourly WHERE event = 'zz_secret_event' "
                     "AND toUInt32(hour) > {nonce}",
}


def statistics(http: httpx.Client, keys_of: dict, sql: str) -> tuple[int, int, list]:
    answer = http.post("/v1/query", json={"sql": sql}, headers=read_headers(keys_of))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert not any(marker in answer.text for marker in B_MARKERS)
    return body["rows_read"], body["bytes_read"], body["rows"]


def merge_everything(server) -> None:
    for table in policy.PROJECT_TABLES:
        server.runtime.clickhouse.command(f"OPTIMIZE TABLE {table} FINAL")


@pytest.fixture(scope="module")
def a_alone_then_with_b(server, http, keys_of) -> dict[str, tuple]:
    """Every probe's statistics with A's data alone, then with B's marked data beside it, each time
    after OPTIMIZE FINAL merged all parts, as background merges do in time."""
    send(http, keys_of["a"][1]["write"], events("a-user", 40, 25, {"secret": "AAPLAIN", "n": 1},
                                                "https://a.example/home", "viewed"))
    merge_everything(server)
    before = {name: statistics(http, keys_of, sql.format(nonce=800_000 + i)) for i, (name, sql) in
              enumerate(PROBES.items())}
    send(http, keys_of["b"][1]["write"], events("b-victim", 3, 2, {"secret": B_SECRET, "bkey": 1},
                                                "https://b.example/ZZSECRET", "zz_secret_event", B_RUN))
    merge_everything(server)
    return {name: (before[name], statistics(http, keys_of, sql.format(nonce=900_000 + i))) for i, (name, sql) in
            enumerate(PROBES.items())}


@pytest.mark.parametrize("probe", PROBES)
def test_a_query_reads_the_same_with_or_without_b_s_data(a_alone_then_with_b, probe: str) -> None:
    alone, beside_b = a_alone_then_with_b[probe]
    assert alone == beside_b


def test_b_s_rows_are_really_there_and_merged_with_a_s_month(server, a_alone_then_with_b, keys_of) -> None:
    # The test above proves something only if B's rows (tracks and identifies, traits in properties)
    # exist in A's month.
    found = server.runtime.clickhouse.query(
        "SELECT count(), uniqExact(_partition_id) FROM events WHERE project_id IN ({a:UInt32}, {b:UInt32})",
        parameters={"a": keys_of["a"][0], "b": keys_of["b"][0]}).result_rows[0]
    b_rows = server.runtime.clickhouse.query("SELECT count() FROM events WHERE project_id = {b:UInt32} AND "
                                             "toString(properties.secret) = {s:String}",
                                             parameters={"b": keys_of["b"][0], "s": B_SECRET}).result_rows[0][0]
    assert b_rows == 9 and found[0] == 40 * 25 + 40 + 6 + 3 and found[1] == 2


def test_reading_b_s_secret_one_character_at_a_time_recovers_nothing(http, keys_of, a_alone_then_with_b) -> None:
    # Given B's secret starts with "ZZ", the attack guesses the next character and watches what A's
    # query reads: a guess that matches B's rows used to read more bytes.
    seen: dict[tuple[int, int, str], list[str]] = {}
    for n, guess in enumerate(string.ascii_uppercase + string.digits):
        for column, sql in (("properties", "SELECT count() FROM events WHERE "
                                           "startsWith(toString(properties.secret), 'ZZ{g}') AND length(distinct_id) < {n}"),
                            ("url", "SELECT count() FROM events WHERE startsWith(url, 'https://b.example/ZZ{g}') "
                                    "AND length(distinct_id) < {n}")):
            rows_read, bytes_read, rows = statistics(http, keys_of, sql.format(g=guess, n=700_000 + n))
            assert rows == [[0]]
            seen.setdefault((rows_read, bytes_read, column), []).append(guess)
    # Then every guess reads exactly the same: one set of statistics per column, "S" not singled out.
    assert sorted(column for _, _, column in seen) == ["properties", "url"], seen
