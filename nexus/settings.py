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
    Setting("NEXUS_DATA_DIR", ".nexus", "Directory for embedded data: chDB files, embedded Redis, locks, import spool."),
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
    Setting("NEXUS_MAX_REQUEST_BYTES", "1048576", "Largest tracking request body, after gzip decoding (Segment: 500 KB)."),
    Setting("NEXUS_MAX_EVENT_BYTES", "32768", "Largest single event, as JSON (Segment: 32 KB)."),
    Setting("NEXUS_MAX_IMPORT_BYTES", "21474836480", "Largest /v1/import upload; it is spooled to disk, not memory."),
    Setting("NEXUS_RATE_LIMIT", "1000", "Requests per second allowed per API key; 0 turns rate limiting off."),
    Setting("NEXUS_MAX_FUTURE_SECONDS", "3600", "Events further in the future than this (after skew correction) are rejected."),
    Setting("NEXUS_MAX_PAST_DAYS", "365", "Tracking-API events older than this are rejected (/v1/import takes any date from 2000 on)."),
    Setting("NEXUS_SKEW_FLAG_SECONDS", "60", "Clock-skew corrections larger than this are counted as flagged in ingest metrics."),
    Setting("NEXUS_IP_MODE", "truncate", "How client IPs are stored: truncate (/24, /48), hash (keyed), full, or none."),
    Setting("NEXUS_DEDUP_HOURS", "48", "A messageId seen within this many hours is stored once (at least 24)."),
    Setting("NEXUS_WRITER_MAX_ROWS", "100000", "Group-commit writer: most events per ClickHouse insert."),
    Setting("NEXUS_WRITER_MAX_DELAY_MS", "200", "Group-commit writer: longest wait to fill a block before inserting."),
    Setting("NEXUS_QUERY_MAX_SECONDS", "60", "Ad-hoc SQL: longest run time of a query, in seconds (0: none)."),
    Setting("NEXUS_QUERY_MAX_MEMORY_BYTES", "1000000000", "Ad-hoc SQL: most memory a query may use."),
    Setting("NEXUS_QUERY_MAX_ROWS_TO_READ", "1000000000", "Ad-hoc SQL: most rows a query may read from tables."),
    Setting("NEXUS_QUERY_MAX_RESULT_ROWS", "100000000", "Ad-hoc SQL: most rows of a streamed result (arrow, parquet, csv, ndjson)."),
    Setting("NEXUS_QUERY_MAX_RESULT_BYTES", "20000000000", "Ad-hoc SQL: most uncompressed bytes of a result."),
    Setting("NEXUS_QUERY_MAX_JSON_ROWS", "100000", "Ad-hoc SQL: most rows of a JSON answer, which is built whole before it is sent."),
    Setting("NEXUS_QUERY_MAX_CONCURRENT", "4", "Ad-hoc SQL queries running at once per process; more wait up to 10 s, then get 429."),
)

IP_MODES = ("truncate", "hash", "full", "none")


class Settings(msgspec.Struct, frozen=True):
    data_dir: Path
    clickhouse_url: str
    redis_url: str
    host: str
    port: int
    log_level: str
    max_request_bytes: int = 1_048_576
    max_event_bytes: int = 32_768
    max_import_bytes: int = 21_474_836_480
    rate_limit: int = 1000
    max_future_seconds: int = 3600
    max_past_days: int = 365
    skew_flag_seconds: int = 60
    ip_mode: str = "truncate"
    dedup_hours: int = 48
    writer_max_rows: int = 100_000
    writer_max_delay_ms: int = 200
    query_max_seconds: int = 60
    query_max_memory_bytes: int = 1_000_000_000
    query_max_rows_to_read: int = 1_000_000_000
    query_max_result_rows: int = 100_000_000
    query_max_result_bytes: int = 20_000_000_000
    query_max_json_rows: int = 100_000
    query_max_concurrent: int = 4


def load(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from NEXUS_* variables (os.environ by default), applying defaults."""
    env = os.environ if environ is None else environ
    value = {s.name: env.get(s.name, "").strip() or s.default for s in SETTINGS}
    data_dir = Path(value["NEXUS_DATA_DIR"]).expanduser().resolve()
    level = value["NEXUS_LOG_LEVEL"].lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise InvalidConfig(f"NEXUS_LOG_LEVEL must be debug, info, warning or error, not {level!r}")
    port = _integer(value, "NEXUS_PORT", 0)
    if port > 65535:
        raise InvalidConfig(f"NEXUS_PORT must be a port number 1-65535, not {port}")
    if value["NEXUS_IP_MODE"] not in IP_MODES:
        raise InvalidConfig(f"NEXUS_IP_MODE must be one of {', '.join(IP_MODES)}, not {value['NEXUS_IP_MODE']!r}")
    return Settings(
        data_dir=data_dir,
        clickhouse_url=value["NEXUS_CLICKHOUSE_URL"].replace("<NEXUS_DATA_DIR>", str(data_dir)),
        redis_url=value["NEXUS_REDIS_URL"] if env.get("NEXUS_REDIS_URL", "").strip() else "",
        host=value["NEXUS_HOST"],
        port=port,
        log_level=level,
        max_request_bytes=_integer(value, "NEXUS_MAX_REQUEST_BYTES", 512_000),
        max_event_bytes=_integer(value, "NEXUS_MAX_EVENT_BYTES", 1024),
        max_import_bytes=_integer(value, "NEXUS_MAX_IMPORT_BYTES", 1024),
        rate_limit=_integer(value, "NEXUS_RATE_LIMIT", 0),
        max_future_seconds=_integer(value, "NEXUS_MAX_FUTURE_SECONDS", 0),
        max_past_days=_integer(value, "NEXUS_MAX_PAST_DAYS", 1),
        skew_flag_seconds=_integer(value, "NEXUS_SKEW_FLAG_SECONDS", 0),
        ip_mode=value["NEXUS_IP_MODE"],
        dedup_hours=_integer(value, "NEXUS_DEDUP_HOURS", 24),
        writer_max_rows=_integer(value, "NEXUS_WRITER_MAX_ROWS", 1),
        writer_max_delay_ms=_integer(value, "NEXUS_WRITER_MAX_DELAY_MS", 0),
        query_max_seconds=_integer(value, "NEXUS_QUERY_MAX_SECONDS", 0),
        query_max_memory_bytes=_integer(value, "NEXUS_QUERY_MAX_MEMORY_BYTES", 0),
        query_max_rows_to_read=_integer(value, "NEXUS_QUERY_MAX_ROWS_TO_READ", 0),
        query_max_result_rows=_integer(value, "NEXUS_QUERY_MAX_RESULT_ROWS", 0),
        query_max_result_bytes=_integer(value, "NEXUS_QUERY_MAX_RESULT_BYTES", 0),
        query_max_json_rows=_integer(value, "NEXUS_QUERY_MAX_JSON_ROWS", 1),
        query_max_concurrent=_integer(value, "NEXUS_QUERY_MAX_CONCURRENT", 1),
    )


def _integer(value: dict[str, str], name: str, minimum: int) -> int:
    text = value[name]
    if not text.isdigit():
        raise InvalidConfig(f"{name} must be a whole number, not {text!r}")
    if int(text) < minimum:
        raise InvalidConfig(f"{name} must be at least {minimum}, not {text}")
    return int(text)
