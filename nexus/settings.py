"""Every NEXUS_* setting, its default and its help text, read once from the environment."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from nexus.errors import InvalidConfig


class Setting(msgspec.Struct, frozen=True):
    name: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("NEXUS_DATA_DIR", ".nexus", "Directory for embedded data: chDB files, embedded Redis, locks."),
    Setting(
        "NEXUS_CLICKHOUSE_URL",
        "chdb://<NEXUS_DATA_DIR>/clickhouse",
        "ClickHouse to use: chdb:///path (embedded, in-process) or http(s)://user:pass@host:port/database. "
        "For chdb, ?database=NAME picks the database (default nexus).",
    ),
    Setting(
        "NEXUS_REDIS_URL",
        "",
        "Redis server (redis://host:6379/0). Empty: Nexus starts its own redis-server under NEXUS_DATA_DIR.",
    ),
    Setting("NEXUS_HOST", "127.0.0.1", "Address the HTTP API listens on."),
    Setting("NEXUS_PORT", "8000", "Port the HTTP API listens on."),
    Setting("NEXUS_LOG_LEVEL", "info", "Log level: debug, info, warning or error."),
)


class Settings(msgspec.Struct, frozen=True):
    data_dir: Path
    clickhouse_url: str
    redis_url: str
    host: str
    port: int
    log_level: str


def load(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from NEXUS_* variables (os.environ by default), applying defaults."""
    env = os.environ if environ is None else environ
    value = {s.name: env.get(s.name, "").strip() or s.default for s in SETTINGS}
    data_dir = Path(value["NEXUS_DATA_DIR"]).expanduser().resolve()
    clickhouse_url = value["NEXUS_CLICKHOUSE_URL"].replace("<NEXUS_DATA_DIR>", str(data_dir))
    port_text = value["NEXUS_PORT"]
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidConfig(f"NEXUS_PORT must be a port number 1-65535, not {port_text!r}")
    level = value["NEXUS_LOG_LEVEL"].lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise InvalidConfig(f"NEXUS_LOG_LEVEL must be debug, info, warning or error, not {level!r}")
    return Settings(
        data_dir=data_dir,
        clickhouse_url=clickhouse_url,
        redis_url=value["NEXUS_REDIS_URL"] if env.get("NEXUS_REDIS_URL", "").strip() else "",
        host=value["NEXUS_HOST"],
        port=int(port_text),
        log_level=level,
    )
