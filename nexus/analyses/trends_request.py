"""What a trend asks: its series (an event, a metric from the catalogue, filters of its own) and what they
share (range, interval, time zone, filters, breakdown, comparison, source).

Apart from `trends`, which answers it, so that `trends_rollup` (which `trends` calls) can read a request
without importing `trends` back.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from nexus.analyses.breakdown import Breakdown
from nexus.analyses.dates import DateRange, Interval
from nexus.analyses.filters import FilterGroup
from nexus.analyses.metric_catalogue import metric
from nexus.analyses.properties import Property
from nexus.errors import InvalidRequest

MAX_SERIES = 10


class Series(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    event: str | None = None
    metric: str = "events"
    property: str | None = None  # the numeric event property of sum/avg/min/max/median/p90/p95/p99
    where: FilterGroup | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        chosen = metric(self.metric)
        if chosen.needs_property != (self.property is not None):
            raise InvalidRequest(f"metric {self.metric!r} {'needs' if chosen.needs_property else 'takes no'} property",
                                 field="property")
        if self.property is not None:
            Property(self.property)


class TrendsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    series: list[Series]
    date_range: DateRange = DateRange()
    interval: Interval = "day"
    timezone: str | None = None
    where: FilterGroup | None = None
    breakdown: Breakdown | None = None
    compare: bool = False
    source: Literal["auto", "events", "rollup"] = "auto"

    def __post_init__(self) -> None:
        if not 1 <= len(self.series) <= MAX_SERIES:
            raise InvalidRequest(f"a trend has 1 to {MAX_SERIES} series", field="series")
