"""Calendar periods (day, week, month) in a time zone, for the analyses that count persons per period.

A period is named by the local date it starts on (weeks start on Monday), the same in SQL
(`time_sql.period`: `toDate/toMonday/toStartOfMonth(ts, tz)`) and in Python, so SQL results map onto
Python's list of periods.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from nexus.analyses.dates import MAX_BUCKETS, Span, add_months, first_day, local_midnight
from nexus.errors import InvalidRequest
from nexus.timezones import zone

Period = Literal["day", "week", "month"]


def shift(start: date, period: Period, count: int) -> date:
    if period == "month":
        return add_months(start, count)
    return start + timedelta(days=count * (7 if period == "week" else 1))


def covering(span: Span, period: Period, tz: str) -> list[date]:
    """Every period overlapping `span`, in order."""
    zi = zone(tz)
    first, last = (first_day(moment.astimezone(zi).date(), period)
                   for moment in (span.start, span.end - timedelta(microseconds=1)))
    found = [first]
    while found[-1] < last:
        found.append(shift(found[-1], period, 1))
        if len(found) > MAX_BUCKETS:
            raise InvalidRequest(f"more than {MAX_BUCKETS} {period}s in the range: use a shorter range or a longer period",
                                 field="period")
    return found


def starts_at(day: date, tz: str) -> datetime:
    """The instant a period named by `day` starts."""
    return local_midnight(day, zone(tz))
