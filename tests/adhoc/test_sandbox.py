"""Running queries: the JSON answer, parameters, every streamed format against the same rows, empty and
multi-block results, per-key limits, and sessions that are always given back."""

from __future__ import annotations

import io
import json

import msgspec
import pyarrow as pa
import pyarrow.ipc as ipc
import pandas as pd
import pyarrow.parquet as pq
import pytest

from nexus.adhoc import limits
from nexus.adhoc.limits import QueryLimits
from nexus.adhoc.sandbox import QueryService
from nexus.errors import InvalidRequest, QueryFailed, RateLimited
from nexus.exports.stream import write_batches
from nexus.meta import keys
from nexus.settings import load as load_settings
from tests.adhoc.conftest import World

ALPHA_USER = ("SELECT event, distinct_id, toUInt64(toMinute(ts)) AS minute FROM events "
              "WHERE distinct_id = {who:String} ORDER BY minute")


def streamed(service: QueryService, project_id: int, sql: str, fmt: str, params: dict | None = None,
             **kwargs) -> bytes:
    with service.open(project_id, sql, params, fmt, **kwargs) as result:
        return b"".join(result)


def test_the_json_answer_has_types_rows_and_statistics(world: World) -> None:
    answer = world.service.answer_json(world.alpha, ALPHA_USER, {"who": "alpha-user"})
    assert [(c.name, c.type) for c in answer.columns] == [
        ("event", "LowCardinality(String)"), ("distinct_id", "String"), ("minute", "UInt64")]
    assert msgspec.json.decode(bytes(answer.rows)) == [["alpha_event", "alpha-user", m] for m in range(5)]
    assert answer.row_count == 5
    assert answer.rows_read >= 5 and answer.bytes_read > 0 and answer.elapsed_ms > 0


def test_parameters_are_bound_by_the_engine_with_their_types(world: World) -> None:
    answer = world.service.answer_json(world.alpha, "SELECT {s:String}, {n:Array(String)}, {m:Map(String, UInt8)}, "
                                                    "{b:Bool}, {d:DateTime64(3, 'UTC')}, {x:Nullable(UInt8)}", {
        "s": "it's a \\ \n test", "n": ["a'b", "c\\d"], "m": {"k": 3}, "b": True, "d": "2026-01-02 03:04:05.678",
        "x": None})
    assert msgspec.json.decode(bytes(answer.rows)) == [
        ["it's a \\ \n test", ["a'b", "c\\d"], {"k": 3}, True, "2026-01-02 03:04:05.678", None]]
    with pytest.raises(InvalidRequest, match=r"missing value for parameter \{who:String\}"):
        world.service.answer_json(world.alpha, ALPHA_USER, {})
    with pytest.raises(InvalidRequest, match="unknown parameter 'whom'"):
        world.service.answer_json(world.alpha, ALPHA_USER, {"who": "x", "whom": "y"})
    with pytest.raises(QueryFailed, match="cannot be parsed as UInt8"):
        world.service.answer_json(world.alpha, "SELECT {n:UInt8}", {"n": "many"})


def test_every_format_carries_the_same_rows(world: World) -> None:
    params = {"who": "alpha-user"}
    expected = [{"event": "alpha_event", "distinct_id": "alpha-user", "minute": m} for m in range(5)]
    arrow = ipc.open_stream(streamed(world.service, world.alpha, ALPHA_USER, "arrow", params)).read_all()
    assert arrow.to_pylist() == expected
    parquet = pq.read_table(io.BytesIO(streamed(world.service, world.alpha, ALPHA_USER, "parquet", params)))
    assert parquet.to_pylist() == expected
    csv = streamed(world.service, world.alpha, ALPHA_USER, "csv", params).decode()
    assert csv.splitlines() == ['"event","distinct_id","minute"'] + [f'"alpha_event","alpha-user",{m}' for m in range(5)]
    ndjson = streamed(world.service, world.alpha, ALPHA_USER, "ndjson", params).decode()
    assert [json.loads(line) for line in ndjson.splitlines()] == expected


