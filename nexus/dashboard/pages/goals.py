"""Goals: how a saved goal converts — its conversions over time, the share of persons and sessions that
convert, the value they bring — and the same broken down by a property; with the project's goals listed.

Goals are defined through /v1/goals (an admin's change); this page reads them. The numbers are one answer
of the `goals` analysis without a breakdown (the KPIs and the chart) and one with it (the table).
"""

from __future__ import annotations

from html import escape
from typing import Any

import panel as pn
import param

from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages.shared import (Breakdowns, breakdown_controls, breakdown_of, checked, group_label,
                                          html_table, sharing)
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, empty, page

# (measure of a line's totals, label, format): the KPI row and the breakdown table's columns
MEASURES = [("conversions", "Conversions", {}), ("persons", "Converting persons", {}),
            ("person_rate", "Person conversion rate", {"percent": True}),
            ("session_rate", "Session conversion rate", {"percent": True}), ("value", "Value", {}),
            ("value_per_person", "Value per converting person", {})]


class Settings(Breakdowns):
    goal = param.String(default="")  # a saved goal's id; empty: the project's first


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    return page(dashboard, "goals", lambda ctx: body(ctx, settings), settings=settings,
                controls=lambda ctx: [builder(ctx, settings)])


def request(common: dict[str, Any], goal_id: str, breakdown: dict[str, Any] | None = None) -> dict[str, Any]:
    """The goals request the page sends; `common` is the shell's `ctx.common()` (with the interval)."""
    return {**common, "goals": [goal_id], **({"breakdown": breakdown} if breakdown else {})}


def body(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    saved = ctx.reader.goals()
    if not saved:
        return theme.html("<div class='nx-notice' data-role='goals-empty'>This project has no goals yet: an admin "
                          "key defines them with POST /v1/goals (an event with filters, or a page path pattern "
                          "such as /blog/**, and the property holding a conversion's value).</div>")
    ids = [g.goal_id for g in saved]
    chosen = settings.goal if settings.goal in ids else ids[0]
    ctx = sharing(ctx)  # the KPI row and the chart: one query
    asked = checked("goals", request(ctx.common(), chosen))
    cards = [card(ctx, "Goal in this range", "goals", asked, lambda result, _: draw(ctx, result, "totals"),
                  chart="totals", height=110),
             card(ctx, "Conversions over time", "goals", asked, lambda result, _: draw(ctx, result, "line"),
                  chart="line", height=320)]
    breakdown = breakdown_of(settings)
    if breakdown:
        by = checked("goals", request(ctx.common(), chosen, breakdown))
        cards.append(card(ctx, f"By {breakdown['key']}", "goals", by, lambda result, _: draw(ctx, result, "table"),
                          chart="table", height=240))
    return pn.Column(*cards, _listing(saved, chosen), sizing_mode="stretch_width")


def draw(ctx: Context, result: Any, chart: str = "line") -> pn.viewable.Viewable:
    """A goals result as `totals` (the range's numbers of each line), `table` (a row per goal and breakdown
    group) or its conversions over time (`line`, `bar`, `stacked_bar`, `area`: a line per goal and group)."""
    if chart == "totals":
        return pn.Row(*[_kpi(line, *measure) for line in result.lines for measure in MEASURES
                        if measure[0] not in ("value", "value_per_person") or line.total.value is not None],
                      sizing_mode="stretch_width", css_classes=["nx-goal-kpis"])
    if not any(line.total.conversions for line in result.lines):
        return empty("No conversions in this range.")
    if chart in ("table", "number", "pie"):
        return _table(result)
    kind = chart if chart in ("line", "bar", "stacked_bar", "area") else "line"
    series = [charts.SeriesData(label=_label(line), times=list(result.buckets), values=list(line.conversions),
                                colour_of=_label(line)) for line in result.lines]
    return pn.pane.Bokeh(charts.time_series(series, kind=kind, timezone=result.timezone, height=280),
                         sizing_mode="stretch_width")


def _label(line: Any) -> str:
    return line.name + (f" · {group_label(line.breakdown)}" if line.breakdown is not None else "")


def _kpi(line: Any, measure: str, label: str, style: dict[str, bool]) -> pn.viewable.Viewable:
    value = getattr(line.total, measure)
    shown = charts.format_number(value, **style)
    if measure.startswith("value") and line.currency and value is not None:
        shown = f"{shown} {line.currency}"
    return theme.html(f"<div class='nx-kpi-card' data-goal-kpi='{measure}'><div class='nx-kpi-label'>"
                      f"{escape(label)}</div><div class='nx-kpi'>{escape(shown)}</div></div>",
                      width=210, sizing_mode="fixed", margin=(5, 8))


def _table(result: Any) -> pn.viewable.Viewable:
    header = ["Goal", "Group", *(label for _, label, _ in MEASURES)]
    rows = [[line.name, group_label(line.breakdown),
             *(charts.format_number(getattr(line.total, name), **style) for name, _, style in MEASURES)]
            for line in result.lines]
    return html_table(header, rows, numeric_from=2)


def _listing(saved: list[Any], chosen: str) -> pn.viewable.Viewable:
    """The project's goals and what each counts (names and definitions are users' text: escaped in the table)."""
    rows = []
    for goal in saved:
        definition = goal.definition
        what = f"event {definition.event}" if definition.event is not None else f"page {definition.path}"
        if definition.where is not None:
            what += f" where {len(definition.where.leaves())} filter(s)"
        value = definition.value_property or ""
        rows.append([("▶ " if goal.goal_id == chosen else "") + goal.name, what,
                     value + (f" ({definition.currency})" if definition.currency else ""), goal.goal_id])
    return pn.Column(theme.html("<div class='nx-card-title'>Goals of this project</div>", margin=(10, 10, 0, 10)),
                     html_table(["Goal", "Converts on", "Value", "Id"], rows, numeric_from=9),
                     sizing_mode="stretch_width", css_classes=["nx-goal-list"])


def builder(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    saved = ctx.reader.goals()
    options = {f"{g.name} ({g.goal_id})": g.goal_id for g in saved}
    current = settings.goal if settings.goal in options.values() else next(iter(options.values()), None)
    picker = pn.widgets.Select(label="Goal", options=options, value=current, width=260, disabled=not options)
    picker.param.watch(lambda e: setattr(settings, "goal", e.new or ""), "value")
    return pn.Row(picker, *breakdown_controls(settings), sizing_mode="stretch_width")
