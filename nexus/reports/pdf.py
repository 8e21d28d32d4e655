"""A gathered report as a PDF: a title page with the project, the range, the time of generation and the
contents, then each section: its title, note and blocks (key numbers, charts with their legends and row
labels, tables). The contents link to the sections, which are also the PDF's bookmarks."""

from __future__ import annotations

import io
import math
from datetime import datetime, timedelta
from typing import BinaryIO

from fpdf import FPDF
from fpdf.outline import OutlineSection

from nexus.dashboard.charts import PALETTE
from nexus.reports import views
from nexus.reports.document import INK, MARGIN, MUTED, RULE, SHADE, ZEBRA, Document, plain, rgb
from nexus.reports.gather import GatheredReport, GatheredSection, Period
from nexus.reports.pictures import LABELS, LegendItem, Picture
from nexus.reports.tables import TextTable
from nexus.timezones import zone

TONES = {"up": PALETTE[2], "down": PALETTE[3], "flat": "#6B6B6B"}
KPI_HEIGHT, KPI_GAP = 27.0, 4.0  # mm
TOC_HEADING, TOC_LINE = 11.0, 7.0  # mm: the contents' heading, and each line of it


def render_pdf(report: GatheredReport, sink: BinaryIO, *, project_name: str, generated_at: datetime,
               time_zone: str = "UTC") -> int:
    """Write the report to `sink`; returns its number of pages. `generated_at` is printed in `time_zone`."""
    title = report.definition.title or f"{project_name} — overview"
    drawn = [views.blocks(gathered) for gathered in report.sections]
    texts = [title, project_name, *(text for g in report.sections for text in (g.section.title, g.section.note)),
             *(text for blocks in drawn for block in blocks for text in _texts(block))]
    doc = Document(title, texts)
    _title_page(doc, report, title, project_name, generated_at.astimezone(zone(time_zone)), time_zone)
    for gathered, blocks in zip(report.sections, drawn):
        _section(doc, gathered, blocks, report.period)
    sink.write(doc.output())
    return doc.pages_count


def _title_page(doc: Document, report: GatheredReport, title: str, project: str, generated: datetime,
                time_zone: str) -> None:
    doc.add_page()
    doc.set_y(45)
    doc.set_draw_color(*rgb(PALETTE[0]))
    doc.set_line_width(1.2)
    doc.line(MARGIN, 40, MARGIN + 30, 40)
    doc.line_of(title, 24, bold=True, height=11)
    doc.ln(3)
    facts = [("Project", project), ("Range", _range_text(report.period) if report.period else
                                    _requested_range(report.definition.date_range)),
             ("Generated", f"{generated:%d %b %Y %H:%M} ({time_zone})")]
    for label, value in facts:
        doc.style(10, MUTED)
        doc.put(28, 7, label)
        doc.style(11)
        doc.paragraph(doc.width - 28, 7, value)
    if len(report.sections) > 1:
        doc.ln(10)
        first = math.floor((doc.page_break_trigger - doc.y - TOC_HEADING) / TOC_LINE)  # lines left on this page
        later = math.floor((doc.page_break_trigger - doc.t_margin) / TOC_LINE)
        doc.insert_toc_placeholder(_contents, pages=1 + max(0, math.ceil((len(report.sections) - first) / later)))
    else:
        doc.add_page()


def _contents(doc: FPDF, outline: list[OutlineSection]) -> None:
    assert isinstance(doc, Document)
    doc.set_x(MARGIN)
    doc.line_of("Contents", 14, bold=True, height=TOC_HEADING - 2)
    doc.ln(2)
    for entry in outline:
        link = doc.add_link(page=entry.page_number)
        doc.style(10)
        doc.put(doc.width - 20, TOC_LINE, doc.fitted(entry.name, doc.width - 22), link=link)
        doc.style(10, MUTED)
        doc.put(20, TOC_LINE, str(entry.page_number), align="R", link=link, new_x="LMARGIN", new_y="NEXT")


def _section(doc: Document, gathered: GatheredSection, blocks: list[views.Block], period: Period | None) -> None:
    section = gathered.section
    # The heading stays with its first block: a chart alone atop the next page reads as another section's.
    doc.room(25 + (min(_height(doc, blocks[0]), 150) if blocks else 0))
    doc.ln(4 if doc.y > doc.t_margin + 1 else 0)
    doc.start_section(plain(section.title) or "—")
    doc.line_of(section.title, 15, bold=True, height=8)
    if gathered.period and period and (gathered.period.date_from, gathered.period.date_to) != \
            (period.date_from, period.date_to):
        doc.line_of(_range_text(gathered.period), 8.5, MUTED)
    if section.note:
        doc.ln(1)
        doc.line_of(section.note, 9.5, height=5)
    doc.ln(3)
    for block in blocks:
        _BLOCKS[type(block)](doc, block)
        doc.ln(4)


