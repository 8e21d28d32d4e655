"""PostHog's capture API: decodes the bodies PostHog SDKs send and maps each event onto a Segment `Message`.

`decode_body` undoes every body encoding the SDKs use, then `to_messages` maps events one by one, so a
malformed event becomes a `Rejection` with its index while the rest of the batch is kept (as for Segment).

Bodies (`decode_body`):
- JSON (posthog-python, -node, mobile SDKs); gzip, whether said by `Content-Encoding: gzip`,
  `?compression=gzip|gzip-js`, or not said at all (posthog-js sometimes drops the parameter, so a body
  starting with gzip's magic bytes is gunzipped, as PostHog's own capture does); base64, said by
  `?compression=base64` or sniffed when the body is not JSON; `application/x-www-form-urlencoded` with
  the JSON or base64 in its `data=` field (posthog-js legacy). `lz64` is refused: posthog-js picks it
  only when the server lists it in `supportedCompression`, which Nexus does not, and `lzstring` (the
  port PostHog used) was last released in 2018 and inflates without a bound.
- Every stage is capped at `max_bytes` of output, so a gzip bomb stops after `max_bytes + 1` bytes.
- Shapes: one event; `{"api_key", "batch": [...], "sent_at"}`; a bare list of events. The write key is
  the batch's `api_key`/`token`, else the events' `token`/`$token`/`api_key`/`properties.token`, which
  must then agree (the API authenticates a request, not an event). The send time is the batch's
  `sent_at`, else posthog-js's `?_=<ms>`; an unreadable one is ignored, as PostHog does.

Mapping (`to_messages`):
- `$pageview` → page (name: `$pathname`, else the URL's path, else the title); `$screen` → screen
  (`$screen_name`); `$identify` → identify (userId = distinct_id, anonymousId = `$anon_distinct_id`);
  `$set` → identify with the same ids as a track; `$create_alias` and `$merge_dangerously` → alias
  (previousId = distinct_id, userId = `properties.alias`, as both posthog-js and posthog-python send it);
  `$groupidentify` → group (groupId = `$group_key`, traits = `$group_set`); `$snapshot` (session replay)
  is rejected; anything else → track under its own name.
- Ids: distinct_id is a userId unless the event says it is anonymous. posthog-js and posthog-react-native
  say so with `$is_identified`; older ones only by a distinct_id equal to their `$device_id`. Server SDKs
  send neither, and name users they know, so their ids are userIds: had they been anonymousIds, a
  backend event for "user_42" would be a different person from the browser's identified "user_42".
- Traits: `$set_once` then `$set` (so `$set` wins), from the event and from its properties; PostHog
  updates the person from any event, so a track may carry traits too.
- Time: `timestamp` (ISO 8601, UTC when it has no offset) as the client's clock; else `offset` ms before
  the batch's `sent_at` (or `now` without one). With `sentAt` set, the pipeline's Segment-style skew
  correction turns this into PostHog's `received - offset`.
- Context comes from `$` properties (see `_context`); properties are kept whole, mapped ones
  included, because PostHog users filter on `$current_url` and `$browser`. Dropped: `token` (the write
  key), `distinct_id` (it is the message's id), `$performance_raw` (a huge pre-2023 posthog-js timing
  dump that nothing reads), and what became traits, ids or groupId.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec

from nexus.errors import InvalidRequest, TooLarge
from nexus.ingest.compression import gunzip
from nexus.ingest.wire import Campaign, Context, Library, Message, Page, Rejection

# PostHog's own cap for a batch, decoded.
MAX_DECODED_BYTES = 20 * 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_FORM = "application/x-www-form-urlencoded"
_CAMPAIGN = {"utm_source": "source", "utm_medium": "medium", "utm_campaign": "name", "utm_term": "term",
             "utm_content": "content"}
_DROPPED = ("token", "distinct_id", "$performance_raw", "$set", "$set_once")
_NEITHER = "body is neither JSON nor base64-encoded JSON"
# posthog-js sends this instead of an empty referrer.
_NO_REFERRER = "$direct"


class PostHogBodyError(InvalidRequest):
    """A capture request Nexus cannot read; `reason` is one line for the SDK's developer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PostHogBodyTooLarge(PostHogBodyError, TooLarge):
    """The decoded body would exceed `max_bytes` (HTTP 413 rather than 400)."""


