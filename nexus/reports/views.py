"""How each analysis prints: from a gathered section to the blocks a page shows (key numbers, a chart
with its legend or row labels, a table, a notice), chosen by the section's chart as the dashboard
chooses it. A chart a kind cannot draw falls back to the kind's natural one (NATURAL).

The numbers are formatted as the dashboard formats them (nexus.dashboard.charts); names are passed on
as text for the PDF to print.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import msgspec

from nexus.analyses import overview
from nexus.analyses.breakdown import OTHER
from nexus.analyses.lifecycle import STATUSES
from nexus.dashboard.charts import MISSING, PALETTE, colours_for, format_change, format_number
from nexus.meta.dashboards import SQL_KIND
from nexus.reports.definition import TOP
from nexus.reports.gather import Conversion, GatheredSection
from nexus.reports.pictures import Line, Picture, heatmap, horizontal_bars, pie, series, vertical_bars
from nexus.reports.tables import TextTable, table_of

TIME_SERIES = ("line", "bar", "stacked_bar", "area")
NATURAL = {"trends": "line", "funnel": "funnel", "funnel_persons": "table", "retention": "heatmap",
           "sessions": "sessions", "stickiness": "bar", "lifecycle": "stacked_bar", "overview": "overview",
           "live": "line", "events": "table", "persons": "table", "person": "table", "retention_persons": "table",
           "cohort_size": "table", "goals": "table", "experiment": "table", "paths": "table", "paths_persons": "table", SQL_KIND: "table",
           "attribution": "table", "conversion_paths": "table", "predictions": "table"}
KPI_LABELS = {"events": "Events", "persons": "Unique persons", "sessions": "Sessions", "bounce_rate": "Bounce rate",
              "avg_session_duration": "Avg. session", "revenue": "Revenue", "conversion": "Conversion"}
LIST_LABELS = {"events": "Top events", "pages": "Top pages", "entry_pages": "Entry pages", "referrers": "Top sources",
               "countries": "Top countries", "browsers": "Browsers", "os": "Operating systems", "devices": "Devices"}
# The dashboard's lifecycle colours (nexus/dashboard/pages/stickiness.py), by their place in the palette.
LIFECYCLE = {"new": PALETTE[2], "returning": PALETTE[0], "resurrecting": PALETTE[1], "dormant": PALETTE[3]}
SESSION_SERIES = {"sessions": ("Sessions", "sessions"), "duration": ("Median session (minutes)", "median_duration"),
                  "pages": ("Pages per session", "pages_per_session"), "bounce_rate": ("Bounce rate", "bounce_rate")}
SESSION_TOTALS = (("sessions", "Sessions"), ("avg_duration", "Average duration"),
                  ("median_duration", "Median duration"), ("pages_per_session", "Pages per session"),
                  ("bounce_rate", "Bounce rate"))


class Kpi(msgspec.Struct, frozen=True):
    """A headline number: `change` against `previous` ("+12.3%", "-1.5 pp", or a dash), whose `tone` says
    whether it is good news (up), bad (down) or neither (flat)."""

    label: str
    value: str
    change: str = ""
    previous: str = ""
    tone: str = "flat"
    note: str = ""


class Kpis(msgspec.Struct, frozen=True):
    items: list[Kpi]


class Notice(msgspec.Struct, frozen=True):
    text: str


Block = Kpis | Picture | TextTable | Notice
Drawer = Callable[[GatheredSection, str], list[Block]]


def blocks(gathered: GatheredSection) -> list[Block]:
    """What a section prints, in order: its chart, then (when asked) its table's first rows."""
    section = gathered.section
    if gathered.table is None:
        return [Notice("This section runs a saved SQL query, whose rows were not included in this report.")]
    chart = section.chart or NATURAL[section.kind]
    if chart == "table" or section.kind not in DRAWERS:  # lists, and what a PDF draws as a table (a Sankey)
        table = table_of(gathered)
        return [table if table.rows else Notice("Nothing in this range.")]
    drawn = DRAWERS[section.kind](gathered, chart)
    table = table_of(gathered) if section.table else None
    return [*drawn, table] if table and table.rows else drawn


