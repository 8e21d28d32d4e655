"""The back-fill's pipeline: a block of rows (`bulk_rows.Rows`) → the events table of its valid rows, their
identify/alias links, and a rejection per invalid row — column by column, not event by event.

The steps and their outcome are the live pipeline's (`pipeline`: the same names, checks, reasons, and every
stored column equal, which tests/ingest/test_bulk.py holds the two to), but a step here is a few Arrow
compute calls over the whole block, and an enrichment runs once per distinct value, not per row: a
back-fill of a million events holds a few thousand user agents, pages, referrers and IPs, so parsing each
once and `take`-ing the results costs a small fraction of a lookup per row, even a cached one. What stays
per row is what each row holds alone: its properties' JSON text (`properties.to_json`, which the JSON
column's rules need the object for) and the rejection reasons that quote a row's own values.

A row rejected by one step is still carried (and its columns computed) through the later ones, which
only skip reporting it; the block is filtered once, at the end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nexus.errors import InvalidRequest
from nexus.ingest import properties
from nexus.ingest.bulk_rows import Rows
from nexus.ingest.columns import EVENT_SCHEMA
from nexus.ingest.enrich import geo, ip, urls, useragent
from nexus.ingest.identity import Link
from nexus.ingest.pipeline import (
    EPOCH_FLOOR,
    EVENT_NAMES,
    MAX_EVENT_NAME,
    Rules,
    _iso,
    _ms,
)
from nexus.ingest.wire import Rejection

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode


class Block(msgspec.Struct):
    """A block's outcome: the events table of its valid rows, in order, and what became of the others."""

    table: pa.Table  # EVENT_SCHEMA
    positions: list[int]  # each stored row's line or row in the file
    links: list[Link]  # identify and alias calls, in order
    link_rows: list[int]  # the row of `table` each link came with
    rejections: list[Rejection]  # index = line or row in the file, ascending
    step_seconds: dict[str, float]


class _Work:
    """The block's rows, the columns built so far, and the first reason each row was rejected for."""

    def __init__(self, rows: Rows, project_id: int, received_at: datetime, rules: Rules):
        self.rows = rows
        self.project_id = project_id
        self.received_at = received_at
        self.rules = rules
        self.columns: dict[str, pa.Array] = {}
        self.rejected: dict[int, tuple[str, str]] = dict(rows.unreadable)
        self.traits: list[Any] = [None] * len(rows)  # identify calls' traits as their person stores them

    def reject(self, rows: np.ndarray, reason: Callable[[int], tuple[str, str]]) -> None:
        """Reject the rows of this boolean mask that no earlier step rejected."""
        for i in np.flatnonzero(rows).tolist():
            if i not in self.rejected:
                self.rejected[i] = reason(i)


def process(rows: Rows, project_id: int, received_at: datetime, rules: Rules,
            leave_out: np.ndarray | None = None) -> Block:
    """Every step over the block (see the module's docstring); the rows of the `leave_out` mask are
    neither stored nor rejected (the caller knows them as duplicates)."""
    work = _Work(rows, project_id, received_at, rules)
    timings = {}
    for name, step in STEPS:
        started = time.perf_counter()
        step(work)
        timings[name] = time.perf_counter() - started
    keep = np.ones(len(rows), dtype=bool) if leave_out is None else ~leave_out
    if leave_out is not None:
        work.rejected = {i: reason for i, reason in work.rejected.items() if not leave_out[i]}
    keep[list(work.rejected)] = False
    table = pa.table([work.columns[f.name].cast(f.type) for f in EVENT_SCHEMA], schema=EVENT_SCHEMA).filter(keep)
    kept = np.flatnonzero(keep)
    links, link_rows = _links(work, kept, table)
    rejections = sorted((Rejection(rows.positions[i], field, reason) for i, (field, reason) in work.rejected.items()),
                        key=lambda r: r.index)
    return Block(table, [rows.positions[i] for i in kept.tolist()], links, link_rows, rejections, timings)


