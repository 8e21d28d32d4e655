"""Channel rules per project: how a session's entry source becomes the marketing channel attribution credits.

A session's entry source is its first event's UTM tags (`utm_source`, `utm_medium`, `utm_campaign`) and
referrer (`referrer_class`: search, social, email, direct, internal or other, as ingest classifies it;
`referrer_domain`). The rules are tried in order and the first whose conditions all hold names the channel;
a source no rule matches is `FALLBACK` ("Other"). Several rules may name one channel (a channel reached
two ways). Conditions compare UTM tags case-insensitively (`in`, `not_in`: `CPC` is `cpc`), `regex` is RE2
over the value as stored, `is_set`/`is_not_set` ask whether the field is non-empty.

`last_non_direct`: when a conversion has any touch in its lookback whose channel is not `direct_channel`,
its direct touches get no credit (they are left out of its path), as analytics tools' "last non-direct
click" does; with only direct touches, direct keeps the credit.

A project without saved rules uses `DEFAULT_RULES`. `channel_index` is the one place the rules become SQL
(a multiIf, every value bound). Saved rules follow the metadata pattern (nexus.meta.records): one record per
project, each change a whole new version read back with FINAL; deleting it restores the defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
import re2
from clickhouse_connect.driver.client import Client

from nexus.analyses.sql import Params
from nexus.errors import InvalidRequest
from nexus.json_input import UnreadableJson, decode_json
from nexus.meta import records

TABLE = "channel_rules"
FALLBACK = "Other"
MAX_RULES = 50
MAX_CONDITIONS = 10
MAX_VALUES = 200
Field = Literal["utm_source", "utm_medium", "utm_campaign", "referrer_class", "referrer_domain"]
Operator = Literal["in", "not_in", "regex", "is_set", "is_not_set"]
ChannelName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
_UTM = ("utm_source", "utm_medium", "utm_campaign")

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the refusal goes to the caller, not to the server's stderr


class Condition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`field` `op` `values`: `in`/`not_in` take a list of values, `regex` one RE2 pattern, `is_set` none."""

    field: Field
    op: Operator = "in"
    values: list[Annotated[str, msgspec.Meta(max_length=500)]] = []

    def __post_init__(self) -> None:
        if self.op in ("is_set", "is_not_set"):
            if self.values:
                raise InvalidRequest(f"{self.op} takes no values", field="values")
        elif self.op == "regex":
            if len(self.values) != 1:
                raise InvalidRequest("regex takes one pattern", field="values")
            try:
                re2.compile(self.values[0], _RE2_OPTIONS)
            except re2.error as e:
                reason = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
                raise InvalidRequest(f"not a valid RE2 pattern ({reason})", field="values") from None
        elif not 1 <= len(self.values) <= MAX_VALUES:
            raise InvalidRequest(f"{self.op} takes 1 to {MAX_VALUES} values", field="values")


class ChannelRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A source whose every condition of `when` holds belongs to `channel` (no conditions: every source)."""

    channel: ChannelName
    when: list[Condition] = []

    def __post_init__(self) -> None:
        if not self.channel.strip():
            raise InvalidRequest("a channel's name cannot be blank", field="channel")
        if len(self.when) > MAX_CONDITIONS:
            raise InvalidRequest(f"a rule has at most {MAX_CONDITIONS} conditions", field="when")


class ChannelSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a client sends to PUT /v1/channels, and what attribution reads."""

    rules: list[ChannelRule]
    last_non_direct: bool = True
    direct_channel: ChannelName = "Direct"


def check(settings: ChannelSettings) -> None:
    """Refuse settings that cannot run, naming the field at fault (checks a rule's own fields do not make)."""
    if not 1 <= len(settings.rules) <= MAX_RULES:
        raise InvalidRequest(f"rules: 1 to {MAX_RULES} rules", field="rules")
    if settings.direct_channel not in channels(settings):
        raise InvalidRequest(f"direct_channel: {settings.direct_channel!r} is not a channel of the rules (nor "
                             f"{FALLBACK!r})", field="direct_channel")


class Channels(msgspec.Struct, frozen=True, kw_only=True):
    """The project's rules as GET /v1/channels shows them: `default` when none were saved."""

    rules: list[ChannelRule]
    last_non_direct: bool
    direct_channel: str
    channels: list[str]  # the channel names in rule order, FALLBACK last
    default: bool
    updated_by: str | None = None
    updated_at: datetime | None = None


class _Record(msgspec.Struct, frozen=True):
    project_id: int
    rules: str
    last_non_direct: int
    direct_channel: str
    updated_by: str
    updated_at: datetime


def channels(settings: ChannelSettings) -> list[str]:
    """The channel names of the rules, in the order they first appear, FALLBACK last."""
    names = list(dict.fromkeys(rule.channel for rule in settings.rules))
    return names if FALLBACK in names else [*names, FALLBACK]


def _rule(channel: str, *when: tuple) -> ChannelRule:
    """A rule from (field, op) and (field, op, values) tuples."""
    return ChannelRule(channel=channel, when=[Condition(field=c[0], op=c[1], values=list(c[2]) if len(c) > 2 else [])
                                              for c in when])


SEARCH_ENGINES = ["google", "bing", "yahoo", "duckduckgo", "baidu", "yandex", "ecosia", "naver", "brave", "qwant",
                  "startpage", "seznam", "kagi"]
SOCIAL_NETWORKS = ["facebook", "fb", "instagram", "ig", "meta", "twitter", "x", "t.co", "linkedin", "tiktok",
                   "reddit", "pinterest", "snapchat", "youtube", "threads", "bsky", "mastodon"]
