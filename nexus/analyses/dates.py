"""Date ranges and time buckets in a request's time zone, DST-correct on both sides of the query.

A range is half-open `[start, end)` in UTC instants, resolved from local calendar terms:
- relative `-N<unit>` (unit h, d, w, m, y): the N units ending with the current one, which is included —
  `-7d` is today and the 6 days before it, from local midnight to the next local midnight; `-24h` is the
  current hour and the 23 before it;
- keywords `today`, `yesterday`, `this_week`, `last_week` (weeks start on Monday), `this_month`,
  `last_month`, `this_year`;
- absolute: an ISO date `2026-10-01` (a local day: as `date_to` it is included, through its end) or an
  ISO date-time `2026-10-01T10:00[:00][+02:00]` (local unless it carries an offset; as `date_to` exclusive).
A local time the clocks skip (Berlin's 02:00–03:00 on 2026-03-29) is shifted forward to the end of the
gap, the first instant whose clock reads later (03:00 CEST), so a range holds exactly the instants whose
local time lies in it; a local time the clocks show twice (fall back) is its first occurrence.
`date_to` defaults to the natural end of `date_from` (the end of the current unit for relative ranges,
of the named period for keywords, of the day for a date, now for a date-time).

Buckets start where ClickHouse's `toStartOfHour/Day(ts, tz)`, `toMonday(ts, tz)` and
`toStartOfMonth(ts, tz)` put them; both the SQL (`time_sql.bucket`) and `bucket_starts` key a bucket by
the Unix time of its start, so a 23- or 25-hour DST day is one bucket.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

from nexus.errors import InvalidRequest
from nexus.timezones import zone

Interval = Literal["minute", "hour", "day", "week", "month"]
MAX_BUCKETS = 20_000
# What events can hold (stored times are DateTime64, 1900..2299; ingest accepts 2000 on), with room.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)

_RELATIVE = re.compile(r"^-(\d{1,4})([hdwmy])$")
_KEYWORDS = ("today", "yesterday", "this_week", "last_week", "this_month", "last_month", "this_year")
_UNIT = {"h": "hour", "d": "day", "w": "week", "m": "month", "y": "year"}


class DateRange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    date_from: str = "-7d"
    date_to: str | None = None


class Span(msgspec.Struct, frozen=True):
    """A resolved range: UTC instants, `end` exclusive."""

    start: datetime
    end: datetime


def resolve(date_range: DateRange, tz: str, now: datetime) -> Span:
    """The span of `date_range` (a request's `date_range`, which errors name as their field) in zone `tz`."""
    zi = zone(tz)
    local_now = now.astimezone(zi)
    start, natural_end = _term(date_range, "date_from", zi, local_now)
    end = natural_end if date_range.date_to is None else _term(date_range, "date_to", zi, local_now)[1]
    if start < EARLIEST or end > LATEST:
        raise InvalidRequest(f"dates must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}", field="date_range")
    # Compared as instants: aware datetimes of one zone compare by their wall clocks.
    if end.astimezone(timezone.utc) <= start.astimezone(timezone.utc):
        raise InvalidRequest(f"date range {date_range.date_from!r} .. {date_range.date_to!r} is empty: in {tz} it "
                             f"runs from {start.isoformat()} to {end.isoformat()} (local times the clocks skip "
                             "are read as the end of the skipped span)", field="date_range")
    return Span(start.astimezone(timezone.utc), end.astimezone(timezone.utc))


def _term(date_range: DateRange, name: Literal["date_from", "date_to"], zi: ZoneInfo,
          now: datetime) -> tuple[datetime, datetime]:
    """`_point` of one end of the range, its errors naming it (`date_range.date_to`)."""
    try:
        return _point(getattr(date_range, name), zi, now, as_end=name == "date_to")
    except InvalidRequest as e:
        raise InvalidRequest(str(e), field=f"date_range.{name}") from None
    except (ValueError, OverflowError):  # a relative date reaching before year 1 or past 9999
        raise InvalidRequest(f"date range {date_range.date_from!r} .. {date_range.date_to!r} is out of range",
                             field=f"date_range.{name}") from None


def previous(span: Span, tz: str) -> Span:
    """The period just before `span`, as long: in local calendar days when `span` spans whole local days
    (so a comparison across a DST change still compares day with day), else in exact duration."""
    zi = zone(tz)
    start, end = span.start.astimezone(zi), span.end.astimezone(zi)
    if _is_midnight(start) and _is_midnight(end):
        days = (end.date() - start.date()).days
        return Span(local_midnight(start.date() - timedelta(days=days), zi).astimezone(timezone.utc), span.start)
    return Span(span.start - (span.end - span.start), span.start)


def bucket_starts(span: Span, interval: Interval, tz: str) -> list[datetime]:
    """Every bucket overlapping `span`, as aware local datetimes of their starts, in order."""
    zi = zone(tz)
    starts: list[datetime] = []
    current = floor(span.start, interval, zi)
    while current < span.end:
        starts.append(current)
        if len(starts) > MAX_BUCKETS:
            raise InvalidRequest(f"more than {MAX_BUCKETS} {interval} buckets: use a longer interval", field="interval")
        current = _next(current, interval, zi)
    return starts


def floor(moment: datetime, interval: Interval, zi: ZoneInfo) -> datetime:
    """The start of the local bucket holding `moment`, as an aware local datetime."""
    local = moment.astimezone(zi)
    if interval == "minute":
        return local.replace(second=0, microsecond=0)
    if interval == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return local_midnight(first_day(local.date(), interval), zi)


def first_day(day: date, unit: Literal["day", "week", "month"]) -> date:
    """The first day of the day, week (from Monday) or month holding `day`: how periods are named."""
    if unit == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if unit == "month" else day


def key(moment: datetime) -> int:
    """How SQL results name a bucket: the Unix time of its start."""
    return int(moment.timestamp())


def _next(current: datetime, interval: Interval, zi: ZoneInfo) -> datetime:
    if interval in ("minute", "hour"):
        step = timedelta(minutes=1) if interval == "minute" else timedelta(hours=1)
        # Step in UTC (a repeated local hour at a DST change is a bucket of its own), then re-floor.
        return floor((current.astimezone(timezone.utc) + step), interval, zi)
    day = current.date()
    if interval == "day":
        return local_midnight(day + timedelta(days=1), zi)
    if interval == "week":
        return local_midnight(day + timedelta(days=7), zi)
    return local_midnight(add_months(day, 1), zi)


def _point(text: str, zi: ZoneInfo, now: datetime, as_end: bool = False) -> tuple[datetime, datetime]:
    """(start, natural end) of a range term, as aware local datetimes; `as_end` reads it as a `date_to`."""
    text = text.strip()
    if match := _RELATIVE.match(text):
        count, unit = int(match[1]), _UNIT[match[2]]
        if count < 1:
            raise InvalidRequest(f"relative date {text!r} must count at least one {unit}")
        current = _unit_start(now, unit, zi)
        return _shift(current, unit, -(count - 1), zi), _shift(current, unit, 1, zi)
    if text in _KEYWORDS:
        return _keyword(text, now, zi)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return local_midnight(day, zi), local_midnight(day + timedelta(days=1), zi)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"cannot read date {text!r}: use -7d, -24h, -3m, today, this_month, 2026-10-01 or 2026-10-01T10:00"
        ) from None
    moment = local_time(moment, zi) if moment.tzinfo is None else moment.astimezone(zi)
    return moment, moment if as_end else now


