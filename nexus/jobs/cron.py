"""When a schedule's cron expression is due: 5-field cron read by croniter, in the schedule's IANA time zone,
with every due time given as a UTC instant.

Daylight saving time, as Vixie cron treats it: a local time the clocks skip (02:30 on the night clocks go
from 02:00 to 03:00) is due at the end of the gap (03:00), once; a local time the clocks show twice (02:30
on the night they go back) is due once, at its first occurrence, unless the expression runs every hour
(hour field `*`), where each of the two hours is an hour of its own and runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from croniter import CroniterBadDateError, croniter

from nexus.errors import InvalidRequest
from nexus.timezones import zone

_FIELDS = 5  # minute hour day-of-month month day-of-week: croniter would also take seconds and years
_INSTANT = timedelta(microseconds=1)


def check(expression: str, tz: str) -> None:
    """Refuse (field `cron`) what is not a 5-field expression croniter reads, or one that is never due."""
    if len(expression.split()) != _FIELDS or not croniter.is_valid(expression):
        raise InvalidRequest(f"cron: {expression!r} is not a cron expression of 5 fields (minute hour "
                             "day-of-month month day-of-week), such as '0 9 * * mon-fri'", field="cron")
    try:
        next_due(expression, tz, datetime.now(timezone.utc))
    except CroniterBadDateError:
        raise InvalidRequest(f"cron: {expression!r} is never due (no such date)", field="cron") from None


def next_due(expression: str, tz: str, after: datetime) -> datetime:
    """The first due time strictly after `after`."""
    return next(due_between(expression, tz, after, None))


def due_between(expression: str, tz: str, after: datetime, until: datetime | None) -> Iterator[datetime]:
    """The due times in `(after, until]` (no end with None), oldest first."""
    times = croniter(expression, after.astimezone(zone(tz)))
    hourly = _hourly(times)
    while True:
        due = times.get_next(datetime)
        if until is not None and due > until:
            return
        if hourly or not _second_occurrence(due):
            yield due.astimezone(timezone.utc)


def latest_due(expression: str, tz: str, after: datetime, until: datetime) -> datetime | None:
    """The last due time in `(after, until]`, None when there is none."""
    times = croniter(expression, (until + _INSTANT).astimezone(zone(tz)))  # get_prev is strictly before
    hourly = _hourly(times)
    while (due := times.get_prev(datetime)) > after:
        if hourly or not _second_occurrence(due):
            return due.astimezone(timezone.utc)
    return None


def _hourly(times: croniter) -> bool:
    return times.expanded[1] == ["*"]


def _second_occurrence(local: datetime) -> bool:
    """Whether `local` is the later of two instants that share its wall-clock time (clocks going back)."""
    return local.fold == 1 and local.utcoffset() != local.replace(fold=0).utcoffset()
