"""Which sections a report has: the overview template's fixed ones, a custom definition's own, or one per
tile of a saved dashboard."""

from __future__ import annotations

from typing import Any

from nexus.meta.dashboards import Dashboard
from nexus.reports.definition import ReportDefinition, Section

# The overview template's headline numbers: the `overview` analysis' KPIs, with the funnel's conversion
# (when the definition names a funnel) in place of the average session (nexus.reports.gather).
KEY_NUMBERS = Section(title="Key numbers", kind="overview", chart="number", table=False)
TOP_LISTS = (("Top pages", "top_pages"), ("Top sources", "top_referrers"), ("Top countries", "top_countries"))
RECENT_WEEKS = "-8w"


def sections_for(definition: ReportDefinition) -> list[Section]:
    """The sections of a checked definition, in print order. The overview template: key numbers, events
    and persons per day, the funnel (when the definition has one), weekly retention, and the top pages,
    sources and countries; every overview section reads the same answer."""
    if definition.template == "custom":
        return list(definition.sections)
    funnel = [] if definition.funnel is None else [
        Section(title="Conversion funnel", kind="funnel", request=definition.funnel, chart="funnel", table=False)]
    return [
        KEY_NUMBERS,
        Section(title="Events and persons per day", kind="overview", chart="line", table=False),
        *funnel,
        _retention(definition.date_range),
        *(Section(title=title, kind="overview", part=part, chart="table") for title, part in TOP_LISTS),
    ]


def dashboard_sections(dashboard: Dashboard) -> list[Section]:
    """A saved dashboard as report sections, one per tile in grid order, each drawn with its tile's
    chart; a table only where the tile is one. A tile running a saved query stays a section of kind
    "sql" (request {"query_id", "params"}), whose rows `gather` takes from its `sql` runner."""
    return [Section(title=tile.title, kind=tile.kind, request=tile.request, chart=tile.chart,
                    table=tile.chart == "table") for tile in dashboard.tiles]


def _retention(date_range: dict[str, Any]) -> Section:
    """Weekly retention of any event. Under a relative range (the last 7 days) a week or two of cohorts
    says little, so the cohorts are the last 8 weeks'; a fixed range (a given month) keeps its own."""
    relative = str(date_range.get("date_from", "")).startswith("-") and date_range.get("date_to") is None
    request: dict[str, Any] = {"start": {}, "returning": {}, "period": "week", "periods": 8}
    if relative:
        request["date_range"] = {"date_from": RECENT_WEEKS}
    note = "Persons by the week of their first event, and the share of them active again in each later week."
    return Section(title="Weekly retention", note=note, kind="retention", request=request, chart="heatmap",
                   table=False)
