"""What stickiness and lifecycle both ask — which persons did an event in which periods of a range — and
the SQL they share to answer it per person and breakdown value."""

from __future__ import annotations

import msgspec

from nexus.analyses import persons
from nexus.analyses.breakdown import Breakdown
from nexus.analyses.dates import DateRange
from nexus.analyses.filters import FilterGroup
from nexus.analyses.periods import Period
from nexus.analyses.sql import Params


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
        cohorts = self.breakdown if self.breakdown is not None and self.breakdown.source == "cohort" else None
        return persons.joins(False, self.where, cohorts).sql

    def bd(self, params: Params) -> str:
        """The breakdown value of an event (`e`); '' without a breakdown, or for a person's trait."""
        if self.breakdown is None or self.breakdown.needs_person:
            return "''"
        return self.breakdown.expression(params=params)

    def per_person(self, per_id: str, aggregates: str) -> str:
        """`per_id` (keyed by `id_key` and `bd`) regrouped by person and breakdown value `bd`: an event
        value as grouped per id, a person's trait joined once per person."""
        if self.breakdown is not None and self.breakdown.needs_person:
            return persons.with_trait(persons.by_person(per_id, aggregates), self.breakdown.expression())
        return persons.by_person(per_id, aggregates, also="bd")