# --- blocks ------------------------------------------------------------------------------------------------

def _kpis(doc: Document, block: views.Kpis) -> None:
    """Boxes of three to a row: label, value, change against the previous period."""
    gap, height, per_row = KPI_GAP, KPI_HEIGHT, 3
    width = (doc.width - gap * (per_row - 1)) / per_row
    for start in range(0, len(block.items), per_row):
        doc.room(height + gap)
        top = doc.y
        for k, kpi in enumerate(block.items[start:start + per_row]):
            left = MARGIN + k * (width + gap)
            doc.set_fill_color(*SHADE)
            doc.rect(left, top, width, height, style="F")
            doc.set_xy(left + 3, top + 2.5)
            doc.style(8.5, MUTED)
            doc.put(width - 6, 5, doc.fitted(kpi.label, width - 6))
            doc.set_xy(left + 3, top + 7.5)
            doc.style(17, bold=True)
            doc.put(width - 6, 9, kpi.value)
            doc.set_xy(left + 3, top + 17.5)
            if kpi.change:
                doc.style(8.5, rgb(TONES[kpi.tone]), bold=True)
                doc.put(doc.get_string_width(kpi.change) + 1.5, 4.5, kpi.change)
                doc.style(8, MUTED)
                doc.put(width - 6 - doc.get_string_width(kpi.change) - 1.5, 4.5,
                         doc.fitted(f"vs {kpi.previous} before", width - 8 - doc.get_string_width(kpi.change)))
            if kpi.note:
                doc.set_xy(left + 3, top + 22)
                doc.style(7, MUTED)
                doc.put(width - 6, 4, doc.fitted(kpi.note, width - 6))
        doc.set_xy(MARGIN, top + height + gap)


def _picture(doc: Document, picture: Picture) -> None:
    scale = 25.4  # mm per inch: pictures are drawn at their printed size
    width, height = picture.width * scale, picture.height * scale
    legend_height = 0.0 if picture.beside else _legend_height(doc, picture)
    doc.room(height + legend_height)
    top = doc.y
    left = MARGIN + (LABELS * scale if picture.labels else 0.0)
    doc.image(io.BytesIO(picture.png), x=left, y=top, w=width, h=height)
    doc.style(8)
    for label, row in zip(picture.labels, picture.rows):
        doc.set_xy(MARGIN, top + row * height - 2.5)
        doc.put(LABELS * scale - 2, 5, doc.fitted(label, LABELS * scale - 3), align="R")
    if picture.beside:
        doc.set_xy(MARGIN + width + 6, top + 4)
        for item in picture.legend:
            _legend_item(doc, item, doc.width - width - 8)
            doc.set_xy(MARGIN + width + 6, doc.y + 5.5)
        doc.set_xy(MARGIN, top + height)
        return
    doc.set_xy(MARGIN, top + height + 1)
    _legend(doc, picture)


def _legend(doc: Document, picture: Picture) -> None:
    """Legend entries side by side, wrapping onto new lines."""
    x = MARGIN
    for item in picture.legend:
        room = min(_legend_width(doc, item), doc.width)
        if x + room > MARGIN + doc.width:
            x = MARGIN
            doc.set_y(doc.y + 5.5)
        doc.set_x(x)
        _legend_item(doc, item, room)
        x += room + 4
    if picture.legend:
        doc.set_xy(MARGIN, doc.y + 5.5)


def _legend_item(doc: Document, item: LegendItem, room: float) -> None:
    x, y = doc.x, doc.y
    doc.set_draw_color(*rgb(item.colour))
    doc.set_fill_color(*rgb(item.colour))
    if item.dashed:
        doc.set_line_width(0.5)
        doc.set_dash_pattern(dash=1, gap=0.7)
        doc.line(x, y + 2.5, x + 5, y + 2.5)
        doc.set_dash_pattern()
    else:
        doc.rect(x, y + 1, 5, 3, style="F")
    doc.style(8)
    doc.set_xy(x + 6.5, y)
    doc.put(room - 6.5, 5, doc.fitted(item.label, room - 6.5))


def _legend_width(doc: Document, item: LegendItem) -> float:
    doc.style(8)
    return 6.5 + doc.get_string_width(plain(item.label)) + 1


def _legend_height(doc: Document, picture: Picture) -> float:
    total = sum(_legend_width(doc, item) + 4 for item in picture.legend)
    return 6.5 * math.ceil(total / doc.width) if picture.legend else 0.0


