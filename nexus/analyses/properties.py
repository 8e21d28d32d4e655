"""What a filter or breakdown may name: a typed column of `events`, an event property or a person property.

Names are checked against a strict pattern and then quoted, so no request text is ever SQL syntax; values
never pass through here (they are bound parameters, see `filters`).
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from nexus.analyses.persons import PERSON_TRAITS
from nexus.errors import InvalidRequest
from nexus.event_columns import FILTERABLE

Source = Literal["event", "person", "column"]

PROPERTY_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$.-]{0,99}$")



class Property(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A named value of an event: `source` says where it lives."""

    key: str
    source: Source = "event"

    def __post_init__(self) -> None:
        if self.source == "column":
            if self.key not in FILTERABLE:
                raise InvalidRequest(f"unknown column {self.key!r}: use one of {', '.join(sorted(FILTERABLE))}")
        elif not PROPERTY_NAME.fullmatch(self.key):
            raise InvalidRequest(f"property name {self.key!r} must match {PROPERTY_NAME.pattern}")

    def expression(self, table: str = "e") -> str:
        """The raw value: a String column, or a JSON subcolumn (Dynamic, NULL when absent)."""
        if self.source == "column":
            return f"{table}.{self.key}" if table else self.key
        # The pattern admits no backtick, so quoting the whole dotted name is safe; ClickHouse reads
        # `a.b` as the nested path a → b, the way the JSON type stores {"a": {"b": ...}} and {"a.b": ...}.
        base = PERSON_TRAITS.sql if self.source == "person" else f"{table}.properties"
        return f"{base}.`{self.key}`"

    def text(self, table: str = "e") -> str:
        """The value as a String: '' when absent (toString of a NULL JSON path is '')."""
        return self.expression(table) if self.source == "column" else f"toString({self.expression(table)})"

    def number(self, table: str = "e") -> str:
        """The value as Nullable(Float64): NULL when absent or not numeric."""
        return f"toFloat64OrNull({self.text(table)})"

    def amount(self, table: str = "e") -> str:
        """The value as Nullable(Decimal128(9)), for sums: decimal addition is exact, so a sum does not depend
        on the order the values are added in (the rollups add an hour's events first, then the hours).
        NULL when absent, not numeric or beyond ±10^29; digits past the ninth decimal place are dropped."""
        return f"toDecimal128OrNull({self.text(table)}, 9)"

    def is_set(self, table: str = "e") -> str:
        if self.source == "column":
            return f"{self.expression(table)} != ''"
        return f"{self.expression(table)} IS NOT NULL"

    @property
    def needs_person(self) -> bool:
        return self.source == "person"
