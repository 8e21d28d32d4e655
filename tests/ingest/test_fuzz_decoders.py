"""Property-based tests of the ingestion decoders (hypothesis): whatever bytes or JSON a client sends, a Segment
message decodes to a message or a rejection naming a field, a PostHog body decodes to its events or is refused with
an InvalidRequest (400/413), and the pipeline then accepts or rejects each message exactly once — never an
exception. Bounded (max_examples, no deadline: the machine is shared) so the suite stays fast; no example database
is written (`database=None`), so a run leaves no files."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.errors import InvalidRequest
from nexus.ingest import pipeline, posthog
from nexus.ingest.posthog_body import PostHogPayload, decode_body
from nexus.ingest.wire import Message, Rejection, decode_message

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
SOURCE = pipeline.Source(project_id=1, received_at=NOW, client_ip="203.0.113.9")

# Text that has broken parsers before: quotes, braces like ClickHouse placeholders, control and non-BMP characters.
HOSTILE = st.sampled_from(["'", '"', "`", "\\", "{p1:String}", "}", "\x00", "\ud7ff", "😀", "a.b", "$set", "../",
                           "2026-13-45", "1e309", "-0", "NaN", "\u202e", "null"])
TEXT = st.one_of(st.text(max_size=30), HOSTILE)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                   st.floats(allow_nan=False, allow_infinity=False), TEXT)
JSON = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
RECENT = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 11, 1, 12),
                     timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30))]))
TIME = st.one_of(RECENT.map(datetime.isoformat), RECENT.map(datetime.isoformat), TEXT, st.integers(), st.none())
ID = st.one_of(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20), HOSTILE,
               st.integers(min_value=-(2**70), max_value=2**70), st.none(), st.floats(allow_nan=False))
PROPERTIES = st.dictionaries(TEXT, JSON, max_size=6)
CONTEXT = st.fixed_dictionaries({}, optional={
    "ip": st.one_of(st.ip_addresses().map(str), TEXT), "userAgent": TEXT,
    "page": st.dictionaries(st.sampled_from(["url", "path", "referrer", "title", "search"]),
                            st.one_of(st.sampled_from(["https://example.com/a?utm_source=x", "/p?q=1#f"]), TEXT)),
    "campaign": st.dictionaries(st.sampled_from(["source", "medium", "name", "term", "content"]), TEXT),
    "library": st.fixed_dictionaries({"name": TEXT, "version": TEXT}), "locale": TEXT, "timezone": TEXT})


def segment_message(*, well_typed: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Messages shaped like Segment's: well typed (any text, numbers and JSON in their values, so examples reach
    the pipeline's later steps), or with every field free to hold anything."""
    def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return valid if well_typed else st.one_of(valid, JSON)

    text_id = st.text(min_size=1, max_size=20) | HOSTILE
    ids = text_id if well_typed else ID
    times = RECENT.map(datetime.isoformat) if well_typed else TIME
    return st.fixed_dictionaries(
        {"type": field(st.sampled_from(["track", "page", "screen", "identify", "group", "alias"])),
         "anonymousId": ids, "timestamp": times, "event": field(st.text(min_size=1, max_size=40) | HOSTILE)},
        optional={"name": field(TEXT), "userId": ids, "previousId": ids, "groupId": ids, "messageId": ids,
                  "properties": field(PROPERTIES), "traits": field(PROPERTIES), "sentAt": times,
                  "originalTimestamp": times, "context": field(CONTEXT)})


def assert_each_message_accepted_or_rejected_once(items: list[Message | Rejection]) -> None:
    processed = pipeline.process(items, SOURCE, pipeline.Rules())
    rejected = [r.index for r in processed.rejections]
    assert sorted(processed.indexes + rejected) == list(range(len(items)))
    assert all(len(values) == processed.count for values in processed.columns.values())
    assert all(isinstance(r.field, str) and r.reason for r in processed.rejections)


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_decode_to_a_message_or_a_rejection(raw: bytes):
    assert isinstance(decode_message(raw, 3), (Message, Rejection))


@FUZZ
@given(st.lists(st.one_of(segment_message(well_typed=True), segment_message(well_typed=False), JSON), max_size=6))
def test_any_segment_batch_is_accepted_or_rejected_message_by_message(messages: list[Any]):
    items = [decode_message(json.dumps(m).encode(), i) for i, m in enumerate(messages)]
    assert_each_message_accepted_or_rejected_once(items)


def posthog_event() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"event": st.one_of(st.sampled_from(["$pageview", "$identify", "$create_alias",
                                                                      "$groupidentify", "signup"]), TEXT, JSON)},
                                 optional={"distinct_id": ID, "properties": st.one_of(PROPERTIES, PROPERTIES, JSON),
                                           "timestamp": TIME, "offset": st.one_of(st.integers(), TEXT), "uuid": TEXT,
                                           "$set": JSON, "api_key": TEXT})


@st.composite
def posthog_request(draw: st.DrawFn) -> tuple[bytes, str, str, dict[str, str]]:
    """A capture request as some SDK might send it: any shape, wrapped in any of the encodings, or garbage."""
    shape = draw(st.sampled_from(["event", "batch", "list", "json", "bytes"]))
    events = draw(st.lists(posthog_event(), max_size=4))
    body = {"event": events[0] if events else {}, "batch": {"api_key": draw(TEXT), "batch": events,
                                                            "sent_at": draw(TIME)},
            "list": events, "json": draw(JSON)}.get(shape)
    data = draw(st.binary(max_size=200)) if shape == "bytes" else json.dumps(body).encode()
    encoding, query = "", {}
    wrapping = draw(st.sampled_from(["plain", "gzip", "gzip-header", "base64", "form", "form-base64"]))
    if wrapping in ("gzip", "gzip-header"):
        data = gzip.compress(data)
        encoding, query = ("gzip", {}) if wrapping == "gzip-header" else ("", {"compression": "gzip-js"})
    elif wrapping == "base64":
        data, query = base64.b64encode(data), {"compression": "base64"}
    elif wrapping.startswith("form"):
        field = base64.b64encode(data) if wrapping == "form-base64" else data
        data = urlencode({"data": field.decode("latin-1")}).encode()
    content_type = draw(st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain", ""]))
    query |= draw(st.dictionaries(st.sampled_from(["compression", "_", "ver"]), TEXT, max_size=2))
    return data, content_type, draw(st.sampled_from([encoding, encoding, "br", "identity"])), query


@FUZZ
@given(posthog_request())
def test_any_posthog_body_decodes_or_is_refused_as_a_bad_request(request: tuple[bytes, str, str, dict[str, str]]):
    body, content_type, content_encoding, query = request
    try:
        payload = decode_body(body, content_type, content_encoding, query, max_bytes=100_000)
    except InvalidRequest as refused:
        assert str(refused)
        return
    assert isinstance(payload, PostHogPayload)
    items = posthog.to_messages(payload, now=NOW)
    assert len(items) == len(payload.events)
    assert_each_message_accepted_or_rejected_once(items)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["gzip", ""]), st.sampled_from(["base64", "gzip-js", "lz64", ""]))
def test_any_bytes_as_a_posthog_body_decode_or_are_refused(body: bytes, encoding: str, compression: str):
    for data in (body, gzip.compress(body), b"data=" + body):
        try:
            payload = decode_body(data, "application/x-www-form-urlencoded", encoding,
                                  {"compression": compression} if compression else {}, max_bytes=10_000)
        except InvalidRequest:
            continue
        assert isinstance(payload.events, list)
        msgspec.json.encode(payload.events)  # the events are JSON values, whatever came in
