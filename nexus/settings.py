"""Every NEXUS_* setting, its default and its help text, read once from the environment."""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec

from nexus.errors import InvalidConfig
from nexus.store.cluster import check_cluster_name


class Setting(msgspec.Struct, frozen=True):
    name: str
    default: str
    help: str
    minimum: int | None = None  # set for whole-number settings: the smallest value accepted

    @property
    def field(self) -> str:
        """The Settings attribute: NEXUS_MAX_EVENT_BYTES → max_event_bytes."""
        return self.name.removeprefix("NEXUS_").lower()


SETTINGS: tuple[Setting, ...] = (
    Setting("NEXUS_DATA_DIR", ".nexus", "Directory for embedded data: chDB files, embedded Redis, locks, import spool."),
    Setting(
        "NEXUS_CLICKHOUSE_URL",
        "chdb://<NEXUS_DATA_DIR>/clickhouse",
        "ClickHouse to use: chdb:///path (embedded, in-process) or http(s)://user:pass@host:port/database. "
        "For chdb, ?database=NAME picks the database (default nexus).",
    ),
    Setting(
        "NEXUS_CLICKHOUSE_CLUSTER",
        "",
        "A cluster name from the ClickHouse servers' remote_servers: migrations create Replicated tables and "
        "Distributed tables ON CLUSTER (docs/deployment.md). Empty: one server (or chDB), plain MergeTree tables.",
    ),
    Setting(
        "NEXUS_REDIS_URL",
        "",
        "Redis server (redis://host:6379/0). Empty: Nexus starts its own redis-server under NEXUS_DATA_DIR.",
    ),
    Setting("NEXUS_HOST", "127.0.0.1", "Address the HTTP API listens on."),
    Setting("NEXUS_PORT", "8000", "Port the HTTP API listens on.", minimum=0),
    Setting("NEXUS_DASHBOARD_PORT", "8001", "Port the dashboard listens on (on NEXUS_HOST): inside `nexus serve`, and `nexus dashboard`'s default; 0 picks a free one.", minimum=0),
    Setting("NEXUS_DASHBOARD_SESSION_HOURS", "12", "How long a dashboard sign-in lasts before the key must be given again.", minimum=1),
    Setting("NEXUS_LOG_LEVEL", "info", "Log level: debug, info, warning or error. Services (serve, api, worker, dashboard) log one JSON object per line on stderr: one per request and per job, with a request id."),
    Setting("NEXUS_METRICS_PORT", "0", "Port (on NEXUS_HOST) serving Prometheus metrics at /metrics without a key, in `nexus serve`, `nexus api` and `nexus worker` (give each process on a machine its own). 0: none; the API's /metrics answers the instance admin key either way.", minimum=0),
    Setting("NEXUS_MAX_REQUEST_BYTES", "1048576", "Largest tracking request body, after gzip decoding (Segment: 500 KB).", minimum=512000),
    Setting("NEXUS_MAX_EVENT_BYTES", "32768", "Largest single event, as JSON (Segment: 32 KB).", minimum=1024),
    Setting("NEXUS_MAX_IMPORT_BYTES", "21474836480", "Largest /v1/import upload; it is spooled to disk, not memory.", minimum=1024),
    Setting("NEXUS_RATE_LIMIT", "1000", "Requests per second allowed per API key; 0 turns rate limiting off.", minimum=0),
    Setting("NEXUS_CORS_ORIGINS", "", "Web origins (https://app.example.com, comma-separated) whose pages may call the read endpoints. The write endpoints answer every origin. Empty: none."),
    Setting("NEXUS_ADMIN_KEY", "", "Instance admin key (at least 32 characters) for /v1/projects and every project's keys. Empty: `nexus serve` creates one on first start, prints it once and stores only its hash."),
    Setting("NEXUS_MAX_FUTURE_SECONDS", "3600", "Events further in the future than this (after skew correction) are rejected.", minimum=0),
    Setting("NEXUS_MAX_PAST_DAYS", "365", "Tracking-API events older than this are rejected (/v1/import takes any date from 2000 on).", minimum=1),
    Setting("NEXUS_SKEW_FLAG_SECONDS", "60", "Clock-skew corrections larger than this are counted as flagged in ingest metrics.", minimum=0),
    Setting("NEXUS_IP_MODE", "truncate", "How client IPs are stored: truncate (/24, /48), hash (keyed), full, or none."),
    Setting("NEXUS_GEOIP_DATABASE", "", "MaxMind database file (.mmdb: GeoLite2/GeoIP2 City or Country) for country, region and city from IPs. Empty: the bundled GeoLite2-Country data (June 2024, country only)."),
    Setting("NEXUS_DEDUP_HOURS", "48", "A messageId seen within this many hours is stored once (at least 24).", minimum=24),
    Setting("NEXUS_WRITER_MAX_ROWS", "100000", "Group-commit writer: most events per ClickHouse insert.", minimum=1),
    Setting("NEXUS_ACK", "stored", "When a tracking request is answered: stored (once its events are inserted into ClickHouse) or logged (once they are fsync'd to the acknowledgement log under NEXUS_DATA_DIR, inserted in large blocks after; embedded mode only)."),
    Setting("NEXUS_WRITER_MAX_DELAY_MS", "200", "Group-commit writer: longest wait to fill a block before inserting.", minimum=0),
    Setting("NEXUS_QUERY_MAX_SECONDS", "60", "Ad-hoc SQL: longest run time of a query, in seconds (0: none).", minimum=0),
    Setting("NEXUS_QUERY_MAX_MEMORY_BYTES", "1000000000", "Ad-hoc SQL: most memory a query may use.", minimum=0),
    Setting("NEXUS_QUERY_MAX_ROWS_TO_READ", "1000000000", "Ad-hoc SQL: most rows a query may read from tables.", minimum=0),
    Setting("NEXUS_QUERY_MAX_RESULT_ROWS", "100000000", "Ad-hoc SQL: most rows of a streamed result (arrow, parquet, csv, ndjson).", minimum=0),
    Setting("NEXUS_QUERY_MAX_RESULT_BYTES", "20000000000", "Ad-hoc SQL: most uncompressed bytes of a result.", minimum=0),
    Setting("NEXUS_QUERY_MAX_JSON_ROWS", "100000", "Ad-hoc SQL: most rows of a JSON answer, which is built whole before it is sent.", minimum=1),
    Setting("NEXUS_QUERY_MAX_JSON_BYTES", "50000000", "Ad-hoc SQL: most bytes of a JSON answer, which is held in memory (larger results stream as arrow, parquet, csv or ndjson).", minimum=1),
    Setting("NEXUS_WORKER_THREADS", "2", "Job worker threads: in `nexus serve` (embedded mode) and in each `nexus worker` process; 0 in `nexus serve` runs no jobs there.", minimum=0),
    Setting("NEXUS_JOB_MAX_ATTEMPTS", "4", "Attempts a job gets when it fails for a reason that may pass (the store or Redis unavailable, a destination down), with exponential backoff between them.", minimum=1),
    Setting("NEXUS_JOB_BACKOFF_SECONDS", "15", "Wait before a job's first retry; each later retry waits about twice as long (at most 60 times this).", minimum=1),
    Setting("NEXUS_JOB_TIME_LIMIT_SECONDS", "3600", "Longest a job may run; it then fails with this reason.", minimum=1),
    Setting("NEXUS_EXPORT_DIR", "", "Directory of export files (a shared volume in server mode, where the API serves what workers write). Empty: exports under NEXUS_DATA_DIR."),
    Setting("NEXUS_EXPORT_RETENTION_HOURS", "168", "Export files are removed this long after their job finished (by the hourly cleanup job).", minimum=1),
    Setting("NEXUS_EXPORT_MAX_ROWS", "100000000", "Most rows per table an export may write (a request's max_rows may ask for fewer).", minimum=1),
    Setting("NEXUS_SCHEDULER_TICK_SECONDS", "15", "How often the scheduler looks for due schedules (a run starts at most this late).", minimum=1),
    Setting("NEXUS_SMTP_URL", "", "SMTP server for e-mail delivery: smtp://user:pass@host:25, smtp+starttls://…:587 or smtps://…:465. Empty: e-mail destinations are refused."),
    Setting("NEXUS_SMTP_FROM", "nexus@localhost", "The From address of delivery e-mails."),
    Setting("NEXUS_DELIVERY_DIR", "", "Folder destinations of schedules are paths under this directory. Empty: folder destinations are refused."),
    Setting("NEXUS_WEBHOOK_PRIVATE_ADDRESSES", "0", "1 lets schedules' webhooks reach loopback and private network addresses (refused by default: a project's admin key must not reach the operator's internal services).", minimum=0),
    Setting("NEXUS_PUBLIC_URL", "", "The API's address as recipients reach it (https://nexus.example.com), for signed download links in webhooks and e-mails. Empty: files are attached instead."),
    Setting("NEXUS_QUERY_MAX_CONCURRENT", "4", "Ad-hoc SQL queries running at once per process (one key may run half of them, one project all but one); more wait up to 10 s, then get 429.", minimum=1),
)