def test_results_of_many_blocks_stream_whole(world: World) -> None:
    # Given a result the engine produces in ~30 blocks
    sql = "SELECT number AS n, toString(number) AS s FROM numbers(2000000)"
    arrow = ipc.open_stream(streamed(world.service, world.alpha, sql, "arrow")).read_all()
    assert arrow.num_rows == 2_000_000 and arrow.column("n").to_pylist()[-1] == 1_999_999
    parquet = pq.ParquetFile(io.BytesIO(streamed(world.service, world.alpha, sql, "parquet")))
    assert parquet.metadata.num_rows == 2_000_000 and parquet.metadata.num_row_groups == 2
    csv = streamed(world.service, world.alpha, sql, "csv")
    assert csv.count(b"\n") == 2_000_001 and csv.count(b'"n","s"') == 1  # one header, not one per block
    ndjson = streamed(world.service, world.alpha, sql, "ndjson")
    assert ndjson.count(b"\n") == 2_000_000 and ndjson.endswith(b'{"n":1999999,"s":"1999999"}\n')


def test_csv_keeps_one_header_whatever_the_column_names(world: World) -> None:
    sql = 'SELECT number AS "quote""d", toString(number) AS "new\nline", 1 AS `a,b` FROM numbers(200000)'
    csv = streamed(world.service, world.alpha, sql, "csv")
    assert csv.startswith(b'"quote""d","new\nline","a,b"\n0,"0",1\n')
    assert csv.count(b'"quote""d"') == 1 and csv.count(b"\n") == 200_002  # 200,000 rows, a header with a newline


def test_empty_results_keep_their_columns(world: World) -> None:
    sql = "SELECT event, ts FROM events WHERE event = 'never sent'"
    assert world.service.answer_json(world.alpha, sql).row_count == 0
    arrow = ipc.open_stream(streamed(world.service, world.alpha, sql, "arrow")).read_all()
    assert arrow.num_rows == 0 and arrow.schema.names == ["event", "ts"]
    parquet = pq.read_table(io.BytesIO(streamed(world.service, world.alpha, sql, "parquet")))
    assert parquet.num_rows == 0 and parquet.schema.names == ["event", "ts"]
    assert streamed(world.service, world.alpha, sql, "csv") == b'"event","ts"\n'
    assert streamed(world.service, world.alpha, sql, "ndjson") == b""


def test_max_rows_cuts_the_result_and_says_so(world: World) -> None:
    sql = "SELECT number FROM numbers(50)"
    whole = world.service.answer_json(world.alpha, sql, max_rows=50)
    assert whole.row_count == 50 and not whole.truncated
    cut = world.service.answer_json(world.alpha, sql, max_rows=49)
    assert cut.row_count == 49 and cut.truncated
    assert msgspec.json.decode(bytes(cut.rows)) == [[n] for n in range(49)]
    # It caps the outermost result (a UNION's as a whole), never a subquery
    union = world.service.answer_json(world.alpha, f"{sql} UNION ALL {sql}", max_rows=60)
    assert union.row_count == 60 and union.truncated
    inner = world.service.answer_json(world.alpha, f"SELECT count() FROM ({sql}) WHERE number IN ({sql})", max_rows=1)
    assert msgspec.json.decode(bytes(inner.rows)) == [[50]] and not inner.truncated
    with pytest.raises(InvalidRequest):
        world.service.answer_json(world.alpha, sql, max_rows=0)


def test_the_key_s_row_limits_stay_hard_limits_beside_max_rows(world: World) -> None:
    sql = "SELECT number FROM numbers(50)"
    with pytest.raises(QueryFailed, match="max rows: 10"):
        world.service.answer_json(world.alpha, sql, limits=QueryLimits(max_result_rows=10), max_rows=1000)
    with pytest.raises(QueryFailed, match="max rows: 20"):
        world.service.answer_json(world.alpha, sql, limits=QueryLimits(max_json_rows=20))
    assert len(streamed(world.service, world.alpha, sql, "csv", limits=QueryLimits(max_json_rows=20))) > 0
    # A cut at or under the limit is a cut, not a failure: the limit itself included
    for key_limits in (QueryLimits(max_result_rows=10), QueryLimits(max_json_rows=10)):
        answer = world.service.answer_json(world.alpha, sql, limits=key_limits, max_rows=10)
        assert answer.row_count == 10 and answer.truncated
    with world.service.open(world.alpha, sql, None, "ndjson", QueryLimits(max_result_rows=10), max_rows=10) as result:
        assert result.truncated is True and b"".join(result).count(b"\n") == 10


