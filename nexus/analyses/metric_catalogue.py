"""The metric catalogue: every number a trend can chart, one ClickHouse aggregate each, picked by name.

Each metric is computed as a `-State` over the rows of a bucket and finished with `-Merge`, so the
"other" breakdown value and whole-range totals merge states instead of re-reading events (and a
distinct count over several buckets stays a distinct count). Metrics a rollup table can serve name the
state expression over that table's columns; results from either source are the same numbers.
"""

from __future__ import annotations

import msgspec

from nexus.errors import InvalidRequest


class Metric(msgspec.Struct, frozen=True):
    name: str
    description: str
    function: str  # aggregate function name; `parameters` go between it and the arguments
    argument: str  # a column of the per-event row the analysis builds: person, distinct_id, session, value, amount
    parameters: str = ""
    needs_property: bool = False
    # State expression over events_hourly / events_daily columns, and the function whose -Merge finishes it.
    rollup: str | None = None
    rollup_function: str = ""

    def aggregate(self) -> str:
        return f"{self.function}{self.parameters}({self.argument})"

    def state(self) -> str:
        return f"{self.function}State{self.parameters}({self.argument})"

    def merge(self, column: str, rollup: bool = False) -> str:
        function = (self.rollup_function or self.function) if rollup else self.function
        return f"{function}Merge{self.parameters}({column})"


def _quantile(name: str, level: str) -> Metric:
    return Metric(name, f"{name} of a numeric property (quantileExactInclusive({level}): exact, interpolated "
                        f"like numpy/pandas; events without the property are skipped)",
                  "quantileExactInclusive", "value", f"({level})", needs_property=True)


CATALOGUE: dict[str, Metric] = {m.name: m for m in [
    Metric("events", "number of events (count(): exact)", "count", "", rollup="sumState(events)",
           rollup_function="sum"),
    Metric("persons", "unique persons after identity resolution (uniq: approximate above ~65k per bucket)",
           "uniq", "person"),
    Metric("persons_exact", "unique persons after identity resolution (uniqExact: exact)", "uniqExact", "person"),
    Metric("distinct_ids", "unique distinct ids as sent, before identity resolution (uniq)", "uniq", "distinct_id",
           rollup="uniqMergeState(distinct_ids)"),
    Metric("sessions", "unique sessions by the session id events were sent with (uniq; empty ids not counted)",
           "uniq", "session"),
    Metric("sum", "sum of a numeric property (a missing or non-numeric value counts as 0; added exactly, to 9 "
                  "decimal places)", "sum", "amount",
           needs_property=True),
    Metric("avg", "mean of a numeric property over the events that have it", "avg", "value", needs_property=True),
    Metric("min", "smallest value of a numeric property", "min", "value", needs_property=True),
    Metric("max", "largest value of a numeric property", "max", "value", needs_property=True),
    _quantile("median", "0.5"),
    _quantile("p90", "0.9"),
    _quantile("p95", "0.95"),
    _quantile("p99", "0.99"),
]}

# The one property the rollups aggregate: `sum` of it is served from their `revenue` column.
ROLLUP_PROPERTY = "revenue"
ROLLUP_SUM = "sumState(revenue)"


def metric(name: str) -> Metric:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise InvalidRequest(f"unknown metric {name!r}: use one of {', '.join(CATALOGUE)}", field="metric") from None