def _keyword(word: str, now: datetime, zi: ZoneInfo) -> tuple[datetime, datetime]:
    unit = {"today": "day", "yesterday": "day", "this_week": "week", "last_week": "week",
            "this_month": "month", "last_month": "month", "this_year": "year"}[word]
    current = _unit_start(now, unit, zi)
    if word in ("yesterday", "last_week", "last_month"):
        return _shift(current, unit, -1, zi), current
    return current, _shift(current, unit, 1, zi)


def _unit_start(now: datetime, unit: str, zi: ZoneInfo) -> datetime:
    if unit == "year":
        return local_midnight(now.date().replace(month=1, day=1), zi)
    return floor(now, unit, zi)  # type: ignore[arg-type]


def _shift(start: datetime, unit: str, count: int, zi: ZoneInfo) -> datetime:
    if unit == "hour":
        return (start.astimezone(timezone.utc) + timedelta(hours=count)).astimezone(zi)
    day = start.date()
    if unit in ("day", "week"):
        day += timedelta(days=count * (7 if unit == "week" else 1))
    else:
        day = add_months(day, count * (12 if unit == "year" else 1))
    return local_midnight(day, zi)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def local_midnight(day: date, zi: ZoneInfo) -> datetime:
    return local_time(datetime.combine(day, time()), zi)


def local_time(naive: datetime, zi: ZoneInfo) -> datetime:
    """The instant a wall clock in `zi` shows `naive`, as an aware local datetime: the first one when it shows
    it twice, and the end of the gap when it skips it (a midnight skipped in Havana is 01:00)."""
    earlier = naive.replace(tzinfo=zi, fold=0).astimezone(timezone.utc)
    # Through UTC and back, so the offset is the one in force at that instant (fold-safe).
    if earlier.astimezone(zi).replace(tzinfo=None) == naive:
        return earlier.astimezone(zi)
    # In a gap, fold=0 reads the time with the offset before the change and fold=1 with the one after: the
    # change lies between the two instants. Offsets change on whole seconds, so a bisection finds it.
    before, after = sorted((earlier, naive.replace(tzinfo=zi, fold=1).astimezone(timezone.utc)))
    new_offset = after.astimezone(zi).utcoffset()
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) // 2
        if middle.astimezone(zi).utcoffset() == new_offset:
            after = middle
        else:
            before = middle
    return after.replace(microsecond=0).astimezone(zi)


def _is_midnight(moment: datetime) -> bool:
    return moment.time() == time()