PAID = ["cpc", "ppc", "paidsearch", "paid_search", "paid-search", "paid"]
PAID_SOCIAL = ["paidsocial", "paid_social", "paid-social", "paid social"]
EMAIL = ["email", "e-mail", "e_mail", "newsletter"]
SOCIAL = ["social", "social-network", "social_network", "social-media", "social_media", "sm"]
NO_REFERRER = ["direct", "internal", ""]

# In the spirit of GA4's default channel groups: paid before organic, a tagged medium before the referrer.
DEFAULT_SETTINGS = ChannelSettings(rules=[
    _rule("Paid search", ("utm_medium", "in", PAID), ("utm_source", "in", SEARCH_ENGINES)),
    _rule("Paid search", ("utm_medium", "in", PAID), ("referrer_class", "in", ["search"])),
    _rule("Paid social", ("utm_medium", "in", PAID_SOCIAL)),
    _rule("Paid social", ("utm_medium", "in", [*PAID, "cpm", "display"]), ("utm_source", "in", SOCIAL_NETWORKS)),
    _rule("Email", ("utm_medium", "in", EMAIL)),
    _rule("Email", ("utm_source", "in", EMAIL)),
    _rule("Email", ("utm_medium", "is_not_set"), ("referrer_class", "in", ["email"])),
    _rule("Organic search", ("utm_medium", "in", ["organic"])),
    _rule("Organic search", ("utm_medium", "is_not_set"), ("referrer_class", "in", ["search"])),
    _rule("Organic social", ("utm_medium", "in", SOCIAL)),
    _rule("Organic social", ("utm_medium", "is_not_set"), ("referrer_class", "in", ["social"])),
    _rule("Organic social", ("utm_source", "in", SOCIAL_NETWORKS), ("utm_medium", "is_not_set")),
    _rule("Referral", ("utm_medium", "in", ["referral"])),
    _rule("Referral", ("utm_medium", "is_not_set"), ("referrer_class", "in", ["other"])),
    _rule("Direct", ("utm_source", "is_not_set"), ("utm_medium", "is_not_set"),
          ("referrer_class", "in", NO_REFERRER)),
])


def channel_index(settings: ChannelSettings, params: Params, table: str = "e") -> str:
    """The 1-based position in `channels(settings)` of the channel of each event of `events AS {table}`
    (UInt8; the first rule that matches wins, FALLBACK when none does), its values bound in `params`."""
    names = channels(settings)
    branches = []
    for rule in settings.rules:
        test = " AND ".join(_condition(c, params, table) for c in rule.when) or "1"
        branches.append(f"{test}, {names.index(rule.channel) + 1}")
    return f"toUInt8(multiIf({', '.join(branches)}, {names.index(FALLBACK) + 1}))"


def _condition(condition: Condition, params: Params, table: str) -> str:
    column = f"{table}.{condition.field}"
    if condition.op in ("is_set", "is_not_set"):
        return f"{column} {'!=' if condition.op == 'is_set' else '='} ''"
    if condition.op == "regex":
        return f"match({column}, {params.add(condition.values[0], 'String')})"
    folded = condition.field in _UTM
    values = sorted({v.lower() for v in condition.values} if folded else set(condition.values))
    read = f"lower({column})" if folded else column
    return f"{read} {'NOT IN' if condition.op == 'not_in' else 'IN'} {params.add(values, 'Array(String)')}"


def decode(body: bytes) -> ChannelSettings:
    """Settings from JSON, checked; InvalidRequest naming the field at fault (`rules[2].when[0].values`)."""
    try:
        settings = decode_json(body, ChannelSettings)
    except UnreadableJson as e:
        # A rule's or condition's own check names its field on the error msgspec wraps.
        inner = getattr(e.error.__cause__, "field", None) if e.error is not None else None
        if inner is None:
            raise
        field = f"{e.path}.{inner}" if e.path else inner
        raise InvalidRequest(f"{field}: {e.error.__cause__}", field=field) from None
    check(settings)
    return settings


def get(client: Client, project_id: int) -> Channels:
    found = records.select(client, TABLE, _Record, "project_id = {p:UInt32}", {"p": project_id})
    if not found:
        return _view(DEFAULT_SETTINGS, default=True)
    record = found[0]
    settings = ChannelSettings(rules=msgspec.json.decode(record.rules, type=list[ChannelRule]),
                               last_non_direct=bool(record.last_non_direct),
                               direct_channel=record.direct_channel)
    return _view(settings, default=False, updated_by=record.updated_by, updated_at=record.updated_at)


def settings_of(client: Client, project_id: int) -> ChannelSettings:
    """The rules attribution applies in the project: its saved ones, else the defaults."""
    shown = get(client, project_id)
    return ChannelSettings(rules=shown.rules, last_non_direct=shown.last_non_direct,
                           direct_channel=shown.direct_channel)


def replace(client: Client, project_id: int, data: ChannelSettings, updated_by: str) -> Channels:
    # Every bound checked again (a Struct built in Python checks none), and errors name their field.
    data = decode(msgspec.json.encode(data))
    records.save(client, TABLE, _Record(project_id, msgspec.json.encode(data.rules).decode(), int(data.last_non_direct),
                                        data.direct_channel, updated_by, records.now()))
    return get(client, project_id)


def reset(client: Client, project_id: int) -> Channels:
    """Back to the default rules (the saved record is deleted)."""
    for record in records.select(client, TABLE, _Record, "project_id = {p:UInt32}", {"p": project_id}):
        records.save(client, TABLE, record, deleted=True)
    return get(client, project_id)


def _view(settings: ChannelSettings, *, default: bool, updated_by: str | None = None,
          updated_at: datetime | None = None) -> Channels:
    return Channels(rules=settings.rules, last_non_direct=settings.last_non_direct,
                    direct_channel=settings.direct_channel, channels=channels(settings), default=default,
                    updated_by=updated_by, updated_at=updated_at)
