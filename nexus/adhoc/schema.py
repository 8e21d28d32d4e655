"""Schema discovery: the tables, columns, types and comments a project's ad-hoc SQL can query."""

from __future__ import annotations

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.adhoc import policy


class ColumnInfo(msgspec.Struct, frozen=True):
    name: str
    type: str
    comment: str


class TableInfo(msgspec.Struct, frozen=True):
    name: str
    engine: str
    comment: str
    columns: list[ColumnInfo]


class SchemaAnswer(msgspec.Struct, frozen=True):
    database: str
    tables: list[TableInfo]
    table_functions: list[str]
    system_tables: list[str]


def describe(client: Client, database: str) -> SchemaAnswer:
    """Every queryable table of `database` with its columns in order (rows of other projects are never
    visible, whatever the table)."""
    names = sorted(policy.PROJECT_TABLES)
    tables = client.query(
        "SELECT name, engine, comment FROM system.tables WHERE database = {d:String} AND name IN {n:Array(String)} "
        "ORDER BY name", parameters={"d": database, "n": names}).result_rows
    columns: dict[str, list[ColumnInfo]] = {name: [] for name, _, _ in tables}
    for table, name, kind, comment in client.query(
        "SELECT table, name, type, comment FROM system.columns WHERE database = {d:String} "
        "AND table IN {n:Array(String)} ORDER BY table, position", parameters={"d": database, "n": names}
    ).result_rows:
        columns[table].append(ColumnInfo(name, kind, comment))
    return SchemaAnswer(
        database=database,
        tables=[TableInfo(name, engine, comment, columns[name]) for name, engine, comment in tables],
        table_functions=sorted(policy.TABLE_FUNCTIONS),
        system_tables=sorted(f"system.{name}" for name in policy.SYSTEM_TABLES),
    )
