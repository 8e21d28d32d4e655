"""PostHog capture bodies, shaped as posthog-js, posthog-python and the capture docs send them, mapped onto Segment messages."""

from __future__ import annotations

import base64
import gzip
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import msgspec
import pytest

from nexus.ingest.posthog import to_messages
from nexus.ingest.posthog_body import (
    PostHogBodyError,
    PostHogBodyTooLarge,
    PostHogPayload,
    decode_body,
)
from nexus.ingest.wire import Campaign, Context, Library, Message, Page, Rejection

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC)
KEY = "phc_8sdE1Ud0CxQwOUUbUHv3yvnXCL7zxFy5sPdQfWMvJXz"
ANON = "018f3a2b-7c4d-7e5f-8a9b-0c1d2e3f4a5b"
SESSION = "018f3a2b-7c4d-7e5f-8a9b-1111aaaa2222"


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _decode(body: bytes, content_type: str = "application/json", encoding: str = "", **query: str) -> PostHogPayload:
    return decode_body(body, content_type, encoding, query, max_bytes=1_000_000)


def _web_properties(**extra: Any) -> dict[str, Any]:
    """What posthog-js puts on every event of an anonymous visitor (trimmed to the fields that matter)."""
    return {
        "$os": "Mac OS X",
        "$browser": "Chrome",
        "$device_type": "Desktop",
        "$current_url": "https://shop.example.com/pricing?utm_source=newsletter&utm_medium=email",
        "$host": "shop.example.com",
        "$pathname": "/pricing",
        "$raw_user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/124.0.0.0 Safari/537.36",
        "$browser_language": "en-GB",
        "$timezone": "Europe/London",
        "$referrer": "$direct",
        "$referring_domain": "$direct",
        "utm_source": "newsletter",
        "utm_medium": "email",
        "$lib": "web",
        "$lib_version": "1.130.2",
        "distinct_id": ANON,
        "$device_id": ANON,
        "$is_identified": False,
        "$session_id": SESSION,
        "$window_id": "018f3a2b-7c4d-7e5f-8a9b-3333bbbb4444",
        "token": KEY,
        **extra,
    }


WEB_CONTEXT = Context(
    user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Chrome/124.0.0.0 Safari/537.36",
    page=Page(
        url="https://shop.example.com/pricing?utm_source=newsletter&utm_medium=email",
        path="/pricing",
        search="?utm_source=newsletter&utm_medium=email",
    ),
    campaign=Campaign(source="newsletter", medium="email"),
    library=Library(name="web", version="1.130.2"),
    locale="en-GB",
    timezone="Europe/London",
    session_id=SESSION,
)


def _kept(props: dict[str, Any]) -> dict[str, Any]:
    """Properties as stored: everything but the write key and the id, which the message carries."""
    return {k: v for k, v in props.items() if k not in ("token", "distinct_id")}


# --- posthog-js ----------------------------------------------------------------------------------


def test_posthog_js_gzip_batch_maps_a_pageview_and_an_autocapture() -> None:
    # Given posthog-js's batch: a bare list, gzip-js compressed, sent as text/plain with `_` = sent at (ms)
    pageview = _web_properties(title="Pricing — Example Shop")
    click = _web_properties(**{"$event_type": "click", "$el_text": "Start trial"})
    events = [
        {"uuid": "018f3a2b-8000-7000-8000-000000000001", "event": "$pageview", "properties": pageview,
         "timestamp": "2024-05-01T10:00:00.123Z"},
        {"uuid": "018f3a2b-8000-7000-8000-000000000002", "event": "$autocapture", "properties": click,
         "timestamp": "2024-05-01T10:00:03.500Z"},
    ]
    body = gzip.compress(_json(events))

    payload = _decode(body, "text/plain", compression="gzip-js", ver="1.130.2", _="1714557604000")

    assert payload.api_key == KEY
    sent_at = datetime(2024, 5, 1, 10, 0, 4, tzinfo=UTC)
    assert payload.sent_at == sent_at
    assert to_messages(payload, NOW) == [
        Message(
            type="page",
            name="/pricing",
            anonymous_id=ANON,
            properties=_kept(pageview),
            context=msgspec.structs.replace(WEB_CONTEXT, page=msgspec.structs.replace(
                WEB_CONTEXT.page, title="Pricing — Example Shop")),
            timestamp=datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC),
            sent_at=sent_at,
            message_id="018f3a2b-8000-7000-8000-000000000001",
        ),
        Message(
            type="track",
            event="$autocapture",
            anonymous_id=ANON,
            properties=_kept(click),
            context=WEB_CONTEXT,
            timestamp=datetime(2024, 5, 1, 10, 0, 3, 500000, tzinfo=UTC),
            sent_at=sent_at,
            message_id="018f3a2b-8000-7000-8000-000000000002",
        ),
    ]