# --- per kind ----------------------------------------------------------------------------------------------

def _trends(gathered: GatheredSection, chart: str) -> list[Block]:
    result = gathered.result
    if not any(v for line in result.lines for v in line.values):
        return [Notice("No events in this range.")]
    name = _series_names(result, gathered.section.request)
    labels = [_line_label(line, name) for line in result.lines]
    if chart == "number":
        before = {_line_label(line, name): line.total for line in result.previous or []}
        return [Kpis([_kpi(label, line.total, before.get(label), compared=result.previous is not None)
                      for label, line in zip(labels, result.lines)])]
    totals = [line.total for line in result.lines]
    if chart == "pie":
        colours = colours_for(labels)
        return [pie(labels, totals, [colours[label] for label in labels])]
    if chart == "bar" and any(line.breakdown is not None for line in result.lines):
        return [horizontal_bars(labels, totals, [format_number(t) for t in totals])]
    colours = colours_for(labels)
    lines = [Line(label, list(line.values), colours[label]) for label, line in zip(labels, result.lines)]
    count = len(result.buckets)
    # The previous period drawn over this one's buckets, dashed in its line's colour (as on the dashboard).
    lines += [Line(_line_label(line, name) + " (previous period)", (list(line.values) + [None] * count)[:count],
                   colours[_line_label(line, name)], True)
              for line in result.previous or [] if _line_label(line, name) in colours]
    return [series(_wall(result.buckets), lines, kind=_series_kind(chart))]


def _funnel(gathered: GatheredSection, chart: str) -> list[Block]:
    """The bars of everyone's steps (a breakdown's groups are in the table), then the steps' numbers."""
    steps = gathered.result.groups[0].steps
    if not steps[0].persons:
        return [Notice("Nobody entered this funnel in this range.")]
    bars = horizontal_bars([f"{s.step + 1}. {s.label}" for s in steps], [s.persons for s in steps],
                           [f"{format_number(s.persons)} · {format_number(s.conversion_from_first, percent=True)}"
                            for s in steps], behind=[steps[0].persons] * len(steps))
    rows = [[f"{s.step + 1}. {s.label}", format_number(s.persons),
             format_number(s.conversion_from_first, percent=True),
             format_number(s.conversion_from_previous, percent=True) if s.step else MISSING,
             format_number(s.dropped) if s.step else MISSING,
             format_number(s.median_seconds, duration=True), format_number(s.avg_seconds, duration=True)]
            for s in steps]
    header = ["Step", "Persons", "From first", "From previous", "Dropped off", "Median time", "Average time"]
    return [bars, TextTable(header, rows, [False] + [True] * 6, len(rows))]


def _retention(gathered: GatheredSection, chart: str) -> list[Block]:
    result = gathered.result
    if not any(c.persons for c in result.cohorts):
        return [Notice("Nobody started in this range.")]
    unit = result.period
    if chart == "curve":
        groups = [("Everyone", result.average), *((_group(b.breakdown), b.average) for b in result.breakdowns)]
        colours = colours_for(label for label, _ in groups)
        lines = [Line(label, list(values), colours[label]) for label, values in groups]
        return [series(list(range(len(result.average))), lines, x_label=f"{unit}s after the start",
                       value_text=lambda v: format_number(v, percent=True))]
    day = "%b %Y" if unit == "month" else "%a %d %b %Y"
    rows = [f"{c.period.strftime(day)}  ({format_number(c.persons)})" for c in result.cohorts]
    columns = [f"{unit.title()} {k}" for k in range(len(result.cohorts[0].percentages))]
    shares = [c.percentages if c.persons else [None] * len(c.percentages) for c in result.cohorts]
    return [heatmap(rows, columns, shares)]