class PostHogPayload(msgspec.Struct, frozen=True):
    """A decoded capture request: the project's write key, the events as sent, the batch's send time."""

    api_key: str | None
    events: list[Any]  # as sent; `to_messages` rejects those that are not events, by index
    sent_at: datetime | None = None


# --- bodies --------------------------------------------------------------------------------------


def decode_body(
    body: bytes,
    content_type: str,
    content_encoding: str,
    query: Mapping[str, str],
    *,
    max_bytes: int = MAX_DECODED_BYTES,
) -> PostHogPayload:
    """The events and write key of a POST to /batch, /capture, /e or /i/v0/e; raises PostHogBodyError."""
    encoding = content_encoding.strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise PostHogBodyError(f"unsupported Content-Encoding {content_encoding!r}: send gzip or nothing")
    data = _gunzip(body, max_bytes) if body.startswith(_GZIP_MAGIC) else body
    form: dict[str, bytes] = {}
    if content_type.split(";")[0].strip().lower() == _FORM or data.startswith(b"data="):
        # latin-1 maps each byte to one code point, so the field's bytes come back exactly.
        try:
            fields = parse_qsl(data.decode("latin-1"), max_num_fields=32)
        except ValueError as e:
            raise PostHogBodyError(f"malformed form body: {e}") from None
        form = {k: v.encode("latin-1") for k, v in fields}
        data = form.get("data", b"")
    if not data.strip() and "data" in query:  # the oldest posthog-js put the payload in the URL
        data = query["data"].encode()
    compression = (query.get("compression") or form.get("compression", b"").decode("latin-1")).lower()
    if compression == "lz64":
        raise PostHogBodyError("lz64 compression is not supported: send gzip-js, base64 or plain JSON")
    if compression not in ("", "gzip", "gzip-js", "base64"):
        raise PostHogBodyError(f"unsupported compression {compression!r}: send gzip-js, base64 or plain JSON")
    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data, max_bytes)
    stripped = data.lstrip()
    sniffed = compression != "base64" and stripped[:1] not in (b"", b"{", b"[")
    if compression == "base64" or sniffed:
        data = _unbase64(data, max_bytes)
        if sniffed and data.lstrip()[:1] not in (b"{", b"["):
            raise PostHogBodyError(_NEITHER)
    if len(data) > max_bytes:
        raise PostHogBodyTooLarge(f"body is {len(data)} bytes, over the limit of {max_bytes}")
    if not data.strip():
        raise PostHogBodyError("empty body: expected a PostHog event, batch or list of events")
    try:
        decoded = msgspec.json.decode(data)
    except msgspec.DecodeError as e:
        raise PostHogBodyError(f"malformed JSON body ({e})") from None
    except RecursionError:
        raise PostHogBodyError("malformed JSON body (nested too deeply)") from None
    return _payload(decoded, form, query)


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    try:
        return gunzip(data, max_bytes)
    except TooLarge:
        raise PostHogBodyTooLarge(f"body decompresses to more than the limit of {max_bytes} bytes") from None
    except InvalidRequest as e:
        raise PostHogBodyError("invalid gzip data: " + str(e).removeprefix("the body is not valid gzip: ")) from None


def _unbase64(data: bytes, max_bytes: int) -> bytes:
    # A form decoder turns an unescaped "+" into a space; newlines come from MIME-style wrapping.
    # URL-safe alphabets are folded into the standard one.
    text = data.strip().replace(b" ", b"+").replace(b"\n", b"").replace(b"\r", b"")
    text = text.replace(b"-", b"+").replace(b"_", b"/")
    if len(text) * 3 // 4 > max_bytes + 2:
        raise PostHogBodyTooLarge(f"body decodes to more than the limit of {max_bytes} bytes")
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise PostHogBodyError(_NEITHER) from None


