"""The back-fill's bulk path stores what the per-row path stores: every column of every row, the same
rejections (line or row, field, reason), the same identify/alias links and the same derived ids.

The per-row path is the one every import took before the bulk path: each line or row read as a Message
(`importer.read_messages`), given its derived id, and run through the live pipeline (`pipeline.process`)
with the import rules. The bulk path reads the same file in blocks (`importer.read_rows`) and runs
`bulk.process`. Both hand the writer an Arrow table of the events table's columns; the tables are
compared whole, on generated files that hold every call type, every rejection the pipeline has, and the
column shapes a Parquet or Arrow file may come in (structs, maps, JSON text, snake case, dictionaries,
integer and pandas-float ids, timestamps of any unit and zone, text times).
"""

from __future__ import annotations

import gzip
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from nexus.ingest import bulk, bulk_rows, columnar, import_ids, pipeline
from nexus.ingest.columns import events_table
from nexus.ingest.importer import read_messages, read_rows
from nexus.ingest.service import _link
from nexus.ingest.wire import Message, Rejection, as_text

PROJECT = 7
RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
RULES = pipeline.Rules(max_past=None, correct_skew=False, ip_mode="truncate", max_event_bytes=600)
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.4.0", "", "   ",
]
IPS = ["8.8.8.8", "81.2.69.160", "2a02:26f0:1::5", "10.0.0.1", "not an ip", "::ffff:1.1.1.1", ""]
PAGES = ["https://shop.example.com/p/1?utm_source=news&utm_medium=Email", "https://shop.example.com/",
         "https://blog.example.com/post?gclid=abc", "/relative/path", "https://x.io/a?fbclid=1#frag", ""]
REFERRERS = ["https://www.google.co.uk/search", "https://shop.example.com/cart", "https://t.co/x", "about:blank",
             "android-app://com.google.android.gm", "https://mail.yahoo.com/", ""]


