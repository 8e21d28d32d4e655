"""The SQL an analysis builds: text with `{name:Type}` placeholders, the values bound to them, and running it."""

from __future__ import annotations

from typing import Any, NamedTuple

from clickhouse_connect.driver.client import Client

from nexus.analyses.cohort_store import Cohorts
from nexus.errors import InvalidRequest
from nexus.store.reads import rows

PROJECT = "{project_id:UInt32}"
UTC_TIME = "DateTime64(3, 'UTC')"  # the type of events.ts, for bound instants
# Joins here always build their hash table from the right side (identities, persons: one row per id).
# ClickHouse may otherwise swap the sides on a row estimate — and it underestimates `event IN (a, b)`
# badly enough to hash millions of events and probe them with identities: 0.51 s instead of 0.31 s.
# Sent with every analysis query, not written into its SQL: it changes the plan, never the answer, and
# an explained query must run as shown through the ad-hoc SQL sandbox, where settings are frozen.
ENGINE_SETTINGS: dict[str, Any] = {"query_plan_join_swap_table": "false"}


class Query(NamedTuple):
    """What `explain()` hands back: unpacks as `(sql, params)`."""

    sql: str
    params: dict[str, Any]


class Params:
    """Collects bound parameters for one query; every request value reaches ClickHouse through here."""

    def __init__(self, project_id: int, cohorts: Cohorts | None = None):
        self.values: dict[str, Any] = {"project_id": project_id}
        self._cohorts = cohorts

    @property
    def cohorts(self) -> Cohorts:
        """The cohorts the request names, loaded with its scope (`scope.scope_of`)."""
        if self._cohorts is None:
            raise InvalidRequest("cohorts are not available in this query")
        return self._cohorts

    def add(self, value: Any, ch_type: str) -> str:
        """A fresh placeholder bound to `value`; `ch_type` is a constant chosen by the caller, never input."""
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{ch_type}}}"

    def query(self, sql: str) -> Query:
        return Query(sql, dict(self.values))


def fetch(client: Client, query: Query) -> list[tuple]:
    """All rows of a (small, aggregated) result; engine errors become QueryFailed."""
    return rows(client, query.sql, query.params, ENGINE_SETTINGS)[1]
