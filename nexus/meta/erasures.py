"""The record of each erasure (nexus.store.erasure): when, by which key, how many rows left each table —
and nothing of the person erased, so that keeping the record keeps none of their data. Records follow the
metadata pattern (nexus.meta.records)."""

from __future__ import annotations

import secrets
from datetime import datetime

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.meta import records

TABLE = "erasures"
CLI = "cli"  # `erased_by` of an erasure asked for on the command line, by the store's operator


class Erasure(msgspec.Struct, frozen=True):
    """One person erased. `rows` counts the rows removed from each table as stored: identities and persons
    keep a row per version until ClickHouse merges them, so these may exceed the person's ids."""

    project_id: int
    erasure_id: str
    erased_at: datetime
    erased_by: str
    distinct_ids: int
    rows: dict[str, int]
    rebuilt_partitions: int
    duration_ms: int


class Erasures(msgspec.Struct, frozen=True):
    erasures: list[Erasure]


def new_id() -> str:
    return "x_" + secrets.token_urlsafe(9)  # 12 characters


def save(client: Client, erasure: Erasure) -> Erasure:
    records.save(client, TABLE, erasure)
    return erasure


def list_all(client: Client, project_id: int) -> list[Erasure]:
    """The project's erasures, newest first."""
    found = records.select(client, TABLE, Erasure, "project_id = {p:UInt32}", {"p": project_id})
    return sorted(found, key=lambda e: e.erased_at, reverse=True)
