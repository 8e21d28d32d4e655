"""The report's charts as PNG pictures, drawn by matplotlib's Agg backend (no display, no browser), in the
dashboard's colours (Okabe-Ito, nexus.dashboard.charts) and number formats.

No user text is drawn into a picture: names (series, breakdown values, funnel steps, pages) come back
beside it as a legend or as row labels, which the PDF prints as text in its own fonts. So a name in any
script prints shaped and right to left where it should, can be found and copied in the PDF, and is never
read as matplotlib mathtext (`$…$`). Pictures hold numbers, dates and our own words only.

Every picture is drawn at its printed size (WIDTH inches is the page's text width), so its 8-point
labels print at 8 points. Each call makes its own Figure on an Agg canvas, without pyplot: no global
state, no display, and worker threads can draw side by side.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from datetime import datetime

import matplotlib.axis
import matplotlib.dates as mdates
import msgspec
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.font_manager import fontManager
from matplotlib.ticker import FuncFormatter, MaxNLocator

from nexus.dashboard.charts import HEATMAP_PALETTE, PALETTE, format_number
from nexus.reports.fonts import FOLDER

WIDTH = 180 / 25.4  # inches: the text width of an A4 page with 15 mm margins
HEIGHT = 2.7  # inches: every time series and bar chart over periods
LABELS = 50 / 25.4  # inches left of a horizontal bar chart, where the PDF prints the row labels
ROW = 0.26  # inches per bar of a horizontal bar chart
DPI = 130
INK, MUTED, GRID = "#303030", "#6B6B6B", "#E4E4E4"
FONT = "Noto Sans"
fontManager.addfont(str(FOLDER / "NotoSans-Regular.ttf"))
_HEATMAP = ListedColormap(HEATMAP_PALETTE)


class LegendItem(msgspec.Struct, frozen=True):
    label: str
    colour: str
    dashed: bool = False


class Picture(msgspec.Struct, frozen=True):
    """A chart as PNG, `width` × `height` inches when printed. `labels[i]` names the row whose middle is
    `rows[i]` (a fraction of the height, from the top): the PDF prints them left of the picture. The
    legend goes under the picture, or `beside` it (a pie's)."""

    png: bytes
    width: float
    height: float
    legend: list[LegendItem] = []
    labels: list[str] = []
    rows: list[float] = []
    beside: bool = False


class Line(msgspec.Struct, frozen=True):
    label: str
    values: list[float | None]
    colour: str
    dashed: bool = False


Formatter = Callable[[float | None], str]


def series(xs: Sequence[datetime] | Sequence[int], lines: Sequence[Line], *, kind: str = "line",
           value_text: Formatter = format_number, x_label: str = "") -> Picture:
    """Lines over time (naive wall-clock datetimes) or over 0..n (ints), as lines, grouped bars, stacked
    bars or stacked areas; dashed lines (a previous period) are drawn as lines beside the others."""
    fig, ax = _figure(WIDTH, HEIGHT, left=0.75, bottom=0.45)
    times = bool(xs) and isinstance(xs[0], datetime)
    x = mdates.date2num(list(xs)) if times else np.arange(len(xs), dtype=float)
    step = float(np.min(np.diff(x))) if len(x) > 1 else 1.0
    solid = [line for line in lines if not line.dashed]
    base = np.zeros(len(x))
    for index, line in enumerate(lines):
        y = _floats(line.values)
        if line.dashed or kind == "line":
            ax.plot(x, y, color=line.colour, linewidth=1.6, linestyle="--" if line.dashed else "-",
                    marker="o" if len(x) <= 31 else None, markersize=2.5)
        elif kind == "bar":
            width = step * 0.8 / len(solid)
            ax.bar(x - step * 0.4 + width * (solid.index(line) + 0.5), np.nan_to_num(y), width=width,
                   color=line.colour)
        elif kind == "stacked_bar":
            ax.bar(x, np.nan_to_num(y), width=step * 0.8, bottom=base, color=line.colour)
        else:  # area
            ax.fill_between(x, base, base + np.nan_to_num(y), color=line.colour, alpha=0.55, linewidth=0)
            ax.plot(x, base + np.nan_to_num(y), color=line.colour, linewidth=1.2)
        if kind in ("stacked_bar", "area") and not line.dashed:
            base = base + np.nan_to_num(y)
    if times:
        locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
        ticks = mdates.AutoDateFormatter(locator)
        # The dashboard's tick formats (charts._date_ticks), keyed by days between ticks.
        ticks.scaled = {365.0: "%Y", 28.0: "%b %Y", 1.0: "%d %b", 1 / 24: "%d %b %H:%M", 1 / 1440: "%H:%M"}
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ticks)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if x_label:
        ax.set_xlabel(x_label, fontsize=8, color=MUTED, fontfamily=FONT)
    _value_axis(ax.yaxis, value_text, [v for line in lines for v in line.values])
    if len(x):
        ax.set_xlim(x[0] - step * 0.6, x[-1] + step * 0.6)
    return _picture(fig, legend=[LegendItem(line.label, line.colour, line.dashed) for line in lines])


