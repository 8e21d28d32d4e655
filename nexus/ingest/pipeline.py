"""Turns decoded Segment messages into event columns through a named list of steps.

Each step walks the whole batch, filling columns (one Python list per events-table column) or
dropping messages with a typed reason; the time each step takes is measured per batch. Working column
by column keeps the per-event cost to a few list comprehensions over C-level calls, which is what lets
one core prepare well over 100k events a second. The steps:
validate → put_properties → put_time → put_page → put_network → put_device → put_row.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from nexus.errors import InvalidRequest
from nexus.ingest import properties
from nexus.ingest.enrich import geo, ip, urls, useragent
from nexus.ingest.wire import Context, Message, Rejection, as_text

EVENT_NAMES = {"page": "page_view", "screen": "screen_view", "identify": "identify", "group": "group",
               "alias": "alias"}
MAX_EVENT_NAME = 200
EPOCH_FLOOR = datetime(2000, 1, 1, tzinfo=timezone.utc)


class Rules(msgspec.Struct, frozen=True):
    """What a batch is checked against and enriched with: time bounds, IP storage and location, sizes."""

    max_future: timedelta = timedelta(hours=1)
    max_past: timedelta | None = timedelta(days=365)  # None: any time after EPOCH_FLOOR (imports)
    # Back-filled events were sent long before they reach us: their sentAt says nothing about the
    # clock of the device now, so no skew correction applies.
    correct_skew: bool = True
    ip_mode: ip.Mode = "truncate"
    ip_salt: bytes = b""
    max_event_bytes: int = 32_768
    locate: geo.Locate = geo.lookup  # the bundled data, or the operator's database (NEXUS_GEOIP_DATABASE)


class Source(msgspec.Struct, frozen=True):
    """Where and when a batch arrived."""

    project_id: int
    received_at: datetime
    client_ip: str = ""
    sent_at: datetime | None = None  # batch-level sentAt
    context: Context | None = None  # batch-level context


class Batch:
    """Messages still accepted, their positions in the request, the columns built so far, and the
    rejections so far. Column i of every list belongs to messages[i]."""

    __slots__ = ("messages", "indexes", "columns", "rejections", "contexts")

    def __init__(self, messages: list[Message], indexes: list[int]):
        self.messages = messages
        self.indexes = indexes
        self.columns: dict[str, list[Any]] = {}
        self.rejections: list[Rejection] = []
        self.contexts: list[Context | None] = []

    def reject(self, rejected: dict[int, tuple[str, str]]) -> None:
        """Drop the messages at these positions (position → (field, reason)) from everything."""
        if not rejected:
            return
        self.rejections.extend(Rejection(self.indexes[i], field, reason) for i, (field, reason) in rejected.items())
        keep = [i for i in range(len(self.messages)) if i not in rejected]
        self.messages = [self.messages[i] for i in keep]
        self.indexes = [self.indexes[i] for i in keep]
        self.contexts = [self.contexts[i] for i in keep] if self.contexts else []
        self.columns = {name: [values[i] for i in keep] for name, values in self.columns.items()}


class Processed(msgspec.Struct):
    columns: dict[str, list[Any]]  # events-table columns of the accepted messages
    messages: list[Message]  # the accepted messages, in column order
    indexes: list[int]  # each accepted message's position in the request
    rejections: list[Rejection]
    step_seconds: dict[str, float]

    @property
    def count(self) -> int:
        return len(self.messages)


def process(items: list[Message | Rejection], source: Source, rules: Rules) -> Processed:
    """Run every step over the batch; rejected messages keep their index and reason."""
    batch = Batch([m for m in items if not isinstance(m, Rejection)],
                  [i for i, m in enumerate(items) if not isinstance(m, Rejection)])
    batch.rejections = [m for m in items if isinstance(m, Rejection)]
    timings = {}
    for name, step in STEPS:
        started = time.perf_counter()
        step(batch, source, rules)
        timings[name] = time.perf_counter() - started
    batch.rejections.sort(key=lambda r: r.index)
    return Processed(batch.columns, batch.messages, batch.indexes, batch.rejections, timings)


def validate(batch: Batch, source: Source, rules: Rules) -> None:
    rejected = {}
    for i, m in enumerate(batch.messages):
        if m.type == "alias":
            if not as_text(m.previous_id) or not as_text(m.user_id):
                rejected[i] = ("previousId", "alias calls need previousId and userId")
            continue
        if not as_text(m.user_id) and not as_text(m.anonymous_id):
            rejected[i] = ("userId", "userId or anonymousId is required")
        elif m.type == "track" and not m.event:
            rejected[i] = ("event", "track calls need an event name")
        elif m.type == "group" and not as_text(m.group_id):
            rejected[i] = ("groupId", "group calls need a groupId")
        elif m.event is not None and len(m.event) > MAX_EVENT_NAME:
            rejected[i] = ("event", f"event names are at most {MAX_EVENT_NAME} characters")
    batch.reject(rejected)
    batch.contexts = [m.context or source.context for m in batch.messages]


def put_properties(batch: Batch, source: Source, rules: Rules) -> None:
    """The JSON text each event stores in its JSON column (properties; traits for identify and group), as
    the column stores it (see nexus.ingest.properties): an event whose object the column cannot store is
    rejected here, so it never reaches an insert shared with other requests."""
    texts: list[str] = []
    rejected = {}
    for i, m in enumerate(batch.messages):
        value = _properties(m)
        text = "{}"
        if value:
            try:
                if m.type == "identify":
                    # The person's traits are this same object (see _link in service): normalised too.
                    m.traits = properties.normalise(value, "traits")
                    text = properties.to_json(m.traits, "traits")
                else:
                    text = properties.to_json(value, "traits" if m.type == "group" else "properties")
            except InvalidRequest as e:
                rejected[i] = (e.field or "properties", str(e))
        texts.append(text)
    batch.columns["properties"] = texts  # put_row checks their size
    batch.reject(rejected)


def put_time(batch: Batch, source: Source, rules: Rules) -> None:
    """ts = (timestamp or originalTimestamp) + (receivedAt − sentAt), as Segment corrects clock skew."""
    received = _ms(source.received_at)
    latest = received + int(rules.max_future / _MS)
    floor = _ms(max(source.received_at - rules.max_past, EPOCH_FLOOR) if rules.max_past else EPOCH_FLOOR)
    batch_sent = _ms(source.sent_at) if source.sent_at else None
    ts, sent_at, skew, rejected = [], [], [], {}
    for i, m in enumerate(batch.messages):
        try:
            happened = m.timestamp or m.original_timestamp
            sent = _ms(m.sent_at) if m.sent_at else batch_sent
            if happened is None:
                moment, correction = received, 0
            else:
                correction = received - sent if sent is not None and rules.correct_skew else 0
                moment = _ms(happened) + correction
        except (ValueError, OverflowError, OSError):  # a date Python cannot place (year 1, 9999 + offset)
            rejected[i] = ("timestamp", "the timestamp is out of range")
            ts.append(received), sent_at.append(None), skew.append(0)
            continue
        if moment > latest:
            rejected[i] = ("timestamp", f"{_iso(moment)} is more than {int(rules.max_future.total_seconds())} s "
                                        f"in the future (after clock-skew correction)")
        elif moment < floor:
            rejected[i] = ("timestamp", f"{_iso(moment)} is before the earliest accepted time {_iso(floor)}")
        ts.append(moment)
        sent_at.append(sent)
        skew.append(correction)
    batch.columns.update(ts=ts, sent_at=sent_at, skew_ms=skew)
    batch.reject(rejected)


def put_page(batch: Batch, source: Source, rules: Rules) -> None:
    """URL parts, referrer class and campaign: from context.page / context.campaign, else the URL."""
    pages = [c.page if c is not None else None for c in batch.contexts]
    props = [m.properties or _EMPTY for m in batch.messages]
    url = [(p.url if p is not None and p.url else _text(q.get("url"))) for p, q in zip(pages, props)]
    referrer = [(p.referrer if p is not None and p.referrer else _text(q.get("referrer"))) for p, q in zip(pages, props)]
    parts = [urls.split_url(u) if u else _NO_PARTS for u in url]
    host = [h for h, _ in parts]
    path = [(p.path if p is not None and p.path else (part[1] or _text(q.get("path"))))
            for p, part, q in zip(pages, parts, props)]
    ref = [urls.classify_referrer(r, h) if r else _DIRECT for r, h in zip(referrer, host)]
    campaigns = [_campaign(c, u) for c, u in zip(batch.contexts, url)]
    medium = [c.utm_medium for c in campaigns]
    batch.columns.update(
        url=url, host=host, path=path, referrer=referrer, referrer_domain=[r.domain for r in ref],
        referrer_class=[("email" if m.lower() == "email" and r.referrer_class in ("direct", "other") else r.referrer_class)
                        for r, m in zip(ref, medium)],
        utm_source=[c.utm_source for c in campaigns], utm_medium=medium,
        utm_campaign=[c.utm_campaign for c in campaigns], utm_term=[c.utm_term for c in campaigns],
        utm_content=[c.utm_content for c in campaigns],
    )


def put_network(batch: Batch, source: Source, rules: Rules) -> None:
    """Geo from the client IP (context.ip, else the request's address); the IP stored as configured."""
    address = [(c.ip if c is not None and c.ip else source.client_ip) for c in batch.contexts]
    places = [rules.locate(a) if a else geo.EMPTY for a in address]
    mode, salt = rules.ip_mode, rules.ip_salt
    batch.columns.update(
        country=[p.country for p in places], region=[p.region for p in places], city=[p.city for p in places],
        ip=[ip.anonymize(a, mode, salt) if a else "" for a in address],
    )


def put_device(batch: Batch, source: Source, rules: Rules) -> None:
    """Browser, OS and device type from the user agent; bots are kept, with device_type 'bot'."""
    devices = [useragent.parse(c.user_agent) if c is not None and c.user_agent else useragent.EMPTY for c in batch.contexts]
    libraries = [c.library if c is not None else None for c in batch.contexts]
    batch.columns.update(
        browser=[d.browser for d in devices], browser_version=[d.browser_version for d in devices],
        os=[d.os for d in devices], os_version=[d.os_version for d in devices],
        device_type=[d.device_type for d in devices],
        library=[(lib.name or "") if lib is not None else "" for lib in libraries],
        library_version=[(lib.version or "") if lib is not None else "" for lib in libraries],
        session_id=[as_text(c.session_id) if c is not None else "" for c in batch.contexts],
    )


def put_row(batch: Batch, source: Source, rules: Rules) -> None:
    """Ids, names and properties; events whose properties exceed the size limit are rejected here."""
    messages = batch.messages
    encoded = batch.columns["properties"]
    limit = rules.max_event_bytes
    user_id = [as_text(m.user_id) for m in messages]
    anonymous_id = [as_text(m.anonymous_id) for m in messages]
    batch.columns.update(
        project_id=[source.project_id] * len(messages),
        event=[m.event if m.type == "track" else EVENT_NAMES[m.type] for m in messages],
        type=[m.type for m in messages],
        message_id=[as_text(m.message_id) or uuid.uuid4().hex for m in messages],
        distinct_id=[u or a for u, a in zip(user_id, anonymous_id)],
        user_id=user_id, anonymous_id=anonymous_id, properties=encoded,
        received_at=[_ms(source.received_at)] * len(messages),
    )
    batch.reject({i: ("properties", f"event properties are {len(e)} bytes, over the limit of {limit}")
                  for i, e in enumerate(encoded) if len(e) > limit})


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


def _campaign(context: Context | None, url: str) -> urls.Campaign:
    sent = context.campaign if context is not None else None
    if sent is not None and (sent.source or sent.medium or sent.name):
        return urls.Campaign(sent.source or "", sent.medium or "", sent.name or "", sent.term or "", sent.content or "")
    return urls.campaign_from_url(url) if url else _NO_CAMPAIGN


_MS = timedelta(milliseconds=1)


def _ms(moment: datetime) -> int:
    """Milliseconds since the epoch; naive times are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    try:
        return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)).isoformat()
    except OverflowError:
        return f"{ms} ms since 1970"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


_EMPTY: dict[str, Any] = {}
_NO_PARTS = ("", "")
_DIRECT = urls.Referrer("", "direct")
_NO_CAMPAIGN = urls.Campaign("", "", "", "", "")

STEPS: list[tuple[str, Callable[[Batch, Source, Rules], None]]] = [
    ("validate", validate),
    ("put_properties", put_properties),
    ("put_time", put_time),
    ("put_page", put_page),
    ("put_network", put_network),
    ("put_device", put_device),
    ("put_row", put_row),
]