def _sessions(gathered: GatheredSection, chart: str) -> list[Block]:
    result = gathered.result
    if not any(sum(line.sessions) for line in result.lines):
        return [Notice("No sessions in this range.")]
    if chart == "totals":
        if len(result.lines) == 1:
            total = result.lines[0].total
            return [Kpis([Kpi(label, _number(name, total.get(name))) for name, label in SESSION_TOTALS])]
        rows = [[_group(line.breakdown), *(_number(name, line.total.get(name)) for name, _ in SESSION_TOTALS)]
                for line in result.lines]
        return [TextTable(["Group", *(label for _, label in SESSION_TOTALS)], rows, [False] + [True] * 5, len(rows))]
    if chart in ("entry_pages", "exit_pages"):
        pages = getattr(result, chart)
        if not pages:
            return [Notice("No page views in these sessions.")]
        return [horizontal_bars([p.path for p in pages], [p.sessions for p in pages],
                                [format_number(p.sessions) for p in pages])]
    name, measure = SESSION_SERIES.get(chart, SESSION_SERIES["sessions"])
    labels = [_group(line.breakdown) if line.breakdown is not None else name for line in result.lines]
    colours = colours_for(labels)
    minutes = measure == "median_duration"
    lines = [Line(label, [v / 60 if minutes and v is not None else v for v in getattr(line, measure)], colours[label])
             for label, line in zip(labels, result.lines)]
    percent = measure == "bounce_rate"
    return [series(_wall(result.buckets), lines, kind=_series_kind(chart),
                   value_text=lambda v: format_number(v, percent=percent))]


def _stickiness(gathered: GatheredSection, chart: str) -> list[Block]:
    result = gathered.result
    if not any(result.persons):
        return [Notice("Nobody did this event in this range.")]
    axis = f"persons by the number of {result.period}s they were active in, of {result.periods}"
    return [vertical_bars([str(k) for k in range(1, result.periods + 1)],
                          [Line("persons", list(result.persons), PALETTE[0])], x_label=axis)]


def _lifecycle(gathered: GatheredSection, chart: str) -> list[Block]:
    result = gathered.result
    if not any(any(getattr(result, s)) for s in STATUSES):
        return [Notice("Nobody did this event in this range.")]
    day = "%b %Y" if result.period == "month" else "%d %b"
    lines = {s: Line(s, list(getattr(result, s)), LIFECYCLE[s]) for s in STATUSES}
    return [vertical_bars([p.strftime(day) for p in result.periods], [lines[s] for s in STATUSES if s != "dormant"],
                          down=lines["dormant"])]


def _overview(gathered: GatheredSection, chart: str) -> list[Block]:
    """The key numbers (`number`), events and persons over time (a time series chart), a top list
    (`part`), or all of it (`overview`)."""
    result, part = gathered.result, gathered.section.part
    kpis = {k.name: k for k in result.kpis}
    if part in kpis:
        if chart == "number":
            return [Kpis([_overview_kpi(kpis[part])])]
        return [_kpi_series(result, [part], chart)]
    if part is not None:
        top = next(t for t in result.top if TOP + t.dimension == part)
        if not top.rows:
            return [Notice("Nothing in this range.")]
        return [horizontal_bars([r.label for r in top.rows], [r.persons for r in top.rows],
                                [format_number(r.persons) for r in top.rows])]
    numbers = Kpis(_key_numbers(gathered))
    if chart == "number":
        return [numbers]
    if not kpis["events"].value:
        empty = Notice("No events in this range.")
        return [numbers, empty] if chart == "overview" else [empty]
    trend = _kpi_series(result, ["events", "persons"], chart if chart in TIME_SERIES else "line")
    if chart != "overview":
        return [trend]
    lists = [TextTable([LIST_LABELS.get(t.dimension, t.dimension), "Persons", "Events"],
                       [[r.label, format_number(r.persons), format_number(r.events)] for r in t.rows],
                       [False, True, True], len(t.rows)) for t in result.top if t.rows]
    return [numbers, trend, *lists]


def _live(gathered: GatheredSection, chart: str) -> list[Block]:
    result = gathered.result
    if not result.events:
        return [Notice("No events in the last minutes.")]
    times = [p.t.astimezone(timezone.utc).replace(tzinfo=None) for p in result.series]
    return [series(times, [Line("events per minute (UTC)", [p.events for p in result.series], PALETTE[0])],
                   kind=_series_kind(chart))]


