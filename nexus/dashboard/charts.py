"""The dashboard's chart builders: pure functions from tidy data to Bokeh figures, so every page draws a
trend, a funnel, a retention table or a top list the same way (colours, number formats, time zone,
tooltips, empty state, the save-as-PNG tool) and a page only lays them out.

Safety. User strings (event names, property values, series labels) reach the browser only as data-source
values, categorical factors and legend labels: Bokeh draws those as canvas text, and a tooltip row `@col`
is HTML-escaped (templating.replace_placeholders_html). Tooltip templates name our columns only, never hold
a user string, and never use `{safe}`. Axis labels, titles and Label annotations are parsed as TeX when
wrapped in `$$…$$`, so no user string is put into them.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import pyarrow as pa
from bokeh.core.properties import value as fixed
from bokeh.models import (ColumnDataSource, DatetimeTickFormatter, FactorRange, HoverTool, Label, Legend,
                          LegendItem, LinearColorMapper, NumeralTickFormatter, Range1d, Text)
from bokeh.palettes import Blues256
from bokeh.plotting import figure
from bokeh.themes import Theme
from bokeh.transform import dodge, transform

from nexus.errors import InvalidRequest
from nexus.exports.cells import neutralized
from nexus.exports.stream import write_batches
from nexus.timezones import zone

# Okabe & Ito's colour-blind-safe set (Bokeh's Colorblind8), with grey in place of black so that every
# colour also shows on the dark theme; ordered so that the first colours are the most distinct.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#999999")
# Sequential and single-hue (safe for colour-blind readers); the lightest tenth is left out so that a
# zero cell still differs from the plot's background in both themes.
HEATMAP_PALETTE = tuple(reversed(Blues256))[24:]
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
NO_DATA = "No data in this range"
MISSING = "–"
MAX_FACTOR = 40  # characters of a category shown on an axis; the hover shows it whole
Kind = Literal["line", "bar", "stacked_bar", "area"]


class SeriesData(msgspec.Struct, frozen=True):
    """One line of a time series chart. `times` are instants (naive ones are taken as UTC, as stored);
    a None value is a gap. A `dashed` series (compare to the previous period) takes the colour of the
    label `colour_of` when given, so it matches the series it compares with."""

    label: str
    times: list[datetime]
    values: list[float | None]
    dashed: bool = False
    colour_of: str | None = None


# --- colours and themes ------------------------------------------------------------------------------

def colour_for(label: str) -> str:
    """The colour a label prefers, the same in every chart and process (a hash of the text, not the order
    in which labels were seen). `colours_for` resolves clashes within one chart."""
    return PALETTE[_slot(label)]


def colours_for(labels: Iterable[str]) -> dict[str, str]:
    """A colour per distinct label. Each label keeps its own colour unless another label of the chart
    already holds it (the first in sorted order wins); the others take the next free colour. The answer
    depends on the set of labels only, so charts showing the same series agree; past eight, colours repeat."""
    distinct = sorted(set(labels), key=lambda label: (_slot(label), label))
    owner: dict[int, str] = {}
    slot_of: dict[str, int] = {}
    for label in distinct:
        if _slot(label) not in owner:
            owner[_slot(label)] = label
            slot_of[label] = _slot(label)
    for label in distinct:
        if label not in slot_of:
            start = _slot(label)
            free = [s % len(PALETTE) for s in range(start + 1, start + len(PALETTE)) if s % len(PALETTE) not in owner]
            slot_of[label] = free[0] if free else start
            owner.setdefault(slot_of[label], label)
    return {label: PALETTE[slot_of[label]] for label in distinct}


def _slot(label: str) -> int:
    return int.from_bytes(hashlib.blake2b(label.encode(), digest_size=8).digest(), "big") % len(PALETTE)


def theme(dark: bool) -> Theme:
    """The dashboard's light or dark theme, for `document.theme`. Only properties a builder leaves unset
    follow it: builders set colours where the data decides them (series, heatmap cells)."""
    ink, muted, paper = ("#E0E0E0", "#A0A8B0", "#1E2226") if dark else ("#303030", "#6B6B6B", "#FFFFFF")
    font = "Helvetica, Arial, sans-serif"
    return Theme(json={"attrs": {
        # The frame's outline in the background's colour: with None, Bokeh 3.9 still strokes a grey frame.
        "Plot": {"background_fill_color": paper, "border_fill_color": paper, "outline_line_color": paper},
        "Grid": {"grid_line_color": ink, "grid_line_alpha": 0.12},
        "Axis": {"axis_line_color": muted, "major_tick_line_color": muted, "minor_tick_line_color": None,
                 "major_label_text_color": muted, "major_label_text_font": font,
                 "axis_label_text_color": ink, "axis_label_text_font": font},
        "Legend": {"label_text_color": ink, "label_text_font": font, "background_fill_color": paper,
                   "background_fill_alpha": 0.0, "border_line_alpha": 0, "inactive_fill_color": paper,
                   "inactive_fill_alpha": 0.7},
        "Title": {"text_color": ink, "text_font": font},
        "Label": {"text_color": muted, "text_font": font},
        "Text": {"text_color": ink, "text_font": {"value": font}},  # see _labels
    }})


# --- formatting ----------------------------------------------------------------------------------------

def format_number(value: float | None, *, percent: bool = False, duration: bool = False) -> str:
    """A value as a person reads it: `1,234,567`, `12.35`; a rate (a fraction) as `12.3%`; seconds as
    `3m 05s`. A missing value is a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if percent:
        return f"{value * 100:,.1f}%"
    if duration:
        return _duration(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) < 0.01:
        return f"{value:.2g}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def format_change(value: float | None, previous: float | None, *, percent: bool = False) -> str:
    """The change from `previous` to `value`: relative (`+12.3%`) for counts, in percentage points
    (`-1.5 pp`) for rates, where a relative change of a percentage misleads. A dash when there is no
    previous value to compare with (or it is zero: no relative change exists)."""
    if value is None or previous is None:
        return MISSING
    if percent:
        return f"{(value - previous) * 100:+,.1f} pp"
    if previous == 0:
        return "0.0%" if value == 0 else MISSING
    return f"{(value - previous) / abs(previous) * 100:+,.1f}%"


