"""Errors of ad-hoc SQL, in Nexus's one error tree: a refused query is Forbidden, an engine limit is a
QueryFailed with ClickHouse's reason."""

from __future__ import annotations

from nexus.errors import Forbidden, QueryFailed


class QueryRefused(Forbidden):
    """The query touches something ad-hoc SQL does not allow (a table, a function, a setting)."""


class LimitExceeded(QueryFailed):
    """The query went over one of its key's limits: time, memory, rows read or result size."""


class QueryTimeout(LimitExceeded):
    """The query ran longer than its key's time limit."""