IP_MODES = ("truncate", "hash", "full", "none")
ACK_MODES = ("stored", "logged")
ADMIN_KEY_MIN_LENGTH = 32


class Settings(msgspec.Struct, frozen=True):
    """One attribute per setting (see Setting.field); defaults live in SETTINGS only."""

    data_dir: Path
    clickhouse_url: str
    clickhouse_cluster: str
    redis_url: str
    host: str
    port: int
    dashboard_port: int
    dashboard_session_hours: int
    log_level: str
    metrics_port: int
    max_request_bytes: int
    max_event_bytes: int
    max_import_bytes: int
    rate_limit: int
    cors_origins: tuple[str, ...]
    max_future_seconds: int
    max_past_days: int
    skew_flag_seconds: int
    ip_mode: str
    geoip_database: str
    dedup_hours: int
    writer_max_rows: int
    writer_max_delay_ms: int
    ack: str
    query_max_seconds: int
    query_max_memory_bytes: int
    query_max_rows_to_read: int
    query_max_result_rows: int
    query_max_result_bytes: int
    query_max_json_rows: int
    query_max_json_bytes: int
    query_max_concurrent: int
    worker_threads: int
    job_max_attempts: int
    job_backoff_seconds: int
    job_time_limit_seconds: int
    export_dir: str
    export_retention_hours: int
    export_max_rows: int
    scheduler_tick_seconds: int
    smtp_url: str
    delivery_dir: str
    webhook_private_addresses: int
    smtp_from: str
    public_url: str
    admin_key: str


