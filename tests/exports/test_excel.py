"""Excel exports: typed cells, formula-safe text, a readable header, safe sheet titles, tables split over
sheets; each workbook read back with openpyxl (and pandas), as a user's spreadsheet would read it."""

from __future__ import annotations

import io
import os
from datetime import date, datetime, timezone
from decimal import Decimal

import openpyxl
import pandas as pd
import pyarrow as pa
import pytest
from openpyxl.worksheet._writer import ALL_TEMP_FILES

from nexus.exports.excel import MAX_COLUMN_WIDTH, write_workbook
from nexus.exports.stream import encoded, write_batches


def workbook_of(sheets, **options) -> openpyxl.Workbook:
    sink = io.BytesIO()
    write_workbook(sheets, sink, **options)
    return openpyxl.load_workbook(io.BytesIO(sink.getvalue()))


def rows_of(sheet) -> list[tuple]:
    return [tuple(cell.value for cell in row) for row in sheet.iter_rows()]


def test_cells_keep_their_types():
    batch = pa.RecordBatch.from_pydict({
        "ts": pa.array([datetime(2024, 3, 1, 9, 30, 15, 250_000, tzinfo=timezone.utc), None], pa.timestamp("ms", tz="Europe/Paris")),
        "local": pa.array([datetime(2024, 3, 1, 9, 30), None], pa.timestamp("ns")),
        "day": pa.array([date(2024, 2, 29), None]),
        "count": pa.array([3, None], pa.int64()),
        "share": pa.array([0.25, float("nan")]),
        "revenue": pa.array([Decimal("12.50"), None], pa.decimal128(38, 9)),
        "paid": pa.array([True, None]),
        "plan": pa.array(["42", None]),
        "nothing": pa.array([None, None], pa.null()),
    })
    sheet = workbook_of([("types", [batch])])["types"]
    # Excel has no time zones: tz-aware columns are written as UTC wall time and say so in the header.
    assert rows_of(sheet)[0] == ("ts (UTC)", "local", "day", "count", "share", "revenue", "paid", "plan", "nothing")
    ts, local, day, count, share, revenue, paid, plan, nothing = sheet[2]
    assert ts.value == datetime(2024, 3, 1, 9, 30, 15, 250_000) and ts.is_date and "h" in ts.number_format
    assert local.value == datetime(2024, 3, 1, 9, 30) and local.is_date
    assert day.is_date and day.value.date() == date(2024, 2, 29) and "h" not in day.number_format
    assert (count.value, count.data_type) == (3, "n")
    assert (share.value, share.data_type) == (0.25, "n")
    assert (revenue.value, revenue.data_type) == (12.5, "n")
    assert (paid.value, paid.data_type) == (True, "b")
    assert (plan.value, plan.data_type) == ("42", "s")
    assert nothing.value is None
    # Nulls, and NaN (Excel has none), are empty cells.
    assert all(cell.value is None for cell in sheet[3])


def test_pandas_reads_the_columns_with_their_types():
    batch = pa.RecordBatch.from_pydict({
        "ts": pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, 12, tzinfo=timezone.utc)],
                       pa.timestamp("us", tz="UTC")),
        "n": [1, 2], "x": [0.5, 1.5], "ok": [True, False], "name": ["a", "b"],
    })
    sink = io.BytesIO()
    write_workbook([("t", [batch])], sink)
    frame = pd.read_excel(io.BytesIO(sink.getvalue()), sheet_name="t")
    assert list(frame.columns) == ["ts (UTC)", "n", "x", "ok", "name"]
    assert frame["ts (UTC)"].tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02 12:00")]
    assert str(frame["n"].dtype) == "int64" and str(frame["x"].dtype) == "float64"
    assert str(frame["ok"].dtype) == "bool" and frame["name"].tolist() == ["a", "b"]