def validate(work: _Work) -> None:
    rows = work.rows
    alias = _equal(rows.type, "alias")
    no_user = _equal(rows.user_id, "")
    work.reject(alias & (_equal(rows.previous_id, "") | no_user),
                lambda i: ("previousId", "alias calls need previousId and userId"))
    other = ~alias
    work.reject(other & no_user & _equal(rows.anonymous_id, ""), lambda i: ("userId", "userId or anonymousId is required"))
    no_event = _np(pc.fill_null(pc.equal(rows.event, ""), True))
    work.reject(other & _equal(rows.type, "track") & no_event, lambda i: ("event", "track calls need an event name"))
    work.reject(other & _equal(rows.type, "group") & _equal(rows.group_id, ""),
                lambda i: ("groupId", "group calls need a groupId"))
    long_name = _np(pc.fill_null(pc.greater(pc.utf8_length(rows.event), MAX_EVENT_NAME), False))
    work.reject(other & long_name, lambda i: ("event", f"event names are at most {MAX_EVENT_NAME} characters"))


def put_properties(work: _Work) -> None:
    """The JSON text each row stores (`pipeline.put_properties`): properties; traits for identify and group.

    Track calls' objects are encoded in one pass and checked in two Arrow scans of all their texts (a
    dotted key, nesting that may pass MAX_DEPTH: `properties.to_json`'s own checks); only the rows a scan
    flags, and the other calls, go through `properties.to_json` one by one."""
    rows = work.rows
    kinds = rows.type.to_pylist()
    texts: list[bytes] = [b"{}"] * len(rows)
    tracks = [i for i, kind in enumerate(kinds) if kind == "track"]
    try:
        for i, text in zip(tracks, [_encode(rows.properties[i]) if rows.properties[i] else b"{}" for i in tracks]):
            texts[i] = text
        scanned = pa.array([texts[i] for i in tracks], pa.binary())
        flagged = pc.or_(pc.match_substring_regex(scanned, properties.DOTTED_KEY.pattern.decode()),
                         pc.greater(pc.add(pc.count_substring(scanned, "{"), pc.count_substring(scanned, "[")),
                                    properties.MAX_DEPTH))
        one_by_one = [tracks[i] for i in np.flatnonzero(_np(flagged)).tolist()]
    except (TypeError, ValueError):  # a value msgspec cannot write (a lone surrogate): every row alone
        one_by_one = tracks
    one_by_one += [i for i, kind in enumerate(kinds) if kind != "track"]
    names, categories = rows.name.to_pylist(), rows.category.to_pylist()
    group_ids, previous_ids = rows.group_id.to_pylist(), rows.previous_id.to_pylist()
    for i in one_by_one:
        kind, traits = kinds[i], rows.traits[i]
        value = _properties(kind, rows.properties[i], traits, names[i], categories[i], group_ids[i], previous_ids[i])
        text = "{}"
        if value:
            try:
                if kind == "identify":
                    work.traits[i] = properties.normalise(value, "traits")
                    text = properties.to_json(work.traits[i], "traits")
                else:
                    text = properties.to_json(value, "traits" if kind == "group" else "properties")
            except InvalidRequest as e:
                work.rejected.setdefault(i, (e.field or "properties", str(e)))
        elif kind == "identify":
            work.traits[i] = traits
        texts[i] = text.encode()
    work.columns["properties"] = pa.array(texts, pa.binary()).cast(pa.string())


def put_time(work: _Work) -> None:
    """ts = (timestamp or originalTimestamp) + (receivedAt − sentAt) where the rules correct clock skew."""
    rows, rules = work.rows, work.rules
    received = _ms(work.received_at)
    latest = received + int(rules.max_future / timedelta(milliseconds=1))
    floor = _ms(max(work.received_at - rules.max_past, EPOCH_FLOOR) if rules.max_past else EPOCH_FLOOR)
    happened = rows.happened_ms.to_numpy(zero_copy_only=False)  # float, NaN for null
    sent = rows.sent_ms
    known = ~np.isnan(happened)
    if rules.correct_skew:
        correction = np.where(known & _np(pc.is_valid(sent)), received - _np(pc.fill_null(sent, 0)), 0)
    else:
        correction = np.zeros(len(rows), dtype=np.int64)
    moment = np.where(known, _np(pc.fill_null(rows.happened_ms, 0)) + correction, received).astype(np.int64)
    for i in rows.time_out_of_range:
        work.rejected.setdefault(i, ("timestamp", "the timestamp is out of range"))
        moment[i], correction[i] = received, 0
    ahead = int(rules.max_future.total_seconds())
    work.reject(moment > latest, lambda i: (
        "timestamp", f"{_iso(int(moment[i]))} is more than {ahead} s in the future (after clock-skew correction)"))
    work.reject(moment < floor, lambda i: (
        "timestamp", f"{_iso(int(moment[i]))} is before the earliest accepted time {_iso(floor)}"))
    work.columns.update(ts=pa.array(moment, pa.int64()), sent_at=sent, skew_ms=pa.array(correction, pa.int64()))


