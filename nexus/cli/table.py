"""Prints a result as a text table while its rows arrive, in the look of the CLI's other tables.

A table needs its column widths before its first line, and a result may not fit in memory: so rows go
out a page at a time, each page as wide as its widest values, and a column only ever widens (a later
page with longer values shifts its own lines, never reflows earlier ones). On a terminal the table is
fitted to the screen, folding long values inside their column; written elsewhere, values are never cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TextIO

from rich.cells import cell_len, chop_cells

PAGE_ROWS = 1000
_MIN_WIDTH = 6  # a column squeezed to fit a terminal keeps at least this many cells


def write_table(columns: Sequence[str], rows: Iterable[Sequence[str]], out: TextIO, fit: int | None = None) -> int:
    """Write the header and every row (cells as text) to `out`; returns the number of rows. With `fit`
    (a terminal's width), columns are narrowed and values folded to stay within it."""
    widths = [0] * len(columns)
    header_done = False
    count = 0
    page: list[Sequence[str]] = []

    def flush() -> None:
        nonlocal widths, header_done
        for row in page:
            widths = [max(w, _longest_line(cell)) for w, cell in zip(widths, row)]
        if not header_done:
            widths = [max(w, _longest_line(name)) for w, name in zip(widths, columns)]
        if fit is not None:
            widths = _fitted(widths, fit)
        if not header_done:
            _write_row(out, columns, widths, "┃", fold=fit is not None)
            out.write("╇".join("━" * (w + 2) for w in widths).rstrip() + "\n")
            header_done = True
        for row in page:
            _write_row(out, row, widths, "│", fold=fit is not None)
        page.clear()

    for row in rows:
        page.append(row)
        count += 1
        if len(page) >= PAGE_ROWS:
            flush()
    flush()
    return count


def _write_row(out: TextIO, cells: Sequence[str], widths: list[int], separator: str, *, fold: bool) -> None:
    """One row, as many lines as its tallest cell: values with newlines, or folded to their width."""
    columns = [_cell_lines(cell, width, fold) for cell, width in zip(cells, widths)]
    for index in range(max(len(lines) for lines in columns) if columns else 1):
        parts = []
        for lines, width in zip(columns, widths):
            text = lines[index] if index < len(lines) else ""
            parts.append(" " + text + " " * max(0, width - cell_len(text)) + " ")
        out.write(separator.join(parts).rstrip() + "\n")


def _cell_lines(value: str, width: int, fold: bool) -> list[str]:
    lines = value.split("\n") if "\n" in value else [value]
    if not fold:
        return lines
    return [piece for line in lines for piece in (chop_cells(line, width) if cell_len(line) > width else [line])]


def _longest_line(value: str) -> int:
    return max(cell_len(line) for line in value.split("\n")) if "\n" in value else cell_len(value)


def _fitted(widths: list[int], total: int) -> list[int]:
    """Narrow the widest columns until the table fits `total` cells (each column takes 3 more: its padding
    and a separator), but none below _MIN_WIDTH."""
    widths = list(widths)
    excess = sum(widths) + 3 * len(widths) - 1 - total
    while excess > 0:
        widest = max(range(len(widths)), key=widths.__getitem__)
        if widths[widest] <= _MIN_WIDTH:
            break
        others = [w for i, w in enumerate(widths) if i != widest]
        step = min(excess, widths[widest] - max(_MIN_WIDTH, max(others, default=0)) or 1)
        widths[widest] -= step
        excess -= step
    return widths