def test_values_excel_cannot_hold_are_written_as_text():
    batch = pa.RecordBatch.from_pydict({
        "id": pa.array([18446744073709551615, 7], pa.uint64()),
        "ratio": pa.array([float("inf"), float("-inf")]),
        "#N/A": ["#N/A", "#DIV/0!"],
    })
    sheet = workbook_of([("t", [batch])])["t"]
    assert [(c.value, c.data_type) for c in sheet[1]] == [("id", "s"), ("ratio", "s"), ("#N/A", "s")]
    # A 20-digit id as a number would show rounded to 15 digits.
    assert [(c.value, c.data_type) for c in sheet[2]] == [("18446744073709551615", "s"), ("inf", "s"), ("#N/A", "s")]
    assert [(c.value, c.data_type) for c in sheet[3]] == [(7, "n"), ("-inf", "s"), ("#DIV/0!", "s")]


def test_header_is_bold_frozen_and_columns_are_as_wide_as_their_text():
    batch = pa.RecordBatch.from_pydict({
        "id": ["a-rather-long-identifier-0001"],
        "a_long_column_name": [1],
        "url": ["https://example.com/" + "x" * 200],
    })
    sheet = workbook_of([("t", [batch])])["t"]
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.b for cell in sheet[1]) and not sheet["A2"].font.b
    widths = [sheet.column_dimensions[letter].width for letter in "ABC"]
    assert widths[0] >= len("a-rather-long-identifier-0001") > len("id")
    assert len("a_long_column_name") <= widths[1] < 30
    assert widths[2] == MAX_COLUMN_WIDTH


def test_formula_like_text_is_written_as_quoted_text():
    risky = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\x01=cmd|' /C calc'!A0"]
    batch = pa.RecordBatch.from_pydict({"=HYPERLINK(\"http://x\")": risky, "n": list(range(len(risky)))})
    sheet = workbook_of([("t", [batch])])["t"]
    header = sheet["A1"]
    assert (header.value, header.data_type) == ("'=HYPERLINK(\"http://x\")", "s")
    cells = [row[0] for row in sheet.iter_rows(min_row=2)]
    assert all(cell.data_type == "s" for cell in cells)
    # (lxml, through which openpyxl writes, keeps the carriage return as a character reference)
    assert [cell.value for cell in cells] == ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "'=cmd|' /C calc'!A0"]


def test_text_round_trips_and_control_characters_are_dropped():
    texts = ['say "hi", then go', "line one\nline two", "a,b;c", "café 😀 日本", "  padded  ", "bell\x07 nul\x00 esc\x1b 😀"]
    sheet = workbook_of([("t", [pa.RecordBatch.from_pydict({"text": texts})])])["t"]
    assert [row[0] for row in rows_of(sheet)[1:]] == texts[:-1] + ["bell nul esc 😀"]


def test_nested_and_extension_columns_are_json_text():
    batch = pa.RecordBatch.from_pydict({
        "tags": pa.array([["a", "b"], None]),
        "props": pa.array([[("plan", 1)], []], pa.map_(pa.string(), pa.int64())),
        "pair": pa.array([{"x": 1, "y": "z"}, None]),
    })
    sheet = workbook_of([("t", [batch])])["t"]
    assert rows_of(sheet)[1:] == [('["a","b"]', '{"plan":1}', '{"x":1,"y":"z"}'), (None, "{}", None)]


def test_clickhouse_results_export_with_every_common_type(client):
    sql = """SELECT toDateTime64('2024-05-01 10:00:00.123', 3, 'UTC') AS ts, toDate('2024-05-01') AS day,
                    toDecimal128('12.5', 9) AS revenue, toUInt64(42) AS events, [1, 2] AS steps,
                    map('plan', 'pro') AS props, CAST('{"a": 1}' AS JSON) AS payload,
                    toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') AS uuid, '=cmd' AS name, toNullable(NULL) AS missing"""
    with client.query_arrow_stream(sql, settings={"output_format_arrow_string_as_string": 1}) as stream:
        sheet = workbook_of([("clickhouse", stream)])["clickhouse"]
    assert rows_of(sheet) == [
        ("ts (UTC)", "day", "revenue", "events", "steps", "props", "payload", "uuid", "name", "missing"),
        (datetime(2024, 5, 1, 10, 0, 0, 123_000), datetime(2024, 5, 1), 12.5, 42, "[1,2]", '{"plan":"pro"}',
         '{"a":1}', "61f0c4045cb311e7907ba6006ad3dba0", "'=cmd", None),
    ]


