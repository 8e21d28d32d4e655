"""Date ranges and buckets resolve in the request's time zone, DST included."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from nexus import timezones
from nexus.analyses import dates
from nexus.analyses.dates import DateRange, Span
from nexus.errors import InvalidRequest

NOW = datetime(2026, 10, 28, 15, 20, tzinfo=timezone.utc)  # a Wednesday
UTC = timezone.utc


def span(date_from, date_to=None, tz="UTC"):
    resolved = dates.resolve(DateRange(date_from, date_to), tz, NOW)
    return resolved.start.isoformat(), resolved.end.isoformat()


@pytest.mark.parametrize("date_from,date_to,tz,expected", [
    ("-7d", None, "UTC", ("2026-10-22T00:00:00+00:00", "2026-10-29T00:00:00+00:00")),
    ("-1d", None, "UTC", ("2026-10-28T00:00:00+00:00", "2026-10-29T00:00:00+00:00")),
    ("-24h", None, "UTC", ("2026-10-27T16:00:00+00:00", "2026-10-28T16:00:00+00:00")),
    ("-2w", None, "UTC", ("2026-10-19T00:00:00+00:00", "2026-11-02T00:00:00+00:00")),
    ("-3m", None, "UTC", ("2026-08-01T00:00:00+00:00", "2026-11-01T00:00:00+00:00")),
    ("this_month", None, "UTC", ("2026-10-01T00:00:00+00:00", "2026-11-01T00:00:00+00:00")),
    ("last_month", None, "UTC", ("2026-09-01T00:00:00+00:00", "2026-10-01T00:00:00+00:00")),
    ("this_week", None, "UTC", ("2026-10-26T00:00:00+00:00", "2026-11-02T00:00:00+00:00")),
    ("yesterday", None, "UTC", ("2026-10-27T00:00:00+00:00", "2026-10-28T00:00:00+00:00")),
    ("this_year", None, "UTC", ("2026-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00")),
    # Berlin left summer time on Oct 25: the week before began at +02:00, today at +01:00.
    ("-7d", None, "Europe/Berlin", ("2026-10-21T22:00:00+00:00", "2026-10-28T23:00:00+00:00")),
    ("2026-10-25", None, "Europe/Berlin", ("2026-10-24T22:00:00+00:00", "2026-10-25T23:00:00+00:00")),
    ("2026-10-01", "2026-10-02", "America/New_York", ("2026-10-01T04:00:00+00:00", "2026-10-03T04:00:00+00:00")),
    ("2026-10-01T10:30", "2026-10-01T12:00+00:00", "Europe/Berlin", ("2026-10-01T08:30:00+00:00",
                                                                      "2026-10-01T12:00:00+00:00")),
    ("2026-10-28T10:00", None, "UTC", ("2026-10-28T10:00:00+00:00", "2026-10-28T15:20:00+00:00")),
])
def test_ranges(date_from, date_to, tz, expected):
    assert span(date_from, date_to, tz) == expected


@pytest.mark.parametrize("bad", [DateRange("-0d"), DateRange("yesteryear"), DateRange("2026-10-02", "2026-10-01"),
                                 DateRange("-7x")])
def test_unreadable_or_empty_ranges_are_refused(bad):
    with pytest.raises(InvalidRequest):
        dates.resolve(bad, "UTC", NOW)
    with pytest.raises(InvalidRequest):
        timezones.zone("Mars/Olympus_Mons")


def test_previous_period_counts_local_days_across_dst():
    berlin = dates.resolve(DateRange("2026-10-25", "2026-10-31"), "Europe/Berlin", NOW)
    before = dates.previous(berlin, "Europe/Berlin")
    assert before.start == datetime(2026, 10, 17, 22, tzinfo=UTC) and before.end == berlin.start
    odd = Span(datetime(2026, 10, 1, 10, 30, tzinfo=UTC), datetime(2026, 10, 1, 12, tzinfo=UTC))
    assert dates.previous(odd, "UTC") == Span(datetime(2026, 10, 1, 9, tzinfo=UTC), odd.start)


def test_buckets_follow_local_calendars():
    berlin = ZoneInfo("Europe/Berlin")
    october = dates.resolve(DateRange("2026-10-24", "2026-10-26"), "Europe/Berlin", NOW)
    days = dates.bucket_starts(october, "day", "Europe/Berlin")
    assert [d.isoformat() for d in days] == ["2026-10-24T00:00:00+02:00", "2026-10-25T00:00:00+02:00",
                                             "2026-10-26T00:00:00+01:00"]
    assert len(dates.bucket_starts(october, "hour", "Europe/Berlin")) == 24 + 25 + 24
    weeks = dates.bucket_starts(october, "week", "Europe/Berlin")
    assert weeks == [datetime(2026, 10, 19, tzinfo=berlin), datetime(2026, 10, 26, tzinfo=berlin)]
    two_hours = Span(datetime(2026, 10, 1, 0, 0, tzinfo=UTC), datetime(2026, 10, 1, 2, 0, tzinfo=UTC))
    kolkata = dates.bucket_starts(two_hours, "hour", "Asia/Kolkata")
    assert [b.astimezone(UTC).strftime("%H:%M") for b in kolkata] == ["23:30", "00:30", "01:30"]
    with pytest.raises(InvalidRequest, match="buckets"):
        dates.bucket_starts(Span(datetime(2020, 1, 1, tzinfo=UTC), NOW), "minute", "UTC")


BERLIN_SPRING = datetime(2026, 4, 1, tzinfo=UTC)  # Berlin's clocks jumped from 02:00 to 03:00 on 2026-03-29


@pytest.mark.parametrize("date_from,date_to,tz,expected", [
    # A time the clocks skip is the end of the gap: 02:30–03:30 holds the instants whose clock reads
    # 03:00–03:30 (it had started and ended at the same instant, 01:30 UTC).
    ("2026-03-29T02:30", "2026-03-29T03:30", "Europe/Berlin", ("2026-03-29T01:00:00+00:00", "2026-03-29T01:30:00+00:00")),
    ("2026-03-29T01:30", "2026-03-29T02:30", "Europe/Berlin", ("2026-03-29T00:30:00+00:00", "2026-03-29T01:00:00+00:00")),
    ("2026-03-29", None, "Europe/Berlin", ("2026-03-28T23:00:00+00:00", "2026-03-29T22:00:00+00:00")),
    # Havana skipped midnight on 2026-03-08: the day began at 01:00.
    ("2026-03-08", None, "America/Havana", ("2026-03-08T05:00:00+00:00", "2026-03-09T04:00:00+00:00")),
    # Lord Howe Island skips half an hour, 02:00–02:30.
    ("2026-10-04T02:10", "2026-10-04T02:40", "Australia/Lord_Howe", ("2026-10-03T15:30:00+00:00",
                                                                     "2026-10-03T15:40:00+00:00")),
    # A time the clocks show twice is its first occurrence (02:30 CEST), through the second hour.
    ("2026-10-25T02:30", "2026-10-25T03:00", "Europe/Berlin", ("2026-10-25T00:30:00+00:00", "2026-10-25T02:00:00+00:00")),
])
def test_local_times_the_clocks_skip_or_repeat(date_from, date_to, tz, expected):
    resolved = dates.resolve(DateRange(date_from, date_to), tz, BERLIN_SPRING)
    assert (resolved.start.isoformat(), resolved.end.isoformat()) == expected


def test_a_range_inside_the_gap_is_refused_with_the_reason():
    with pytest.raises(InvalidRequest, match=r"is empty: in Europe/Berlin it runs from 2026-03-29T03:00:00\+02:00 "
                                             r"to 2026-03-29T03:00:00\+02:00 \(local times the clocks skip"):
        dates.resolve(DateRange("2026-03-29T02:15", "2026-03-29T02:45"), "Europe/Berlin", BERLIN_SPRING)