def _duration(seconds: float) -> str:
    sign, left = ("-" if seconds < 0 else ""), abs(seconds)
    if left < 10 and not float(left).is_integer():
        return f"{sign}{left:.1f}s"
    left = round(left)
    days, left = divmod(left, 86400)
    hours, left = divmod(left, 3600)
    minutes, secs = divmod(left, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"


# --- time series ---------------------------------------------------------------------------------------

def time_series(series: Sequence[SeriesData], *, kind: Kind = "line", timezone: str, percent: bool = False,
                height: int = 320) -> figure:
    """Series over time as lines, grouped bars, stacked bars or stacked areas. Times are drawn at their wall
    time in `timezone`, so the axis shows local dates; `percent` says values are rates (fractions). A
    dashed series (previous period) is drawn dashed beside the others and never stacked. The legend sits
    above the plot (right of it past four series); clicking an entry hides its series."""
    if kind not in ("line", "bar", "stacked_bar", "area"):
        raise InvalidRequest(f"unknown chart kind {kind!r}: use line, bar, stacked_bar or area", field="kind")
    tz = zone(timezone)
    for index, line in enumerate(series):
        _same_length(line.times, line.values, f"series[{index}]")
    shown = [line for line in series if any(v is not None for v in line.values)]
    if not shown:
        return _empty(height)
    fig = _figure(height, x_axis_type="datetime")
    fig.xaxis.formatter = _date_ticks()
    _value_axis(fig.yaxis, percent, [v for line in shown for v in line.values])
    colours = colours_for(line.colour_of or line.label for line in shown)
    every = sorted({_wall(t, tz) for line in shown for t in line.times})
    gaps = np.diff(np.array(every, dtype="datetime64[ms]")).astype("int64")
    step = float(gaps.min()) if len(gaps) else 86_400_000.0  # ms between buckets, the width a bar may take
    daily = all(t.hour == 0 and t.minute == 0 for t in every)
    stacked = kind in ("stacked_bar", "area")
    beside = [line for line in shown if kind == "bar"]
    base = dict.fromkeys(every, 0.0)
    items, hovered = [], []
    for line in shown:
        colour = colours[line.colour_of or line.label]
        if stacked and not line.dashed:
            own: dict[datetime, float] = {}
            for t, v in zip(line.times, line.values):
                own[_wall(t, tz)] = own.get(_wall(t, tz), 0.0) + (v or 0.0)
            times, values = every, [own.get(t, 0.0) for t in every]
        else:
            times, values = [_wall(t, tz) for t in line.times], list(line.values)
        data = _point_data(line.label, times, values, percent, daily)
        if stacked and not line.dashed:
            data["bottom"] = [base[t] for t in times]
            data["top"] = [b + v for b, v in zip(data["bottom"], values)]
            base.update(zip(times, data["top"]))
        source = ColumnDataSource(data)
        style = {"color": colour, "line_dash": "dashed" if line.dashed else "solid"}
        if kind == "bar":
            offset = step * 0.8 * ((beside.index(line) + 0.5) / len(beside) - 0.5)
            drawn = [fig.vbar(x=dodge("x", offset), top="y", width=step * 0.8 / len(beside), source=source,
                              fill_color=colour, fill_alpha=0.35 if line.dashed else 0.9, line_color=colour,
                              line_dash=style["line_dash"])]
            hovered += drawn
        elif kind == "stacked_bar" and not line.dashed:
            drawn = [fig.vbar(x="x", bottom="bottom", top="top", width=step * 0.8, source=source,
                              fill_color=colour, fill_alpha=0.9, line_color=colour)]
            hovered += drawn
        elif kind == "area" and not line.dashed:
            drawn = [fig.varea(x="x", y1="bottom", y2="top", source=source, fill_color=colour, fill_alpha=0.55),
                     fig.line(x="x", y="top", source=source, line_width=1.5, **style)]
            drawn.append(fig.scatter(x="x", y="top", source=source, size=6, alpha=0, color=colour))
            hovered.append(drawn[-1])
        else:
            # Over stacked bars or areas a line of its own series' colour vanishes: a pale halo keeps it seen.
            halo = [fig.line(x="x", y="y", source=source, line_width=5, color="white", alpha=0.7)] if stacked else []
            drawn = [*halo, fig.line(x="x", y="y", source=source, line_width=2, **style),
                     fig.scatter(x="x", y="y", source=source, size=5, color=colour,
                                 fill_color="white" if line.dashed else colour)]
            hovered.append(drawn[-1])
        items.append(LegendItem(label=fixed(line.label), renderers=drawn))
    if all(v is None or v >= 0 for line in shown for v in line.values):
        fig.y_range.start = 0
    _add_legend(fig, items)
    rows = [("Series", "@label"), ("Time", "@time_text"), ("Value", "@value_text")]
    fig.add_tools(HoverTool(renderers=hovered, tooltips=rows, mode="mouse" if "bar" in kind else "vline"))
    return fig


def sparkline(times: Sequence[datetime], values: Sequence[float | None], *, height: int = 40,
              colour: str = PALETTE[0]) -> figure:
    """A tiny line beside a big number: no axes, grid, toolbar or hover; only the shape matters."""
    _same_length(times, values, "values")
    if not any(v is not None for v in values):
        return _empty(height, tools="", font_size="10px")
    instants = np.array([_wall(t, ZoneInfo("UTC")) for t in times], dtype="datetime64[ms]")
    source = ColumnDataSource({"x": instants, "y": _floats(values)})
    fig = figure(height=height, sizing_mode="stretch_width", tools="", toolbar_location=None,
                 x_axis_type="datetime", min_border=0)
    fig.axis.visible = False
    fig.grid.visible = False
    fig.varea(x="x", y1=float(np.nanmin(source.data["y"])), y2="y", source=source,
              fill_color=colour, fill_alpha=0.15)
    fig.line(x="x", y="y", source=source, line_width=1.5, color=colour)
    return fig


def _point_data(label: str, times: list[datetime], values: list, percent: bool, daily: bool) -> dict[str, Any]:
    clock = "%a %d %b %Y" if daily else "%a %d %b %Y %H:%M"
    return {"x": np.array(times, dtype="datetime64[ms]"), "y": _floats(values), "label": [label] * len(times),
            "time_text": [t.strftime(clock) for t in times],
            "value_text": [format_number(v, percent=percent) for v in values]}


def _date_ticks() -> DatetimeTickFormatter:
    return DatetimeTickFormatter(minutes="%H:%M", hourmin="%H:%M", hours="%H:%M", days="%d %b", months="%b %Y",
                                 years="%Y", context=DatetimeTickFormatter(minutes="%d %b", hourmin="%d %b",
                                                                           hours="%d %b", days="", months="",
                                                                           years=""),
                                 context_which="start")


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    """The wall-clock time of an instant in `tz`, as a naive datetime: Bokeh draws naive times as they are,
    so the axis and the tooltips show local dates. Naive input is UTC, as times are stored."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).replace(tzinfo=None)


# --- categories ------------------------------------------------------------------------------------------

def funnel_bars(steps: Sequence[str], counts: Sequence[int], *, conversion: Sequence[float],
                groups: dict[str, Sequence[int]] | None = None, height: int | None = None) -> figure:
    """Horizontal bars, first step on top, each in front of a faint bar as long as the first step, so the
    drop-off shows as the gap. Each bar is labelled with its persons and conversion from the first step;
    the hover adds conversion from the previous step and the drop-off. With `groups` (breakdown value →
    counts per step) the groups are drawn side by side within each step instead of the overall counts, one
    colour each (legend above), each with its own conversion (persons at the step / persons at the first
    step, as the funnel analysis defines it)."""
    _same_length(steps, counts, "counts")
    _same_length(steps, conversion, "conversion")
    for name, group in (groups or {}).items():
        _same_length(steps, group, "groups")
    lines = ({"": (list(counts), list(conversion))} if groups is None else
             {name: (list(c), [x / c[0] if c[0] else 0.0 for x in c]) for name, c in groups.items()})
    if not steps or not any(any(c) for c, _ in lines.values()):
        return _empty(height or 240)
    names = _factors(f"{i + 1}. {step}" for i, step in enumerate(steps))
    widest = max(max(c) for c, _ in lines.values())
    fig = _figure(height or 40 + len(steps) * (24 + 26 * len(lines)) + (30 if groups is not None else 0),
                  y_range=FactorRange(*reversed(names)), x_range=Range1d(0, widest * 1.35))
    colours = colours_for(lines) if groups is not None else {"": PALETTE[0]}
    thick = 0.8 / len(lines)
    items, hovered = [], []
    for k, (name, (persons, shares)) in enumerate(lines.items()):
        colour = colours[name]
        drops = [None] + [before - after for before, after in zip(persons, persons[1:])]
        source = ColumnDataSource({
            "y": names, "step": list(steps), "group": [name] * len(steps), "persons": persons,
            "entered": [max(persons[0], p) for p in persons],
            "bar_text": [f"{format_number(p)} · {format_number(s, percent=True)}" for p, s in zip(persons, shares)],
            "persons_text": [format_number(p) for p in persons],
            "conversion_text": [format_number(s, percent=True) for s in shares],
            "previous_text": [MISSING] + [format_number(after / before if before else 0.0, percent=True)
                                          for before, after in zip(persons, persons[1:])],
            "dropped_text": [MISSING if d is None else
                             f"{format_number(d)} ({format_number(d / b if b else 0.0, percent=True)})"
                             for d, b in zip(drops, [None, *persons])],
        })
        y = dodge("y", 0.4 - thick * (k + 0.5), range=fig.y_range)
        back = fig.hbar(y=y, right="entered", height=thick * 0.9, source=source, fill_color=colour,
                        fill_alpha=0.15, line_color=None)
        front = fig.hbar(y=y, right="persons", height=thick * 0.9, source=source, fill_color=colour,
                         line_color=None)
        text = _labels(fig, source, x="persons", y=y, text="bar_text", x_offset=6, text_align="left",
                       text_baseline="middle", text_font_size="12px")
        hovered.append(back)
        items.append(LegendItem(label=fixed(name), renderers=[back, front, text]))
    if groups is not None:
        _add_legend(fig, items)
    _value_axis(fig.xaxis, False, [0])
    fig.ygrid.visible = False
    rows = [("Step", "@step"), ("Persons", "@persons_text"), ("Conversion", "@conversion_text"),
            ("From previous", "@previous_text"), ("Dropped off", "@dropped_text")]
    fig.add_tools(HoverTool(renderers=hovered, tooltips=([("Group", "@group")] if groups is not None else []) + rows))
    return fig


def heatmap(rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[float | None]], *,
            sizes: Sequence[int] | None = None, counts: Sequence[Sequence[int | None]] | None = None,
            percent: bool = True, height: int | None = None) -> figure:
    """A retention table: one row per cohort (first on top, its size in the label), one column per period,
    each cell shaded on a sequential scale and labelled with its value. A None cell (a period not yet
    begun) is left blank. With `percent`, the colour scale tops out at the largest value after the first
    column, which is 100% by definition and would otherwise wash out every other cell."""
    _same_length(rows, values, "values")
    for row in values:
        _same_length(columns, row, "values")
    if sizes is not None:
        _same_length(rows, sizes, "sizes")
    cells = [(i, j, float(v)) for i, row in enumerate(values) for j, v in enumerate(row) if v is not None]
    if not cells:
        return _empty(height or 240)
    labels = _factors(f"{row}  ({format_number(sizes[i])})" if sizes is not None else row
                      for i, row in enumerate(rows))
    names = _factors(columns)
    later = [v for _, j, v in cells if j > 0] if percent and len(columns) > 1 else []
    high = max(later or [v for _, _, v in cells]) or 1.0
    mapper = LinearColorMapper(palette=HEATMAP_PALETTE, low=0, high=high)
    source = ColumnDataSource({
        "row": [labels[i] for i, _, _ in cells], "column": [names[j] for _, j, _ in cells],
        "value": [v for _, _, v in cells], "cohort": [rows[i] for i, _, _ in cells],
        "value_text": [format_number(v, percent=percent) for _, _, v in cells],
        "size_text": [format_number(sizes[i]) if sizes is not None else MISSING for i, _, _ in cells],
        "count_text": [format_number(counts[i][j]) if counts is not None else MISSING for i, j, _ in cells],
        "text_colour": ["#FFFFFF" if v / high > 0.55 else "#1A1A1A" for _, _, v in cells],
    })
    fig = _figure(height or 60 + 30 * len(rows), x_range=FactorRange(*names),
                  y_range=FactorRange(*reversed(labels)), x_axis_location="above")
    fig.rect(x="column", y="row", width=0.97, height=0.92, source=source, line_color=None,
             fill_color=transform("value", mapper))
    fig.text(x="column", y="row", text="value_text", source=source, text_color="text_colour",
             text_align="center", text_baseline="middle", text_font_size="11px")
    fig.grid.visible = False
    fig.axis.axis_line_color = None
    fig.axis.major_tick_line_color = None
    tooltips = [("Cohort", "@cohort"), ("Size", "@size_text"), ("Period", "@column"), ("Value", "@value_text")]
    fig.add_tools(HoverTool(tooltips=tooltips + ([("Persons", "@count_text")] if counts is not None else [])))
    return fig


def bars(labels: Sequence[str], values: Sequence[float | None], *, horizontal: bool = True, percent: bool = False,
         colour: str = PALETTE[0], height: int | None = None) -> figure:
    """One series over categories (a top list), in the order given, each bar labelled with its value;
    horizontal bars put the first label on top. Long labels are cut on the axis and whole in the hover."""
    _same_length(labels, values, "values")
    if not any(v is not None for v in values):
        return _empty(height or 240)
    names = _factors(labels)
    numbers = _floats(values)
    low, high = min(0.0, float(np.nanmin(numbers))), max(0.0, float(np.nanmax(numbers)))
    span = Range1d(low * 1.2, high * 1.2 or 1.0)
    source = ColumnDataSource({"name": names, "label": list(labels), "value": np.nan_to_num(numbers),
                               "value_text": [format_number(v, percent=percent) for v in values]})
    if horizontal:
        fig = _figure(height or max(140, 40 + 26 * len(names)), y_range=FactorRange(*reversed(names)), x_range=span)
        drawn = fig.hbar(y="name", right="value", height=0.75, source=source, color=colour)
        _labels(fig, source, x="value", y="name", text="value_text", x_offset=5, text_align="left",
                text_baseline="middle", text_font_size="11px")
        _value_axis(fig.xaxis, percent, values)
        fig.ygrid.visible = False
    else:
        fig = _figure(height or 320, x_range=FactorRange(*names), y_range=span)
        drawn = fig.vbar(x="name", top="value", width=0.75, source=source, color=colour)
        _labels(fig, source, x="name", y="value", text="value_text", y_offset=-6, text_align="center",
                text_baseline="bottom", text_font_size="11px")
        _value_axis(fig.yaxis, percent, values)
        fig.xgrid.visible = False
        if len(names) > 6 or max(map(len, names)) > 12:
            fig.xaxis.major_label_orientation = math.pi / 4
    fig.add_tools(HoverTool(renderers=[drawn], tooltips=[("Label", "@label"), ("Value", "@value_text")]))
    return fig


def pie(labels: Sequence[str], values: Sequence[float | None], *, donut: bool = True, height: int = 320) -> figure:
    """Shares of a whole, clockwise from twelve o'clock in the order given, with the legend (label and
    share) on the right and, for a donut, the total in the middle. Missing, zero and negative values take
    no slice. Only the save tool: panning or zooming a pie shows nothing new."""
    _same_length(labels, values, "values")
    amounts = [max(v or 0.0, 0.0) for v in values]
    total = sum(amounts)
    if total <= 0:
        return _empty(height, tools="save")
    ends = np.cumsum([0.0, *amounts]) / total
    colours = colours_for(labels)
    source = ColumnDataSource({
        "label": list(labels), "value": amounts, "colour": [colours[label] for label in labels],
        "start": [math.pi / 2 - 2 * math.pi * e for e in ends[1:]],
        "end": [math.pi / 2 - 2 * math.pi * e for e in ends[:-1]],
        "value_text": [format_number(v) for v in values],
        "share_text": [format_number(a / total, percent=True) for a in amounts],
    })
    fig = _figure(height, tools="save", x_range=Range1d(-1, 1), y_range=Range1d(-1, 1))
    fig.axis.visible = False
    fig.grid.visible = False
    radius = (height - 30) * 0.45
    wedge = fig.annular_wedge(x=0, y=0, inner_radius=radius * 0.55 if donut else 0, outer_radius=radius,
                              inner_radius_units="screen", outer_radius_units="screen", start_angle="start",
                              end_angle="end", source=source, fill_color="colour", line_color="white",
                              line_width=1)
    if donut:
        _labels(fig, ColumnDataSource({"x": [0], "y": [0], "text": [format_number(total)]}), x="x", y="y",
                text="text", text_align="center", text_baseline="middle", text_font_size="18px",
                text_font_style="bold")
    fig.add_layout(Legend(items=[LegendItem(label=fixed(f"{label}  {share}"), renderers=[wedge], index=i)
                                 for i, (label, share) in enumerate(zip(labels, source.data["share_text"]))
                                 if amounts[i] > 0], location="center"), "right")
    fig.add_tools(HoverTool(renderers=[wedge], tooltips=[("Label", "@label"), ("Value", "@value_text"),
                                                         ("Share", "@share_text")]))
    return fig


# --- data ------------------------------------------------------------------------------------------------

def table_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A chart's data as CSV text for its download button, written by the exports' CSV writer so that
    cells (and header names, which can be series labels) that a spreadsheet would run as formulas are
    written as text."""
    for index, row in enumerate(rows):
        if len(row) != len(columns):
            raise InvalidRequest(f"row {index} has {len(row)} cells for {len(columns)} columns", field="rows")
    names = neutralized(pa.RecordBatch.from_arrays([pa.array(list(columns), pa.string())], names=["name"]))
    arrays = [_column([row[j] for row in rows]) for j in range(len(columns))]
    sink = io.BytesIO()
    write_batches([pa.RecordBatch.from_arrays(arrays, names=names.column(0).to_pylist())], "csv", sink)
    return sink.getvalue().decode()


