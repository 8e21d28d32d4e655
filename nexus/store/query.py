"""Runs read queries and hands back rows or Arrow batches, with engine errors as QueryFailed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from nexus.errors import QueryFailed
from nexus.store.client import describe_error


def rows(client: Client, sql: str, parameters: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
    """Column names and all rows of a (small) result."""
    try:
        result = client.query(sql, parameters=parameters or {})
    except ClickHouseError as e:
        raise QueryFailed(describe_error(e)) from None
    return list(result.column_names), result.result_rows


@contextmanager
def arrow_batches(client: Client, sql: str, parameters: dict[str, Any] | None = None) -> Iterator[Iterator[pa.RecordBatch]]:
    """Stream a result as Arrow record batches, never holding it whole in memory."""
    try:
        stream = client.query_arrow_stream(sql, parameters=parameters or {})
    except ClickHouseError as e:
        raise QueryFailed(describe_error(e)) from None
    with stream:
        yield _reraising(stream)


def _reraising(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    except ClickHouseError as e:
        raise QueryFailed(describe_error(e)) from None
