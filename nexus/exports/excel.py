"""Writes tables of Arrow record batches as an Excel workbook (.xlsx), one sheet per table: the one XLSX
writer of Nexus.

openpyxl's write-only mode streams each row to a temporary file as it is appended, so a table of any size
passes through in bounded memory; the workbook is put together in the sink at the end. Cells keep their
types (numbers, booleans, dates, datetimes, text); text that a spreadsheet would run as a formula gets a
leading quote, as in CSV (see exports.cells).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from itertools import chain, islice
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.workbook.child import INVALID_TITLE_REGEX
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet._writer import ALL_TEMP_FILES

from nexus.exports.cells import neutralized
from nexus.exports.stream import extensions_as_storage, nested_as_json

EXCEL_MAX_ROWS = 1_048_576  # rows per sheet incl. header

# Column widths are set before the first row is written (write-only mode writes them first), from the
# header and this many rows, in characters, at most MAX_COLUMN_WIDTH.
WIDTH_SAMPLE_ROWS = 1_000
MAX_COLUMN_WIDTH = 60

MAX_TITLE_LENGTH = 31
# Excel keeps this sheet name for itself.
RESERVED_TITLES = {"history"}

# Excel holds a number as a double and shows 15 significant digits: a larger integer (a cityHash64 id)
# would come out rounded, so it is written as text.
EXACT_INTEGER_LIMIT = 10**15

_BOLD = Font(bold=True)


def write_workbook(sheets: Iterable[tuple[str, Iterable[pa.RecordBatch]]], sink: BinaryIO, *,
                   on_rows: Callable[[int], None] | None = None, max_sheet_rows: int = EXCEL_MAX_ROWS) -> int:
    """Write each (title, batches) as its own sheet; returns total data rows written. on_rows(n) is called
    after each batch with the rows written so far (progress/cancellation hook: it may raise to abort).

    A table longer than a sheet (`max_sheet_rows` with its header) goes on over sheets "<title> (2)",
    "<title> (3)"..., listed in a last sheet "Notes". A table of no batches at all has no known columns and
    gets an empty sheet; a table of empty batches gets its header."""
    if max_sheet_rows < 2:
        raise ValueError(f"a sheet holds a header and at least one row, not max_sheet_rows={max_sheet_rows}")
    workbook = Workbook(write_only=True)
    tables = _Tables(workbook, on_rows, max_sheet_rows)
    try:
        for title, batches in sheets:
            tables.write(title, batches)
        tables.write_notes()
        workbook.save(sink)
    except BaseException:
        _discard(workbook)
        raise
    return tables.written


class _Tables:
    """Writes tables to a workbook's sheets, a table over as many sheets as its rows need."""

    def __init__(self, workbook: Workbook, on_rows: Callable[[int], None] | None, max_sheet_rows: int):
        self.workbook = workbook
        self.on_rows = on_rows
        self.max_sheet_rows = max_sheet_rows
        self.titles = _SheetTitles()
        self.splits: list[list[str]] = []  # the sheets of each table that did not fit on one
        self.written = 0

    def write(self, title: str, batches: Iterable[pa.RecordBatch]) -> None:
        sheet_titles = [self.titles.claim(title)]
        sheet = self.workbook.create_sheet(sheet_titles[-1])
        converted = (_Cells.of(batch, sheet) for batch in batches)
        sample = _first_rows(converted, WIDTH_SAMPLE_ROWS)
        header = sample[0].header if sample else []
        widths = _widths(header, sample)
        _lay_out(sheet, header, widths)
        room = self.max_sheet_rows - 1
        for cells in chain(sample, converted):
            rows = cells.rows()
            left = cells.row_count
            while left:
                if not room:
                    sheet_titles.append(self.titles.claim(title, len(sheet_titles) + 1))
                    sheet = self.workbook.create_sheet(sheet_titles[-1])
                    _lay_out(sheet, header, widths)
                    room = self.max_sheet_rows - 1
                taken = min(room, left)
                for row in islice(rows, taken):
                    sheet.append(row)
                room -= taken
                left -= taken
            self.written += cells.row_count
            if self.on_rows is not None:
                self.on_rows(self.written)
        if len(sheet_titles) > 1:
            self.splits.append(sheet_titles)

    def write_notes(self) -> None:
        """A last sheet that tells where each split table goes on, if any was split."""
        if not self.splits:
            return
        header = _texts(["Table", f"Continues on sheets (a sheet holds {self.max_sheet_rows:,} rows)"])
        notes = self.workbook.create_sheet(self.titles.claim("Notes"))
        _lay_out(notes, header, [MAX_COLUMN_WIDTH / 2, MAX_COLUMN_WIDTH])
        for sheet_titles in self.splits:
            notes.append([_text_cell(text, notes) for text in _texts([sheet_titles[0], ", ".join(sheet_titles[1:])])])


