"""Spreadsheet safety: text cells that a spreadsheet would run as a formula are written as text.

A value sent with a public write key (a property, a URL, an event name) can start with `=`, `+`, `-`,
`@`, a tab or a carriage return; opened in a spreadsheet it would run. Such cells get a leading `'`.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_FORMULA_START = ["=", "+", "-", "@", "\t", "\r"]


def neutralized(batch: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """The same data with every formula-like text cell prefixed by a quote."""
    columns = []
    for column in batch.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            # The first character looked up in a set: six times faster than a regex (^[=+\-@\t\r]) on
            # 5M rows of three text columns, where it cost twice the CSV writing itself.
            first = pc.utf8_slice_codeunits(column, 0, 1)
            risky = pc.fill_null(pc.is_in(first, value_set=pa.array(_FORMULA_START, column.type)), False)
            if pc.any(risky).as_py():
                column = pc.if_else(risky, pc.binary_join_element_wise(pa.scalar("'", column.type), column, pa.scalar("", column.type)), column)
        columns.append(column)
    kind = pa.Table if isinstance(batch, pa.Table) else pa.RecordBatch
    return kind.from_arrays(columns, names=batch.schema.names)


def neutralized_names(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with formula-like column names (a query's aliases are the caller's text) quoted as cells are."""
    names = batch.schema.names
    safe = [f"'{name}" if name[:1] in _FORMULA_START else name for name in names]
    return batch if safe == names else batch.rename_columns(safe)