def test_posthog_js_identify_links_the_anonymous_id_and_merges_set_once_under_set() -> None:
    # Given posthog.identify("user_42", {email, plan: "pro"}, {plan: "free", first_plan: "free"})
    props = _web_properties(distinct_id="user_42", **{"$anon_distinct_id": ANON})
    event = {
        "uuid": "018f3a2b-8000-7000-8000-000000000003",
        "event": "$identify",
        "properties": props,
        "$set": {"email": "ada@example.com", "plan": "pro"},
        "$set_once": {"plan": "free", "first_plan": "free"},
        "timestamp": "2024-05-01T10:00:04.000Z",
    }

    [message] = to_messages(_decode(_json([event])), NOW)

    assert message == Message(
        type="identify",
        user_id="user_42",
        anonymous_id=ANON,
        traits={"plan": "pro", "first_plan": "free", "email": "ada@example.com"},
        properties={k: v for k, v in _kept(props).items() if k != "$anon_distinct_id"},
        context=WEB_CONTEXT,
        timestamp=datetime(2024, 5, 1, 10, 0, 4, tzinfo=UTC),
        message_id="018f3a2b-8000-7000-8000-000000000003",
    )


def test_legacy_form_body_with_base64_data_field() -> None:
    # Given posthog-js with compression "base64": a form body whose `data` is URL-encoded base64 JSON
    event = {"event": "signup clicked", "properties": _web_properties(plan="pro")}
    body = ("data=" + quote(base64.b64encode(_json(event)).decode(), safe="")).encode()

    payload = _decode(body, "application/x-www-form-urlencoded", compression="base64")

    assert payload.api_key == KEY
    [message] = to_messages(payload, NOW)
    assert isinstance(message, Message)
    assert (message.type, message.event, message.anonymous_id) == ("track", "signup clicked", ANON)
    assert message.properties == _kept(_web_properties(plan="pro"))


def test_form_body_with_unescaped_base64_whose_plus_signs_became_spaces() -> None:
    # Given a client that did not URL-encode its base64, so a form decoder reads "+" as " "
    event = {"event": "e", "distinct_id": "u1", "token": KEY, "properties": {"q": ">>>???"}}
    encoded = base64.b64encode(_json(event)).decode()
    assert "+" in encoded

    payload = _decode(f"data={encoded}".encode(), "application/x-www-form-urlencoded", compression="base64")

    assert payload.events == [event]


def test_form_body_with_json_data_field() -> None:
    event = {"event": "$pageleave", "properties": {"distinct_id": "u1", "token": KEY}}
    body = ("data=" + quote(json.dumps(event))).encode()

    payload = _decode(body, "application/x-www-form-urlencoded; charset=UTF-8")

    assert payload == PostHogPayload(api_key=KEY, events=[event])