def _discard(workbook: Workbook) -> None:
    """Removes the rows written so far: openpyxl keeps each sheet's temporary file until `save` or the end
    of the process, and a worker that writes exports lives long."""
    for sheet in workbook.worksheets:
        if not sheet.closed:
            sheet.close()
        if sheet._writer.out in ALL_TEMP_FILES:
            sheet._writer.cleanup()


class _Cells:
    """One batch as Excel takes it: the header and a Python list of cell values per column."""

    def __init__(self, header: list[str], columns: list[list[Any]], row_count: int):
        self.header = header
        self.columns = columns
        self.row_count = row_count

    @classmethod
    def of(cls, raw: pa.RecordBatch, sheet: WriteOnlyWorksheet) -> _Cells:
        """The batch's cells, for `sheet` (openpyxl names a cell's sheet when it takes a cell object)."""
        batch = nested_as_json(extensions_as_storage(raw))
        header = [f"{field.name} (UTC)" if pa.types.is_timestamp(field.type) and field.type.tz else field.name
                  for field in batch.schema]
        typed = pa.RecordBatch.from_arrays([_excel_array(column) for column in batch.columns],
                                           names=batch.schema.names)
        return cls(_texts(header), [_values(column, sheet) for column in neutralized(typed).columns], batch.num_rows)

    def rows(self) -> Iterator[tuple[Any, ...]]:
        return zip(*self.columns)


