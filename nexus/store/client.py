"""Opens a clickhouse-connect client from NEXUS_CLICKHOUSE_URL: embedded chDB or a ClickHouse server.

No other module knows which engine it talks to. A chDB data dir belongs to one process, so opening one
takes an exclusive lock file beside the data first; a second process gets a one-line answer naming the
holder instead of the engine's internal error.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import clickhouse_connect
import msgspec
import urllib3.exceptions
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from nexus.errors import InvalidConfig, StorageUnavailable, StoreLocked
from nexus.permissions import private_files, warn_if_open
from nexus.store.guard import guard

DEFAULT_DATABASE = "nexus"
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class StoreAddress(msgspec.Struct, frozen=True):
    engine: Literal["chdb", "http"]
    database: str
    path: str = ""  # chdb data dir
    host: str = ""
    port: int = 0
    username: str = "default"
    password: str = ""
    secure: bool = False

    def describe(self) -> str:
        """Where the store is, for messages: never includes the password."""
        if self.engine == "chdb":
            return f"embedded ClickHouse at {self.path} (database {self.database})"
        scheme = "https" if self.secure else "http"
        return f"ClickHouse at {scheme}://{self.host}:{self.port} (database {self.database})"


def parse_url(url: str) -> StoreAddress:
    """Read chdb:///path[?database=db] or http(s)://user:pass@host:port/db into a StoreAddress."""
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise InvalidConfig(f"NEXUS_CLICKHOUSE_URL {url!r} names no data dir: use chdb:///path/to/dir")
        database = parse_qs(parts.query).get("database", [DEFAULT_DATABASE])[0]
        address = StoreAddress("chdb", database, path=str(Path(path).expanduser().resolve()))
    elif parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise InvalidConfig(f"NEXUS_CLICKHOUSE_URL {redact_url(url)!r} names no host")
        try:
            port = parts.port or (8443 if parts.scheme == "https" else 8123)
        except ValueError:
            raise InvalidConfig(f"NEXUS_CLICKHOUSE_URL {redact_url(url)!r} has an invalid port") from None
        address = StoreAddress(
            "http",
            parts.path.strip("/") or DEFAULT_DATABASE,
            host=parts.hostname,
            port=port,
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            secure=parts.scheme == "https",
        )
    else:
        raise InvalidConfig(
            f"NEXUS_CLICKHOUSE_URL must start with chdb:// or http(s)://, not {redact_url(url)!r}"
        )
    if not _DATABASE_NAME.match(address.database):
        raise InvalidConfig(f"database name {address.database!r} must match {_DATABASE_NAME.pattern}")
    return address


# Tables are partitioned by project and month (migration 008), so one group-commit block from many
# projects, or an import spanning years, touches many partitions: the engine's default of 100 per insert
# would refuse acknowledged events.
_CLIENT_SETTINGS = {"max_partitions_per_insert_block": 0}


def backup_area(address: StoreAddress) -> Path:
    """The directory beside an embedded data dir where the engine may write and read backups."""
    return Path(f"{address.path}-backups")


def connect(address: StoreAddress) -> Client:
    """A client on the address's server, not yet bound to its database (migrations create that). Its
    calls raise Nexus's errors (nexus.store.guard)."""
    return guard(_open(address))


def _open(address: StoreAddress) -> Client:
    try:
        if address.engine == "chdb":
            _lock_data_dir(Path(address.path))
            # BACKUP … TO File() writes only under backups.allowed_path, which chDB takes as an engine
            # option at start (nexus.store.backup stages every backup and restore there).
            return clickhouse_connect.get_client(dsn=f"chdb://{address.path}", tz_mode="aware",
                                                 settings=_CLIENT_SETTINGS,
                                                 chdb_options={"backups.allowed_path": str(backup_area(address))})
        return clickhouse_connect.get_client(
            host=address.host,
            port=address.port,
            username=address.username,
            password=address.password,
            secure=address.secure,
            connect_timeout=5,
            tz_mode="aware",
            settings=_CLIENT_SETTINGS,
        )
    except (ClickHouseError, OSError, urllib3.exceptions.HTTPError) as e:
        raise StorageUnavailable(f"cannot open {address.describe()}: {describe_error(e)}") from None


def describe_error(error: BaseException) -> str:
    """The first meaningful line of a driver error, without stack traces or version trailers."""
    text = str(error).strip()
    text = text.split("Stack trace", 1)[0].split(". Expected one of:", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    message = " ".join(lines)[:500] if lines else type(error).__name__
    if socket_error := re.search(r"\[Errno -?\d+\] ([^'\")(]+)", message):
        return socket_error[1].strip()  # the driver wraps socket errors in pages of retry detail
    if "No space left on device" in message or "NOT_ENOUGH_SPACE" in message:
        return f"the disk is full ({message})"
    return message


# Locks this process holds, by data dir: chDB lets one process own a dir, and that process may open
# several clients on it.
_held_locks: dict[Path, int] = {}


def _lock_data_dir(path: Path) -> None:
    if path in _held_locks:
        return
    # chDB writes parts from this process for as long as it runs: only its owner may read them.
    private_files()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path.parent / f"{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise StorageUnavailable(f"cannot use data dir {path}: {_os_reason(e)}") from None
    warn_if_open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreLocked(
            f"data dir {path} is in use by process {holder} (a running nexus serve?): stop it, or query "
            f"it through its API; chDB lets only one process open a data dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    if not os.access(path, os.W_OK):
        raise StorageUnavailable(f"cannot use data dir {path}: it is not writable")
    _held_locks[path] = fd


def _os_reason(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "the disk is full"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "it is not writable"
    return error.strerror or str(error)


def redact_url(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
