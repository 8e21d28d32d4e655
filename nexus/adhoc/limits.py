"""How much one ad-hoc query may use: time, memory, rows read, result rows and bytes; defaults for the
installation, optionally narrowed or widened per API key (stored in `query_limits`, read with FINAL)."""

from __future__ import annotations

from datetime import datetime

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.errors import InvalidRequest
from nexus.meta import records
from nexus.settings import Settings

TABLE = "query_limits"


class QueryLimits(msgspec.Struct, frozen=True):
    """Limits of one query. ClickHouse enforces each; 0 means no limit (as in ClickHouse)."""

    max_seconds: int = 60
    max_memory_bytes: int = 1_000_000_000
    max_rows_to_read: int = 1_000_000_000
    max_result_rows: int = 100_000_000
    max_result_bytes: int = 20_000_000_000
    # A JSON answer is built whole before it is sent (so a limit breach is a clean 400, never a cut
    # stream): it gets a smaller row limit than the streamed formats.
    max_json_rows: int = 100_000


LIMIT_FIELDS: tuple[str, ...] = QueryLimits.__struct_fields__


class KeyLimits(msgspec.Struct, frozen=True):
    """One key's overrides; None keeps the installation's default."""

    project_id: int
    key_id: str
    max_seconds: int | None
    max_memory_bytes: int | None
    max_rows_to_read: int | None
    max_result_rows: int | None
    max_result_bytes: int | None
    max_json_rows: int | None
    updated_at: datetime


def from_settings(settings: Settings) -> QueryLimits:
    """The installation's defaults, each limit from its NEXUS_QUERY_* setting."""
    return QueryLimits(
        max_seconds=settings.query_max_seconds,
        max_memory_bytes=settings.query_max_memory_bytes,
        max_rows_to_read=settings.query_max_rows_to_read,
        max_result_rows=settings.query_max_result_rows,
        max_result_bytes=settings.query_max_result_bytes,
        max_json_rows=settings.query_max_json_rows,
    )


def for_key(client: Client, key_id: str, defaults: QueryLimits) -> QueryLimits:
    """The limits a key's queries run under: its overrides applied to the defaults."""
    overrides = overrides_of(client, key_id)
    return msgspec.structs.replace(defaults, **overrides) if overrides else defaults


def overrides_of(client: Client, key_id: str) -> dict[str, int]:
    """The limits set for a key (the others are the installation's defaults)."""
    found = records.select(client, TABLE, KeyLimits, "key_id = {k:String}", {"k": key_id})
    if not found:
        return {}
    return {name: getattr(found[0], name) for name in LIMIT_FIELDS if getattr(found[0], name) is not None}


def set_for_key(client: Client, project_id: int, key_id: str, **overrides: int | None) -> KeyLimits:
    """Store a key's overrides (all of them: a limit not given goes back to the default)."""
    unknown = set(overrides) - set(LIMIT_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown query limits: {', '.join(sorted(unknown))}; known: {', '.join(LIMIT_FIELDS)}")
    for name, value in overrides.items():
        if value is not None and (not isinstance(value, int) or value < 0):
            raise InvalidRequest(f"{name} must be a whole number >= 0 (0: no limit), not {value!r}")
    record = KeyLimits(project_id=project_id, key_id=key_id, updated_at=records.now(),
                       **{name: overrides.get(name) for name in LIMIT_FIELDS})
    records.save(client, TABLE, record)
    return record


def narrowed(limits: QueryLimits, max_rows: int | None, *, json: bool) -> QueryLimits:
    """The limits of one request. The key's result-row limit (for JSON, with max_json_rows) stays a hard
    limit: a larger result fails. A request's max_rows does not fail anything: the result is cut at that
    many rows (sandbox's Cut), for which the engine produces one row more, let through when max_rows is
    the limit itself; a max_rows above the limit leaves the limit as it is."""
    ceiling = smallest(limits.max_result_rows, limits.max_json_rows if json else 0)
    if max_rows is not None:
        if max_rows < 1:
            raise InvalidRequest(f"max_rows must be at least 1, not {max_rows}", field="max_rows")
        if max_rows == ceiling:
            ceiling += 1
    return msgspec.structs.replace(limits, max_result_rows=ceiling)


def smallest(*limits: int) -> int:
    """The tightest of several ClickHouse limits, where 0 means none."""
    set_limits = [limit for limit in limits if limit > 0]
    return min(set_limits) if set_limits else 0