def _excel_array(column: pa.Array) -> pa.Array:
    """The column in a type whose Python values openpyxl writes as the right kind of cell."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        return _excel_array(column.dictionary_decode())
    if pa.types.is_timestamp(kind):
        # Excel has no time zones: the UTC wall time (the header says UTC). Microseconds, because
        # nanosecond values come out of Arrow as pandas Timestamps, which openpyxl takes slowly.
        return column.cast(pa.timestamp("us" if kind.unit == "ns" else kind.unit), safe=False)
    if pa.types.is_decimal(kind):
        return column.cast(pa.float64())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return _binary_text(column)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        # Excel refuses control characters (openpyxl raises IllegalCharacterError); tab, CR and LF stay.
        # Removed before the formula check, so that "\x01=cmd" is caught as "=cmd".
        return pc.replace_substring_regex(column, ILLEGAL_CHARACTERS_RE.pattern, "")
    return column


def _binary_text(column: pa.Array) -> pa.Array:
    """Bytes as their UTF-8 text (a FixedString), or as hex where they are not text (a UUID's storage)."""
    if pa.types.is_fixed_size_binary(column.type):
        column = column.cast(pa.binary())
    try:
        return _excel_array(column.cast(pa.string()))
    except pa.ArrowInvalid:
        return pa.array([None if value is None else value.hex() for value in column.to_pylist()], pa.string())


def _values(column: pa.Array, sheet: WriteOnlyWorksheet) -> list[Any]:
    """The column's Python values; the few that Excel would show wrongly are put right one by one, after a
    vectorised check that finds them."""
    values = column.to_pylist()
    kind = column.type
    if pa.types.is_floating(kind) and not pc.all(pc.is_finite(column)).as_py():
        # NaN as an empty cell and infinities as text, as pandas writes them: Excel has neither.
        return [v if v is None or math.isfinite(v) else None if math.isnan(v) else str(v) for v in values]
    if pa.types.is_integer(kind) and len(column) - column.null_count:
        low, high = pc.min_max(column).values()
        if low.as_py() <= -EXACT_INTEGER_LIMIT or high.as_py() >= EXACT_INTEGER_LIMIT:
            return [v if v is None or -EXACT_INTEGER_LIMIT < v < EXACT_INTEGER_LIMIT else str(v) for v in values]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        errors = pc.fill_null(pc.is_in(column, value_set=pa.array(ERROR_CODES, kind)), False)
        if pc.any(errors).as_py():
            return [_text_cell(v, sheet) if v in ERROR_CODES else v for v in values]
    return values


def _text_cell(text: str, sheet: WriteOnlyWorksheet) -> Cell:
    """A cell that holds the text as text, even "#N/A" (which openpyxl takes for an error value)."""
    cell = WriteOnlyCell(sheet, value=text)
    cell.data_type = "s"
    return cell


def _texts(texts: list[str]) -> list[str]:
    """Text that is not a column's data (a header, a note) made safe as the data is."""
    column = _excel_array(pa.array(texts, pa.string()))
    return neutralized(pa.RecordBatch.from_arrays([column], names=["text"])).column(0).to_pylist()


def _first_rows(cells: Iterator[_Cells], wanted: int) -> list[_Cells]:
    """The first batches, up to and including the one that reaches `wanted` rows."""
    taken: list[_Cells] = []
    rows = 0
    for batch in cells:
        taken.append(batch)
        rows += batch.row_count
        if rows >= wanted:
            break
    return taken


def _widths(header: list[str], sample: list[_Cells]) -> list[float]:
    widths = [_shown_width(name) for name in header]
    left = WIDTH_SAMPLE_ROWS
    for cells in sample:
        for i, values in enumerate(cells.columns):
            widths[i] = max(widths[i], max(map(_shown_width, values[:left]), default=0))
        left -= cells.row_count
    return [min(MAX_COLUMN_WIDTH, width + 2) for width in widths]


def _shown_width(value: Any) -> int:
    """About how many characters wide Excel shows the value."""
    if value is None:
        return 0
    if isinstance(value, datetime):
        return len("yyyy-mm-dd hh:mm:ss")
    if isinstance(value, date):
        return len("yyyy-mm-dd")
    if isinstance(value, float):
        return len(f"{value:.11g}")
    if isinstance(value, Cell):
        return len(value.value)
    return max(map(len, str(value).splitlines()), default=0)


def _lay_out(sheet: WriteOnlyWorksheet, header: list[str], widths: list[float]) -> None:
    """The sheet's column widths, and its header in bold and frozen below it: all set before any row, as
    write-only mode writes them first."""
    for i, width in enumerate(widths, 1):
        sheet.column_dimensions[get_column_letter(i)].width = width
    if header:
        sheet.freeze_panes = "A2"
        cells = [_text_cell(name, sheet) for name in header]
        for cell in cells:
            cell.font = _BOLD
        sheet.append(cells)


class _SheetTitles:
    """Sheet titles as Excel takes them: at most 31 characters, none of []:*?/\\, not starting or ending
    with a quote, and unique without regard to case."""

    def __init__(self) -> None:
        self.taken: set[str] = set(RESERVED_TITLES)

    def claim(self, wanted: str, number: int = 1) -> str:
        """The title for `wanted`, or its `number`th sheet, " (2)" and on, or a further number if taken."""
        base = ILLEGAL_CHARACTERS_RE.sub("", INVALID_TITLE_REGEX.sub("_", wanted)).strip().strip("'")
        if not base:
            base = f"Sheet {len(self.taken) - len(RESERVED_TITLES) + 1}"
        while True:
            suffix = f" ({number})" if number > 1 else ""
            title = base[:MAX_TITLE_LENGTH - len(suffix)].rstrip("'") + suffix
            if title.casefold() not in self.taken:
                self.taken.add(title.casefold())
                return title
            number += 1