def _table(doc: Document, table: TextTable) -> None:
    """Rows of cells, one line each (text cut to its column), under a shaded heading repeated on every
    page; numbers right-aligned; "first N of M rows" when the table was cut. Drawn with plain cells:
    fpdf2's table() wraps and measures every cell twice, several times slower on a 50-row table."""
    size = 8.0 if len(table.columns) <= 6 else 7.0
    pad = 1.5
    doc.style(size, bold=True)
    headings = [doc.get_string_width(plain(name)) for name in table.columns]
    doc.style(size)
    widest = [max((doc.get_string_width(plain(row[j])) for row in table.rows), default=0.0)
              for j in range(len(table.columns))]
    widths = _fit_widths([max(h, w) + 2 * pad + 0.5 for h, w in zip(headings, widest)],
                         table.whole or table.numeric, doc.width)
    height = size * 0.45 + 2.2
    align = ["R" if numeric else "L" for numeric in table.numeric]
    doc.c_margin = pad
    doc.room(height * (min(len(table.rows), 4) + 1))
    _table_row(doc, table.columns, widths, align, height, size, heading=True)
    for index, cells in enumerate(table.rows):
        if doc.will_page_break(height):
            doc.add_page()
            _table_row(doc, table.columns, widths, align, height, size, heading=True)
        _table_row(doc, cells, widths, align, height, size, zebra=index % 2 == 1)
    doc.c_margin = 1.0
    if table.total > len(table.rows):
        doc.ln(1.5)
        doc.line_of(f"First {len(table.rows)} of {table.total:,} rows.", 8, MUTED)


def _fit_widths(natural: list[float], whole: list[bool], page: float) -> list[float]:
    """Column widths as wide as their text, the table at least half the page (so a small one does not look
    lost) and at most all of it: when too wide, the widest text columns give way, each cut to the same
    width, while columns of numbers and times (`whole`) and short texts stay whole."""
    total = sum(natural)
    if total <= page:
        return [w * max(1.0, page * 0.5 / total) for w in natural]
    kept = sum(w for w, keep in zip(natural, whole) if keep)
    if kept >= page * 0.8:  # mostly numbers: every column gives way
        return [w * page / total for w in natural]
    cuttable = sorted(w for w, keep in zip(natural, whole) if not keep)
    for index, width in enumerate(cuttable):
        cut = (page - kept) / (len(cuttable) - index)
        if width > cut:
            return [w if keep else min(w, cut) for w, keep in zip(natural, whole)]
        kept += width
    return natural


def _table_row(doc: Document, cells: list[str], widths: list[float], align: list[str], height: float,
               size: float, *, heading: bool = False, zebra: bool = False) -> None:
    doc.style(size, MUTED if heading else INK, bold=heading)
    doc.set_fill_color(*(SHADE if heading else ZEBRA))
    doc.set_x(MARGIN)
    top = doc.y
    for text, width, side in zip(cells, widths, align):
        doc.put(width, height, doc.fitted(text, width - 2 * doc.c_margin), align=side, fill=heading or zebra)
    doc.set_draw_color(*RULE)
    doc.set_line_width(0.2)
    doc.line(MARGIN, top + height, MARGIN + sum(widths), top + height)
    doc.set_xy(MARGIN, top + height)


def _notice(doc: Document, notice: views.Notice) -> None:
    doc.room(10)
    doc.line_of(notice.text, 9.5, MUTED, height=6)


_BLOCKS = {views.Kpis: _kpis, Picture: _picture, TextTable: _table, views.Notice: _notice}


def _height(doc: Document, block: views.Block) -> float:
    """About how much of a page a block needs before it can break (a table: its heading and 4 rows)."""
    if isinstance(block, Picture):
        return block.height * 25.4 + (0.0 if block.beside else _legend_height(doc, block))
    if isinstance(block, views.Kpis):
        return KPI_HEIGHT + KPI_GAP
    return 40.0 if isinstance(block, TextTable) else 10.0


def _texts(block: views.Block) -> list[str]:
    """The text a block prints."""
    if isinstance(block, views.Kpis):
        return [text for kpi in block.items for text in (kpi.label, kpi.value, kpi.change, kpi.previous, kpi.note)]
    if isinstance(block, Picture):
        return [*(item.label for item in block.legend), *block.labels]
    if isinstance(block, TextTable):
        return [*block.columns, *(cell for row in block.rows for cell in row)]
    return [block.text]


# --- text --------------------------------------------------------------------------------------------------

def _range_text(period: Period) -> str:
    """The range in its own time zone: whole local days as dates (the end included), else times."""
    tz = zone(period.timezone)
    start, end = period.date_from.astimezone(tz), period.date_to.astimezone(tz)
    if (start.hour, start.minute, end.hour, end.minute) == (0, 0, 0, 0):
        last = (end - timedelta(days=1)).date()
        shown = f"{start:%a %d %b %Y}" if last == start.date() else f"{start:%d %b %Y} – {last:%d %b %Y}"
    else:
        shown = f"{start:%d %b %Y %H:%M} – {end:%d %b %Y %H:%M}"
    return f"{shown} ({period.timezone})"


def _requested_range(date_range: dict[str, object]) -> str:
    start, end = date_range.get("date_from", "-7d"), date_range.get("date_to")
    return f"{start} – {end}" if end else str(start)
