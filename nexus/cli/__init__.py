"""The `nexus` command: one group, its commands in modules by area (service, data, sql, admin, person)."""

from nexus.cli import admin, data, export, operations, person, service, sql  # noqa: F401  (each registers its commands on `main`)
from nexus.cli.base import main

__all__ = ["main"]