def test_a_table_longer_than_a_sheet_goes_on_over_numbered_sheets_listed_in_notes():
    batches = [pa.RecordBatch.from_pydict({"n": list(range(start, start + 3))}) for start in (0, 3, 6)]
    progress: list[int] = []
    sink = io.BytesIO()
    # Given sheets of a header and 4 rows, when a table of 9 rows in batches of 3 is written
    written = write_workbook([("events", batches), ("small", batches[:1])], sink, on_rows=progress.append,
                             max_sheet_rows=5)
    book = openpyxl.load_workbook(io.BytesIO(sink.getvalue()))
    # Then it goes on over 3 sheets, each with the header, and a last sheet says where
    assert book.sheetnames == ["events", "events (2)", "events (3)", "small", "Notes"]
    assert [rows_of(book[name]) for name in book.sheetnames[:3]] == [
        [("n",), (0,), (1,), (2,), (3,)], [("n",), (4,), (5,), (6,), (7,)], [("n",), (8,)]]
    assert book["events (2)"].freeze_panes == "A2" and book["events (3)"]["A1"].font.b
    assert rows_of(book["Notes"])[1:] == [("events", "events (2), events (3)")]
    assert written == 12 and progress == [3, 6, 9, 12]


def test_a_table_that_just_fills_a_sheet_is_not_split():
    batch = pa.RecordBatch.from_pydict({"n": [1, 2, 3, 4]})
    book = workbook_of([("events", [batch])], max_sheet_rows=5)
    assert book.sheetnames == ["events"]


def test_sheet_titles_are_made_valid_and_unique():
    one = [pa.RecordBatch.from_pydict({"n": [1]})]
    titles = ["Q1: [revenue]/*?\\", "Events", "events", "", "History", "'quoted'", "x" * 40, "x" * 40]
    book = workbook_of([(title, one) for title in titles])
    assert book.sheetnames == ["Q1_ _revenue_____", "Events", "events (2)", "Sheet 4", "History (2)", "quoted",
                               "x" * 31, "x" * 27 + " (2)"]


def test_an_empty_table_gets_its_header():
    empty = pa.RecordBatch.from_pydict({"ts": pa.array([], pa.timestamp("ms", tz="UTC")), "event": pa.array([], pa.string())})
    book = workbook_of([("empty", [empty]), ("no batches", [])])
    assert rows_of(book["empty"]) == [("ts (UTC)", "event")]
    assert book["empty"].freeze_panes == "A2"
    assert rows_of(book["no batches"]) == []


def test_an_abort_from_on_rows_leaves_no_temporary_files():
    def cancelled(rows: int) -> None:
        raise KeyboardInterrupt

    known = set(ALL_TEMP_FILES)
    with pytest.raises(KeyboardInterrupt):
        write_workbook([("t", [pa.RecordBatch.from_pydict({"n": [1]})])], io.BytesIO(), on_rows=cancelled)
    left = [path for path in ALL_TEMP_FILES if path not in known and os.path.exists(path)]
    assert left == []


def test_write_batches_writes_a_one_sheet_workbook_and_encoded_refuses_xlsx():
    batch = pa.RecordBatch.from_pydict({"event": ["signup", "=cmd"], "n": [1, 2]})
    sink = io.BytesIO()
    assert write_batches([batch], "xlsx", sink) == 2
    book = openpyxl.load_workbook(io.BytesIO(sink.getvalue()))
    assert book.sheetnames == ["Export"]
    assert rows_of(book["Export"]) == [("event", "n"), ("signup", 1), ("'=cmd", 2)]
    with pytest.raises(ValueError, match="xlsx"):
        encoded([batch], "xlsx")