def put_page(work: _Work) -> None:
    """URL parts, referrer class and campaign (`pipeline.put_page`), each parsed once per distinct value."""
    rows = work.rows
    url = _or_property(rows.url, rows.properties, "url")
    referrer = _or_property(rows.referrer, rows.properties, "referrer")
    parts, at = _per_value(url, lambda u: urls.split_url(u) if u else ("", ""))
    host = _column([h for h, _ in parts], at)
    path = _first_of(rows.path, _column([p for _, p in parts], at))
    path = _or_property(path, rows.properties, "path")
    # Referrers are classified against the page's host: once per distinct (referrer, host) pair.
    referrers, by_referrer = _per_value(referrer, lambda r: r)
    hosts, by_host = _per_value(host, lambda h: h)
    pairs, pair_at = np.unique(by_referrer.astype(np.int64) * len(hosts) + by_host, return_inverse=True)
    classes = [urls.classify_referrer(referrers[p // len(hosts)], hosts[p % len(hosts)])
               if referrers[p // len(hosts)] else urls.DIRECT for p in pairs.tolist()]
    sent = _np(pc.or_(pc.or_(pc.not_equal(rows.utm_source, ""), pc.not_equal(rows.utm_medium, "")),
                      pc.not_equal(rows.utm_campaign, "")))
    campaigns, campaign_at = _per_value(url, lambda u: urls.campaign_from_url(u) if u else urls.NO_CAMPAIGN)
    utm = {name: pc.if_else(sent, getattr(rows, name), _column([getattr(c, name) for c in campaigns], campaign_at))
           for name in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")}
    mediums, medium_at = _per_value(utm["utm_medium"], lambda m: m.lower() == "email")
    domain = _column([c.domain for c in classes], pair_at)
    referrer_class = _column([c.referrer_class for c in classes], pair_at)
    emailed = np.asarray(mediums, dtype=bool)[medium_at] & _np(pc.is_in(referrer_class, pa.array(["direct", "other"])))
    work.columns.update(url=url, host=host, path=path, referrer=referrer, referrer_domain=domain,
                        referrer_class=pc.if_else(emailed, "email", referrer_class), **utm)


def put_network(work: _Work) -> None:
    """Geo from the row's IP and the IP as the rules store it, once per distinct address."""
    rules = work.rules
    places, at = _per_value(work.rows.ip, lambda a: (rules.locate(a), ip.anonymize(a, rules.ip_mode, rules.ip_salt))
                            if a else (geo.EMPTY, ""))
    work.columns.update(country=_column([p.country for p, _ in places], at), region=_column([p.region for p, _ in places], at),
                        city=_column([p.city for p, _ in places], at), ip=_column([a for _, a in places], at))


def put_device(work: _Work) -> None:
    """Browser, OS and device type, once per distinct user agent; bots are kept, with device_type 'bot'."""
    rows = work.rows
    devices, at = _per_value(rows.user_agent, lambda a: useragent.parse(a) if a else useragent.EMPTY)
    work.columns.update({name: _column([getattr(d, name) for d in devices], at)
                         for name in ("browser", "browser_version", "os", "os_version", "device_type")})
    work.columns.update(library=rows.library, library_version=rows.library_version, session_id=rows.session_id)


def put_row(work: _Work) -> None:
    """Ids, names and properties; rows whose properties exceed the size limit are rejected here."""
    rows = work.rows
    n = len(rows)
    call_names, call_at = _per_value(rows.type, lambda t: EVENT_NAMES.get(t, ""))
    event = pc.if_else(pc.equal(rows.type, "track"), pc.fill_null(rows.event, ""), _column(call_names, call_at))
    message_id = rows.message_id
    if not pc.all(pc.not_equal(message_id, "")).as_py():
        message_id = pa.array([m or uuid.uuid4().hex for m in message_id.to_pylist()], pa.string())
    encoded = work.columns["properties"]
    limit = work.rules.max_event_bytes
    sizes = _np(pc.utf8_length(encoded))
    work.reject(sizes > limit, lambda i: (
        "properties", f"event properties are {int(sizes[i])} bytes, over the limit of {limit}"))
    work.columns.update(
        project_id=pa.array(np.full(n, work.project_id, dtype=np.uint32)), event=event, type=rows.type,
        message_id=message_id, distinct_id=_first_of(rows.user_id, rows.anonymous_id),
        user_id=rows.user_id, anonymous_id=rows.anonymous_id,
        received_at=pa.array(np.full(n, _ms(work.received_at), dtype=np.int64)),
    )


def _properties(kind: str, props: Any, traits: Any, name: str | None, category: str | None, group_id: str,
                previous_id: str) -> Any:
    """`pipeline._properties` of one row."""
    if kind == "track":
        return props
    if kind in ("page", "screen"):
        extra = {k: v for k, v in (("name", name), ("category", category)) if v}
        return {**(props or {}), **extra} if extra else props
    if kind == "identify":
        return traits
    if kind == "group":
        return {**(traits or {}), "group_id": group_id}
    return {"previous_id": previous_id}


def _links(work: _Work, kept: np.ndarray, table: pa.Table) -> tuple[list[Link], list[int]]:
    """The identify and alias calls among the stored rows, with the row each came with."""
    types = table.column("type")
    calls = np.flatnonzero(_np(pc.is_in(types, pa.array(["identify", "alias"]))))
    links, link_rows = [], []
    if not len(calls):
        return links, link_rows
    ts, users = table.column("ts").cast(pa.int64()).to_numpy(), table.column("user_id")
    for row in calls.tolist():
        moment = datetime.fromtimestamp(int(ts[row]) / 1000, timezone.utc)
        user_id = users[row].as_py()
        if types[row].as_py() == "identify":
            other = table.column("anonymous_id")[row].as_py()
            link = Link(work.project_id, user_id or other, other if user_id else "", work.traits[int(kept[row])], moment)
        else:
            link = Link(work.project_id, user_id, work.rows.previous_id[int(kept[row])].as_py(), None, moment)
        links.append(link)
        link_rows.append(row)
    return links, link_rows


def _per_value(column: pa.Array, compute: Callable[[Any], T]) -> tuple[list[T], np.ndarray]:
    """`compute` of each distinct value of the column (its nulls as ""), and each row's index into them."""
    encoded = pc.dictionary_encode(pc.fill_null(column, ""))
    return [compute(value) for value in encoded.dictionary.to_pylist()], encoded.indices.to_numpy(zero_copy_only=False)


def _column(values: list[Any], at: np.ndarray) -> pa.Array:
    return pa.array(values, pa.string()).take(pa.array(at)) if values else pa.array([], pa.string())


def _or_property(sent: pa.Array, objects: list[Any], key: str) -> pa.Array:
    """The context's value where it is not empty, else the properties' `key` when that is text."""
    empty = np.flatnonzero(_np(pc.equal(sent, "")))
    if not len(empty):
        return sent
    values = sent.to_pylist()
    for i in empty.tolist():
        value = objects[i].get(key) if objects[i] else None
        values[i] = value if isinstance(value, str) else ""
    return pa.array(values, pa.string())


def _first_of(first: pa.Array, then: pa.Array) -> pa.Array:
    return pc.if_else(pc.not_equal(first, ""), first, then)


def _equal(column: pa.Array, value: str) -> np.ndarray:
    return _np(pc.fill_null(pc.equal(column, value), False))


def _np(array: Any) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


STEPS: list[tuple[str, Callable[[_Work], None]]] = [
    ("validate", validate),
    ("put_properties", put_properties),
    ("put_time", put_time),
    ("put_page", put_page),
    ("put_network", put_network),
    ("put_device", put_device),
    ("put_row", put_row),
]