def test_form_body_with_percent_escaped_utf8_json_and_fields() -> None:
    # The escapes are UTF-8 bytes: they come back as they were sent (they were decoded once too often: a 500).
    event = {"event": "signup ✓", "properties": {"distinct_id": "ü1", "token": KEY}}
    body = ("✓=1&data=" + quote(json.dumps(event, ensure_ascii=False))).encode()

    payload = _decode(body, "application/x-www-form-urlencoded")

    assert payload == PostHogPayload(api_key=KEY, events=[event])
    with pytest.raises(PostHogBodyError, match="without a `data` field"):
        _decode(quote("✓").encode() + b"=true", "application/x-www-form-urlencoded")


def test_a_base64_body_without_a_compression_parameter_is_recognised() -> None:
    event = {"api_key": KEY, "event": "e", "distinct_id": "u1"}

    assert _decode(base64.b64encode(_json(event)), "text/plain").events == [event]


def test_a_gzip_body_without_a_compression_parameter_is_recognised() -> None:
    # posthog-js sometimes drops `?compression=` while still gzipping the body
    assert _decode(gzip.compress(_json([{"event": "e", "token": KEY}])), "text/plain").api_key == KEY


# --- posthog-python and the capture docs ---------------------------------------------------------


PYTHON_BATCH = {
    "api_key": KEY,
    "batch": [
        {
            "event": "order completed",
            "distinct_id": "user_42",
            "properties": {"revenue": 42.5, "$lib": "posthog-python", "$lib_version": "3.5.0",
                           "$geoip_disable": True, "$groups": {"company": "acme"}},
            "timestamp": "2024-05-01T09:59:58.250000+00:00",
            "uuid": "6f1c9e0a-3b2d-4c5e-8f70-1a2b3c4d5e6f",
            "library": "posthog-python",
            "library_version": "3.5.0",
        },
        {
            "event": "$create_alias",
            "distinct_id": "anon_7",
            "properties": {"distinct_id": "anon_7", "alias": "user_42", "$lib": "posthog-python"},
            "timestamp": "2024-05-01T09:59:59+00:00",
            "uuid": "6f1c9e0a-3b2d-4c5e-8f70-1a2b3c4d5e70",
        },
    ],
    "sent_at": "2024-05-01T10:00:00.000000+00:00",
}


def test_posthog_python_gzip_batch_maps_a_track_and_an_alias() -> None:
    # Given posthog-python with gzip=True: JSON body, Content-Encoding: gzip
    payload = _decode(gzip.compress(_json(PYTHON_BATCH)), "application/json", "gzip")

    sent_at = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert payload.api_key == KEY
    assert payload.sent_at == sent_at
    # Server SDKs send no $is_identified: a distinct_id they send names a known user
    assert to_messages(payload, NOW) == [
        Message(
            type="track",
            event="order completed",
            user_id="user_42",
            properties={"revenue": 42.5, "$lib": "posthog-python", "$lib_version": "3.5.0",
                        "$geoip_disable": True, "$groups": {"company": "acme"}},
            context=Context(library=Library(name="posthog-python", version="3.5.0")),
            timestamp=datetime(2024, 5, 1, 9, 59, 58, 250000, tzinfo=UTC),
            sent_at=sent_at,
            message_id="6f1c9e0a-3b2d-4c5e-8f70-1a2b3c4d5e6f",
        ),
        Message(
            type="alias",
            user_id="user_42",
            previous_id="anon_7",
            properties={"$lib": "posthog-python"},
            context=Context(library=Library(name="posthog-python")),
            timestamp=datetime(2024, 5, 1, 9, 59, 59, tzinfo=UTC),
            sent_at=sent_at,
            message_id="6f1c9e0a-3b2d-4c5e-8f70-1a2b3c4d5e70",
        ),
    ]


def test_single_capture_event_as_in_the_capture_docs() -> None:
    body = _json({"api_key": KEY, "event": "user signed up", "distinct_id": 1042,
                  "properties": {"plan": "pro", "$ip": "203.0.113.9", "$set": {"email": "bo@example.com"}},
                  "timestamp": "2024-05-01T09:30:00"})

    payload = _decode(body)

    assert payload.api_key == KEY
    assert to_messages(payload, NOW) == [
        Message(
            type="track",
            event="user signed up",
            user_id="1042",
            properties={"plan": "pro", "$ip": "203.0.113.9"},
            traits={"email": "bo@example.com"},
            context=Context(ip="203.0.113.9"),
            timestamp=datetime(2024, 5, 1, 9, 30, tzinfo=UTC),  # no offset given: UTC, as PostHog reads it
        )
    ]


