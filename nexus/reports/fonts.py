"""The report's bundled fonts (fonts/README.md says which scripts they cover and where they come from),
handed to fpdf2 as one family with fallbacks, so that a name in Greek, Chinese or Arabic prints the same on
any machine, with no system font installed.

Arabic letters join, and right-to-left runs are ordered, only when text is shaped (HarfBuzz, through
uharfbuzz). Shaping costs about 3 ms a line, most of a long table's time, and Latin, Greek or CJK text
prints the same without it: so it is switched on only for text in a script that needs it (`needs_shaping`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF

FOLDER = Path(__file__).parent / "fonts"
FAMILY = "noto"
# (family, regular file, bold file or None): the first is the main font, the others are tried in order
# for a character it lacks. A fallback without bold prints bold text in its regular weight.
FONTS = (
    (FAMILY, "NotoSans-Regular.ttf", "NotoSans-Bold.ttf"),
    ("noto-arabic", "NotoSansArabic-Regular.ttf", "NotoSansArabic-Bold.ttf"),
    ("noto-hebrew", "NotoSansHebrew-Regular.ttf", "NotoSansHebrew-Bold.ttf"),
    ("noto-cjk", "NotoSansCJKsc-Regular-subset.ttf", None),
)
# Combining marks, right-to-left scripts (Hebrew, Arabic, Syriac, Thaana, N'Ko), the Indic and South-East
# Asian scripts, and the Hebrew and Arabic presentation forms.
_SHAPED = re.compile("[\u0300-\u036f\u0590-\u08ff\u0900-\u0fff\u1000-\u109f\u1780-\u17ff\ufb1d-\ufdff"
                     "\ufe70-\ufeff]")


def install(pdf: FPDF, texts: Iterable[str]) -> None:
    """Register on `pdf` the main font and the fallbacks that `texts` (every text the document prints)
    need, and select the main font. A fallback is loaded only for characters the fonts before it lack:
    reading the CJK font costs ~0.4 s a document, and most reports have no CJK text."""
    missing = {ord(c) for text in texts for c in text} - _characters(FONTS[0][1])
    fallbacks = []
    for family, regular, bold in FONTS:
        if family != FAMILY:
            found = missing & _characters(regular)
            if not found:
                continue
            missing -= found
            fallbacks.append(family)
        pdf.add_font(family, "", FOLDER / regular)
        if bold:
            pdf.add_font(family, "B", FOLDER / bold)
    pdf.set_fallback_fonts(fallbacks, exact_match=False)
    pdf.set_font(FAMILY, size=10)


@functools.cache
def _characters(file: str) -> frozenset[int]:
    """The code points a font file draws."""
    return frozenset(TTFont(FOLDER / file, lazy=True).getBestCmap())


def needs_shaping(*texts: str) -> bool:
    return any(_SHAPED.search(text) for text in texts)
