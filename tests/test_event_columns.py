"""nexus/event_columns.py says what the migrations made: the events table's columns in order, sent in types
that fit them, and the dimensions each rollup keeps."""

from __future__ import annotations

from nexus import event_columns
from nexus.event_columns import EVENT_COLUMNS, ROLLUPS

# The engine's type of a column → the Arrow type ingest may send it in.
_FITS = {"UInt32": "uint32", "Int64": "int64", "String": "string", "LowCardinality(String)": "string",
         "JSON": "string", "DateTime64(3, 'UTC')": "timestamp[ms, tz=UTC]",
         "Nullable(DateTime64(3, 'UTC'))": "timestamp[ms, tz=UTC]"}


def _columns(client, table: str) -> list[tuple[str, str]]:
    """The columns an insert sends, in order: not those the engine computes (events.id_key, MATERIALIZED)."""
    return client.query("SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                        "AND table = {table:String} AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') "
                        "ORDER BY position", parameters={"table": table}).result_rows


def test_the_event_columns_are_the_migrated_table_s_in_its_order_and_types(client):
    migrated = _columns(client, "events")
    assert [name for name, _ in migrated] == [c.name for c in EVENT_COLUMNS]
    for (name, engine_type), column in zip(migrated, EVENT_COLUMNS):
        assert _FITS.get(engine_type) == str(column.arrow), (name, engine_type, column.arrow)
        if column.filterable:  # compared as text, and empty when absent (Property.is_set)
            assert engine_type in ("String", "LowCardinality(String)"), name


def test_each_rollup_keeps_the_dimensions_declared_for_it(client):
    for table in ROLLUPS:
        kept = {name for name, engine_type in _columns(client, table)
                if not engine_type.startswith(("AggregateFunction", "SimpleAggregateFunction"))}
        # Besides the project and the time bucket (hour, day), a rollup keeps event columns by their names.
        assert kept - {"project_id", "hour", "day"} == event_columns.dimensions(table), table
