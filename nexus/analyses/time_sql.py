"""The SQL side of local time: the bucket or calendar period an event's time falls in, in ClickHouse.

These are the expressions whose Python twins are `dates` (buckets: `bucket_starts`, `key`) and `periods`
(periods: `covering`, `shift`): both sides put a moment in the same local bucket or period, DST included,
so SQL results map onto Python's lists. `tz` is always a bound placeholder (`{p3:String}`), never a name.
"""

from __future__ import annotations

from nexus.analyses.dates import Interval
from nexus.analyses.periods import Period

_FIRST_DAY = {"day": "toDate", "week": "toMonday", "month": "toStartOfMonth"}
_ADD = {"day": "addDays", "week": "addWeeks", "month": "addMonths"}


def period(unit: Period, column: str, tz: str) -> str:
    """The Date naming the local day, week (from Monday) or month that holds `column`: its first day."""
    return f"{_FIRST_DAY[unit]}({column}, {tz})"


def bucket(interval: Interval, column: str, tz: str) -> str:
    """The Unix time (UInt32) of the start of the local bucket that holds `column`, as `dates.key` names it."""
    if interval == "minute":
        start = f"toStartOfMinute({column})"
    elif interval == "hour":
        start = f"toStartOfHour({column}, {tz})"
    elif interval == "day":
        start = f"toStartOfDay({column}, {tz})"
    else:  # toMonday/toStartOfMonth give a Date: back to the DateTime of that local midnight
        start = f"toDateTime({period(interval, column, tz)}, {tz})"
    return f"toUnixTimestamp({start})"


def periods_between(unit: Period, earlier: str, later: str) -> str:
    """How many whole periods `later` (a period's Date) comes after `earlier`."""
    if unit == "month":
        return f"dateDiff('month', {earlier}, {later})"
    days = f"dateDiff('day', {earlier}, {later})"
    return days if unit == "day" else f"intDiv({days}, 7)"


def period_after(unit: Period, column: str, count: int) -> str:
    """The period `count` periods after the one named by `column` (a period's Date)."""
    return f"{_ADD[unit]}({column}, {count})"
