"""PostHog's capture v1 protocol: `POST /i/v1/analytics/events`, what posthog-python 7.x and posthog-go send
with `capture_mode="v1"`. The batch's events are put in the v0 shape `posthog.to_messages` maps (so both
protocols store an event alike), and each event gets a result the SDK reads to resend only what needs it.

The contract, as the SDK's `capture_v1.py` states it: Bearer auth, no key in the body; the body is
`{"created_at", "batch": [event, ...], "historical_migration"?}`, gzip or (zlib) deflate; an event is
`{"event", "uuid", "distinct_id", "timestamp" (RFC 3339), "options": {...}, "properties", "session_id"?,
"window_id"?}`, with `$set`/`$set_once` inside `properties`; `$lib`/`$lib_version` come from the
`PostHog-Sdk-Info` header ("posthog-python/7.91.1"). The answer is 200 with
`{"results": {uuid: {"result": "ok" | "drop" | "retry", "details"?}}}`:
- `ok`: stored, or stored before (the uuid is the event's messageId: a resend is stored once);
- `drop`: refused, `details` saying which field and why (as /v1/batch's errors);
- `retry`: the store failed for the whole batch (nothing of it is known stored; resending is safe).

Options: `disable_skew_correction` keeps the event's timestamp as sent; `process_person_profile: false`
updates no person from the event (its `$set`/`$set_once` are ignored); `cookieless_mode` and
`product_tour_id` are accepted and change nothing. `historical_migration` stores the batch as a back-fill
(any age, timestamps as sent, as /v1/import). The send time skew correction reads is the
`PostHog-Request-Timestamp` header, set per attempt (`created_at` stays the same across retries).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from nexus.errors import InvalidRequest
from nexus.ingest import posthog
from nexus.ingest.posthog_body import PostHogPayload, parse_time
from nexus.ingest.wire import Message, Rejection

PATH = "/i/v1/analytics/events"
SDK_INFO = "PostHog-Sdk-Info"
REQUEST_TIMESTAMP = "PostHog-Request-Timestamp"


class _Envelope(msgspec.Struct, frozen=True):
    batch: list[Any]
    created_at: str | None = None
    historical_migration: bool = False


class EventResult(msgspec.Struct, frozen=True, omit_defaults=True):
    result: Literal["ok", "drop", "retry"]
    details: str | None = None


class Batch(msgspec.Struct, frozen=True):
    """A decoded v1 request: its events as messages (or why not), each event's result key, and whether it
    is a back-fill."""

    messages: list[Message | Rejection]
    keys: list[str]  # the event's uuid as sent, else its position: the `results` map's keys
    historical: bool

    def results(self, rejections: list[Rejection], stored: bool) -> dict[str, EventResult]:
        """Every event's result: `drop` for the rejected, else `ok` once `stored`, `retry` if the store failed."""
        found = {key: EventResult("ok" if stored else "retry") for key in self.keys}
        for rejection in rejections:
            reason = f"{rejection.field}: {rejection.reason}" if rejection.field else rejection.reason
            found[self.keys[rejection.index]] = EventResult("drop", reason)
        return found


def decode(body: bytes, sdk_info: str, request_timestamp: str, now: datetime) -> Batch:
    """The batch of a v1 request body (already decompressed) and its headers; InvalidRequest for a body that
    is not a v1 batch (the SDK then drops the batch: one bad event is a `drop`, not a refused request)."""
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except msgspec.ValidationError as e:
        raise InvalidRequest(f"not a capture v1 batch: {e}", field="batch") from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"malformed JSON body ({e})") from None
    if not envelope.batch:
        raise InvalidRequest("the batch holds no events", field="batch")
    library, _, version = sdk_info.strip().rpartition("/")
    library, version = (library, version) if library else (version, "")
    options = [_options(event) for event in envelope.batch]
    legacy = [_legacy(event, library, version) for event in envelope.batch]
    messages = posthog.to_messages(PostHogPayload(None, legacy, parse_time(request_timestamp)), now)
    for index, (message, chosen) in enumerate(zip(messages, options)):
        if isinstance(message, Rejection):
            continue
        if chosen is None:
            messages[index] = Rejection(index, "options", "options must be an object")
            continue
        if chosen.get("disable_skew_correction") is True:
            message.sent_at = None
        if chosen.get("process_person_profile") is False:
            message.traits = None
    keys = [event["uuid"] if isinstance(event, dict) and isinstance(event.get("uuid"), str) and event["uuid"]
            else str(index) for index, event in enumerate(envelope.batch)]
    return Batch(messages, keys, envelope.historical_migration)


def _options(event: Any) -> dict[str, Any] | None:
    """The event's options; None when they are not an object."""
    chosen = event.get("options") if isinstance(event, dict) else None
    if chosen is None:
        return {}
    return chosen if isinstance(chosen, dict) else None


def _legacy(event: Any, library: str, version: str) -> Any:
    """The v1 event in the v0 shape: top-level session and window ids back in properties as `$session_id` and
    `$window_id`, and the library from the header (unless the event names one)."""
    if not isinstance(event, dict) or not isinstance(event.get("properties", {}), dict):
        return event  # to_messages says what is wrong with it
    properties = {"$lib": library, **({"$lib_version": version} if version else {}), **event.get("properties", {})}
    for field, key in (("session_id", "$session_id"), ("window_id", "$window_id")):
        if isinstance(event.get(field), str):
            properties[key] = event[field]
    return {**{k: v for k, v in event.items() if k not in ("options", "session_id", "window_id")},
            "properties": properties}