def test_screen_and_groupidentify() -> None:
    events = [
        {"event": "$screen", "distinct_id": "u1",
         "properties": {"$screen_name": "Checkout", "$lib": "posthog-ios", "$is_identified": True}},
        {"event": "$groupidentify", "distinct_id": "u1",
         "properties": {"$group_type": "company", "$group_key": "acme", "$group_set": {"seats": 12}}},
    ]

    messages = to_messages(PostHogPayload(api_key=KEY, events=events), NOW)

    assert messages == [
        Message(type="screen", name="Checkout", user_id="u1",
                properties={"$screen_name": "Checkout", "$lib": "posthog-ios", "$is_identified": True},
                context=Context(library=Library(name="posthog-ios"))),
        Message(type="group", group_id="acme", user_id="u1", traits={"seats": 12},
                properties={"$group_type": "company"}),
    ]


@pytest.mark.parametrize(
    ("properties", "identified"),
    [
        ({"$is_identified": True, "$device_id": "u1"}, True),  # the flag wins
        ({"$is_identified": False}, False),
        ({"$user_id": "u1"}, True),
        ({"$device_id": "u1"}, False),  # older posthog-js: an anonymous id is the device id
        ({"$device_id": "d9"}, True),
        ({}, True),  # server SDKs
    ],
)
def test_which_distinct_ids_are_user_ids(properties: dict[str, Any], identified: bool) -> None:
    [m] = to_messages(PostHogPayload(api_key=KEY, events=[{"event": "e", "distinct_id": "u1",
                                                           "properties": properties}]), NOW)

    assert isinstance(m, Message)
    assert (m.user_id, m.anonymous_id) == (("u1", None) if identified else (None, "u1"))


def test_offset_counts_back_from_sent_at_or_now() -> None:
    sent_at = datetime(2024, 5, 1, 10, 0, 4, tzinfo=UTC)
    events = [{"event": "e", "distinct_id": "u", "offset": 1500}]

    with_sent_at = to_messages(PostHogPayload(KEY, events, sent_at), NOW)
    without = to_messages(PostHogPayload(KEY, events), NOW)

    assert [m.timestamp for m in with_sent_at if isinstance(m, Message)] == [sent_at - timedelta(seconds=1.5)]
    assert [m.timestamp for m in without if isinstance(m, Message)] == [NOW - timedelta(seconds=1.5)]


# --- rejections ----------------------------------------------------------------------------------


def test_malformed_events_are_rejected_one_by_one_with_their_index() -> None:
    good = {"event": "ok", "distinct_id": "u1"}
    batch = [
        good,
        {"distinct_id": "u1"},
        {"event": "e"},
        {"event": "e", "distinct_id": "u1", "properties": ["a"]},
        {"event": "e", "distinct_id": "u1", "timestamp": "yesterday"},
        "not an event",
        {"event": "e", "distinct_id": {"id": 1}},
        {"event": 7, "distinct_id": "u1"},
        {"event": "e", "distinct_id": "u1", "uuid": "not-a-uuid"},
        {"event": "$create_alias", "distinct_id": "u1", "properties": {}},
        {"event": "$snapshot", "distinct_id": "u1", "properties": {"$snapshot_data": []}},
        {"event": "e", "distinct_id": "u1", "offset": "5"},
        good,
    ]
    payload = _decode(_json({"api_key": KEY, "batch": batch}))

    results = to_messages(payload, NOW)

    assert [r for r in results if isinstance(r, Rejection)] == [
        Rejection(1, "event", "missing event name"),
        Rejection(2, "distinct_id", "missing distinct_id"),
        Rejection(3, "properties", "properties must be an object"),
        Rejection(4, "timestamp", "invalid ISO 8601 timestamp: 'yesterday'"),
        Rejection(5, "", "expected an event object"),
        Rejection(6, "distinct_id", "distinct_id must be a string or a number"),
        Rejection(7, "event", "event name must be a string"),
        Rejection(8, "uuid", "uuid must be a UUID, got 'not-a-uuid'"),
        Rejection(9, "properties.alias", "missing alias"),
        Rejection(10, "event", "session recordings ($snapshot) are not supported"),
        Rejection(11, "offset", "offset must be an integer number of milliseconds"),
    ]
    assert [i for i, r in enumerate(results) if isinstance(r, Message)] == [0, 12]


