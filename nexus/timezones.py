"""Which time zone names Nexus accepts: the IANA names of the tz database, which ClickHouse knows too.

Below both `meta` (a project's zone, checked when it is created) and `analyses` (a request's zone), so
neither reaches into the other for it.
"""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, available_timezones

from nexus.errors import InvalidRequest


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`. Only the database's zone names count: ZoneInfo also opens other files of
    the zone folder, such as 'localtime' (the host's zone) and 'right/UTC', which ClickHouse refuses."""
    if name not in _zone_names():
        raise InvalidRequest(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin", field="timezone")
    return ZoneInfo(name)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - {"localtime", "posixrules"}  # the host's zone, a POSIX default