def _column(cells: list[Any]) -> pa.Array:
    """One column as Arrow infers it; a column of mixed kinds, or of nothing but nulls, as text."""
    try:
        array = pa.array(cells)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = pa.array([None if c is None else str(c) for c in cells], pa.string())
    return array.cast(pa.string()) if pa.types.is_null(array.type) else array


# --- shared parts ----------------------------------------------------------------------------------------

def _figure(height: int, *, tools: str = TOOLS, **options: Any) -> figure:
    fig = figure(height=height, sizing_mode="stretch_width", tools=tools, toolbar_location="right", **options)
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    fig.toolbar.active_scroll = None  # a page scrolls past the chart; zooming is a click on the tool away
    fig.min_border_right = 12
    return fig


def _empty(height: int, *, tools: str = TOOLS, font_size: str = "13px") -> figure:
    fig = _figure(height, tools=tools, x_range=Range1d(0, 1), y_range=Range1d(0, 1))
    if not tools:
        fig.toolbar_location = None
    fig.axis.visible = False
    fig.grid.visible = False
    fig.add_layout(Label(x=0.5, y=0.5, text=NO_DATA, text_align="center", text_baseline="middle",
                         text_font_size=font_size))
    return fig


def _add_legend(fig: figure, items: list[LegendItem]) -> None:
    """A clickable legend outside the plot: in a row above it for up to four series, else in a column on
    the right, where more rows take the chart's width instead of its height."""
    row = len(items) <= 4
    fig.add_layout(Legend(items=items, click_policy="hide", orientation="horizontal" if row else "vertical",
                          location="top_left", spacing=16 if row else 2, label_standoff=6, glyph_height=16,
                          label_height=16, label_text_font_size="12px"), "above" if row else "right")


