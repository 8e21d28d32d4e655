"""The one pattern every metadata table follows: ReplacingMergeTree(version, is_deleted), read with FINAL.

A change writes a whole new version of the record; the highest version wins when ClickHouse merges,
and FINAL applies that rule at read time, so readers never depend on merges having finished.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, TypeVar

import msgspec
from clickhouse_connect.driver.client import Client

R = TypeVar("R", bound=msgspec.Struct)


def now() -> datetime:
    """The current UTC time at the millisecond precision timestamps are stored with."""
    moment = datetime.now(timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def next_version() -> int:
    """Versions are wall-clock nanoseconds: later writes win, across processes too."""
    return time.time_ns()


def save(client: Client, table: str, record: msgspec.Struct, *, deleted: bool = False) -> None:
    """Write `record` as the newest version of its row in `table` (a trusted, constant name)."""
    fields = msgspec.structs.asdict(record)
    columns = [*fields, "version", "is_deleted"]
    client.insert(table, [[*fields.values(), next_version(), int(deleted)]], column_names=columns)


def select(
    client: Client, table: str, record_type: type[R], where: str = "1", parameters: dict[str, Any] | None = None
) -> list[R]:
    """Current, undeleted records of `table`; `where` is constant SQL whose values come as parameters."""
    columns = ", ".join(record_type.__struct_fields__)
    result = client.query(
        f"SELECT {columns} FROM {table} FINAL WHERE {where} ORDER BY {columns.split(',')[0]}",
        parameters=parameters or {},
    )
    return [record_type(*row) for row in result.result_rows]
