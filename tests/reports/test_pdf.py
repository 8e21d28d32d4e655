"""PDF reports on the real engine: demo data in chDB, answers through the read service (Redis cache), the
PDF read back with pypdf (the numbers printed are the analyses' own) and drawn with poppler's pdftoppm
(no page is blank)."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pypdf
import pytest
from PIL import Image

from nexus.analyses.breakdown import OTHER
from nexus.dashboard.charts import format_change, format_number
from nexus.demo.load import load
from nexus.errors import InvalidRequest
from nexus.meta import dashboards, projects
from nexus.reports import Section, dashboard_sections, decode, gather, render_pdf, sections_for
from nexus.services.analyses import AnalysisService
from tests.analyses.journeys import insert_events
from tests.conftest import DEMO_END

NOW = DEMO_END - timedelta(hours=1)  # the demo data's last day is "today"
FUNNEL = {"steps": [{"event": "page_view"}, {"event": "signup"}, {"event": "purchase"}]}
GREEK, CHINESE, ARABIC = "Αναφορά πωλήσεων", "销售报告", "تقرير المبيعات"
GREEK_EVENT, CHINESE_EVENT, ARABIC_EVENT = "εγγραφή_χρήστη", "购买完成", "شراء المنتج"


@pytest.fixture(scope="module")
def project(client, redis):
    """A project of 20k demo events and three events named in Greek, Chinese and Arabic, and the read
    service answering for it at a fixed time."""
    project_id = projects.create(client, f"reports-{uuid.uuid4().hex[:8]}").project_id
    load(client, project_id, 20_000, seed=7, end=DEMO_END)
    insert_events(client, project_id, {"u-unicode": [(GREEK_EVENT, "2026-10-30T10:00"),
                                                     (CHINESE_EVENT, "2026-10-30T10:05"),
                                                     (ARABIC_EVENT, "2026-10-30T10:06")]})
    return project_id, AnalysisService(client, redis.client, clock=lambda: NOW)


def asker(project):
    project_id, service = project
    return lambda kind, request: service.answer(project_id, kind, request)


def render(report, **options) -> tuple[bytes, int]:
    sink = io.BytesIO()
    pages = render_pdf(report, sink, project_name=options.pop("project_name", "Demo shop"), generated_at=NOW,
                       **options)
    return sink.getvalue(), pages


def page_texts(data: bytes) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def squeezed(text: str) -> str:
    """Without whitespace: pypdf puts spaces between CJK characters."""
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def overview(project):
    """The overview template with a funnel: the gathered report, the progress it reported, the PDF."""
    definition = decode({"funnel": FUNNEL})
    progress: list[tuple[int, int]] = []
    report = gather(asker(project), definition, sections_for(definition), on_section=lambda *p: progress.append(p))
    data, pages = render(report, time_zone="Europe/Berlin")
    return report, progress, data, pages


def test_the_overview_report_prints_the_numbers_of_its_analyses(project, overview):
    report, progress, data, pages = overview
    texts = page_texts(data)
    assert pages == len(texts) > 2
    assert progress == [(i, 7) for i in range(8)]
    # Then the key numbers are the overview analysis' own, with their change against the period before
    result = asker(project)("overview", {"date_range": {"date_from": "-7d"}}).decoded()
    numbers = texts[1]
    assert "Key numbers" in numbers
    for kpi in result.kpis:
        if kpi.name == "avg_session_duration":
            continue  # the conversion takes its place
        percent = kpi.name == "bounce_rate"
        assert f"{format_number(kpi.value, percent=percent)} " \
               f"{format_change(kpi.value, kpi.previous, percent=percent)} " \
               f"vs {format_number(kpi.previous, percent=percent)} before" in numbers, kpi.name
    # And the conversion is the funnel's, in the range and in the 7 days before
    funnel = asker(project)("funnel", {**FUNNEL, "date_range": {"date_from": "-7d"}}).decoded()
    steps = funnel.groups[0].steps
    week_before = {"date_from": "2026-10-18", "date_to": "2026-10-24"}
    before = asker(project)("funnel", {**FUNNEL, "date_range": week_before}).decoded()
    reached = steps[-1].persons / steps[0].persons
    reached_before = before.groups[0].steps[-1].persons / before.groups[0].steps[0].persons
    assert f"Conversion {format_number(reached, percent=True)} " \
           f"{format_change(reached, reached_before, percent=True)}" in numbers
    assert "page_view to purchase" in numbers


def test_the_overview_report_s_tables_are_the_results_tables(project, overview):
    _, _, data, _ = overview
    text = " ".join(page_texts(data))
    result = asker(project)("overview", {"date_range": {"date_from": "-7d"}}).decoded()
    for name in ("pages", "referrers", "countries"):
        rows = next(t for t in result.top if t.dimension == name).rows
        assert rows
        for row in rows:
            assert f"{row.label} {format_number(row.persons)} {format_number(row.events)}" in text, (name, row)
    # The funnel's steps: persons and conversion from the first step
    funnel = asker(project)("funnel", {**FUNNEL, "date_range": {"date_from": "-7d"}}).decoded()
    for step in funnel.groups[0].steps:
        assert f"{step.step + 1}. {step.label} {format_number(step.persons)} " \
               f"{format_number(step.conversion_from_first, percent=True)}" in text


def test_every_page_is_numbered_and_the_contents_point_at_the_sections(overview):
    report, _, data, pages = overview
    texts = page_texts(data)
    for number, text in enumerate(texts, start=1):
        assert f"Page {number} of {pages}" in text
    # The title page: project, range (UTC: the project's zone), time of generation in the asked zone, contents
    assert "Demo shop — overview" in texts[0]
    assert "Range 25 Oct 2026 – 31 Oct 2026 (UTC)" in texts[0]
    assert "Generated 01 Nov 2026 00:00 (Europe/Berlin)" in texts[0]
    assert "Contents" in texts[0]
    for gathered in report.sections:
        title = gathered.section.title
        listed = re.search(re.escape(title) + r" (\d+)", texts[0])
        assert listed, title
        assert title in texts[int(listed[1]) - 1]
    # And the sections are the PDF's bookmarks
    outline = pypdf.PdfReader(io.BytesIO(data)).outline
    assert [item.title for item in outline] == [g.section.title for g in report.sections]
    # No text needed the CJK font, so it was neither read nor embedded
    assert not any("CJK" in name for name in embedded_fonts(data))


def embedded_fonts(data: bytes) -> set[str]:
    return {font.get_object()["/BaseFont"] for page in pypdf.PdfReader(io.BytesIO(data)).pages
            for font in page["/Resources"]["/Font"].values()}


def test_charts_are_pictures_and_no_page_is_blank(overview, tmp_path):
    _, _, data, pages = overview
    reader = pypdf.PdfReader(io.BytesIO(data))
    pictures = [Image.open(io.BytesIO(image.data)) for page in reader.pages for image in page.images]
    # The trend, the funnel's bars and the retention heatmap
    assert len(pictures) == 3
    assert all(picture.width > 300 and picture.height > 100 for picture in pictures)
    for number, png in enumerate(drawn_pages(data, tmp_path), start=1):
        assert inked(png) > 200, f"page {number} of {pages} is blank but for its footer"


def inked(png: Path) -> int:
    """Dark pixels of a page above its footer (the bottom 20 of 297 mm)."""
    page = Image.open(png).convert("L")
    body = page.crop((0, 0, page.width, round(page.height * (1 - 20 / 297))))
    return sum(body.histogram()[:200])


def drawn_pages(data: bytes, folder: Path) -> list[Path]:
    if shutil.which("pdftoppm") is None:
        message = "the PDF tests draw pages with poppler's pdftoppm: apt-get install -y poppler-utils"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    (folder / "report.pdf").write_bytes(data)
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(folder / "report.pdf"), str(folder / "page")], check=True,
                   timeout=120)
    found = sorted(folder.glob("page-*.png"))
    assert found
    return found


def test_names_in_greek_chinese_and_arabic_print_as_text(project, tmp_path):
    # Given a title, a note and event names in three scripts, and markup that must print as it is
    note = f"{GREEK}: σημείωση. {CHINESE}：备注。 {ARABIC}: ملاحظة.\n**not bold** <b>not html</b> $x^2$"
    definition = decode({"template": "custom", "title": f"{GREEK} {CHINESE} {ARABIC} {{nb}}", "sections": [
        {"title": "Γεγονότα 事件 أحداث", "note": note, "kind": "trends", "chart": "bar", "table": False,
         "request": {"series": [{"metric": "events"}], "breakdown": {"key": "event", "source": "column", "limit": 20},
                     "date_range": {"date_from": "-3d"}}},
        {"title": "Unicode events", "kind": "events", "request": {"where": {"filters": [
            {"key": "distinct_id", "op": "eq", "value": "u-unicode", "source": "column"}]}}},
    ]})
    report = gather(asker(project), definition, sections_for(definition))
    data, pages = render(report, project_name="Ελλάδα")
    text = " ".join(page_texts(data))
    flat = squeezed(text)
    for written in (GREEK, CHINESE, GREEK_EVENT, CHINESE_EVENT, "Γεγονότα 事件", "Ελλάδα", "σημείωση", "备注"):
        assert squeezed(written) in flat, written
    # Arabic is printed right to left: pypdf reads each word, not always in the order written
    for word in (*ARABIC.split(), *ARABIC_EVENT.split(), "ملاحظة", "أحداث"):
        assert word in text, word
    assert "**not bold** <b>not html</b> $x^2$" in text
    assert "{nb}" in text  # fpdf2's page-count alias, printed as written
    assert {"NotoSans", "NotoSansArabic", "NotoSansCJKSC"} <= {name.split("+")[1] for name in embedded_fonts(data)}
    # The events table lists the three events by name
    events = report.sections[1].table.column("event").to_pylist()
    assert sorted(events) == sorted([GREEK_EVENT, CHINESE_EVENT, ARABIC_EVENT])
    assert all(inked(png) > 200 for png in drawn_pages(data, tmp_path))


def test_a_custom_report_draws_each_kind_its_ways(project, tmp_path):
    # Given one section per way of drawing an analysis
    trend = {"series": [{"metric": "events"}, {"metric": "persons"}], "compare": True}
    by_event = {"series": [{"metric": "events"}], "breakdown": {"key": "event", "source": "column", "limit": 4}}
    sections = [
        {"title": "Numbers", "kind": "trends", "request": trend, "chart": "number"},
        {"title": "Lines", "kind": "trends", "request": trend, "chart": "line", "table": False},
        {"title": "Bars", "kind": "trends", "request": by_event, "chart": "bar", "table": False},
        {"title": "Pie", "kind": "trends", "request": by_event, "chart": "pie", "table": False},
        {"title": "Stacked", "kind": "trends", "request": by_event, "chart": "stacked_bar", "table": False},
        {"title": "Session totals", "kind": "sessions", "chart": "totals", "table": False},
        {"title": "Bounce rate", "kind": "sessions", "chart": "bounce_rate", "table": False},
        {"title": "Entry pages", "kind": "sessions", "chart": "entry_pages", "table": False},
        {"title": "Lifecycle", "kind": "lifecycle", "request": {"period": "week"}, "table": False},
        {"title": "Stickiness", "kind": "stickiness", "request": {"period": "day"}, "table": False},
        {"title": "Retention curve", "kind": "retention", "chart": "curve", "table": False,
         "request": {"start": {}, "returning": {}, "period": "week", "periods": 4}},
        {"title": "Pages per visit", "kind": "overview", "part": "sessions", "chart": "area", "table": False},
        {"title": "Browsers", "kind": "overview", "part": "top_browsers", "chart": "bar"},
    ]
    definition = decode({"template": "custom", "date_range": {"date_from": "-28d"}, "sections": sections})
    report = gather(asker(project), definition, sections_for(definition))
    data, pages = render(report)
    text = " ".join(page_texts(data))
    # Then the numbers are the lines' totals, each series named by its metric (both are "all events")
    trends = report.sections[0].result
    for line, metric in zip(trends.lines, ("events", "persons")):
        before = next(p for p in trends.previous if p.series == line.series)
        assert f"all events ({metric}) {format_number(line.total)} {format_change(line.total, before.total)}" in text
    # The pie's legend gives each event's share of the total
    lines = report.sections[3].result.lines
    total = sum(line.total for line in lines)
    for line in lines:
        group = "(other values)" if line.breakdown == OTHER else line.breakdown
        assert f"all events · {group} {format_number(line.total / total, percent=True)}" in text
    sessions = report.sections[5].result.lines[0].total
    assert f"Sessions {format_number(sessions['sessions'])}" in text
    assert f"Bounce rate {format_number(sessions['bounce_rate'], percent=True)}" in text
    # The browsers' rows: the bars' labels, then the table of persons and events
    browsers = report.sections[12].result.top
    for row in next(t for t in browsers if t.dimension == "browsers").rows:
        assert f"{row.label} {format_number(row.persons)} {format_number(row.events)}" in text
    # Every chart is a picture: all but the numbers and the session totals
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert sum(len(page.images) for page in reader.pages) == len(sections) - 2
    assert all(inked(png) > 200 for png in drawn_pages(data, tmp_path))


def test_fifty_sections_under_a_long_title_get_their_contents_pages(project):
    # Given the longest title (it wraps) and the most sections, each the same answer (asked once)
    title = "Quarterly review of the activity of every product line " * 4
    sections = [{"title": f"Section {i + 1}", "kind": "overview", "chart": "number", "part": "events"}
                for i in range(50)]
    definition = decode({"template": "custom", "title": title[:200], "sections": sections})
    report = gather(asker(project), definition, sections_for(definition))
    data, pages = render(report)
    texts = page_texts(data)
    contents = " ".join(texts[:3])
    listed = {int(number): int(page) for number, page in re.findall(r"Section (\d+) (\d+)", contents)}
    assert sorted(listed) == list(range(1, 51))
    for number, page in listed.items():
        assert f"Section {number} " in texts[page - 1]
    assert f"Page {pages} of {pages}" in texts[-1]


def test_a_long_table_prints_its_first_50_rows(project):
    definition = decode({"template": "custom", "sections": [
        {"title": "Latest events", "kind": "events", "request": {"limit": 80, "event": "page_view"}}]})
    report = gather(asker(project), definition, sections_for(definition))
    table = report.sections[0].table
    assert table.num_rows == 80
    data, pages = render(report)
    texts = page_texts(data)
    text = " ".join(texts)
    assert "First 50 of 80 rows." in text
    # Each printed row starts with its event's time, to the minute; the first is the newest event
    assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d", text)) == 50
    newest = table.slice(0, 1).to_pylist()[0]
    assert f"{newest['timestamp']:%Y-%m-%d %H:%M} page_view {newest['distinct_id']}" in text
    # One section: no contents page
    assert "Contents" not in texts[0]


def test_a_paths_section_pinned_as_a_sankey_prints_its_edges_as_a_table(project):
    """A PDF has no Sankey: the section falls back to the edges' table, named and counted as the result's."""
    definition = decode({"template": "custom", "date_range": {"date_from": "-28d"}, "sections": [
        {"title": "Flows", "kind": "paths", "chart": "sankey",
         "request": {"start": "/", "step_type": "pages", "steps": 3, "nodes_per_step": 3}}]})
    report = gather(asker(project), definition, sections_for(definition))
    result = report.sections[0].result
    assert result.edges
    text = squeezed(" ".join(page_texts(render(report)[0])))
    named = {n.id: n for n in result.nodes}
    top = max(result.edges, key=lambda e: e.value)
    assert squeezed(f"{named[top.source].name} {named[top.target].step} {named[top.target].name} "
                    f"{format_number(top.value)}") in text


def test_a_dashboard_prints_tile_by_tile_with_saved_queries_rows(project, client):
    project_id, _ = project
    dashboard = dashboards.ensure_default(client, project_id)
    saved = Section(title="Saved query", kind=dashboards.SQL_KIND, request={"query_id": "q_abc", "params": {}},
                    chart="table")
    sections = [*dashboard_sections(dashboard), saved]
    asked: list[dict] = []

    def rows(request: dict) -> pa.Table:
        asked.append(request)
        return pa.table({"country": ["GR", "CN"], "revenue": [1234.5, 99.0]})

    definition = decode({"title": dashboard.name})
    report = gather(asker(project), definition, sections, sql=rows)
    assert asked == [{"query_id": "q_abc", "params": {}}]
    data, _ = render(report)
    text = " ".join(page_texts(data))
    for tile in dashboard.tiles:
        assert tile.title in text
    assert "GR 1,234.5 CN 99" in text
    # Without a runner for saved queries, their sections say so
    report = gather(asker(project), definition, [saved])
    assert "saved SQL query" in " ".join(page_texts(render(report)[0]))


def test_a_project_without_events_gets_a_report_that_says_so(client, redis, tmp_path):
    project_id = projects.create(client, f"empty-{uuid.uuid4().hex[:8]}").project_id
    service = AnalysisService(client, redis.client, clock=lambda: NOW)
    definition = decode({"funnel": FUNNEL})
    report = gather(lambda kind, request: service.answer(project_id, kind, request), definition,
                    sections_for(definition))
    data, pages = render(report)
    text = " ".join(page_texts(data))
    assert "Events 0 0.0% vs 0 before" in text and "Bounce rate – Conversion –" in text
    assert "No events in this range." in text
    assert "Nobody entered this funnel in this range." in text
    assert "Nobody started in this range." in text
    assert text.count("Nothing in this range.") == 3  # the top pages, sources and countries
    assert all(inked(png) > 200 for png in drawn_pages(data, tmp_path))


def test_a_job_cancels_between_sections(project):
    definition = decode({})
    asked = []

    def answer(kind, request):
        asked.append(kind)
        return asker(project)(kind, request)

    def cancel(done, total):
        if done == 2:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        gather(answer, definition, sections_for(definition), on_section=cancel)
    # The key numbers and the trend share one answer; the retention after them was never asked
    assert asked == ["overview"]


def test_a_request_refused_when_it_runs_names_its_section(project):
    # Given a trend that only the engine's planning refuses: more minute buckets than allowed
    definition = decode({"template": "custom", "date_range": {"date_from": "-60d"}, "sections": [
        {"title": "ok", "kind": "overview"},
        {"title": "too fine", "kind": "trends", "request": {"series": [{"metric": "events"}], "interval": "minute"}}]})
    with pytest.raises(InvalidRequest) as refused:
        gather(asker(project), definition, sections_for(definition))
    assert refused.value.field == "sections[1].request.interval"
