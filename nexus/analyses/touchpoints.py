"""Touchpoints and journeys: the SQL both attribution analyses read, one row per conversion or lost journey.

Definition. A person's events (persons resolved through identities) from `lookback` before the range's
start to its end, in time order, are split into sessions at gaps longer than `gap_minutes` (a session
crossing that window's start is cut there, as the sessions analysis cuts at range ends). Each session is
one touch, at the time of its first event, labelled by that event's entry source: its channel by the
project's rules (`nexus.meta.channels`), or with `by="source"` its `utm_source` (else its referrer's
domain, else `NO_SOURCE`), or with `by="campaign"` its `utm_campaign` (else `NO_CAMPAIGN`). Events at the
same millisecond are ordered by their channel's place in the rules (then label), so the touch of a session
whose first events tie is the one of the channel listed first.

A conversion is an event in `[start, end)` of the range meeting the goal (`nexus.meta.goals.condition`),
worth the goal's value (0 without one). Each conversion is its own journey (a person converting twice has
two, which may share touches): its path is the person's touches at or after `conversion − lookback` and at
or before the conversion, in time order; with `last_non_direct`, when the path holds a touch of another
channel than `direct_channel`, the direct ones are left out. A conversion whose path is empty is
unattributed. A lost journey is a person's touches inside the range after their last conversion in it
(all of them for a person without one), the same direct rule applied; a person with no such touch has none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from nexus.analyses import persons
from nexus.analyses.scope import AnalysisScope
from nexus.analyses.sql import PROJECT, UTC_TIME, Params
from nexus.meta import channels, goals
from nexus.meta.channels import ChannelSettings
from nexus.meta.goals import GoalDefinition

TouchLabel = Literal["channel", "source", "campaign"]
NO_SOURCE = "(direct)"
NO_CAMPAIGN = "(none)"
DAY_MS = 86_400_000


def naming(settings: ChannelSettings, by: TouchLabel) -> Callable[[int | str], str]:
    """What a label of a path stands for: by channel, the name of the channel numbered so; else itself."""
    if by != "channel":
        return str
    names = channels.channels(settings)
    return lambda number: names[int(number) - 1]


def blank(by: TouchLabel) -> str:
    """SQL of a label of the type the paths' labels have, standing for none."""
    return "toUInt8(0)" if by == "channel" else "''"


def journeys(scope: AnalysisScope, params: Params, settings: ChannelSettings, goal: GoalDefinition, *,
             by: TouchLabel, lookback_days: int, gap_minutes: int) -> str:
    """Rows of (converted UInt8, at Int64 ms, value Float64, path Array(Tuple(t Int64 ms, channel UInt8,
    label))): one per conversion (`converted` 1, `at` its time) and per lost journey (`converted` 0, `at` 0,
    `value` 0), the path after the direct rule. Channel k is `channels(settings)[k - 1]`; a label is a String,
    or by channel the channel's number (`naming` names it)."""
    names = channels.channels(settings)
    lookback = params.add(lookback_days * DAY_MS, "Int64")
    start = params.add(scope.span.start, UTC_TIME)
    start_ms = f"toUnixTimestamp64Milli({start})"
    joins = persons.joins(True, goal)
    converts = goals.condition(goal, params)
    channel = channels.channel_index(settings, params)
    label = None  # by channel: the channel's number, named by `naming`
    if by == "source":
        label = (f"multiIf(e.utm_source != '', e.utm_source, e.referrer_domain != '', e.referrer_domain,"
                 f" {params.add(NO_SOURCE, 'String')})")
    elif by == "campaign":
        label = f"if(e.utm_campaign != '', e.utm_campaign, {params.add(NO_CAMPAIGN, 'String')})"
    # An event is one number, time × 256 + channel (at most MAX_RULES + 1 channels), a tuple with its label by
    # source or campaign: sorting each person's events is most of the statement's cost, and numbers sort faster
    # than tuples (the statement took ~15% less CPU at 1M events). The channel in the low byte also orders events
    # of one millisecond by the rules. Conversions are few: they are gathered apart, unsorted.
    key = f"toUInt64(toUnixTimestamp64Milli(e.ts)) * 256 + {channel}"
    read = (f"SELECT {persons.PERSON_KEY} AS person, {f'({key}, {label})' if label else key} AS ev,"
            f" toInt64(toUnixTimestamp64Milli(e.ts)) AS t, ({converts}) AND e.ts >= {start} AS converts,"
            f" if(converts, toFloat64({goals.value(goal)}), 0) AS value\n"
            f"FROM events AS e\n{joins.sql}\n"
            f"WHERE e.project_id = {PROJECT} AND e.ts >= {start} - toIntervalMillisecond({lookback})"
            f" AND e.ts < {params.add(scope.span.end, UTC_TIME)}")
    gap = params.add(gap_minutes * 60_000, "Int64")
    number = "x.1" if label else "x"
    # By channel the label is the channel's number (UInt8: paths group faster by numbers than by names).
    touch_label = "x.2" if label else f"toUInt8({number} % 256)"
    # Per person: the sessions' first events are the touches (t, channel, label); each conversion gets the touches
    # of its lookback. Arrays reach the lambdas as arguments: an array a lambda captures is copied per element.
    per_person = (
        f"SELECT arraySort(groupArray(ev)) AS evs, arrayMap(x -> toInt64(intDiv({number}, 256)), evs) AS times,\n"
        f"  arrayMap(x -> (toInt64(intDiv({number}, 256)), toUInt8({number} % 256), {touch_label}),"
        f" arrayFilter((x, t, previous) -> t - previous > {gap}, evs, times,"
        f" arrayPushFront(arrayPopBack(times), times[1] - {gap} - 1))) AS touches,\n"
        f"  groupArrayIf((t, value), converts) AS conversions,\n"
        f"  arrayMax(arrayPushFront(conversions.1, toInt64(0))) AS last_conversion,\n"
        f"  arrayPushBack(arrayMap(c -> (toUInt8(1), c.1, c.2,"
        f" arrayFilter(x -> x.1 >= c.1 - {lookback} AND x.1 <= c.1, touches)), conversions),"
        f" (toUInt8(0), toInt64(0), toFloat64(0),"
        f" arrayFilter(x -> x.1 >= {start_ms} AND x.1 > last_conversion, touches))) AS found\n"
        f"FROM ({read})\nGROUP BY person"
    )
    direct = params.add(names.index(settings.direct_channel) + 1, "UInt8")
    non_direct = params.add(int(settings.last_non_direct), "UInt8")
    return (
        f"SELECT j.1 AS converted, j.2 AS at, j.3 AS value,\n"
        f"  if({non_direct} AND arrayExists(x -> x.2 != {direct}, j.4), arrayFilter(x -> x.2 != {direct}, j.4), j.4)"
        f" AS path\n"
        f"FROM ({per_person})\nARRAY JOIN found AS j\n"
        f"WHERE converted OR notEmpty(j.4)"
    )


EXACT_SCALE = 18  # Decimal128(18): up to 10²⁰ with 18 decimals


def exact_sum(number: str) -> str:
    """The engine's sum of a Float64 `number`, made exact: Float64 sums differ in their last bits from run to
    run (threads add in varying orders), Decimal sums do not, so the same data gives the same answer. Each
    term is kept to 18 decimals (cut, not rounded: n terms lose under n·10⁻¹⁸)."""
    return f"sum(toDecimal128({number}, {EXACT_SCALE}))"
