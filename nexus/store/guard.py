"""Nexus's ClickHouse client: clickhouse-connect's own, whose calls raise Nexus's errors, never the driver's.

Every statement Nexus writes (analyses, catalog, metadata, inserts, migrations) goes through this client,
so driver errors are wrapped once, here, by what their ClickHouse code means (nexus.store.errors):
- the server is unreachable or overloaded -> StorageUnavailable (503, retry);
- a limit on the query stopped it -> LimitExceeded (400, naming the limit);
- anything else -> EngineError: a fault in SQL Nexus wrote, logged by the API with the SQL under an id.
The caller's own ad-hoc SQL is not Nexus's: the sandbox (nexus.adhoc.session) runs it on the `unguarded`
client and wraps the same errors with the caller's meaning (a syntax error is the caller's 400).

The client stays the driver's object, of a subclass whose calling methods wrap errors, so it is a
`Client` wherever one is expected. Results that stream (`raw_stream`, `*_stream`) raise from their
reader once started: their reader wraps those (the sandbox does).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from clickhouse_connect.driver.client import Client

from nexus.errors import EngineError, LimitExceeded, NexusError, StorageUnavailable
from nexus.store.errors import Failure, classify

_QUERIES = ("query", "command", "raw_query", "raw_stream", "query_arrow", "query_df", "query_np",
            "query_arrow_stream", "query_df_stream", "query_row_block_stream", "query_rows_stream",
            "query_column_block_stream", "query_np_stream")
_INSERTS = ("insert", "insert_arrow", "insert_df", "insert_df_arrow", "raw_insert")


def guard(client: Client) -> Client:
    """The same client, its calls raising StorageUnavailable, LimitExceeded or EngineError."""
    if not _is_guarded(client):
        client.__class__ = _guarded_class(type(client))
    return client


def unguarded(client: Client) -> Client:
    """The client's calls as the driver makes them, raising the driver's errors: for the sandbox's
    `raw_query` and `raw_stream`. (A driver method that calls another public one, as `insert_arrow` calls
    `insert`, still meets the guarded one inside.)"""
    return super(type(client), client) if _is_guarded(client) else client  # type: ignore[return-value]


def nexus_error(error: BaseException, sql: str = "", params: dict[str, Any] | None = None) -> NexusError:
    """A driver error on SQL that Nexus wrote, as the Nexus error for what it means."""
    failure = classify(error)
    if failure.kind == "unavailable":
        return unavailable(failure)
    if failure.kind == "limit":
        return LimitExceeded(
            f"the query went over the ClickHouse server's {failure.setting} limit ({failure.name}): ask for less "
            f"(a shorter date range, fewer series or breakdown values), or have its operator raise "
            f"{failure.setting} for Nexus's ClickHouse user", limit=failure.setting)
    return EngineError(failure.message, code=failure.code, name=failure.name or None, sql=sql, params=params)


def unavailable(failure: Failure) -> StorageUnavailable:
    """StorageUnavailable for an error sorted as such: its code and name, never the engine's text (which
    may quote rows or SQL); a connection's reason (refused, timed out) is said."""
    if failure.code is None:
        return StorageUnavailable(f"ClickHouse cannot be reached ({failure.message}); retry shortly")
    full = " (the disk is full)" if failure.name == "NOT_ENOUGH_SPACE" or "No space left" in failure.message else ""
    return StorageUnavailable(f"ClickHouse is unavailable: error {failure.code} {failure.name}{full}; retry shortly",
                              code=failure.code, name=failure.name or None)


def _is_guarded(client: Client) -> bool:
    return type(client).__dict__.get("_nexus_guarded", False)


@cache
def _guarded_class(base: type) -> type:
    """A subclass of the driver's class that adds nothing but these methods, so that a client's class can
    be swapped for it in place."""
    methods = {name: _call(base, name, name in _INSERTS) for name in _QUERIES + _INSERTS if hasattr(base, name)}
    return type(f"Guarded{base.__name__}", (base,), {"__module__": __name__, "_nexus_guarded": True, **methods})


def _call(base: type, name: str, insert: bool) -> Any:
    method = getattr(base, name)

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except NexusError:
            raise
        except Exception as e:
            raise nexus_error(e, *_statement(insert, args, kwargs)) from None

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


def _statement(insert: bool, args: tuple, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """What failed, for the log: the SQL and its parameters, or for an insert its table (not its rows)."""
    if insert:
        return f"INSERT INTO {args[0] if args else kwargs.get('table', '?')}", None
    sql = args[0] if args else kwargs.get("query", kwargs.get("cmd", ""))
    params = args[1] if len(args) > 1 else kwargs.get("parameters")
    return str(sql), dict(params) if isinstance(params, dict) else None

