"""An ad-hoc query's answer as the SQL page shows it: the parameters read from the page's JSON box, every
cell as text, and the chart a result makes (pure functions, so they are tested without a browser).

Chart rule. A result is charted as one value column `y` (numbers) over a column `x`, optionally split into
one line per value of a `series` column. When `x` holds times (a Date or DateTime column) the chart is a
time series drawn in the column's own time zone, so its axis reads as the grid does; otherwise it is bars
over the values of `x`, in the result's order. Rows with the same `x` and series are added up (a result
that is not grouped by them still charts, and the note says how many rows were merged).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from nexus.adhoc.sandbox import Column, JsonAnswer
from nexus.dashboard.charts import SeriesData
from nexus.errors import InvalidRequest
from nexus.timezones import zone

MAX_SERIES = 12  # lines of one chart; more are left out (and the note says so)
MAX_BARS = 60  # bars of one chart; the first ones in the result's order are drawn
NULL = "NULL"
_PARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WRAPPERS = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")
_ZONE = re.compile(r"^DateTime(?:64)?\((?:\d+\s*,\s*)?'([^']+)'\)$")
_NUMBER = re.compile(r"^(?:U?Int\d+|Float\d+|BFloat16|Decimal(?:\d+)?(?:\(.*\))?)$")


def parse_params(text: str) -> dict[str, Any]:
    """The `{name:Type}` parameter values typed in the page's JSON box: an object of name → value (empty
    text: none). A mistake says where it is, with the field `params` (or `params.<name>`)."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidRequest(f"the parameters are not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}",
                             field="params") from None
    if not isinstance(value, dict):
        raise InvalidRequest('the parameters must be a JSON object of name: value, like {"n": 10}', field="params")
    for name in value:
        if not _PARAMETER.match(name):
            raise InvalidRequest(f"{name!r} is not a parameter name: the SQL names one as {{name:Type}}, with "
                                 f"letters, digits and _", field=f"params.{name}")
    return value


def rows_of(answer: JsonAnswer) -> list[list[Any]]:
    return msgspec.json.decode(bytes(answer.rows)) if answer.row_count else []


def cell_text(value: Any) -> str:
    """A cell as the grid shows it: text as it is, NULL for a missing value, arrays, maps and JSON as JSON."""
    if value is None:
        return NULL
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def grid(columns: list[Column], rows: list[list[Any]]) -> dict[str, list[str]]:
    """The grid's data: one list of cell texts per column, keyed by position (names may repeat or be empty)."""
    return {f"c{j}": [cell_text(row[j]) for row in rows] for j in range(len(columns))}


def base_type(kind: str) -> str:
    """A column type without its Nullable/LowCardinality wrappers."""
    while match := _WRAPPERS.match(kind):
        kind = match.group(1)
    return kind


def is_time(kind: str) -> bool:
    return base_type(kind).startswith(("Date", "DateTime"))


def is_number(kind: str) -> bool:
    return bool(_NUMBER.match(base_type(kind)))


def time_zone(kind: str) -> str:
    """The zone a Date/DateTime column's texts are written in: its own, else the engine's UTC."""
    match = _ZONE.match(base_type(kind))
    return match.group(1) if match else "UTC"


def parse_time(text: str, tz: ZoneInfo) -> datetime:
    """An instant from the engine's JSON text of a Date or DateTime (wall time in `tz`)."""
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    return datetime.fromisoformat(text).replace(tzinfo=tz).astimezone(UTC)


class Choice(msgspec.Struct, frozen=True):
    """Which columns a chart draws: values `y` over `x`, one line or bar group per value of `series`."""

    x: str
    y: str
    series: str = ""


def default_choice(columns: list[Column], rows: list[list[Any]]) -> Choice | None:
    """A first chart: the last numeric column (a grouped query's measure comes after its keys) over the
    first time column, else the first other column whose values vary (text before numbers); None when the
    result has no numeric column."""
    y = next((c.name for c in reversed(columns) if is_number(c.type)), None)
    if y is None:
        return None
    others = [(j, c) for j, c in enumerate(columns) if c.name != y]
    varying = [(j, c) for j, c in others if len({cell_text(row[j]) for row in rows}) > 1]
    x = next((c.name for _, c in others if is_time(c.type)), None) \
        or next((c.name for _, c in varying if not is_number(c.type)), None) \
        or next((c.name for _, c in varying), None) or (others[0][1].name if others else y)
    return Choice(x, y)


class TimeChart(msgspec.Struct, frozen=True):
    series: list[SeriesData]
    timezone: str
    note: str = ""


class BarChart(msgspec.Struct, frozen=True):
    labels: list[str]
    values: list[float | None]
    note: str = ""


def chart_data(columns: list[Column], rows: list[list[Any]], choice: Choice) -> TimeChart | BarChart:
    """The data of the chart `choice` draws from a result (see the module's chart rule)."""
    position = {c.name: j for j, c in reversed(list(enumerate(columns)))}  # a repeated name: its first column
    for field, name in (("x", choice.x), ("y", choice.y), ("series", choice.series)):
        if name and name not in position:
            raise InvalidRequest(f"the result has no column {name!r}", field=field)
    x, y = position[choice.x], position[choice.y]
    s = position[choice.series] if choice.series else None
    if not is_number(columns[y].type):
        raise InvalidRequest(f"column {choice.y!r} holds {columns[y].type}, not numbers: pick a numeric column "
                             f"for the values", field="y")
    timed = is_time(columns[x].type)
    tz = zone(time_zone(columns[x].type)) if timed else None
    sums: dict[tuple[str, Any], float | None] = {}
    merged = untimed = 0
    for row in rows:
        label = cell_text(row[s]) if s is not None else choice.y
        if tz is not None and row[x] is None:
            untimed += 1  # a NULL time has no place on the axis
            continue
        key = (label, parse_time(row[x], tz) if tz is not None else cell_text(row[x]))
        value = None if row[y] is None else float(row[y])
        if key in sums:
            merged += 1
            value = _add(sums[key], value)
        sums[key] = value
    notes = [f"{_rows(merged)} with the same {choice.x}{' and ' + choice.series if s is not None else ''} "
             f"{'was' if merged == 1 else 'were'} added up"] if merged else []
    notes += [f"{_rows(untimed)} without a {choice.x} {'is' if untimed == 1 else 'are'} left out"] if untimed else []
    if timed:
        labels = list(dict.fromkeys(label for label, _ in sums))
        if len(labels) > MAX_SERIES:
            notes.append(f"the first {MAX_SERIES} of {len(labels):,} series are drawn")
        lines = []
        for label in labels[:MAX_SERIES]:
            points = sorted((at, v) for (own, at), v in sums.items() if own == label)
            lines.append(SeriesData(label=label, times=[at for at, _ in points], values=[v for _, v in points]))
        return TimeChart(lines, time_zone(columns[x].type), "; ".join(notes))
    bars = [(f"{at} · {label}" if s is not None else at, v) for (label, at), v in sums.items()]
    if len(bars) > MAX_BARS:
        notes.append(f"the first {MAX_BARS} of {len(bars):,} bars are drawn")
    return BarChart([b for b, _ in bars[:MAX_BARS]], [v for _, v in bars[:MAX_BARS]], "; ".join(notes))


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def _add(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else a + b