def _payload(decoded: Any, form: Mapping[str, bytes], query: Mapping[str, str]) -> PostHogPayload:
    sent_at = _query_sent_at(query.get("_", ""))
    key = form.get("api_key", b"").decode("latin-1") or None
    if isinstance(decoded, dict) and "batch" in decoded:
        if not isinstance(decoded["batch"], list):
            raise PostHogBodyError("`batch` must be a list of events")
        events = decoded["batch"]
        key = key or _text(decoded.get("api_key")) or _text(decoded.get("token"))
        sent_at = _parse_time(decoded.get("sent_at")) or sent_at
    elif isinstance(decoded, dict):
        events = [decoded]
    elif isinstance(decoded, list):
        events = decoded
    else:
        raise PostHogBodyError("expected a PostHog event, batch or list of events")
    if key is None:
        keys = {_event_key(e) for e in events} - {None}
        if len(keys) > 1:
            raise PostHogBodyError("events carry different api keys: send one project's events per request")
        key = keys.pop() if keys else None
    return PostHogPayload(api_key=key, events=events, sent_at=sent_at)


def _event_key(event: Any) -> str | None:
    if not isinstance(event, dict):
        return None
    props = event.get("properties")
    from_props = _text(props.get("token")) if isinstance(props, dict) else None
    return _text(event.get("token")) or _text(event.get("$token")) or _text(event.get("api_key")) or from_props


