"""Calendar periods (day, week, month) in a time zone, for the analyses that count persons per period.

A period is named by the local date it starts on (weeks start on Monday), the same in SQL
(`toDate/toMonday/toStartOfMonth(ts, tz)`) and in Python, so SQL results map onto Python's list of periods.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

import msgspec

from nexus.analyses import persons
from nexus.analyses.breakdown import Breakdown
from nexus.analyses.dates import MAX_BUCKETS, DateRange, Span, add_months, local_midnight
from nexus.analyses.filters import FilterGroup
from nexus.errors import InvalidRequest
from nexus.timezones import zone

Period = Literal["day", "week", "month"]


class EventPeriodsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which persons did an event in which periods of a range: what stickiness and lifecycle ask."""

    event: str | None = None
    where: FilterGroup | None = None
    period: Period = "day"
    date_range: DateRange = DateRange()
    timezone: str | None = None
    breakdown: Breakdown | None = None  # a person counts under each value, with that value's events only

    def joins(self) -> str:
        """The joins its events need: persons' traits when a filter reads one (a breakdown by a trait is
        joined per person, in `per_person`)."""
        return persons.joins(False, self.where).sql

    def bd(self) -> str:
        """The breakdown value of an event (`e`); '' without a breakdown, or for a person's trait."""
        return self.breakdown.expression() if self.breakdown and not self.breakdown.needs_person else "''"

    def per_person(self, per_id: str, aggregates: str) -> str:
        """`per_id` (keyed by `id_key` and `bd`) regrouped by person and breakdown value `bd`: an event
        value as grouped per id, a person's trait joined once per person."""
        if self.breakdown is not None and self.breakdown.needs_person:
            return persons.with_trait(persons.by_person(per_id, aggregates), self.breakdown.expression())
        return persons.by_person(per_id, aggregates, also="bd")


def sql(period: Period, column: str, tz_placeholder: str) -> str:
    """SQL for the Date naming the local period that holds `column`."""
    function = {"day": "toDate", "week": "toMonday", "month": "toStartOfMonth"}[period]
    return f"{function}({column}, {tz_placeholder})"


def difference(period: Period, earlier: str, later: str) -> str:
    """SQL for how many whole periods `later` (a period Date) comes after `earlier`."""
    if period == "month":
        return f"dateDiff('month', {earlier}, {later})"
    days = f"dateDiff('day', {earlier}, {later})"
    return days if period == "day" else f"intDiv({days}, 7)"


def floor(moment: datetime, period: Period, tz: str) -> date:
    day = moment.astimezone(zone(tz)).date()
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if period == "month" else day


def shift(start: date, period: Period, count: int) -> date:
    if period == "month":
        return add_months(start, count)
    return start + timedelta(days=count * (7 if period == "week" else 1))


def covering(span: Span, period: Period, tz: str) -> list[date]:
    """Every period overlapping `span`, in order."""
    first, last = floor(span.start, period, tz), floor(span.end - timedelta(microseconds=1), period, tz)
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


def step_sql(period: Period, column: str, count: int) -> str:
    """SQL for the period `count` periods after the one named by `column` (a period Date)."""
    function = {"day": "addDays", "week": "addWeeks", "month": "addMonths"}[period]
    return f"{function}({column}, {count})"
