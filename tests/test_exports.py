"""Exports write formula-like text as text, and leave everything else exactly as it was."""

from __future__ import annotations

import io

import pyarrow as pa

from nexus.exports.cells import neutralized
from nexus.exports.stream import write_batches


def test_formula_like_cells_get_a_quote_and_other_cells_do_not_change():
    batch = pa.RecordBatch.from_pydict({
        "text": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "plain", None, "a=b"],
        "number": [-1, 2, 3, 4, 5, 6, 7, 8, 9],
    })
    out = neutralized(batch)
    assert out.column("text").to_pylist() == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx",
                                              "plain", None, "a=b"]
    assert out.column("number").to_pylist() == batch.column("number").to_pylist()


def test_csv_exports_are_neutralized_and_parquet_is_not():
    batch = pa.RecordBatch.from_pydict({"plan": ["=cmd|' /C calc'!A0", "pro"]})
    csv = io.BytesIO()
    write_batches([batch], "csv", csv)
    assert csv.getvalue().decode().splitlines()[1] == "\"'=cmd|' /C calc'!A0\""
    parquet = io.BytesIO()
    write_batches([batch], "parquet", parquet)
    import pyarrow.parquet as pq

    assert pq.read_table(io.BytesIO(parquet.getvalue())).column("plan").to_pylist() == ["=cmd|' /C calc'!A0", "pro"]
