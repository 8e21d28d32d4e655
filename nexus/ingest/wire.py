"""The Segment HTTP Tracking API's message shapes, as msgspec types: what SDKs send us.

Unknown fields are ignored, as Segment does. Ids may arrive as numbers from some SDKs and are kept as
text. A batch is decoded message by message (`decode_batch`), so one bad message is rejected with its
index, field and reason while the rest are stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from nexus.errors import reason_and_field
from nexus.json_input import UnreadableJson, decode_json

CallType = Literal["track", "page", "screen", "identify", "group", "alias"]
Id = str | int | None


class Page(msgspec.Struct, omit_defaults=True, gc=False):
    url: str | None = None
    path: str | None = None
    referrer: str | None = None
    title: str | None = None
    search: str | None = None


class Campaign(msgspec.Struct, omit_defaults=True, gc=False):
    source: str | None = None
    medium: str | None = None
    name: str | None = None
    term: str | None = None
    content: str | None = None


class Library(msgspec.Struct, omit_defaults=True, gc=False):
    name: str | None = None
    version: str | None = None


class Context(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    ip: str | None = None
    user_agent: str | None = None
    page: Page | None = None
    campaign: Campaign | None = None
    library: Library | None = None
    locale: str | None = None
    timezone: str | None = None
    session_id: str | int | None = None  # not in Segment's spec; sent by PostHog mapping and some SDKs
    device: dict[str, Any] | None = None
    os: dict[str, Any] | None = None
    app: dict[str, Any] | None = None
    referrer: dict[str, Any] | None = None


class Message(msgspec.Struct, rename="camel", omit_defaults=True, gc=False):
    type: CallType
    event: str | None = None
    name: str | None = None
    category: str | None = None
    user_id: Id = None
    anonymous_id: Id = None
    group_id: Id = None
    previous_id: Id = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: Context | None = None
    integrations: dict[str, Any] | None = None
    timestamp: datetime | None = None
    original_timestamp: datetime | None = None
    sent_at: datetime | None = None
    message_id: Id = None


class BatchEnvelope(msgspec.Struct, rename="camel"):
    """POST /v1/batch: messages, plus batch-wide sentAt and context that each message may override."""

    batch: list[msgspec.Raw]
    sent_at: datetime | None = None
    context: Context | None = None
    write_key: str | None = None


class Rejection(msgspec.Struct):
    """Why one message of a batch was not stored."""

    index: int
    field: str
    reason: str


_decoder = msgspec.json.Decoder(Message)


def decode_message(raw: bytes | msgspec.Raw, index: int) -> Message | Rejection:
    """One message, or the reason it is malformed (field is the JSON path below the message)."""
    try:
        return decode_json(raw, decoder=_decoder)
    except UnreadableJson as e:
        return Rejection(index, e.path, e.reason)


def rejection_from(index: int, error: msgspec.ValidationError) -> Rejection:
    reason, field = reason_and_field(error)
    return Rejection(index, field, reason)


def as_text(value: Id) -> str:
    """Ids as text: numbers become their decimal form, missing ids the empty string."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
