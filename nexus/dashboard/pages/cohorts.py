"""Cohorts: the project's saved cohorts with their size now, and how the chosen one's size moved over the
page's range. Cohorts are defined through /v1/cohorts (an admin's change); this page reads them. Every
analysis page filters by a cohort through the global filter bar ("cohort", the cohort's id, in / not_in).
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from nexus.dashboard import charts, theme
from nexus.dashboard.cards import card
from nexus.dashboard.pages.shared import checked, html_table
from nexus.dashboard.session import Dashboard
from nexus.dashboard.shell import Context, page

PERIODS = ("day", "week", "month")  # cohort_size's intervals; the page's hour or minute reads as day


class Settings(param.Parameterized):
    cohort = param.String(default="")  # a saved cohort's id; empty: the project's first


def view(dashboard: Dashboard) -> pn.viewable.Viewable:
    settings = Settings()
    return page(dashboard, "cohorts", lambda ctx: body(ctx, settings), settings=settings,
                controls=lambda ctx: [builder(ctx, settings)])


def request(ctx: Context, cohort_id: str) -> dict[str, Any]:
    """The cohort_size request of the page: the global range and zone, its interval as a period."""
    interval = ctx.view.interval if ctx.view.interval in PERIODS else "day"
    return {"cohort": cohort_id, "date_range": ctx.view.date_range(), "timezone": ctx.timezone, "interval": interval}


def body(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    saved = ctx.reader.cohorts()
    if not saved:
        return theme.html("<div class='nx-notice' data-role='cohorts-empty'>This project has no cohorts yet: an admin "
                          "key defines them with POST /v1/cohorts (conditions on what persons did) or uploads a "
                          "list of ids with POST /v1/cohorts/upload.</div>")
    ids = [c.cohort_id for c in saved]
    chosen = settings.cohort if settings.cohort in ids else ids[0]
    name = next(c.name for c in saved if c.cohort_id == chosen)
    over_time = card(ctx, f"Size of {name} over time", "cohort_size", checked("cohort_size", request(ctx, chosen)),
                     lambda result, _: draw(ctx, result), chart="line", height=300)
    return pn.Column(over_time, _listing(ctx, saved, chosen), sizing_mode="stretch_width")


def draw(ctx: Context, result: Any, chart: str = "line") -> pn.viewable.Viewable:
    """A cohort_size result: its size at the end of each interval (`number`: its size now)."""
    if chart == "number":
        return theme.html(f"<div class='nx-kpi' data-role='cohort-size'>{charts.format_number(result.size)}</div>")
    series = [charts.SeriesData(label=result.name, times=list(result.buckets), values=[float(v) for v in result.sizes])]
    kind = chart if chart in ("line", "bar", "area") else "line"
    return pn.pane.Bokeh(charts.time_series(series, kind=kind, timezone=result.timezone, height=260),
                         sizing_mode="stretch_width")


def _listing(ctx: Context, saved: list[Any], chosen: str) -> pn.viewable.Viewable:
    """The project's cohorts: name, kind, what defines it, its size now and its id (users' text: escaped)."""
    rows = []
    for cohort in saved:
        size = ctx.reader.answer("cohort_size", {"cohort": cohort.cohort_id, "date_range": {"date_from": "today"},
                                                 "timezone": ctx.timezone}).decoded().size
        if cohort.kind == "static":
            what = f"a list ({cohort.source})"
        else:
            kinds = sorted({c.__struct_config__.tag for c in cohort.definition.conditions})
            what = f"{cohort.definition.match} of {len(cohort.definition.conditions)}: {', '.join(kinds)}"
        rows.append([("▶ " if cohort.cohort_id == chosen else "") + cohort.name, cohort.kind, what,
                     charts.format_number(size), cohort.cohort_id])
    return pn.Column(theme.html("<div class='nx-card-title'>Cohorts of this project</div>", margin=(10, 10, 0, 10)),
                     html_table(["Cohort", "Kind", "Defined by", "Persons now", "Id"], rows, numeric_from=3),
                     sizing_mode="stretch_width", css_classes=["nx-cohort-list"])


def builder(ctx: Context, settings: Settings) -> pn.viewable.Viewable:
    saved = ctx.reader.cohorts()
    options = {f"{c.name} ({c.cohort_id})": c.cohort_id for c in saved}
    current = settings.cohort if settings.cohort in options.values() else next(iter(options.values()), None)
    picker = pn.widgets.Select(label="Cohort", options=options, value=current, width=300, disabled=not options)
    picker.param.watch(lambda e: setattr(settings, "cohort", e.new or ""), "value")
    return pn.Row(picker, sizing_mode="stretch_width")
