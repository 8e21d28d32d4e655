"""A result's table as the report prints it: its first MAX_ROWS rows as text, numbers formatted as the
dashboard formats them (rates as percentages, durations as 3m 05s) and marked to be right-aligned, times
at their own offset (the analysis' time zone), long text cut."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from nexus.analyses import overview
from nexus.dashboard.charts import MISSING, format_number
from nexus.reports.definition import TOP

MAX_ROWS = 50
MAX_TEXT = 80  # characters of a text cell; a JSON properties column would otherwise fill pages
# Columns of the analyses' tables (nexus.analyses.tables) holding fractions or seconds.
PERCENT = frozenset({"percentage", "bounce_rate", "conversion_from_first", "conversion_from_previous"})
DURATION = frozenset({"avg_duration", "median_duration", "avg_seconds", "median_seconds"})
_LISTS = {TOP + d.name: d for d in overview.DIMENSIONS}
_ROW_NAMES = {"events": "event", "pages": "page", "entry_pages": "entry page", "referrers": "source",
              "countries": "country", "browsers": "browser", "os": "os", "devices": "device"}


class TextTable(msgspec.Struct, frozen=True):
    """Cells as text; `numeric[j]` right-aligns column j. `total` is the number of rows the table had,
    of which `rows` are the first. `whole` columns (numbers and times; `numeric` when empty) are cut last
    when the page is too narrow for every column."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    total: int
    whole: list[bool] = []


def table_of(gathered: Any) -> TextTable:
    """The section's table (a GatheredSection's): an overview section showing one part keeps that part's
    rows (a top list's labels, persons and events; a key number's totals and points)."""
    table: pa.Table = gathered.table
    part = gathered.section.part
    if part in _LISTS:
        dimension = _LISTS[part]
        top = table.filter(pc.equal(table["section"], dimension.name))
        labels = [value or dimension.empty for value in top["name"].to_pylist()]
        return text_table(pa.table({_ROW_NAMES[dimension.name]: pa.array(labels, pa.string()),
                                    "persons": top["persons"], "events": top["events"]}))
    if part is not None:
        kpi = table.filter(pc.equal(table["name"], part))
        return text_table(kpi.select(["section", "bucket", "value", "previous"]))
    return text_table(table)


def text_table(table: pa.Table) -> TextTable:
    shown = table.slice(0, MAX_ROWS)
    columns = [_cells(name, shown[name].type, shown[name].to_pylist()) for name in shown.column_names]
    numeric = [_numeric(table[name].type) for name in table.column_names]
    whole = [n or _temporal(table[name].type) for n, name in zip(numeric, table.column_names)]
    return TextTable(list(table.column_names), [list(row) for row in zip(*columns)], numeric, table.num_rows, whole)


def _cells(name: str, kind: pa.DataType, values: list[Any]) -> list[str]:
    if _temporal(kind):
        return _times(values)
    if _numeric(kind):
        return [format_number(None if v is None else float(v), percent=name in PERCENT, duration=name in DURATION)
                for v in values]
    return [MISSING if v is None else _cut(str(v)) for v in values]


def _times(values: list[datetime | date | None]) -> list[str]:
    """Dates, or times to the minute when any has a time of day; each at the offset it carries."""
    with_time = any(isinstance(v, datetime) and (v.hour, v.minute, v.second) != (0, 0, 0) for v in values)
    pattern = "%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d"
    return [MISSING if v is None else v.strftime(pattern) for v in values]


def _temporal(kind: pa.DataType) -> bool:
    return pa.types.is_timestamp(kind) or pa.types.is_date(kind)


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"
