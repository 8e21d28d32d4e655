"""Errors of ad-hoc SQL, in Nexus's one error tree: a refused query is Forbidden (403); a limit hit is a
LimitExceeded (400) that names the key's limit and how an admin raises it."""

from __future__ import annotations

from nexus.errors import Forbidden, LimitExceeded, QueryTimeout
from nexus.store.errors import Failure

__all__ = ["KEY_LIMITS", "LimitExceeded", "QueryRefused", "QueryTimeout", "limit_exceeded"]

# The ClickHouse setting that stopped a query -> the key's limit (nexus.adhoc.limits) that set it.
KEY_LIMITS = {"max_execution_time": "max_seconds", "max_memory_usage": "max_memory_bytes",
              "max_rows_to_read": "max_rows_to_read", "max_result_rows": "max_result_rows",
              "max_result_bytes": "max_result_bytes"}


class QueryRefused(Forbidden):
    """The query touches something ad-hoc SQL does not allow (a table, a function, a setting)."""


def limit_exceeded(failure: Failure) -> LimitExceeded:
    """The engine stopped the caller's query at a limit: its reason, the limit's name and how to raise it."""
    kind = QueryTimeout if failure.setting == "max_execution_time" else LimitExceeded
    limit = KEY_LIMITS.get(failure.setting)
    if limit is None:  # an engine limit no key sets (query size, nesting depth): only a simpler query helps
        return kind(f"{failure.message} (ClickHouse's {failure.setting}, which keys do not set: simplify the query)",
                    limit=failure.setting)
    also = " (a JSON answer also stops at max_json_rows: other formats stream)" if limit == "max_result_rows" else ""
    return kind(f"{failure.message}: the query is over this key's {limit} limit{also}. An admin raises it with "
                f"`nexus key limits KEY_ID --{limit.replace('_', '-')} N` or PUT /v1/keys/KEY_ID/limits "
                f'{{"{limit}": N}}; NEXUS_QUERY_{limit.upper()} is the default for every key', limit=limit)
