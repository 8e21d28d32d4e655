"""The report's PDF document (fpdf2): A4 pages with our margins, fonts and footer, and the few ways text
is put on them.

User text (titles, notes, names in charts and tables) is printed as plain text: fpdf2's markdown and
HTML are never switched on, control characters are dropped, and the page-count alias is one no user
text can hold (fpdf2 replaces `{nb}` anywhere on the page).
"""

from __future__ import annotations

import re
from typing import Any

from fpdf import FPDF

from nexus.reports import fonts

MARGIN = 15.0  # mm
INK, MUTED, RULE, SHADE, ZEBRA = (48, 48, 48), (107, 107, 107), (210, 210, 210), (236, 239, 242), (248, 249, 250)
PAGES = "{pages\u2060}"  # the page count's alias: `plain` removes the word joiner from user text
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\u2060]")


class Document(FPDF):
    """An A4 page with our margins, fonts and footer ("Page N of M"), and text helpers that print user
    text as plain text, shaped when its script needs it."""

    def __init__(self, title: str, texts: list[str]):
        """`texts`: every text the document will print, which decides the fonts it loads."""
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(True, margin=18)
        self.set_title(plain(title))
        self.set_creator("Nexus")
        fonts.install(self, texts)
        self.alias_nb_pages(PAGES)
        self.report_title = plain(title)

    @property
    def width(self) -> float:
        return self.w - 2 * MARGIN

    def footer(self) -> None:
        self.set_y(-12)
        self.style(8, MUTED)
        self.put(self.width * 0.75, 5, self.fitted(self.report_title, self.width * 0.75))
        self.set_text_shaping(False)
        self.cell(self.width * 0.25, 5, f"Page {self.page_no()} of {PAGES}", align="R")  # not `put`: no plain()

    def style(self, size: float, colour: tuple[int, int, int] = INK, bold: bool = False) -> None:
        self.set_font(fonts.FAMILY, "B" if bold else "", size)
        self.set_text_color(*colour)

    def put(self, width: float, height: float, text: str, **options: Any) -> None:
        """One line of plain text (a cell), shaped when its script needs it."""
        self.set_text_shaping(fonts.needs_shaping(text))
        self.cell(width, height, plain(text), **options)

    def paragraph(self, width: float, height: float, text: str) -> None:
        """Plain text wrapped in `width` mm from the current position; then on at the left margin."""
        self.set_text_shaping(fonts.needs_shaping(text))
        self.multi_cell(width, height, plain(text), align="L", new_x="LMARGIN", new_y="NEXT")

    def line_of(self, text: str, size: float, colour: tuple[int, int, int] = INK, bold: bool = False,
                height: float | None = None) -> None:
        """A paragraph of plain text across the page."""
        self.style(size, colour, bold)
        self.set_x(MARGIN)
        self.paragraph(self.width, height or size * 0.5, text)

    def fitted(self, text: str, width: float) -> str:
        """`text` on one line of `width` mm in the current font, cut with an ellipsis when longer."""
        text = plain(text).replace("\n", " ")
        self.set_text_shaping(fonts.needs_shaping(text))
        if self.get_string_width(text) <= width:
            return text
        low, high = 0, len(text)
        while low < high:  # the longest prefix that fits with its ellipsis
            middle = (low + high + 1) // 2
            if self.get_string_width(text[:middle] + "…") <= width:
                low = middle
            else:
                high = middle - 1
        return text[:low] + "…"

    def room(self, height: float) -> None:
        """Start a new page unless `height` mm still fit on this one."""
        if self.will_page_break(height):
            self.add_page()


def plain(text: str) -> str:
    """User text without control characters (line breaks stay, tabs become spaces)."""
    return _CONTROL.sub("", text.replace("\t", " "))


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
