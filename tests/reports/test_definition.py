"""Report definitions as a client sends them: what each template expands to, and every refusal naming the
JSON path of the value at fault, from bodies and from Structs built in Python."""

from __future__ import annotations

import msgspec
import pytest

from nexus.analyses import registry
from nexus.errors import InvalidRequest
from nexus.meta.dashboards import DEFAULT_TILES, SQL_KIND, Dashboard, Tile
from nexus.reports import ReportDefinition, Section, check, dashboard_sections, decode, sections_for
from nexus.reports.definition import with_range
from nexus.reports.templates import KEY_NUMBERS
from nexus.reports.views import NATURAL

TREND = {"series": [{"metric": "events"}]}
FUNNEL = {"steps": [{"event": "page_view"}, {"event": "purchase"}]}


def custom(*sections: dict, **fields: object) -> dict:
    return {"template": "custom", "sections": list(sections), **fields}


@pytest.mark.parametrize("body, field", [
    (custom({"title": "a", "kind": "trends", "request": TREND}, {"title": "b", "kind": "trend"}), "sections[1].kind"),
    (custom({"title": "a", "kind": "trends", "request": {"series": [{"metric": "nope"}]}}),
     "sections[0].request.series[0].metric"),
    (custom({"title": "a", "kind": "trends", "request": {**TREND, "interval": "fortnight"}}),
     "sections[0].request.interval"),
    (custom({"title": "a", "kind": "funnel", "request": {"steps": [{"event": "a"}]}}), "sections[0].request.steps"),
    (custom({"title": "a", "kind": "overview", "request": {"date_range": {"date_from": "someday"}}}),
     "sections[0].request.date_range.date_from"),
    (custom({"title": "a", "kind": "overview", "colour": "red"}), "sections[0].colour"),
    (custom({"title": "a"}), "sections[0].kind"),
    (custom({"title": "x" * 201, "kind": "overview"}), "sections[0].title"),
    (custom({"title": "   ", "kind": "overview"}), "sections[0].title"),
    (custom({"title": "a", "kind": "overview", "note": "n" * 2001}), "sections[0].note"),
    (custom({"title": "a", "kind": "overview", "chart": "radar"}), "sections[0].chart"),
    (custom({"title": "a", "kind": "overview", "part": "pages"}), "sections[0].part"),
    (custom({"title": "a", "kind": "trends", "request": TREND, "part": "top_pages"}), "sections[0].part"),
    (custom(), "sections"),
    (custom(*[{"title": "a", "kind": "overview"}] * 51), "sections"),
    (custom({"title": "a", "kind": "overview"}, funnel=FUNNEL), "funnel"),
    ({"sections": [{"title": "a", "kind": "overview"}]}, "sections"),
    ({"funnel": {"steps": [{"event": "a"}]}}, "funnel.steps"),
    ({"funnel": {**FUNNEL, "window_unit": "year"}}, "funnel.window_unit"),
    ({"date_range": {"date_from": "-7x"}}, "date_range.date_from"),
    ({"date_range": {"from": "-7d"}}, "date_range.from"),
    ({"template": "weekly"}, "template"),
    ({"title": "t" * 201}, "title"),
])
def test_a_refused_definition_names_the_value_at_fault(body, field):
    with pytest.raises(InvalidRequest) as refused:
        decode(body)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    # The same body as JSON text is refused the same way
    with pytest.raises(InvalidRequest) as again:
        decode(msgspec.json.encode(body))
    assert again.value.field == field


def test_malformed_json_is_an_invalid_request():
    with pytest.raises(InvalidRequest, match="malformed JSON"):
        decode(b'{"template": ')


def test_a_definition_built_in_python_is_checked_like_a_body():
    # Given Structs built in Python, where msgspec checks no bounds
    long_note = Section(title="a", kind="overview", note="n" * 2001)
    unknown_kind = Section(title="a", kind="sql", request={"query_id": "q_x"})
    with pytest.raises(InvalidRequest) as refused:
        check(ReportDefinition(template="custom", sections=[long_note]))
    assert refused.value.field == "sections[0].note"
    # A saved query's section comes only from a dashboard (dashboard_sections), never from a definition
    with pytest.raises(InvalidRequest) as refused:
        check(ReportDefinition(template="custom", sections=[unknown_kind]))
    assert refused.value.field == "sections[0].kind"


def test_the_report_range_is_laid_over_requests_without_one():
    report_range = {"date_from": "-30d"}
    assert with_range("trends", TREND, report_range) == {**TREND, "date_range": report_range}
    own = {**TREND, "date_range": {"date_from": "-1d"}}
    assert with_range("trends", own, report_range) == own
    # live has no date range: its request stays as it is
    assert with_range("live", {"minutes": 10}, report_range) == {"minutes": 10}
    # A request valid only with the report's range is checked with it
    with pytest.raises(InvalidRequest) as refused:
        decode(custom({"title": "a", "kind": "trends", "request": {**TREND, "interval": "minute"}},
                      date_range={"date_from": "-7x"}))
    assert refused.value.field == "date_range.date_from"


def test_the_overview_template_expands_to_its_fixed_sections():
    plain = sections_for(decode({}))
    assert [s.title for s in plain] == ["Key numbers", "Events and persons per day", "Weekly retention", "Top pages",
                                        "Top sources", "Top countries"]
    assert plain[0] == KEY_NUMBERS
    assert [s.part for s in plain[3:]] == ["top_pages", "top_referrers", "top_countries"]
    # Under a relative range, retention shows the last 8 weeks' cohorts; a fixed range keeps its own
    assert plain[2].request["date_range"] == {"date_from": "-8w"}
    month = {"date_from": "2026-10-01", "date_to": "2026-10-31"}
    fixed = sections_for(decode({"date_range": month}))
    assert "date_range" not in fixed[2].request
    assert with_range("retention", fixed[2].request, month)["date_range"] == month
    # A funnel adds its section after the trend
    with_funnel = sections_for(decode({"funnel": FUNNEL}))
    assert [(s.title, s.kind, s.request) for s in with_funnel[2:3]] == [("Conversion funnel", "funnel", FUNNEL)]


def test_a_custom_template_keeps_its_own_sections_in_order():
    sections = [{"title": "Τάσεις", "kind": "trends", "request": TREND, "chart": "bar", "table": False},
                {"title": "漏斗", "note": "ملاحظة", "kind": "funnel", "request": FUNNEL}]
    definition = decode(custom(*sections))
    assert sections_for(definition) == [msgspec.convert(s, Section) for s in sections]


def test_a_dashboard_becomes_one_section_per_tile():
    sql_tile = Tile(tile_id="t_sqltile1", title="Saved query", kind=SQL_KIND, chart="table",
                    request={"query_id": "q_abc", "params": {"days": 7}})
    tiles = [*DEFAULT_TILES, sql_tile]
    dashboard = Dashboard("d_defaultboard", "Default", "", tiles, True, "", None, None)  # type: ignore[arg-type]
    sections = dashboard_sections(dashboard)
    assert [(s.title, s.kind, s.request, s.chart) for s in sections] == \
        [(t.title, t.kind, t.request, t.chart) for t in tiles]
    # Charts as on the dashboard; a table only where the tile is one
    assert [s.table for s in sections] == [False] * len(DEFAULT_TILES) + [True]


def test_every_analysis_has_a_natural_chart():
    """A report section of any kind draws without naming a chart: a kind added without one fails here."""
    assert set(registry.ANALYSES) <= set(NATURAL)