@pytest.mark.parametrize("fmt", ["arrow", "parquet", "csv", "ndjson"])
def test_max_rows_cuts_every_streamed_format_and_says_so_before_the_body(world: World, fmt: str) -> None:
    # Given a result of several engine blocks (~10 MB: within the read-ahead), with newlines and quotes inside its values
    sql = "SELECT number AS n, concat('a\n\"', toString(number), '\"\nb') AS s FROM numbers(300000)"

    def rows(max_rows: int) -> tuple[bool | None, int, dict]:
        """Whether the answer said it was cut, how many rows it holds (each one read), and its last row. (Read
        in bulk: a Python object per row of each answer took seconds.)"""
        with world.service.open(world.alpha, sql, None, fmt, max_rows=max_rows) as result:
            truncated, data = result.truncated, b"".join(result)
        if fmt == "ndjson":  # every line one JSON object
            parsed = json.loads(b"[" + b",".join(data.splitlines()) + b"]")
            return truncated, len(parsed), parsed[-1]
        if fmt == "arrow":
            table = ipc.open_stream(data).read_all()
        elif fmt == "parquet":
            table = pq.read_table(io.BytesIO(data))
        else:
            table = pa.Table.from_pandas(pd.read_csv(io.BytesIO(data), keep_default_na=False), preserve_index=False)
        return truncated, table.num_rows, table.slice(table.num_rows - 1).to_pylist()[0]

    # Then each answer holds exactly max_rows rows, and knows before its first byte whether it was cut
    for max_rows, cut in [(3, True), (100_000, True), (299_999, True), (300_000, False), (2_000_000, False)]:
        truncated, count, last = rows(max_rows)
        assert truncated is cut and count == min(max_rows, 300_000), (max_rows, count)
        assert last == {"n": count - 1, "s": f'a\n"{count - 1}"\nb'}


def test_a_cut_unknown_before_the_read_ahead_ends_streams_all_the_same(world: World, monkeypatch) -> None:
    from nexus.adhoc import sandbox

    monkeypatch.setattr(sandbox, "READ_AHEAD_BYTES", 1)
    with world.service.open(world.alpha, "SELECT number FROM numbers(1000000)", None, "ndjson", max_rows=700_000) as result:
        assert result.truncated is None
        assert b"".join(result).count(b"\n") == 700_000 and result.truncated is True


def test_limits_per_key_override_the_defaults(world: World, client) -> None:
    key, _ = keys.create(client, world.alpha, "read", "limited")
    other, _ = keys.create(client, world.alpha, "read", "unlimited")
    limits.set_for_key(client, world.alpha, key.key_id, max_result_rows=3, max_seconds=5)
    assert world.service.limits_for(key.key_id) == QueryLimits(max_result_rows=3, max_seconds=5)
    assert world.service.limits_for(other.key_id) == QueryLimits()
    with pytest.raises(QueryFailed, match="max rows: 3"):
        world.service.answer_json(world.alpha, "SELECT number FROM numbers(4)", limits=world.service.limits_for(key.key_id))
    limits.set_for_key(client, world.alpha, key.key_id)  # all back to the defaults
    assert world.service.limits_for(key.key_id) == QueryLimits()
    with pytest.raises(InvalidRequest, match="unknown query limits"):
        limits.set_for_key(client, world.alpha, key.key_id, max_cpu=1)


def test_every_limit_s_default_comes_from_its_setting() -> None:
    names = limits.LIMIT_FIELDS
    environ = {f"NEXUS_QUERY_{name.upper()}": str(7 + index) for index, name in enumerate(names)}
    assert limits.from_settings(load_settings(environ)) == QueryLimits(**{n: 7 + i for i, n in enumerate(names)})
    assert limits.from_settings(load_settings({})) == QueryLimits()  # the settings' defaults are the limits' own


