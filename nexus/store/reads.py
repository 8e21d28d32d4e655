"""Runs small read queries and hands back their rows; the client raises Nexus's errors (nexus.store.guard)."""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client


def rows(client: Client, sql: str, parameters: dict[str, Any] | None = None,
         settings: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Column names and all rows of a (small) result."""
    result = client.query(sql, parameters=parameters or {}, settings=settings)
    return list(result.column_names), result.result_rows