def _labels(fig: figure, source: ColumnDataSource, **glyph: Any) -> Any:
    """Text drawn on the plot, added as a bare Text glyph: `figure.text` sets the colour to black, which
    the dark theme could then no longer change."""
    return fig.add_glyph(source, Text(**glyph))


def _value_axis(axes: Any, percent: bool, values: Iterable[float | None]) -> None:
    """Thousands separators, or percentages for rates; no ticks between whole numbers when every value is
    one (half a person is never on the scale of a count)."""
    axes.formatter = NumeralTickFormatter(format="0.[0]%" if percent else "0,0.[00]")
    if not percent and all(float(v).is_integer() for v in values if v is not None):
        axes.ticker.min_interval = 1


def _floats(values: Iterable[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype="float64")


def _factors(texts: Iterable[str]) -> list[str]:
    """Axis categories: cut to MAX_FACTOR characters, an empty one shown as '(empty)', and made unique (a
    categorical axis needs distinct factors) by numbering repeats."""
    seen: set[str] = set()
    found = []
    for text in texts:
        text = text if len(text) <= MAX_FACTOR else text[:MAX_FACTOR - 1] + "…"
        text, base, n = text or "(empty)", text or "(empty)", 1
        while text in seen:
            n += 1
            text = f"{base} ({n})"
        seen.add(text)
        found.append(text)
    return found


def _same_length(first: Sequence[Any], second: Sequence[Any], field: str) -> None:
    if len(first) != len(second):
        raise InvalidRequest(f"{field} has {len(second)} values for {len(first)} positions", field=field)
