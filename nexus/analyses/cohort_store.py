"""The cohorts an analysis request names, loaded from the store before its SQL is built.

A request names a cohort in a filter leaf (`{"source": "cohort", "key": "c_…", "op": "in"}`) or in a
breakdown (`{"source": "cohort", "cohorts": ["c_…"]}`), anywhere in its structure. `scope.scope_of` loads
them once per run or explain into `Cohorts`, which every analysis hands to its `Params`; the filter and
breakdown compile their membership from there (`cohort_membership`). The read service keys its cache on the
stored cohorts a request names (`registry.saved_definitions`), so a changed definition or member list gives a
new answer.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.errors import InvalidRequest, NotFound
from nexus.meta import projects

TABLE = "cohorts"
COHORT_ID = re.compile(r"^c_[A-Za-z0-9_-]{12}$")


class StoredCohort(msgspec.Struct, frozen=True):
    """A cohort as stored: its conditions still JSON text (decoded where compiled, `cohort_membership`)."""

    cohort_id: str
    name: str
    kind: str  # "dynamic" or "static"
    definition: str
    members_generation: int
    version: int


class Cohorts(msgspec.Struct, frozen=True):
    """The cohorts one analysis request names, and the clock and zone their relative windows read."""

    by_id: dict[str, StoredCohort]
    timezone: str
    now: datetime

    def get(self, cohort_id: str) -> StoredCohort:
        try:
            return self.by_id[cohort_id]
        except KeyError:
            raise InvalidRequest(f"cohort {cohort_id!r} was not loaded for this query") from None


NONE: dict[str, StoredCohort] = {}


def referenced(value: Any) -> set[str]:
    """The ids of the cohorts a request (any Struct, list or dict of them) names, at any depth."""
    found: set[str] = set()
    if isinstance(value, msgspec.Struct):
        found.update(getattr(value, "cohorts_named", ()))  # a request about cohorts themselves (cohort_size)
        if getattr(value, "source", None) == "cohort":
            if isinstance(getattr(value, "cohorts", None), list):
                found.update(value.cohorts)  # a breakdown
            else:
                found.add(value.key)  # a filter leaf
        for name in value.__struct_fields__:
            found |= referenced(getattr(value, name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= referenced(item)
    elif isinstance(value, dict):
        for item in value.values():
            found |= referenced(item)
    return found


def loaded(client: Client, project_id: int, request: Any, now: datetime) -> Cohorts:
    """The cohorts `request` names, for an analysis that has no scope (`scope.scope_of` loads them for the
    rest); the project's time zone is looked up only when a cohort is named."""
    named = referenced(request)
    zone = projects.get(client, project_id).timezone if named else "UTC"
    return Cohorts(load(client, project_id, named), zone, now)


def load(client: Client, project_id: int, ids: set[str]) -> dict[str, StoredCohort]:
    """The project's cohorts of `ids`; one that is not the project's is NotFound, as a missing one."""
    if not ids:
        return NONE
    wanted = sorted(ids)
    for cohort_id in wanted:
        if not COHORT_ID.match(cohort_id):
            raise NotFound(f"no cohort {cohort_id!r} in this project")
    rows = client.query(
        f"SELECT cohort_id, name, kind, definition, members_generation, version FROM {TABLE} FINAL "
        "WHERE project_id = {p:UInt32} AND cohort_id IN {ids:Array(String)}",
        parameters={"p": project_id, "ids": wanted}).result_rows
    found = {row[0]: StoredCohort(*row) for row in rows}
    for cohort_id in wanted:
        if cohort_id not in found:
            raise NotFound(f"no cohort {cohort_id!r} in this project")
    return found