def load(environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from NEXUS_* variables (os.environ by default), applying defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for setting in SETTINGS:
        text = env.get(setting.name, "").strip() or setting.default
        values[setting.field] = text if setting.minimum is None else _integer(setting, text)
    data_dir = Path(str(values["data_dir"])).expanduser().resolve()
    values["data_dir"] = data_dir
    values["clickhouse_url"] = str(values["clickhouse_url"]).replace("<NEXUS_DATA_DIR>", str(data_dir))
    values["log_level"] = level = str(values["log_level"]).lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise InvalidConfig(f"NEXUS_LOG_LEVEL must be debug, info, warning or error, not {level!r}")
    for name in ("port", "dashboard_port", "metrics_port"):
        if int(values[name]) > 65535:  # type: ignore[call-overload]
            raise InvalidConfig(f"NEXUS_{name.upper()} must be a port number 1-65535, not {values[name]}")
    if values["ip_mode"] not in IP_MODES:
        raise InvalidConfig(f"NEXUS_IP_MODE must be one of {', '.join(IP_MODES)}, not {values['ip_mode']!r}")
    if values["ack"] not in ACK_MODES:
        raise InvalidConfig(f"NEXUS_ACK must be stored or logged, not {values['ack']!r}")
    if values["ack"] == "logged" and not str(values["clickhouse_url"]).startswith("chdb:"):
        # Several API processes, each with its own unshared log, would each replay and settle alone.
        raise InvalidConfig("NEXUS_ACK=logged is for embedded mode (NEXUS_CLICKHOUSE_URL=chdb://…), where one "
                            "process owns the data dir and its log; with a ClickHouse server use NEXUS_ACK=stored")
    values["cors_origins"] = _origins(str(values["cors_origins"]))
    if values["clickhouse_cluster"]:
        check_cluster_name(str(values["clickhouse_cluster"]))
    if values["clickhouse_cluster"] and str(values["clickhouse_url"]).startswith("chdb:"):
        raise InvalidConfig("NEXUS_CLICKHOUSE_CLUSTER needs NEXUS_CLICKHOUSE_URL to name a ClickHouse server "
                            "(http://…), not chDB")
    if values["admin_key"] and len(str(values["admin_key"])) < ADMIN_KEY_MIN_LENGTH:
        raise InvalidConfig(f"NEXUS_ADMIN_KEY must be at least {ADMIN_KEY_MIN_LENGTH} characters (it guards every project)")
    return Settings(**values)  # type: ignore[arg-type]


def _origins(text: str) -> tuple[str, ...]:
    """NEXUS_CORS_ORIGINS as a tuple; each must be an origin as browsers send it: scheme://host[:port]."""
    origins = tuple(o.strip().lower() for o in text.split(",") if o.strip())
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise InvalidConfig(f"NEXUS_CORS_ORIGINS: {origin!r} is not an origin such as https://app.example.com "
                                "(scheme, host and port only; no path, no wildcard)")
    return origins


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def _integer(setting: Setting, text: str) -> int:
    if not text.isdigit():
        raise InvalidConfig(f"{setting.name} must be a whole number, not {text!r}")
    if int(text) < (setting.minimum or 0):
        raise InvalidConfig(f"{setting.name} must be at least {setting.minimum}, not {text}")
    return int(text)