def test_exports_and_dashboards_read_batches(world: World) -> None:
    sink = io.BytesIO()
    with world.service.batches(world.alpha, ALPHA_USER, {"who": "alpha-user"}) as batches:
        assert write_batches(batches, "csv", sink) == 5
    assert sink.getvalue().splitlines()[0] == b'"event","distinct_id","minute"'


def test_an_abandoned_stream_gives_its_session_back(world: World, client, database_url) -> None:
    from nexus.store.client import parse_url

    # Given a service that runs one query at a time
    single = QueryService(parse_url(database_url), client, max_concurrent=1, queue_seconds=0.2)
    result = single.open(world.alpha, "SELECT number FROM numbers(10000000)", fmt="arrow")
    next(result)
    # When a second query arrives while the first holds the only slot, it is turned away
    with pytest.raises(RateLimited, match="too many ad-hoc queries"):
        single.answer_json(world.alpha, "SELECT 1")
    # And once the first is closed half-read, the slot and the engine are free again
    result.close()
    assert msgspec.json.decode(bytes(single.answer_json(world.alpha, "SELECT 1").rows)) == [[1]]


def test_a_failing_stream_fails_on_open_when_it_can(world: World) -> None:
    # A limit the engine checks before reading fails before any byte would be sent
    with pytest.raises(QueryFailed, match="max_rows_to_read"):
        world.service.open(world.alpha, "SELECT * FROM numbers(1000)", fmt="arrow",
                           limits=QueryLimits(max_rows_to_read=10))
    # And the session it opened is closed: the next query runs
    assert world.service.answer_json(world.alpha, "SELECT 1").row_count == 1


def test_arrow_keeps_clickhouse_types_readable(world: World) -> None:
    sql = ("SELECT toUUID('00000000-0000-0000-0000-000000000001') AS u, toDecimal64(1.5, 2) AS d, [1, 2] AS a, "
           "map('k', 1) AS m, properties FROM events WHERE distinct_id = 'alpha-user' LIMIT 1")
    table = ipc.open_stream(streamed(world.service, world.alpha, sql, "arrow")).read_all()
    assert table.schema.field("d").type == pa.decimal128(18, 2)
    assert table.column("a").to_pylist() == [[1, 2]] and table.column("m").to_pylist() == [[("k", 1)]]
    frame = table.to_pandas()
    assert len(frame) == 1
    parquet = pq.read_table(io.BytesIO(streamed(world.service, world.alpha, sql, "parquet")))
    assert parquet.column("a").to_pylist() == [[1, 2]] and parquet.num_rows == 1


def test_datetime_columns_stream_as_times_not_epoch_numbers(world: World) -> None:
    # The engine's Arrow output gives DateTime as its seconds; CSV, Arrow and Parquet show times, in the
    # column's own zone
    sql = ("SELECT toStartOfHour(toDateTime(max(ts))) AS hour, toDateTime({at:String}, 'Europe/Berlin') AS berlin, "
           "CAST(NULL AS Nullable(DateTime)) AS never, toDate('2026-10-20') AS day FROM events "
           "WHERE distinct_id = {who:String}")
    params = {"who": "alpha-user", "at": "2026-10-20 14:00:00"}
    csv = streamed(world.service, world.alpha, sql, "csv", params).decode().splitlines()
    assert csv == ['"hour","berlin","never","day"', '"2026-10-20 12:00:00Z",2026-10-20 14:00:00+0200,,2026-10-20']
    table = pq.read_table(io.BytesIO(streamed(world.service, world.alpha, sql, "parquet", params)))
    assert table.column("hour").to_pylist()[0].isoformat() == "2026-10-20T12:00:00+00:00"  # Parquet keeps ms
    assert table.schema.field("berlin").type.tz == "Europe/Berlin"
    arrow = ipc.open_stream(streamed(world.service, world.alpha, sql, "arrow", params)).read_all()
    assert arrow.column("hour").to_pylist()[0].isoformat() == "2026-10-20T12:00:00+00:00"