def horizontal_bars(labels: Sequence[str], values: Sequence[float | None], texts: Sequence[str], *,
                    colours: Sequence[str] | None = None, behind: Sequence[float] | None = None) -> Picture:
    """One bar per label, first on top, each followed by its text; `behind` draws a pale bar under each
    (a funnel's entrants). The labels come back as the picture's row labels."""
    count = len(labels)
    top, bottom = 0.1, 0.35
    height = top + bottom + ROW * max(count, 1)
    fig, ax = _figure(WIDTH - LABELS, height, left=0.05, bottom=bottom, top=top, right=0.9)
    y = np.arange(count)
    numbers = np.nan_to_num(_floats(values))
    colours = list(colours or [PALETTE[0]] * count)
    if behind is not None:
        ax.barh(y, behind, height=0.72, color=colours, alpha=0.18)
    ax.barh(y, numbers, height=0.72, color=colours)
    high = max([*numbers, *(behind or []), 0.0]) or 1.0
    for row, (number, text) in enumerate(zip(numbers, texts)):
        ax.text(number + high * 0.01, row, text, va="center", ha="left", fontsize=7.5, color=INK, fontfamily=FONT)
    ax.set_ylim(count - 0.5, -0.5)
    ax.set_xlim(0, high * 1.15)
    ax.set_yticks([])
    ax.grid(axis="y", visible=False)
    _value_axis(ax.xaxis, format_number, list(numbers))
    # Row i's middle, as a share of the picture's height from its top.
    rows = [(top + ROW * (i + 0.5)) / height for i in range(count)]
    return _picture(fig, labels=list(labels), rows=rows)


def vertical_bars(categories: Sequence[str], stacks: Sequence[Line], *, down: Line | None = None,
                  x_label: str = "") -> Picture:
    """Bars over categories (our own words: a number, a period's date): stacked when several, and a
    `down` series drawn below zero (lifecycle's dormant persons)."""
    fig, ax = _figure(WIDTH, HEIGHT, left=0.75, bottom=0.45)
    x = np.arange(len(categories))
    base = np.zeros(len(categories))
    for line in stacks:
        y = np.nan_to_num(_floats(line.values))
        ax.bar(x, y, bottom=base, width=0.75, color=line.colour)
        base = base + y
    if len(stacks) == 1 and len(categories) <= 16:  # past that the numbers crowd (and each costs ~8 ms)
        for i, value in enumerate(stacks[0].values):
            ax.text(i, base[i], format_number(value), ha="center", va="bottom", fontsize=7, color=INK, fontfamily=FONT)
    if down is not None:
        ax.bar(x, -np.nan_to_num(_floats(down.values)), width=0.75, color=down.colour)
        ax.axhline(0, color=MUTED, linewidth=0.8)
    every = math.ceil(len(categories) / 16)  # at most 16 names under the axis, level
    ax.set_xticks(x[::every], list(categories)[::every])
    if x_label:
        ax.set_xlabel(x_label, fontsize=8, color=MUTED, fontfamily=FONT)
    ax.grid(axis="x", visible=False)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_number(abs(v))))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    lines = [*stacks, *([down] if down else [])]
    return _picture(fig, legend=[LegendItem(line.label, line.colour) for line in lines] if len(lines) > 1 else [])


