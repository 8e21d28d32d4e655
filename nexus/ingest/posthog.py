"""PostHog's capture API, events: maps each decoded PostHog event onto a Segment `Message`.

`posthog_body.decode_body` undoes every body encoding the SDKs use, then `to_messages` maps events one by
one, so a malformed event becomes a `Rejection` with its index while the rest of the batch is kept (as for
Segment).

Mapping:
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

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from nexus.ingest.posthog_body import PostHogPayload, parse_time, text
from nexus.ingest.wire import Campaign, Context, Library, Message, Page, Rejection

_CAMPAIGN = {"utm_source": "source", "utm_medium": "medium", "utm_campaign": "name", "utm_term": "term",
             "utm_content": "content"}
_DROPPED = ("token", "distinct_id", "$performance_raw", "$set", "$set_once")
# posthog-js sends this instead of an empty referrer.
_NO_REFERRER = "$direct"


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
        m.type, m.event, m.name = "screen", None, text(props.get("$screen_name"))
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
    return text(props.get("$device_id")) != distinct_id


def _timestamp(event: dict[str, Any], sent_at: datetime | None, now: datetime) -> datetime | None:
    value, offset = event.get("timestamp"), event.get("offset")
    if value is not None:
        at = parse_time(value)
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
    url = text(props.get("$current_url"))
    parts = urlsplit(url) if url else None
    referrer = text(props.get("$referrer"))
    page = Page(
        url=url,
        path=text(props.get("$pathname")) or (parts.path or "/" if parts and parts.netloc else None),
        referrer=None if referrer == _NO_REFERRER else referrer,
        title=text(props.get("$title")) or text(props.get("title")),
        search=f"?{parts.query}" if parts and parts.query else None,
    )
    campaign = Campaign(**{field: text(props.get(key)) for key, field in _CAMPAIGN.items()})
    lib = Library(name=text(props.get("$lib")), version=text(props.get("$lib_version")))
    context = Context(
        ip=text(props.get("$ip")),
        user_agent=text(props.get("$raw_user_agent")) or text(props.get("$useragent"))
        or text(props.get("$user_agent")),
        page=page if page != Page() else None,
        campaign=campaign if campaign != Campaign() else None,
        library=lib if lib != Library() else None,
        locale=text(props.get("$browser_language")) or text(props.get("$locale")),
        timezone=text(props.get("$timezone")),
        session_id=text(props.get("$session_id")),
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


def _uuid(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise _Bad("uuid", f"uuid must be a UUID, got {value!r:.80}") from None
    return value
