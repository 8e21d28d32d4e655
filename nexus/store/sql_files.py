"""Finds the files under Nexus's sql/ directory: the ClickHouse migrations and schema dump (store.migrations), and
the Redis Lua scripts in sql/lua (ingest.dedup)."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def sql_dir() -> Path:
    """`sql/` of a source checkout (editable installs), else the copy packed into the wheel."""
    for candidate in (Path(__file__).resolve().parents[2] / "sql", Path(__file__).resolve().parents[1] / "_sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise FileNotFoundError("Nexus's sql/ directory is missing from this installation")


def load(relative_path: str) -> str:
    return (sql_dir() / relative_path).read_text()