def events(n: int, seed: int) -> list[dict[str, Any]]:
    """Segment messages of every call type, valid and not, as an export holds them."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        call = rng.choice(["track"] * 6 + ["page", "screen", "identify", "group", "alias"])
        at = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(60_000_000),
                                                                    microseconds=rng.randrange(1_000_000))
        event: dict[str, Any] = {"type": call}
        if rng.random() < 0.8:
            event["messageId"] = f"m-{seed}-{i}" if rng.random() < 0.9 else rng.randrange(10**6)
        if rng.random() < 0.85:
            event["userId"] = f"u{rng.randrange(50)}" if rng.random() < 0.8 else rng.randrange(1000)
        if rng.random() < 0.6:
            event["anonymousId"] = f"a{rng.randrange(80)}"
        if call == "track" and rng.random() < 0.95:
            event["event"] = rng.choice(["Order", "Signup", "x" * 201, ""])
        if call in ("page", "screen") and rng.random() < 0.5:
            event["name"], event["category"] = rng.choice([("Home", "Docs"), ("Pricing", None), ("", "")])
        if call == "group" and rng.random() < 0.9:
            event["groupId"] = f"g{rng.randrange(5)}"
        if call == "alias" and rng.random() < 0.9:
            event["previousId"] = f"old{rng.randrange(20)}"
        roll = rng.random()
        if roll < 0.7:
            event["timestamp"] = at.isoformat()
        elif roll < 0.8:
            event["originalTimestamp"] = at.isoformat()
        elif roll < 0.85:
            event["timestamp"] = rng.choice(["1999-12-31T23:59:59Z", "2026-03-01T13:30:00Z", "2026-03-01T12:59:00Z"])
        if rng.random() < 0.3:
            event["sentAt"] = (at + timedelta(seconds=5)).isoformat()
        props: dict[str, Any] = {"sku": f"s{rng.randrange(9)}", "price": round(rng.uniform(1, 99), 2)}
        if rng.random() < 0.2:
            props["url"] = rng.choice(PAGES)
            props["referrer"] = rng.choice(REFERRERS)
            props["path"] = rng.choice(["/from/props", 5])
        if rng.random() < 0.05:
            props["a.b"] = 1
            props["a"] = rng.choice([{"c": 2}, {"b": 3}])  # nested (stored) or the same path twice (rejected)
        if rng.random() < 0.03:
            props["pad"] = "p" * 700  # over the size limit
        event["traits" if call in ("identify", "group") else "properties"] = props if rng.random() < 0.9 else {}
        if rng.random() < 0.9:
            context: dict[str, Any] = {"ip": rng.choice(IPS), "userAgent": rng.choice(AGENTS),
                                       "library": {"name": "analytics.js", "version": rng.choice(["5.2.0", None])}}
            if rng.random() < 0.8:
                context["page"] = {"url": rng.choice(PAGES), "referrer": rng.choice(REFERRERS),
                                   "path": rng.choice(["/own/path", None])}
            if rng.random() < 0.1:
                context["campaign"] = {"source": rng.choice(["fb", ""]), "medium": rng.choice(["EMAIL", "cpc", ""]),
                                       "name": "spring", "term": "t", "content": None}
            if rng.random() < 0.1:
                context["sessionId"] = rng.choice([12345, "s-1"])
            event["context"] = context
        out.append(event)
    return out


def row_path(path: Path) -> tuple[pa.Table, list[Rejection], list[Any]]:
    """What the per-row import stored: each line or row a Message, its derived id, the live pipeline."""
    items: list[Message | Rejection] = []
    positions: list[int] = []
    for chunk in read_messages(path, max_event_bytes=RULES.max_event_bytes):
        items += [msgspec.structs.replace(m, message_id=import_ids.derive(PROJECT, p, m))
                  if isinstance(m, Message) and not as_text(m.message_id) else m
                  for m, p in zip(chunk.items, chunk.positions)]
        positions += chunk.positions
    # The pipeline numbers what it rejects by position in what it is given.
    items = [Rejection(n, m.field, m.reason) if isinstance(m, Rejection) else m for n, m in enumerate(items)]
    processed = pipeline.process(items, pipeline.Source(PROJECT, RECEIVED), RULES)
    rejections = [Rejection(positions[r.index], r.field, r.reason) for r in processed.rejections]
    links = [link for m, ts in zip(processed.messages, processed.columns.get("ts", []))
             if (link := _link(m, ts, PROJECT))]
    return events_table(processed.columns), rejections, links


def bulk_path(path: Path, block_rows: int) -> tuple[pa.Table, list[Rejection], list[Any]]:
    tables, rejections, links = [], [], []
    for rows in read_rows(path, PROJECT, block_rows=block_rows, max_event_bytes=RULES.max_event_bytes):
        block = bulk.process(rows, PROJECT, RECEIVED, RULES)
        tables.append(block.table)
        rejections += block.rejections
        links += block.links
    return pa.concat_tables(tables), rejections, links


def mapped_in_bulk(path: Path) -> list[bool]:
    """For each record batch of a columnar file: whether the bulk reader maps it (else it reads it row by row)."""
    batches = columnar.parquet_batches(path, 100_000) if path.suffix == ".parquet" else columnar.arrow_batches(path, 100_000)
    return [bulk_rows.from_arrow(PROJECT, batch, mapped, 0) is not None for mapped, batch in batches]


def assert_same(path: Path, block_sizes: tuple[int, ...] = (37, 100_000)) -> tuple[pa.Table, list[Rejection]]:
    expected_table, expected_rejections, expected_links = row_path(path)
    assert expected_table.num_rows and expected_rejections  # the comparison covers both
    for block_rows in block_sizes:
        table, rejections, links = bulk_path(path, block_rows)
        assert table.schema == expected_table.schema
        for name in table.column_names:  # column by column, so a difference names its column
            assert table.column(name).to_pylist() == expected_table.column(name).to_pylist(), name
        assert rejections == expected_rejections
        assert links == expected_links
    return expected_table, expected_rejections


def test_ndjson_every_column_of_every_row_and_every_rejection(tmp_path: Path) -> None:
    lines = [json.dumps(e) for e in events(2_000, seed=1)]
    lines[10:10] = ["", '{"type": "track", "event": ', '{"type": "tracks", "userId": "u1"}',
                    '{"type": "track", "event": "e", "userId": [1]}', "   ",
                    '{"type": "track", "event": "e", "userId": "u1", "timestamp": "9999-12-31T23:59:59-01:00"}',
                    '{"type": "track", "event": "e", "userId": "u1", "properties": {"t": "\\ud800"}}',
                    '{"type": "identify", "userId": "u9", "traits": {"plan.tier": "pro", "plan": {"seats": 3}}}',
                    '{"type": "track", "event": "big", "userId": "u1", "properties": {"pad": "' + "x" * 900 + '"}}']
    path = tmp_path / "events.ndjson.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))

    table, rejections = assert_same(path)

    reasons = {r.reason.split(" is ")[0] if "bytes" in r.reason else r.reason for r in rejections}
    assert {"track calls need an event name", "userId or anonymousId is required", "group calls need a groupId",
            "alias calls need previousId and userId", "event names are at most 200 characters",
            "Invalid enum value 'tracks'"} <= reasons
    assert set(table.column("type").to_pylist()) == {"track", "page", "screen", "identify", "group", "alias"}


def columnar_events(n: int, seed: int) -> list[dict[str, Any]]:
    """Rows of one shape per column, as a warehouse export has them."""
    rows = []
    for e in events(n, seed):
        context = e.get("context") or {}
        rows.append({
            "type": e["type"], "event": e.get("event"), "name": e.get("name"), "category": e.get("category"),
            "userId": as_text(e.get("userId")) or None, "anonymousId": e.get("anonymousId"),
            "groupId": e.get("groupId"), "previousId": e.get("previousId"),
            "messageId": as_text(e.get("messageId")) or None,
            "timestamp": datetime.fromisoformat(e["timestamp"]) if "timestamp" in e else None,
            "sentAt": datetime.fromisoformat(e["sentAt"]) if "sentAt" in e else None,
            "properties": e.get("properties") or e.get("traits"),
            "context": {"ip": context.get("ip"), "userAgent": context.get("userAgent"),
                        "page": context.get("page"), "library": context.get("library"),
                        "campaign": context.get("campaign")} if context else None,
        })
    return rows


def _json_columns(rows: list[dict[str, Any]]) -> pa.Table:
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k not in ("properties", "context")} for r in rows])
    return (table.append_column("properties", pa.array([json.dumps(r["properties"]) if r["properties"] is not None
                                                        else None for r in rows]))
            .append_column("context", pa.array([json.dumps(r["context"]) if r["context"] else " " for r in rows])))


@pytest.mark.parametrize("shape", ["structs", "json_text"])
def test_parquet_every_column_of_every_row_and_every_rejection(tmp_path: Path, shape: str) -> None:
    rows = columnar_events(1_500, seed=2)
    if shape == "structs":
        # A struct holds every key in every row; the properties a row lacks come back null and are left out.
        for r in rows:
            if r["properties"] is not None:
                r["properties"] = {"sku": r["properties"].get("sku"), "price": r["properties"].get("price"),
                                   "url": r["properties"].get("url")}
        table = pa.Table.from_pylist(rows)
    else:
        table = _json_columns(rows)
    path = tmp_path / "events.parquet"
    pq.write_table(table, path, row_group_size=333)

    assert all(mapped_in_bulk(path))
    assert_same(path)


def test_arrow_snake_case_dictionaries_pandas_ids_and_zoned_nanoseconds(tmp_path: Path) -> None:
    rows = columnar_events(1_200, seed=3)
    table = _json_columns(rows)
    rename = {"userId": "user_id", "anonymousId": "anonymous_id", "messageId": "message_id", "sentAt": "sent_at"}
    table = table.rename_columns([rename.get(n, n) for n in table.column_names])
    ids = pa.array([float(i) if i % 3 else None for i in range(len(rows))], pa.float64())
    table = table.set_column(table.schema.get_field_index("user_id"), "user_id", ids)
    table = table.set_column(table.schema.get_field_index("type"), "type", table.column("type").dictionary_encode())
    zoned = table.column("timestamp").cast(pa.timestamp("ns", "Asia/Tokyo"))
    table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", zoned)
    path = tmp_path / "events.arrows"
    with ipc.new_stream(str(path), table.schema) as writer:
        for batch in table.to_batches(max_chunksize=250):
            writer.write_batch(batch)

    assert all(mapped_in_bulk(path))
    assert_same(path)


@pytest.mark.parametrize("odd", ["unknown_type", "map_context", "text_times", "bad_json"])
def test_columns_the_bulk_reader_does_not_map_are_read_row_by_row_with_the_same_outcome(tmp_path: Path, odd: str) -> None:
    rows = columnar_events(400, seed=4)
    table = _json_columns(rows)
    if odd == "unknown_type":
        types = table.column("type").to_pylist()
        types[5] = "tracks"
        table = table.set_column(0, "type", pa.array(types))
    elif odd == "map_context":
        contexts = [list(json.loads(c).items()) if c.strip() else None for c in table.column("context").to_pylist()]
        flat = [[(k, json.dumps(v) if isinstance(v, dict) else v) for k, v in c] if c else None for c in contexts]
        table = table.set_column(table.schema.get_field_index("context"), "context",
                                 pa.array(flat, pa.map_(pa.string(), pa.string())))
    elif odd == "text_times":
        texts = [t.isoformat() if t else None for t in table.column("timestamp").to_pylist()]
        texts[7] = "yesterday"
        table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp", pa.array(texts))
    else:
        props = table.column("properties").to_pylist()
        props[3], props[4] = "{not json", "[1, 2]"
        table = table.set_column(table.schema.get_field_index("properties"), "properties", pa.array(props))
    path = tmp_path / "odd.parquet"
    pq.write_table(table, path)

    assert mapped_in_bulk(path) == [False]
    assert_same(path, block_sizes=(100, 100_000))