DRAWERS: dict[str, Drawer] = {"trends": _trends, "funnel": _funnel, "retention": _retention, "sessions": _sessions,
                              "stickiness": _stickiness, "lifecycle": _lifecycle, "overview": _overview, "live": _live}


# --- key numbers -------------------------------------------------------------------------------------------

def _key_numbers(gathered: GatheredSection) -> list[Kpi]:
    """The overview's KPIs; on the overview template's key numbers, the funnel's conversion (a dash
    without a funnel) in place of the average session."""
    kpis = [_overview_kpi(k) for k in gathered.result.kpis]
    if not gathered.shows_conversion:
        return kpis
    at = [k.name for k in gathered.result.kpis].index("avg_session_duration")
    kpis[at] = _conversion_kpi(gathered.conversion)
    return kpis


def _overview_kpi(kpi: overview.Kpi) -> Kpi:
    percent, duration = kpi.name == "bounce_rate", kpi.name == "avg_session_duration"
    return _kpi(KPI_LABELS[kpi.name], kpi.value, kpi.previous, percent=percent, duration=duration,
                falling_is_good=kpi.name == "bounce_rate")


def _conversion_kpi(conversion: Conversion | None) -> Kpi:
    if conversion is None:
        return Kpi(KPI_LABELS["conversion"], MISSING, note="no funnel in this report")
    found = _kpi(KPI_LABELS["conversion"], conversion.value, conversion.previous, percent=True)
    return msgspec.structs.replace(found, note=f"{conversion.steps[0]} to {conversion.steps[1]}")


def _kpi(label: str, value: float | None, previous: float | None, *, percent: bool = False, duration: bool = False,
         falling_is_good: bool = False, compared: bool = True) -> Kpi:
    if not compared or previous is None:
        return Kpi(label, format_number(value, percent=percent, duration=duration))
    better = None if value is None or previous is None or value == previous else (value > previous) != falling_is_good
    return Kpi(label, format_number(value, percent=percent, duration=duration),
               format_change(value, previous, percent=percent),
               format_number(previous, percent=percent, duration=duration),
               "flat" if better is None else "up" if better else "down")


def _kpi_series(result: overview.OverviewResult, names: list[str], chart: str) -> Picture:
    chosen = [k for k in result.kpis if k.name in names]
    colours = colours_for(KPI_LABELS[k.name] for k in chosen)
    lines = [Line(KPI_LABELS[k.name], [p.value for p in k.series], colours[KPI_LABELS[k.name]]) for k in chosen]
    percent = names == ["bounce_rate"]
    duration = names == ["avg_session_duration"]
    return series(_wall([p.t for p in chosen[0].series]), lines, kind=_series_kind(chart),
                  value_text=lambda v: format_number(v, percent=percent, duration=duration))


# --- shared parts ------------------------------------------------------------------------------------------

def _number(name: str, value: float | None) -> str:
    return format_number(value, percent=name == "bounce_rate", duration=name.endswith("duration"))


def _series_kind(chart: str) -> str:
    return chart if chart in TIME_SERIES else "line"


def _series_names(result: Any, request: dict[str, Any]) -> dict[int, str]:
    """Each series' label, with its metric when another series has the same label (two series of all
    events, one counting events and one persons, are both labelled "all events")."""
    labels = {line.series: line.label for line in result.lines}
    asked = request.get("series", [])
    return {index: label + (f" ({asked[index].get('metric', 'events')})"
                            if list(labels.values()).count(label) > 1 and index < len(asked) else "")
            for index, label in labels.items()}


def _line_label(line: Any, names: dict[int, str]) -> str:
    name = names.get(line.series, line.label)
    return name + (f" · {_group(line.breakdown)}" if line.breakdown is not None else "")


def _group(value: str | None) -> str:
    """A breakdown group as a reader sees it: everyone, the rest, an empty value."""
    if value is None:
        return "Everyone"
    return "(other values)" if value == OTHER else value or "(none)"


def _wall(times: list[datetime]) -> list[datetime]:
    """Bucket starts at their local wall-clock time (they carry their zone's offset), naive for matplotlib."""
    return [t.replace(tzinfo=None) for t in times]
