"""Events the JSON column refuses cannot fail anyone else's insert: the pipeline normalises or refuses them
per event, and the group-commit writer isolates whatever still fails, on the real engine and Redis."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from nexus.errors import EngineError, InvalidRequest, StorageUnavailable
from nexus.ingest import pipeline, properties
from nexus.ingest.columns import EVENT_SCHEMA, events_table
from nexus.ingest.dedup import Dedup
from nexus.ingest.identity import IdentityResolver
from nexus.ingest.metrics import MetricsRecorder
from nexus.ingest.service import Ingestor
from nexus.ingest.wire import Message, Rejection, decode_message
from nexus.ingest.writer import GroupCommitWriter, Outcome, unavailable
from nexus.settings import load
from nexus.store import json_insert
from nexus.store.database import open_database
from tests.analyses.journeys import new_project

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security

POISON = {"p.q": 1, "p": {"q": 2}}


@pytest.mark.parametrize(("given", "stored"), [
    ({"plan": "pro", "n": 1}, {"plan": "pro", "n": 1}),
    ({"p.q": 1, "p": {"r": 2}}, {"p": {"q": 1, "r": 2}}),
    ({"p.q": None, "p": {"q": 2}}, {"p": {"q": 2}}),  # null holds no path
    ({"p.q": {}, "p": {"q": 2}}, {"p": {"q": 2}}),  # nor does an empty object
    ({"p.q": {"r": 1}, "p": {"q": {"s": 2}}}, {"p": {"q": {"r": 1, "s": 2}}}),
    ({"a": [{"b.c": 1}, float("nan"), float("-inf")]}, {"a": [{"b": {"c": 1}}, None, None]}),
    ({"big": 2**70, "neg": -(2**64)}, {"big": 2**70, "neg": -(2**64)}),
    ({"at": datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc), "price": Decimal("9.99"), "raw": b"ab"},
     {"at": "2026-01-02T03:04:00Z", "price": "9.99", "raw": "YWI="}),
    ({1: "x"}, {"1": "x"}),
])
def test_properties_are_stored_as_the_column_stores_them(given: dict, stored: dict):
    assert properties.normalise(given, "properties") == stored
    assert json.loads(properties.to_json(given, "properties")) == stored


@pytest.mark.parametrize(("given", "field", "reason"), [
    (POISON, "properties.p.q", "p.q is given twice"),
    ({"p": {"q": 2}, "p.q": 1}, "properties.p.q", "p.q is given twice"),
    ({"a.": 1, "a": {"": 2}}, "properties.a.", "a. is given twice"),
    ({"p": 1, "p.q": 2}, "properties.p", "p is given a value and also nested keys"),
    ({"p": [1], "p.q": 2}, "properties.p", "p is given a value and also nested keys"),
    ({"x": [0, {"y": [POISON]}]}, "properties.x[1].y[0].p.q", "p.q is given twice"),
    ({"t": "a\ud800"}, "properties.t", "not valid Unicode"),
    ({"k\ud800": 1}, "properties.k\\ud800", "not valid Unicode"),
    ({"d": json.loads('{"a":' * 70 + "1" + "}" * 70)}, "properties.d" + ".a" * 63, "nested more than 64 levels"),
    ({".".join("k" * 70): 1}, "properties." + ".".join("k" * 70), "nests more than 64 levels"),
])
def test_properties_the_column_cannot_store_are_refused_with_their_path(given: dict, field: str, reason: str):
    for check in (properties.normalise, properties.to_json):
        with pytest.raises(InvalidRequest, match=reason) as refused:
            check(given, "properties")
        assert refused.value.field == field


# --- the real pipeline and writer -------------------------------------------------------------------

@pytest.fixture(scope="module")
def make_ingestor(database_url, redis, tmp_path_factory) -> Iterator[Callable[[], Ingestor]]:
    """Ingestors as `nexus serve` builds them, each with a writer of its own, not yet started."""
    settings = load({"NEXUS_DATA_DIR": str(tmp_path_factory.mktemp("data")), "NEXUS_CLICKHOUSE_URL": database_url})
    clients = []

    def make() -> Ingestor:
        clients.append(open_database(database_url, migrate=False))
        writer = GroupCommitWriter(clients[-1], IdentityResolver(redis.client), max_rows=100_000, max_delay_ms=50)
        return Ingestor(writer, Dedup(redis.client, 24), clients[-1], MetricsRecorder(redis.client, 60_000),
                        settings, b"salt")

    yield make
    for opened in clients:
        opened.close()


@pytest.fixture(scope="module")
def ingestor(make_ingestor) -> Iterator[Ingestor]:
    started = make_ingestor()
    started.writer.start()
    yield started
    started.writer.stop()


def track(message_id: str, props: Any, call: str = "track") -> Message | Rejection:
    """A message as the API decodes it from the wire."""
    body = {"type": call, "userId": f"u-{message_id}", "messageId": message_id, "event": "fuzz"}
    body["traits" if call == "identify" else "properties"] = props
    return decode_message(json.dumps(body).encode(), 0)


def count(client, project_id: int, table: str = "events") -> int:
    column = "sum(events)" if table != "events" else "count()"
    return client.query(f"SELECT {column} FROM {table} WHERE project_id = {{p:UInt32}}",
                        parameters={"p": project_id}).result_rows[0][0] or 0


_KEYS = ["a", "b", "c", "plan", "items", "$set", "ключ", "a b", "`", '"', "1", "k\u0000", "x" * 300, ""]
_ODD_KEYS = ["a.", ".a", ".", "..", "a..b", "b.c", "b.c.d"]
_SCALARS: list[Any] = [0, -1, 2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 2**127, 10**40, 0.0,
                       -0.0, 1.5, 1e308, 5e-324, True, False, None, "", "x", "2024-01-01", "2024-13-45",
                       "2024-01-01 10:00:00", "\u0000", "ü🙂", "1e5", "null", "a.b"]


def shape(rng: random.Random, depth: int = 0) -> Any:
    """One random JSON value, biased to the shapes the JSON column is touchy about."""
    roll = rng.random()
    if depth > 4 or roll < 0.45:
        return rng.choice(_SCALARS)
    if roll < 0.65:
        return [shape(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    if roll < 0.7:
        return {}
    return obj(rng, depth + 1)


def obj(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """An object; some name a path of theirs again with a dotted key (a twin), some have odd dots."""
    value = {rng.choice(_KEYS): shape(rng, depth) for _ in range(rng.randrange(1, 6))}
    if rng.random() < 0.3:
        path, node = [], value
        while isinstance(node, dict) and node:
            key = rng.choice(list(node))
            path.append(key)
            node = node[key]
        if len(path) > 1:
            value[".".join(path)] = rng.choice([shape(rng, depth), None, {}])
    if rng.random() < 0.1:
        value[rng.choice(_ODD_KEYS)] = shape(rng, depth)
    return value


def corpus(seed: int, size: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    shapes = [obj(rng) for _ in range(size)]
    shapes += [POISON, {"p": 1, "p.q": 2}, {"d": json.loads('{"a":' * 80 + "1" + "}" * 80)},
               {f"k{i}": i for i in range(2000)}, {"deep": json.loads("[" * 60 + "1" + "]" * 60)}]
    return shapes


def test_the_fast_text_is_the_normalised_objects_text():
    # to_json skips the walk when msgspec's text shows no dotted key and no deep nesting: it must give
    # what the walk gives, for every shape of the corpus (and refuse what it refuses, at the same path)
    for props in corpus(seed=5, size=2000):
        try:
            walked: Any = msgspec.json.encode(properties.normalise(props, "properties")).decode()
        except InvalidRequest as e:
            walked = e.field
        try:
            fast: Any = properties.to_json(props, "properties")
        except InvalidRequest as e:
            fast = e.field
        assert fast == walked, props


def alone(client, project_id: int, props: dict[str, Any]) -> bool:
    """Does the events table take this object as it was sent, in an insert of its own?"""
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    row = {f.name: [""] for f in EVENT_SCHEMA}
    row.update(project_id=[project_id], ts=[now_ms], received_at=[now_ms], sent_at=[None], skew_ms=[0],
               properties=[msgspec.json.encode(props).decode()])
    try:
        json_insert.insert(client, "events", events_table(row))
    except (DatabaseError, EngineError):  # the engine refused the row (wrapped by the store's client, or not)
        return False
    return True


def test_a_fuzzed_corpus_every_accepted_event_is_stored_and_every_refused_one_says_why(ingestor, client):
    # Given 400 random objects (and a few known poisons), as track properties and as identify traits
    shapes = corpus(seed=11, size=400)
    project = new_project(client)
    messages = [track(f"f{i}", props, "identify" if i % 7 == 0 else "track") for i, props in enumerate(shapes)]
    wire_rejected = {i for i, m in enumerate(messages) if isinstance(m, Rejection)}
    assert not wire_rejected  # every shape is valid JSON: what follows is the pipeline's doing
    # When they are sent as 8 concurrent requests, so that several share each insert
    source = pipeline.Source(project, datetime.now(timezone.utc))
    submitted = [ingestor.submit(messages[i::8], source) for i in range(8)]
    results = [ingestor.finish(s) for s in submitted]
    # Then every event the pipeline refused names its field and reason, and the store refused none of
    # the events the pipeline accepted (no isolation was needed)
    refused: dict[str, Rejection] = {}
    for part, result in enumerate(results):
        for rejection in result.rejections:
            assert rejection.field.startswith(("properties", "traits")) and rejection.reason
            assert not rejection.reason.startswith("ClickHouse refused"), rejection
            refused[f"f{part + 8 * rejection.index}"] = rejection
    stored = {r[0] for r in client.query("SELECT message_id FROM events WHERE project_id = {p:UInt32}",
                                         parameters={"p": project}).result_rows}
    assert stored == {f"f{i}" for i in range(len(shapes))} - set(refused)
    assert sum(r.stored for r in results) == len(stored)
    assert {"f400", "f401", "f402"} <= set(refused)  # the known poisons; the 2,000 paths are fine
    # And each refusal is justified: the column refuses the object on its own, or it is one of the two
    # shapes refused by choice: a value and nested keys at one path (stored, but not readable back as
    # one JSON object) and nesting past MAX_DEPTH
    probe = new_project(client)
    by_choice = ("a value and also nested keys", "levels deep")
    for name, rejection in refused.items():
        if alone(client, probe, shapes[int(name[1:])]):
            assert any(why in rejection.reason for why in by_choice), (shapes[int(name[1:])], rejection)
    assert count(client, project, "events_hourly") == len(stored)


def test_a_refused_event_does_not_take_its_message_id(ingestor, client):
    project = new_project(client)
    source = pipeline.Source(project, datetime.now(timezone.utc))
    first = ingestor.ingest([track("m1", POISON), track("m2", {"ok": 1})], source)
    assert (first.stored, [(r.index, r.field) for r in first.rejections]) == (1, [(0, "properties.p.q")])
    # The corrected event, resent with its messageId, is stored; the stored one is a duplicate
    again = ingestor.ingest([track("m1", {"p": {"q": 2}}), track("m2", {"ok": 1})], source)
    assert (again.stored, again.duplicates, again.rejections) == (1, 1, [])
    assert count(client, project) == 2


def without_checks(monkeypatch) -> None:
    """Let events the pipeline would refuse through, so that the writer meets them."""
    monkeypatch.setattr(properties, "normalise", lambda value, field: value)


def test_the_writer_isolates_what_the_store_refuses_and_stores_every_other_request(make_ingestor, ingestor,
                                                                                   client, monkeypatch):
    # Given a poison that got past the pipeline, in a block with other projects' requests
    without_checks(monkeypatch)
    a, b, c = new_project(client), new_project(client), new_project(client)
    held = make_ingestor()
    batches = {
        a: [track("a1", {"plan": "free"}), track("a2", POISON), track("a3", {"secret": "A-only"}),
            track("a4", {"n": 4}), track("a5", {"n": 5})],
        b: [track(f"b{i}", {"n": i}) for i in range(50)],
        c: [track("c1", {"m": 1}, "identify")],
    }
    # When they are queued before the writer starts, so that one block holds all three
    submitted = {p: held.submit(m, pipeline.Source(p, datetime.now(timezone.utc))) for p, m in batches.items()}
    held.writer.start()
    try:
        results = {p: held.finish(s) for p, s in submitted.items()}
    finally:
        held.writer.stop()
    # Then only the poison is refused, as its own request's rejection, and everything else is stored once
    assert results[b].stored == 50 and results[b].rejections == []
    assert results[c].stored == 1 and results[c].rejections == []
    assert results[a].stored == 4
    [rejection] = results[a].rejections
    assert (rejection.index, rejection.field) == (1, "properties")
    assert "Duplicate path" in rejection.reason and "p.q" in rejection.reason and "A-only" not in rejection.reason
    assert [count(client, p) for p in (a, b, c)] == [4, 50, 1]
    # And the rollups saw every stored row once, the refused one never
    assert [count(client, p, "events_hourly") for p in (a, b, c)] == [4, 50, 1]
    assert [count(client, p, "events_daily") for p in (a, b, c)] == [4, 50, 1]
    # And the refused messageId is free again, the stored ones are duplicates
    monkeypatch.undo()
    again = ingestor.ingest([track("a2", {"p": {"q": 2}}), track("a1", {"plan": "free"})],
                            pipeline.Source(a, datetime.now(timezone.utc)))
    assert (again.stored, again.duplicates) == (1, 1)


def test_one_block_with_a_poison_is_split_by_request_then_by_event(client, redis, monkeypatch):
    # Given a writer that has not started, so that everything queued becomes one block
    writer = GroupCommitWriter(client, IdentityResolver(redis.client), max_rows=100_000, max_delay_ms=50)
    projects = [new_project(client) for _ in range(6)]
    texts = {p: ['{"n":1}'] * 40 for p in projects}
    texts[projects[3]][17] = json.dumps(POISON)
    texts[projects[3]][30] = '{"x":[{"a.b":1,"a":{"b":2}}]}'
    futures = {p: writer.submit(_table(p, t), []) for p, t in texts.items()}
    inserts = _count_inserts(client, monkeypatch)
    writer.start()
    writer.stop()
    # Then the other five requests are stored whole, the poisoned one but for its two refused rows
    outcomes: dict[int, Outcome] = {p: f.result() for p, f in futures.items()}
    assert all(outcomes[p] == Outcome() for p in projects if p != projects[3])
    assert [(r.row, r.field) for r in outcomes[projects[3]].refused] == [(17, "properties"), (30, "properties")]
    assert [count(client, p) for p in projects] == [40, 40, 40, 38, 40, 40]
    assert [count(client, p, "events_hourly") for p in projects] == [40, 40, 40, 38, 40, 40]
    # In a logarithmic number of inserts, not one per request or per event
    assert len(inserts) < 30


def test_an_unavailable_store_midway_leaves_the_rest_to_the_retry(ingestor, client, monkeypatch):
    # Given a poison in a request, and a store that fails for good once the writer starts splitting
    without_checks(monkeypatch)
    project = new_project(client)
    real_insert = json_insert.insert
    calls = []

    def failing_after_two(clickhouse, table, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise OSError("the disk went away")
        return real_insert(clickhouse, table, *args, **kwargs)

    monkeypatch.setattr(json_insert, "insert", failing_after_two)
    source = pipeline.Source(project, datetime.now(timezone.utc))
    messages = [track(f"u{i}", {"n": i}) for i in range(8)] + [track("u8", POISON)]
    # When it is sent: the whole fails, its first half is stored, its second half meets the failure
    with pytest.raises(StorageUnavailable, match="the disk went away"):
        ingestor.ingest(messages, source)
    assert count(client, project) == 4
    # Then the SDK's retry stores the rest, refuses the poison, and counts the first half as duplicates
    monkeypatch.setattr(json_insert, "insert", real_insert)
    retry = ingestor.ingest(messages, source)
    assert (retry.stored, retry.duplicates, [r.index for r in retry.rejections]) == (4, 4, [8])
    assert count(client, project) == 8 and count(client, project, "events_hourly") == 8


def test_an_unavailable_store_is_named_by_its_code_never_by_its_text():
    error = DatabaseError("Code: 252. DB::Exception: Too many parts ... while inserting {\"secret\":\"B\"}",
                          code=252, name="TOO_MANY_PARTS")
    text = str(unavailable(error))
    assert "252 TOO_MANY_PARTS" in text and "secret" not in text
    assert "the disk went away" in str(unavailable(OSError("the disk went away")))


def _table(project_id: int, texts: list[str]) -> pa.Table:
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    rows = {f.name: [""] * len(texts) for f in EVENT_SCHEMA}
    rows.update(project_id=[project_id] * len(texts), message_id=[str(i) for i in range(len(texts))],
                ts=[now_ms] * len(texts), received_at=[now_ms] * len(texts), sent_at=[None] * len(texts),
                skew_ms=[0] * len(texts), properties=texts)
    return events_table(rows)


def _count_inserts(client, monkeypatch) -> list[int]:
    """Counts the events inserts made through `client`."""
    calls: list[int] = []
    real = json_insert.insert

    def counting(clickhouse, table, *args, **kwargs):
        if clickhouse is client and table == "events":
            calls.append(1)
        return real(clickhouse, table, *args, **kwargs)

    monkeypatch.setattr(json_insert, "insert", counting)
    return calls


def test_nan_and_arrow_values_reach_the_person_as_json(ingestor, client):
    # Values an Arrow import holds (NaN for a missing float, datetimes, decimals) in identify traits
    project = new_project(client)
    message = Message("identify", user_id="user-n", message_id="n1",
                      traits={"score": math.nan, "since": datetime(2026, 1, 1, tzinfo=timezone.utc),
                              "ltv": Decimal("12.50"), "a.b": 1})
    result = ingestor.ingest([message], pipeline.Source(project, datetime.now(timezone.utc)))
    assert (result.stored, result.rejections) == (1, [])
    [(traits,)] = client.query("SELECT toJSONString(properties) FROM persons FINAL WHERE project_id = {p:UInt32}",
                               parameters={"p": project}).result_rows
    person = json.loads(traits)
    # (the column reads ISO text as a DateTime, and writes it back in its own format)
    assert person.pop("since") in ("2026-01-01T00:00:00Z", "2026-01-01 00:00:00")
    assert person == {"ltv": "12.50", "a": {"b": 1}}