@pytest.mark.parametrize(
    ("body", "query", "reason"),
    [
        (b'{"event": "e", "distinct_id":', {}, "malformed JSON body (Input data was truncated)"),
        (b"[" * 100_000 + b"]" * 100_000, {}, "malformed JSON body (nested too deeply)"),
        (b"", {}, "empty body: expected a PostHog event, batch or list of events"),
        (b"not json at all!", {}, "body is neither JSON nor base64-encoded JSON"),
        (b'"a string"', {}, "body is neither JSON nor base64-encoded JSON"),
        (b"42", {}, "body is neither JSON nor base64-encoded JSON"),
        (base64.b64encode(b"42"), {"compression": "base64"}, "expected a PostHog event, batch or list of events"),
        (b'{"api_key": "k", "batch": {"event": "e"}}', {}, "`batch` must be a list of events"),
        (b"N4IgLgngDgpiBc", {"compression": "lz64"},
         "lz64 compression is not supported: send gzip-js, base64 or plain JSON"),
        (b"{}", {"compression": "brotli"}, "unsupported compression 'brotli': send gzip-js, base64 or plain JSON"),
        (b'[{"event": "e", "token": "a"}, {"event": "e", "token": "b"}]', {},
         "events carry different api keys: send one project's events per request"),
        (gzip.compress(b'{"event": "e"}', mtime=0)[:-12], {"compression": "gzip-js"}, "invalid gzip data: truncated"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"\xffgarbage", {},
         "invalid gzip data: Error -3 while decompressing data: invalid block type"),
    ],
)
def test_unreadable_bodies_raise_one_error_with_a_reason(body: bytes, query: dict[str, str], reason: str) -> None:
    with pytest.raises(PostHogBodyError) as raised:
        _decode(body, "application/json", **query)

    assert raised.value.reason == reason


def test_unsupported_content_encoding() -> None:
    with pytest.raises(PostHogBodyError, match="unsupported Content-Encoding 'br'"):
        decode_body(b"{}", "application/json", "br", {})


def test_a_gzip_bomb_stops_at_max_bytes() -> None:
    # Given 50 MB of spaces inside a JSON list, gzipped to about 50 KB
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]", compresslevel=9)
    assert len(bomb) < 100_000

    started = time.perf_counter()
    with pytest.raises(PostHogBodyTooLarge) as raised:
        decode_body(bomb, "text/plain", "", {"compression": "gzip-js"}, max_bytes=1_000_000)

    assert raised.value.reason == "body decompresses to more than the limit of 1000000 bytes"
    assert time.perf_counter() - started < 1.0  # stopped early, not after inflating 50 MB


def test_plain_and_base64_bodies_are_held_to_max_bytes_too() -> None:
    big = _json([{"event": "e", "distinct_id": "u", "properties": {"pad": "x" * 2_000}}])

    with pytest.raises(PostHogBodyTooLarge):
        decode_body(big, "application/json", "", {}, max_bytes=1_000)
    with pytest.raises(PostHogBodyTooLarge):
        decode_body(base64.b64encode(big), "text/plain", "", {"compression": "base64"}, max_bytes=1_000)
    assert decode_body(big, "application/json", "", {}, max_bytes=len(big)).events[0]["event"] == "e"
