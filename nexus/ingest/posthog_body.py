"""PostHog capture bodies: undoes every encoding PostHog SDKs send (`decode_body`), leaving the events
as sent for `posthog.to_messages` to map.

- JSON (posthog-python, -node, mobile SDKs); gzip, whether said by `Content-Encoding: gzip`,
  `?compression=gzip|gzip-js`, or not said at all (posthog-js sometimes drops the parameter, so a body
  starting with gzip's magic bytes is gunzipped, as PostHog's own capture does); base64, said by
  `?compression=base64` or sniffed when the body is not JSON; `application/x-www-form-urlencoded` with
  the JSON or base64 in its `data=` field (posthog-js legacy), while a body labelled as a form that is
  JSON itself (clients send this) is read as JSON, and a form without a `data` field is refused as such.
  `lz64` is refused: posthog-js picks it
  only when the server lists it in `supportedCompression`, which Nexus does not, and `lzstring` (the
  port PostHog used) was last released in 2018 and inflates without a bound.
- Every stage is capped at `max_bytes` of output, so a gzip bomb stops after `max_bytes + 1` bytes.
- Shapes: one event; `{"api_key", "batch": [...], "sent_at"}`; a bare list of events. The write key is
  the batch's `api_key`/`token`, else the events' `token`/`$token`/`api_key`/`properties.token`, which
  must then agree (the API authenticates a request, not an event). The send time is the batch's
  `sent_at`, else posthog-js's `?_=<ms>`; an unreadable one is ignored, as PostHog does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from nexus.errors import InvalidRequest, TooLarge
from nexus.ingest.compression import gunzip

# PostHog's own cap for a batch, decoded.
MAX_DECODED_BYTES = 20 * 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_FORM = "application/x-www-form-urlencoded"
_NEITHER = "body is neither JSON nor base64-encoded JSON"


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
    labelled_form = content_type.split(";")[0].strip().lower() == _FORM
    if data.startswith(b"data=") or (labelled_form and data.lstrip()[:1] not in (b"{", b"[")):
        # latin-1 maps each byte, sent as it is or percent-escaped, to one code point: the field's bytes
        # come back exactly.
        try:
            fields = parse_qsl(data.decode("latin-1"), max_num_fields=32, encoding="latin-1")
        except ValueError as e:
            raise PostHogBodyError(f"malformed form body: {e}") from None
        form = {k: v.encode("latin-1") for k, v in fields}
        if "data" not in form and data.strip() and "data" not in query:
            raise PostHogBodyError("form body without a `data` field: send data=<the events as JSON or base64>, "
                                   "or the JSON itself as the body")
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
        key = key or text(decoded.get("api_key")) or text(decoded.get("token"))
        sent_at = parse_time(decoded.get("sent_at")) or sent_at
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
    from_props = text(props.get("token")) if isinstance(props, dict) else None
    return text(event.get("token")) or text(event.get("$token")) or text(event.get("api_key")) or from_props


def _query_sent_at(value: str) -> datetime | None:
    # posthog-js appends `_=<ms since epoch>`; a value in seconds (older SDKs) lands before 2021.
    try:
        at = datetime.fromtimestamp(int(value) / 1000, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return at if at.year > 2020 else None


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)