def heatmap(rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[float | None]]) -> Picture:
    """A retention table: a row per cohort (first on top), a column per period, cells shaded by their
    share, which they print. The scale tops out at the largest share after the first column (100% by
    definition), as on the dashboard; an empty cell (a period not begun) stays blank."""
    grid = np.array([_floats(row) for row in values], dtype=float).reshape(len(rows), len(columns))
    later = grid[:, 1:] if grid.shape[1] > 1 else grid
    high = float(np.nanmax(later)) if np.isfinite(later).any() else 1.0
    height = 0.55 + 0.24 * len(rows)
    fig, ax = _figure(WIDTH, height, left=1.5, bottom=0.1, top=0.4)
    ax.imshow(np.ma.masked_invalid(grid), cmap=_HEATMAP, vmin=0, vmax=high or 1.0, aspect="auto",
              interpolation="nearest")
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(j, i, format_number(value, percent=True), ha="center", va="center", fontsize=7,
                    color="#FFFFFF" if value / (high or 1.0) > 0.55 else "#1A1A1A", fontfamily=FONT)
    ax.set_xticks(range(len(columns)), list(columns))
    ax.set_yticks(range(len(rows)), list(rows))
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return _picture(fig)


def pie(labels: Sequence[str], values: Sequence[float | None], colours: Sequence[str]) -> Picture:
    """Shares of a whole as a donut, clockwise from twelve o'clock, the total in the middle; the legend
    (label and share) is the PDF's. Missing, zero and negative values take no slice."""
    amounts = [max(v or 0.0, 0.0) for v in values]
    total = sum(amounts)
    size = HEIGHT
    fig = Figure(figsize=(size, size), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.05, 0.05, 0.9, 0.9))
    shown = [(a, c) for a, c in zip(amounts, colours) if a > 0]
    if shown:
        ax.pie([a for a, _ in shown], colors=[c for _, c in shown], startangle=90, counterclock=False,
               wedgeprops={"width": 0.42, "edgecolor": "white", "linewidth": 1})
    ax.text(0, 0, format_number(total), ha="center", va="center", fontsize=13, fontweight="bold", color=INK,
            fontfamily=FONT)
    ax.set_aspect("equal")
    legend = [LegendItem(f"{label}  {format_number(a / total if total else None, percent=True)}", colour)
              for label, a, colour in zip(labels, amounts, colours)]
    return _picture(fig, legend=legend, beside=True)


# --- shared parts ----------------------------------------------------------------------------------------

def _figure(width: float, height: float, *, left: float, bottom: float, top: float = 0.15,
            right: float = 0.2) -> tuple[Figure, Axes]:
    """A figure of `width` × `height` inches whose plot leaves the given margins (inches): fixed margins,
    so a picture's geometry (where its rows are) is known without drawing it."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((left / width, bottom / height, 1 - (left + right) / width, 1 - (top + bottom) / height))
    for name in ("top", "right"):
        ax.spines[name].set_visible(False)
    for name in ("left", "bottom"):
        ax.spines[name].set_color(GRID)
    ax.tick_params(colors=MUTED, labelsize=7.5, labelfontfamily=FONT, length=3)
    ax.grid(True, color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _value_axis(axis: matplotlib.axis.Axis, value_text: Formatter, values: Sequence[float | None]) -> None:
    """Ticks in the report's number format, whole numbers only when every value is one."""
    whole = all(float(v).is_integer() for v in values if v is not None)
    axis.set_major_locator(MaxNLocator(nbins=5, integer=whole))
    axis.set_major_formatter(FuncFormatter(lambda v, _: value_text(v)))
    if axis is axis.axes.yaxis and all(v is None or v >= 0 for v in values):
        axis.axes.set_ylim(bottom=0)


def _picture(fig: Figure, **parts: object) -> Picture:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    width, height = fig.get_size_inches()
    return Picture(buffer.getvalue(), float(width), float(height), **parts)  # type: ignore[arg-type]


def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)