def _query_sent_at(value: str) -> datetime | None:
    # posthog-js appends `_=<ms since epoch>`; a value in seconds (older SDKs) lands before 2021.
    try:
        at = datetime.fromtimestamp(int(value) / 1000, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return at if at.year > 2020 else None


# --- events --------------------------------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason


def to_messages(payload: PostHogPayload, now: datetime | None = None) -> list[Message | Rejection]:
    """One Segment message per event, or why it was rejected; `now` dates offset-only events without sent_at."""
    now = now or datetime.now(timezone.utc)
    out: list[Message | Rejection] = []
    for index, event in enumerate(payload.events):
        try:
            out.append(_message(event, payload.sent_at, now))
        except _Bad as bad:
            out.append(Rejection(index, bad.field, bad.reason))
    return out


def _message(event: Any, sent_at: datetime | None, now: datetime) -> Message:
    if not isinstance(event, dict):
        raise _Bad("", "expected an event object")
    name = event.get("event")
    if not isinstance(name, str) or not name:
        raise _Bad("event", "missing event name" if name in (None, "") else "event name must be a string")
    props = event.get("properties")
    if props is None:
        props = {}
    elif not isinstance(props, dict):
        raise _Bad("properties", "properties must be an object")
    sent_id = _first(event.get("distinct_id"), event.get("$distinct_id"), props.get("distinct_id"))
    distinct_id = _id(sent_id, "distinct_id")
    if distinct_id is None:
        raise _Bad("distinct_id", "missing distinct_id")
    properties = {k: v for k, v in props.items() if k not in _DROPPED}
    m = Message(type="track", event=name, properties=properties, sent_at=sent_at,
                timestamp=_timestamp(event, sent_at, now), message_id=_uuid(event.get("uuid")),
                context=_context(props), traits=_traits(event, props))
    if _identified(props, distinct_id):
        m.user_id = distinct_id
    else:
        m.anonymous_id = distinct_id
    return _by_kind(m, name, props, distinct_id)


def _by_kind(m: Message, name: str, props: dict[str, Any], distinct_id: str) -> Message:
    p = m.properties or {}
    if name == "$pageview":
        page = m.context.page if m.context and m.context.page else Page()
        m.type, m.event = "page", None
        m.name = page.path or page.title
    elif name == "$screen":
        m.type, m.event, m.name = "screen", None, _text(props.get("$screen_name"))
    elif name in ("$identify", "$set"):
        m.type, m.event = "identify", None
        if name == "$identify":
            anon = _id(p.pop("$anon_distinct_id", None), "properties.$anon_distinct_id")
            m.user_id, m.anonymous_id = distinct_id, anon if anon != distinct_id else None
    elif name in ("$create_alias", "$merge_dangerously"):
        alias = _id(p.pop("alias", None), "properties.alias")
        if alias is None:
            raise _Bad("properties.alias", "missing alias")
        m.type, m.event, m.user_id, m.anonymous_id, m.previous_id = "alias", None, alias, None, distinct_id
    elif name == "$groupidentify":
        m.group_id = _id(p.pop("$group_key", None), "properties.$group_key")
        if m.group_id is None:
            raise _Bad("properties.$group_key", "missing group key")
        group_set = p.pop("$group_set", None)
        if group_set is not None and not isinstance(group_set, dict):
            raise _Bad("properties.$group_set", "$group_set must be an object")
        m.type, m.event, m.traits = "group", None, group_set or None
    elif name == "$snapshot":
        raise _Bad("event", "session recordings ($snapshot) are not supported")
    m.properties = m.properties or None
    return m


def _identified(props: dict[str, Any], distinct_id: str) -> bool:
    flag = props.get("$is_identified")
    if isinstance(flag, bool):
        return flag
    if props.get("$user_id") not in (None, ""):
        return True
    return _text(props.get("$device_id")) != distinct_id


def _timestamp(event: dict[str, Any], sent_at: datetime | None, now: datetime) -> datetime | None:
    value, offset = event.get("timestamp"), event.get("offset")
    if value is not None:
        at = _parse_time(value)
        if at is None:
            raise _Bad("timestamp", f"invalid ISO 8601 timestamp: {value!r:.80}")
        return at
    if offset is None:
        return None
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise _Bad("offset", "offset must be an integer number of milliseconds")
    try:
        return (sent_at or now) - timedelta(milliseconds=offset)
    except OverflowError:
        raise _Bad("offset", f"offset out of range: {offset}") from None


def _traits(event: dict[str, Any], props: dict[str, Any]) -> dict[str, Any] | None:
    traits: dict[str, Any] = {}
    for key in ("$set_once", "$set"):
        for source, field in ((props, f"properties.{key}"), (event, key)):
            value = source.get(key)
            if value is not None and not isinstance(value, dict):
                raise _Bad(field, f"{key} must be an object")
            if key == "$set_once":
                traits.update({k: v for k, v in (value or {}).items() if k not in traits})
            else:
                traits.update(value or {})
    return traits or None


def _context(props: dict[str, Any]) -> Context | None:
    url = _text(props.get("$current_url"))
    parts = urlsplit(url) if url else None
    referrer = _text(props.get("$referrer"))
    page = Page(
        url=url,
        path=_text(props.get("$pathname")) or (parts.path or "/" if parts and parts.netloc else None),
        referrer=None if referrer == _NO_REFERRER else referrer,
        title=_text(props.get("$title")) or _text(props.get("title")),
        search=f"?{parts.query}" if parts and parts.query else None,
    )
    campaign = Campaign(**{field: _text(props.get(key)) for key, field in _CAMPAIGN.items()})
    lib = Library(name=_text(props.get("$lib")), version=_text(props.get("$lib_version")))
    context = Context(
        ip=_text(props.get("$ip")),
        user_agent=_text(props.get("$raw_user_agent")) or _text(props.get("$useragent"))
        or _text(props.get("$user_agent")),
        page=page if page != Page() else None,
        campaign=campaign if campaign != Campaign() else None,
        library=lib if lib != Library() else None,
        locale=_text(props.get("$browser_language")) or _text(props.get("$locale")),
        timezone=_text(props.get("$timezone")),
        session_id=_text(props.get("$session_id")),
    )
    return context if context != Context() else None


# --- values --------------------------------------------------------------------------------------


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None and v != ""), None)


def _id(value: Any, field: str) -> str | None:
    """An id as text: PostHog accepts numbers (`42` → "42"); bools, objects and lists are mistakes."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Bad(field, f"{field} must be a string or a number")
    return value if isinstance(value, str) else str(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _uuid(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise _Bad("uuid", f"uuid must be a UUID, got {value!r:.80}") from None
    return value
