"""Bulk import files read into chunks of messages: NDJSON (plain, gzipped), Parquet and Arrow IPC."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nexus.errors import InvalidRequest
from nexus.ingest.importer import Chunk, detect_format, read_messages
from nexus.ingest.wire import Context, Message, Page, Rejection, decode_message

T0 = datetime(2024, 3, 1, 10, 0, 0, tzinfo=timezone.utc)
T0_US = 1_709_287_200_000_000  # T0 in microseconds since the epoch


def items(path: Path, **options) -> list[Message | Rejection]:
    return [item for chunk in read_messages(path, **options) for item in chunk.items]


def write_ndjson(path: Path, lines: list[str], compress: bool = False) -> Path:
    data = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_arrow(path: Path, table: pa.Table, kind: str, max_chunksize: int | None = None) -> Path:
    with pa.OSFile(str(path), "wb") as sink:
        writer = pa.ipc.new_stream(sink, table.schema) if kind == "stream" else pa.ipc.new_file(sink, table.schema)
        with writer:
            for batch in table.to_batches(max_chunksize=max_chunksize):
                writer.write_batch(batch)
    return path


def track(event: str, user: str, **fields) -> Message:
    return Message(type="track", event=event, user_id=user, **fields)


# --- NDJSON -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_ndjson_bad_lines_are_rejected_with_their_line_and_the_rest_kept(tmp_path: Path, compress: bool) -> None:
    path = write_ndjson(tmp_path / "events.ndjson", [
        '{"type": "track", "event": "signup", "userId": "u1", "timestamp": "2024-03-01T10:00:00Z"}',
        '{"type": "identify", "userId": 42, "traits": {"plan": "pro"}}',
        '{"type": "track", "event": "oops", "userId": [1]}',
        '{"type": "track", "event": ',
        '{"type": "tracks"}',
        '{"type": "page", "name": "Home", "anonymousId": "a1", "context": {"page": {"url": "https://x.io/"}}}',
    ], compress=compress)

    assert detect_format(path) == "ndjson"
    assert items(path) == [
        track("signup", "u1", timestamp=T0),
        Message(type="identify", user_id=42, traits={"plan": "pro"}),
        Rejection(2, "userId", "Expected `int | str | null`, got `array`"),
        Rejection(3, "", "malformed JSON: Input data was truncated"),
        Rejection(4, "type", "Invalid enum value 'tracks'"),
        Message(type="page", name="Home", anonymous_id="a1", context=Context(page=Page(url="https://x.io/"))),
    ]


def test_ndjson_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "events.ndjson", [
        "",
        '{"type": "track", "event": "a", "userId": "u1"}',
        "   ",
        "\t",
        '{"type": "track", "event": "b", "userId": [2]}',
        "",
    ])

    assert items(path) == [track("a", "u1"), Rejection(4, "userId", "Expected `int | str | null`, got `array`")]


def test_ndjson_crlf_line_endings_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_bytes(b'\xef\xbb\xbf{"type": "track", "event": "a", "userId": "u1"}\r\n\r\n'
                     b'{"type": "track", "event": "b", "userId": "u2"}\r\n')

    assert detect_format(path) == "ndjson"
    assert items(path) == [track("a", "u1"), track("b", "u2")]


def test_ndjson_oversize_lines_are_rejected_with_their_size(tmp_path: Path) -> None:
    # Given lines of exactly the limit, one byte over it, and far over it (never read whole)
    def line_of(size: int, event: str) -> str:
        head = '{"type": "track", "event": "' + event + '", "userId": "u1", "properties": {"pad": "'
        return head + "x" * (size - len(head) - 3) + '"}}'

    path = write_ndjson(tmp_path / "events.ndjson", [
        line_of(200, "fits"),
        line_of(201, "over"),
        line_of(1_000_000, "huge"),
        '{"type": "track", "event": "after", "userId": "u1"}',
    ])

    result = items(path, max_event_bytes=200)

    assert result[0] == track("fits", "u1", properties={"pad": "x" * 123})
    assert len(line_of(200, "fits")) == 200
    assert result[1:] == [
        Rejection(1, "", "event is 201 bytes, over the limit of 200"),
        Rejection(2, "", "event is 1000000 bytes, over the limit of 200"),
        track("after", "u1"),
    ]


def test_ndjson_final_oversize_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_bytes(b'{"type": "track", "event": "a", "userId": "u1"}\n' + b"{" + b" " * 5000)

    assert items(path, max_event_bytes=1000) == [
        track("a", "u1"), Rejection(1, "", "event is 5001 bytes, over the limit of 1000"),
    ]


def test_empty_file_is_ndjson_with_no_messages(tmp_path: Path) -> None:
    path = tmp_path / "empty.ndjson"
    path.write_bytes(b"")

    assert detect_format(path) == "ndjson"
    assert list(read_messages(path)) == []


# --- Parquet ------------------------------------------------------------------------------------------

def test_parquet_with_struct_properties(tmp_path: Path) -> None:
    # Given a struct column, which has every key in every row: a missing key reads back as null
    table = pa.Table.from_pylist([
        {"type": "track", "event": "purchase", "userId": "u1", "timestamp": T0,
         "properties": {"plan": "pro", "revenue": 9.5}},
        {"type": "track", "event": "purchase", "userId": "u2", "timestamp": None,
         "properties": {"revenue": 20.0}},
        {"type": "identify", "event": None, "userId": "u3", "timestamp": None, "properties": None},
    ])
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)

    assert detect_format(path) == "parquet"
    assert items(path) == [
        track("purchase", "u1", timestamp=T0, properties={"plan": "pro", "revenue": 9.5}),
        track("purchase", "u2", properties={"revenue": 20.0}),
        Message(type="identify", user_id="u3"),
    ]


def test_parquet_with_json_text_properties_and_context(tmp_path: Path) -> None:
    table = pa.table({
        "event": ["a", "b", "c", "d"],
        "userId": ["u1", "u2", "u3", "u4"],
        "timestamp": ["2024-03-01T10:00:00Z", "2024-03-01T11:00:00+01:00", None, "yesterday"],
        "properties": ['{"plan": "pro", "tags": ["x"]}', '{"plan": ', None, "{}"],
        "context": ['{"ip": "1.2.3.4", "userAgent": "UA"}', None, '{"page": {"url": 5}}', ""],
    })
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)

    assert items(path) == [
        # No type column: every row is a track call.
        track("a", "u1", timestamp=T0, properties={"plan": "pro", "tags": ["x"]},
              context=Context(ip="1.2.3.4", user_agent="UA")),
        Rejection(1, "properties", "malformed JSON: Input data was truncated"),
        Rejection(2, "context.page.url", "Expected `str | null`, got `int`"),
        Rejection(3, "timestamp", "Invalid RFC3339 encoded datetime"),
    ]


def test_parquet_with_map_traits_snake_case_names_and_float_ids(tmp_path: Path) -> None:
    # Given the columns a pandas or warehouse export would have
    table = pa.table({
        "type": pa.array(["identify", None]),
        "user_id": pa.array([7.0, None]),
        "anonymous_id": ["a1", "a2"],
        "message_id": ["m1", "m2"],
        "sent_at": pa.array([T0_US, T0_US], pa.timestamp("us")),
        "traits": pa.array([[("plan", "pro")], None], pa.map_(pa.string(), pa.string())),
        "context": pa.array([{"user_agent": "UA", "session_id": "s1"}, None]),
        "warehouse_loaded_at": ["x", "y"],
    })
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)

    assert items(path) == [
        Message(type="identify", user_id=7, anonymous_id="a1", message_id="m1", sent_at=T0,
                traits={"plan": "pro"}, context=Context(user_agent="UA", session_id="s1")),
        Message(type="track", anonymous_id="a2", message_id="m2", sent_at=T0),
    ]


def test_segment_name_wins_over_its_snake_case_spelling(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"user_id": ["snake"], "userId": ["camel"], "event": ["a"]}), path)

    assert items(path) == [track("a", "camel")]


def test_columnar_file_without_segment_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1], "b": [2]}), path)

    with pytest.raises(InvalidRequest, match="the file has no Segment message columns \\(it has a, b\\)"):
        list(read_messages(path))


def test_truncated_parquet_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"event": ["a"] * 100}), path)
    path.write_bytes(path.read_bytes()[:-20])

    with pytest.raises(InvalidRequest, match="^the Parquet file is truncated: it does not end with its footer"):
        read_messages(path)


def test_corrupt_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"event": ["a"] * 100}), path)
    data = path.read_bytes()
    path.write_bytes(data[:4] + b"\x00" * 64 + data[68:])

    with pytest.raises(InvalidRequest, match="^cannot read the Parquet file: "):
        list(read_messages(path))


# --- Arrow IPC ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["stream", "file"])
def test_arrow_ipc_timestamps_of_any_unit_and_zone(tmp_path: Path, kind: str) -> None:
    # Given the same instant, T0 + 1.5 s, stored in four units and four zones (naive means UTC)
    columns = {
        "s_naive": pa.array([T0_US // 1_000_000 + 1], pa.timestamp("s")),
        "ms_utc": pa.array([T0_US // 1_000 + 1_500], pa.timestamp("ms", tz="UTC")),
        "us_new_york": pa.array([T0_US + 1_500_000], pa.timestamp("us", tz="America/New_York")),
        "ns_offset": pa.array([T0_US * 1_000 + 1_500_000_000], pa.timestamp("ns", tz="+02:00")),
    }
    expected = {
        "s_naive": datetime(2024, 3, 1, 10, 0, 1, tzinfo=timezone.utc),
        **{name: datetime(2024, 3, 1, 10, 0, 1, 500_000, tzinfo=timezone.utc) for name in list(columns)[1:]},
    }
    for name, column in columns.items():
        table = pa.table({"event": ["a", "b"], "userId": ["u1", "u2"],
                          "timestamp": pa.concat_arrays([column, pa.nulls(1, column.type)])})
        path = write_arrow(tmp_path / f"{name}.arrow", table, kind)

        assert detect_format(path) == "arrow"
        assert items(path) == [track("a", "u1", timestamp=expected[name]), track("b", "u2")], name


def test_arrow_ipc_nanoseconds_are_truncated_to_microseconds(tmp_path: Path) -> None:
    table = pa.table({"event": ["a"], "original_timestamp": pa.array([T0_US * 1_000 + 1_999], pa.timestamp("ns"))})
    path = write_arrow(tmp_path / "events.arrows", table, "stream")

    assert items(path) == [Message(type="track", event="a", original_timestamp=T0.replace(microsecond=1))]


def test_arrow_ipc_dictionary_columns_and_struct_context(tmp_path: Path) -> None:
    table = pa.table({
        "type": pa.array(["page", "page"]).dictionary_encode(),
        "name": pa.array(["Home", "Pricing"]).dictionary_encode(),
        "anonymousId": ["a1", "a2"],
        "context": pa.array([{"ip": "1.2.3.4", "page": {"url": "https://x.io/", "path": "/"}}, None]),
    })
    path = write_arrow(tmp_path / "events.arrow", table, "file")

    assert items(path) == [
        Message(type="page", name="Home", anonymous_id="a1",
                context=Context(ip="1.2.3.4", page=Page(url="https://x.io/", path="/"))),
        Message(type="page", name="Pricing", anonymous_id="a2"),
    ]


# --- format detection ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "message"), [
    (b"event,userId\nsignup,u1\n", "the file is not NDJSON, gzip-compressed NDJSON, Parquet or Arrow IPC "
                                   "(it starts with b'event,us')"),
    (b'[{"type": "track"}]', "the file is a JSON array; import reads NDJSON, one JSON object per line "
                             "(convert with: jq -c '.[]' FILE)"),
    (b"\x28\xb5\x2f\xfd\x00\x00", "the file is zstd-compressed; only gzip compression is supported (for NDJSON)"),
    (gzip.compress(b"event,userId\n", mtime=0), "the file is gzip-compressed, but what it holds is not NDJSON "
                                       "(one JSON object per line); only NDJSON may be gzip-compressed"),
    (b"\x1f\x8b\x08\x00garbage", "the file looks gzip-compressed but cannot be decompressed: "),
])
def test_unknown_formats_are_refused_clearly(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "upload"
    path.write_bytes(content)

    with pytest.raises(InvalidRequest) as error:
        detect_format(path)
    assert str(error.value).startswith(message)
    # read_messages refuses before the first chunk is asked for.
    with pytest.raises(InvalidRequest):
        read_messages(path)


def test_explicit_format_and_unknown_format_name(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "events.txt", ['{"type": "track", "event": "a", "userId": "u1"}'])

    assert items(path, fmt="ndjson") == [track("a", "u1")]
    with pytest.raises(InvalidRequest, match="unknown import format 'csv': expected one of ndjson, arrow, parquet"):
        read_messages(path, fmt="csv")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="^cannot read the import file: No such file or directory$"):
        read_messages(tmp_path / "missing.ndjson")


# --- chunking and memory ------------------------------------------------------------------------------

def events_table(rows: int) -> pa.Table:
    return pa.table({
        "event": [f"e{i}" for i in range(rows)],
        "userId": [None if i == 13 else f"u{i}" for i in range(rows)],
        "properties": [json.dumps({"i": i}) if i != 17 else "{" for i in range(rows)],
    })


def assert_chunked(chunks: list[Chunk], rows: int) -> None:
    assert [len(chunk.items) for chunk in chunks] == [10, 10, 5]
    assert [p for chunk in chunks for p in chunk.positions] == list(range(rows))
    flat = [item for chunk in chunks for item in chunk.items]
    assert flat[17] == Rejection(17, "properties", "malformed JSON: Input data was truncated")
    assert flat[13] == Message(type="track", event="e13", properties={"i": 13})
    assert [item.event for item in flat if isinstance(item, Message)] == [f"e{i}" for i in range(rows) if i != 17]


def test_ndjson_chunks_have_chunk_size_items_and_continuous_indexes(tmp_path: Path) -> None:
    lines = [f'{{"type": "track", "event": "e{i}", "userId": "u{i}"}}' for i in range(27)]
    lines[5] = ""  # blank lines are not items but keep their line number
    lines[20] = "   "
    lines[17] = '{"type": "track", "event": "e17", "userId": {}}'
    path = write_ndjson(tmp_path / "events.ndjson", lines)

    chunks = list(read_messages(path, chunk_size=10))

    assert [len(chunk.items) for chunk in chunks] == [10, 10, 5]
    flat = [item for chunk in chunks for item in chunk.items]
    assert [p for chunk in chunks for p in chunk.positions] == [i for i in range(27) if i not in (5, 20)]
    assert flat[16] == Rejection(17, "userId", "Expected `int | str | null`, got `object`")
    assert [item.event for item in flat if isinstance(item, Message)] == [
        f"e{i}" for i in range(27) if i not in (5, 17, 20)]


@pytest.mark.parametrize("kind", ["stream", "file"])
def test_arrow_batches_are_regrouped_into_chunks(tmp_path: Path, kind: str) -> None:
    # Given batches of 7 rows, which do not line up with chunks of 10
    path = write_arrow(tmp_path / "events.arrow", events_table(25), kind, max_chunksize=7)

    assert_chunked(list(read_messages(path, chunk_size=10)), 25)


def test_parquet_row_groups_are_regrouped_into_chunks(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(events_table(25), path, row_group_size=7)

    assert_chunked(list(read_messages(path, chunk_size=10)), 25)


def test_reading_a_large_ndjson_file_does_not_hold_all_messages(tmp_path: Path) -> None:
    # Given 100k realistic events (about 1 KB each once decoded, 100 MB if all were held: 50 times a chunk of
    # 1,000, room enough to tell a chunk or two from the file)
    lines = 100_000
    line = (b'{"type":"track","event":"page_view","userId":"user-%d","anonymousId":"anon-%d",'
            b'"timestamp":"2024-03-01T10:00:00Z","properties":{"path":"/p/%d","plan":"pro","revenue":%d.5},'
            b'"context":{"ip":"10.0.0.1","page":{"url":"https://example.com/p/%d"}}}\n')
    path = tmp_path / "large.ndjson"
    with open(path, "wb") as f:
        f.writelines(line % (i, i, i, i, i) for i in range(lines))
    sample = [line % (i, i, i, i, i) for i in range(2_000)]

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [decode_message(raw, i) for i, raw in enumerate(sample)]
        all_messages_bytes = (tracemalloc.get_traced_memory()[0] - before) * (lines // len(sample))
        del held
        tracemalloc.reset_peak()
        # When the file is read chunk by chunk, each chunk dropped once counted
        start = tracemalloc.get_traced_memory()[0]
        count = sum(len(chunk.items) for chunk in read_messages(path, chunk_size=1_000))
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()

    # Then every line was read, and the peak is that of a chunk or two, not of the file
    assert count == lines
    assert all_messages_bytes > 50_000_000
    assert peak < all_messages_bytes / 20, (peak, all_messages_bytes)


def test_a_time_past_year_9999_rejects_its_row_only(tmp_path: Path) -> None:
    table = pa.table({"event": ["ok", "far"], "userId": ["u", "u"],
                      "timestamp": pa.array([1_600_000_000, 10**12], pa.timestamp("s"))})
    path = tmp_path / "far.parquet"
    pq.write_table(table, path)
    [chunk] = list(read_messages(path))
    assert isinstance(chunk.items[0], Message)
    assert chunk.items[1] == Rejection(1, "timestamp", "the time is out of range")


# --- damaged files and resuming -----------------------------------------------------------------------

def read_until_refused(path: Path, **options) -> tuple[list[Message | Rejection], list[int], str]:
    """Every item handed out before the reader refused the file, their positions, and its reason."""
    items, positions = [], []
    with pytest.raises(InvalidRequest) as error:
        for chunk in read_messages(path, **options):
            items += chunk.items
            positions += chunk.positions
    return items, positions, str(error.value)


def numbered_lines(n: int) -> list[str]:
    return [json.dumps({"type": "track", "event": f"e{i}", "userId": f"u{i}", "properties": {"pad": "x" * 40}})
            for i in range(n)]


def test_a_truncated_gzip_hands_out_every_whole_line_before_the_cut(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "events.ndjson.gz", numbered_lines(5000), compress=True)
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * 0.7)])

    items, positions, error = read_until_refused(path, chunk_size=1000)

    assert error == "the gzip-compressed file is truncated: it ends before gzip's end-of-stream marker"
    # Then the lines come in order up to the cut, and no line the cut runs through is handed out half
    assert 3000 < len(items) < 5000
    assert positions == list(range(len(items)))
    assert [m.event for m in items] == [f"e{i}" for i in range(len(items))]


def test_a_corrupt_gzip_is_refused_with_its_reason(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "events.ndjson.gz", numbered_lines(5000), compress=True)
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))

    items, _, error = read_until_refused(path, chunk_size=1000)

    assert error.startswith("the gzip-compressed file is corrupt: ")
    # What the damaged deflate data decodes to before zlib notices is garbage, rejected line by line.
    assert [m.event for m in items[:2000]] == [f"e{i}" for i in range(2000)]


@pytest.mark.parametrize("cut", ["inside a batch", "between batches"])
def test_a_truncated_arrow_stream_hands_out_its_whole_batches(tmp_path: Path, cut: str) -> None:
    # Given a stream of 7-row batches, cut inside the fourth one or right after the third
    table = events_table(25)
    whole = write_arrow(tmp_path / "whole.arrows", table, "stream", max_chunksize=7)
    offsets = []
    with pa.memory_map(str(whole)) as source:
        reader = pa.ipc.open_stream(source)
        for _ in range(3):
            reader.read_next_batch()
            offsets.append(source.tell())
    end = offsets[2] + (40 if cut == "inside a batch" else 0)
    path = tmp_path / "cut.arrows"
    path.write_bytes(whole.read_bytes()[:end])

    items, positions, error = read_until_refused(path, chunk_size=10)

    assert error == {"inside a batch": "the Arrow IPC stream is truncated: it ends inside a record batch, "
                                       "without its end-of-stream marker",
                     "between batches": "the Arrow IPC stream is truncated: it ends without its "
                                        "end-of-stream marker"}[cut]
    assert positions == list(range(21))
    assert items[17] == Rejection(17, "properties", "malformed JSON: Input data was truncated")


def test_a_truncated_arrow_file_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    path = write_arrow(tmp_path / "events.arrow", events_table(25), "file", max_chunksize=7)
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * 0.7)])

    with pytest.raises(InvalidRequest, match="^the Arrow IPC file is truncated: it does not end with its footer"):
        read_messages(path)


@pytest.mark.parametrize("kind", ["ndjson", "stream", "parquet"])
def test_reading_from_a_start_line_keeps_the_positions_of_the_whole_file(tmp_path: Path, kind: str) -> None:
    if kind == "ndjson":
        lines = numbered_lines(25)
        lines[14] = ""  # a blank line is not an item but keeps its line number
        path = write_ndjson(tmp_path / "events.ndjson", lines)
    elif kind == "stream":
        path = write_arrow(tmp_path / "events.arrows", events_table(25), "stream", max_chunksize=7)
    else:
        path = tmp_path / "events.parquet"
        pq.write_table(events_table(25), path, row_group_size=7)

    chunks = list(read_messages(path, chunk_size=4, start=12))

    expected = [i for i in range(12, 25) if not (kind == "ndjson" and i == 14)]
    assert [p for chunk in chunks for p in chunk.positions] == expected
    assert [len(chunk.items) for chunk in chunks] == [min(4, len(expected) - k) for k in range(0, len(expected), 4)]
    assert [m.event for chunk in chunks for m in chunk.items if isinstance(m, Message)] == [
        f"e{i}" for i in expected if not (kind != "ndjson" and i == 17)]
