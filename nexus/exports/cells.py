"""Spreadsheet safety: text cells that a spreadsheet would run as a formula are written as text.

A value sent with a public write key (a property, a URL, an event name) can start with `=`, `+`, `-`,
`@`, a tab or a carriage return; opened in a spreadsheet it would run. Such cells get a leading `'`.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_FORMULA_START = r"^[=+\-@\t\r]"


def neutralized(batch: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """The same data with every formula-like text cell prefixed by a quote."""
    columns = []
    for column in batch.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.fill_null(pc.match_substring_regex(column, _FORMULA_START), False)
            column = pc.if_else(risky, pc.binary_join_element_wise("'", column, ""), column)
        columns.append(column)
    kind = pa.Table if isinstance(batch, pa.Table) else pa.RecordBatch
    return kind.from_arrays(columns, names=batch.schema.names)
