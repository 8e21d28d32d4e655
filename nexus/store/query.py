"""Runs small read queries and hands back their rows, with engine errors as QueryFailed."""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from nexus.errors import QueryFailed
from nexus.store.client import describe_error


def rows(client: Client, sql: str, parameters: dict[str, Any] | None = None,
         settings: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Column names and all rows of a (small) result."""
    try:
        result = client.query(sql, parameters=parameters or {}, settings=settings)
    except ClickHouseError as e:
        raise QueryFailed(describe_error(e)) from None
    return list(result.column_names), result.result_rows
