"""Turns decoded Segment messages into event rows through a named list of steps.

Each step walks the whole batch, enriching each event or dropping it with a typed reason; the time
each step takes is measured per batch (per event would cost more than most steps do). The steps:
validate → put_time → put_page → put_network → put_device → put_row.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from nexus.ingest.enrich import geo, ip, urls, useragent
from nexus.ingest.wire import Message, Rejection, as_text

EVENT_NAMES = {"page": "page_view", "screen": "screen_view", "identify": "identify", "group": "group",
               "alias": "alias"}
MAX_EVENT_NAME = 200
EPOCH_FLOOR = datetime(2000, 1, 1, tzinfo=timezone.utc)
_json = msgspec.json.Encoder()


class Rules(msgspec.Struct, frozen=True):
    """What a batch is checked against: time bounds, IP storage, sizes."""

    max_future: timedelta = timedelta(hours=1)
    max_past: timedelta | None = timedelta(days=365)  # None: any time after EPOCH_FLOOR (imports)
    skew_flag: timedelta = timedelta(minutes=1)
    ip_mode: ip.Mode = "truncate"
    ip_salt: bytes = b""
    max_event_bytes: int = 32_768


class Event:
    """One message on its way through the steps; `row` fills up, `rejection` ends its journey."""

    __slots__ = ("index", "message", "row", "rejection", "skew_ms", "library")

    def __init__(self, index: int, message: Message):
        self.index = index
        self.message = message
        self.row: dict[str, Any] = {}
        self.rejection: Rejection | None = None
        self.skew_ms = 0
        self.library = ""


class Source(msgspec.Struct, frozen=True):
    """Where and when a batch arrived."""

    project_id: int
    received_at: datetime
    client_ip: str = ""
    sent_at: datetime | None = None  # batch-level sentAt
    context: Any = None  # batch-level Context


class Processed(msgspec.Struct):
    rows: list[dict[str, Any]]
    accepted: list[Event]
    rejections: list[Rejection]
    step_seconds: dict[str, float]


def process(messages: list[Message | Rejection], source: Source, rules: Rules) -> Processed:
    """Run every step over the batch; rejected messages keep their index and reason."""
    events, rejections = [], []
    for index, item in enumerate(messages):
        if isinstance(item, Rejection):
            rejections.append(item)
        else:
            events.append(Event(index, item))
    timings = {}
    for name, step in STEPS:
        started = time.perf_counter()
        step(events, source, rules)
        timings[name] = time.perf_counter() - started
        rejections.extend(e.rejection for e in events if e.rejection is not None)
        events = [e for e in events if e.rejection is None]
    rejections.sort(key=lambda r: r.index)
    return Processed([e.row for e in events], events, rejections, timings)


def validate(events: list[Event], source: Source, rules: Rules) -> None:
    for e in events:
        m = e.message
        if m.type == "alias":
            if not as_text(m.previous_id) or not as_text(m.user_id):
                e.rejection = Rejection(e.index, "previousId", "alias calls need previousId and userId")
                continue
        elif not as_text(m.user_id) and not as_text(m.anonymous_id):
            e.rejection = Rejection(e.index, "userId", "userId or anonymousId is required")
            continue
        if m.type == "track" and not m.event:
            e.rejection = Rejection(e.index, "event", "track calls need an event name")
        elif m.type == "group" and not as_text(m.group_id):
            e.rejection = Rejection(e.index, "groupId", "group calls need a groupId")
        elif m.event is not None and len(m.event) > MAX_EVENT_NAME:
            e.rejection = Rejection(e.index, "event", f"event names are at most {MAX_EVENT_NAME} characters")


def put_time(events: list[Event], source: Source, rules: Rules) -> None:
    """ts = (timestamp or originalTimestamp) + (receivedAt − sentAt), as Segment corrects clock skew."""
    received = source.received_at
    latest = received + rules.max_future
    earliest = max(received - rules.max_past, EPOCH_FLOOR) if rules.max_past else EPOCH_FLOOR
    for e in events:
        m = e.message
        happened = _utc(m.timestamp or m.original_timestamp)
        sent = _utc(m.sent_at or source.sent_at)
        if happened is None:
            ts = received
        elif sent is not None:
            skew = received - sent
            ts = happened + skew
            e.skew_ms = int(skew / timedelta(milliseconds=1))
        else:
            ts = happened
        if ts > latest:
            e.rejection = Rejection(e.index, "timestamp", f"{ts.isoformat()} is more than "
                                    f"{int(rules.max_future.total_seconds())} s in the future (after clock-skew correction)")
        elif ts < earliest:
            e.rejection = Rejection(e.index, "timestamp", f"{ts.isoformat()} is before the earliest accepted "
                                    f"time {earliest.isoformat()}")
        else:
            e.row["ts"] = ts
            e.row["sent_at"] = sent
            e.row["skew_ms"] = e.skew_ms


def put_page(events: list[Event], source: Source, rules: Rules) -> None:
    """URL parts, referrer class and campaign: from context.page / context.campaign, else the URL."""
    for e in events:
        m = e.message
        context = m.context or source.context
        page = context.page if context is not None else None
        props = m.properties or {}
        url = (page.url if page else None) or _text(props.get("url"))
        referrer = (page.referrer if page else None) or _text(props.get("referrer"))
        host, path = urls.split_url(url) if url else ("", "")
        if page and page.path:
            path = page.path
        elif not path:
            path = _text(props.get("path"))
        ref = urls.classify_referrer(referrer, host) if referrer else _DIRECT
        sent = context.campaign if context is not None else None
        if sent is not None and (sent.source or sent.medium or sent.name):
            campaign = (sent.source or "", sent.medium or "", sent.name or "", sent.term or "", sent.content or "")
        else:
            c = urls.campaign_from_url(url) if url else _NO_CAMPAIGN
            campaign = (c.utm_source, c.utm_medium, c.utm_campaign, c.utm_term, c.utm_content)
        referrer_class = ref.referrer_class
        if campaign[1].lower() == "email" and referrer_class in ("direct", "other"):
            referrer_class = "email"
        row = e.row
        row["url"], row["host"], row["path"] = url, host, path
        row["referrer"], row["referrer_domain"], row["referrer_class"] = referrer, ref.domain, referrer_class
        (row["utm_source"], row["utm_medium"], row["utm_campaign"], row["utm_term"],
         row["utm_content"]) = campaign


def put_network(events: list[Event], source: Source, rules: Rules) -> None:
    """Geo from the client IP (context.ip, else the request's address); the IP stored as configured."""
    for e in events:
        context = e.message.context or source.context
        address = (context.ip if context is not None else None) or source.client_ip
        place = geo.lookup(address) if address else _NOWHERE
        row = e.row
        row["country"], row["region"], row["city"] = place.country, place.region, place.city
        row["ip"] = ip.anonymize(address, rules.ip_mode, rules.ip_salt) if address else ""


def put_device(events: list[Event], source: Source, rules: Rules) -> None:
    """Browser, OS and device type from the user agent; bots are kept, with device_type 'bot'."""
    for e in events:
        context = e.message.context or source.context
        agent = context.user_agent if context is not None else None
        device = useragent.parse(agent) if agent else _NO_DEVICE
        library = context.library if context is not None else None
        row = e.row
        row["browser"], row["browser_version"] = device.browser, device.browser_version
        row["os"], row["os_version"], row["device_type"] = device.os, device.os_version, device.device_type
        row["library"] = e.library = (library.name or "") if library else ""
        row["library_version"] = (library.version or "") if library else ""
        session = context.session_id if context is not None else None
        row["session_id"] = as_text(session)


def put_row(events: list[Event], source: Source, rules: Rules) -> None:
    """Ids, names and properties; events over the size limit are rejected here, once encoded."""
    for e in events:
        m = e.message
        user_id, anonymous_id = as_text(m.user_id), as_text(m.anonymous_id)
        properties = _properties(m)
        encoded = _json.encode(properties).decode() if properties else "{}"
        if len(encoded) > rules.max_event_bytes:
            e.rejection = Rejection(e.index, "properties", f"event properties are {len(encoded)} bytes, over the "
                                    f"limit of {rules.max_event_bytes}")
            continue
        row = e.row
        row["project_id"] = source.project_id
        row["event"] = m.event if m.type == "track" else EVENT_NAMES[m.type]
        row["type"] = m.type
        row["message_id"] = as_text(m.message_id) or uuid.uuid4().hex
        row["distinct_id"] = user_id or anonymous_id
        row["anonymous_id"], row["user_id"] = anonymous_id, user_id
        row["properties"] = encoded
        row["received_at"] = source.received_at


def _properties(m: Message) -> dict[str, Any] | None:
    """What goes in the properties column: properties, or traits for identify/group, plus call fields."""
    if m.type == "track":
        return m.properties
    if m.type in ("page", "screen"):
        extra = {k: v for k, v in (("name", m.name), ("category", m.category)) if v}
        return {**(m.properties or {}), **extra} if extra else m.properties
    if m.type == "identify":
        return m.traits
    if m.type == "group":
        return {**(m.traits or {}), "group_id": as_text(m.group_id)}
    return {"previous_id": as_text(m.previous_id)}


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)  # naive times are taken as UTC


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


_DIRECT = urls.Referrer("", "direct")
_NO_CAMPAIGN = urls.Campaign("", "", "", "", "")
_NOWHERE = geo.Geo("", "", "")
_NO_DEVICE = useragent.Device("", "", "", "", "", False)

STEPS: list[tuple[str, Callable[[list[Event], Source, Rules], None]]] = [
    ("validate", validate),
    ("put_time", put_time),
    ("put_page", put_page),
    ("put_network", put_network),
    ("put_device", put_device),
    ("put_row", put_row),
]
