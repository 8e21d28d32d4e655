"""Runs the Nexus HTTP service: open the runtime, optionally seed demo data, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import ctypes
import gc
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from nexus.api.app import create_app
from nexus.dashboard import server as dashboard
from nexus.demo.load import load as load_demo
from nexus.errors import InvalidConfig
from nexus.jobs.service import working
from nexus.meta import keys, projects
from nexus.observe.serving import observed
from nexus.observe.serving import prepare as prepare_observing
from nexus.runtime import Runtime, open_runtime
from nexus.settings import Settings
from nexus.store.client import parse_url

DEMO_PROJECT = "demo"
_M_ARENA_MAX = -8  # glibc's mallopt parameter


def serve(settings: Settings, *, demo_events: int = 0, say: Callable[[str], None] = print,
          demo_progress: Callable[[int, int], None] | None = None) -> None:
    """Serve the API on settings.host:port. With demo_events, an empty store first gets a demo project."""
    _limit_malloc_arenas()
    prepare_observing(settings)
    listener = _listen(settings.host, settings.port)
    host, port = listener.getsockname()[:2]
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    with open_runtime(settings) as runtime:
        _instance_key(runtime, say)
        existing = projects.list_all(runtime.clickhouse)
        if demo_events and not existing:
            project = projects.create(runtime.clickhouse, DEMO_PROJECT)
            say(f"Loading {demo_events:,} demo events into project {project.name!r} (id {project.project_id})")
            load_demo(runtime.clickhouse, project.project_id, demo_events,
                      progress=(lambda n: demo_progress(n, demo_events)) if demo_progress else lambda n: None)
            for scope in ("write", "read"):
                _, secret = keys.create(runtime.clickhouse, project.project_id, scope, name=f"demo {scope} key")
                say(f"Demo {scope} key (shown once): {secret}")
        elif demo_events:
            names = ", ".join(repr(p.name) for p in existing[:3]) + (", ..." if len(existing) > 3 else "")
            say(f"Demo skipped: the store already has projects ({names}), and their data. Keys are shown only "
                f"when made: make one while the server runs with the instance admin key (printed at the first "
                f"start, or NEXUS_ADMIN_KEY): nexus key create --url {base} --key INSTANCE_KEY --project "
                f"{existing[0].name} --scope read (or POST {base}/v1/keys)")
        elif not existing:
            say(_no_projects(settings))
        # log_config=None: uvicorn's lines go through Nexus's JSON handler (nexus.observe.logs).
        server = uvicorn.Server(uvicorn.Config(create_app(runtime), log_level=settings.log_level,
                                               lifespan="on", access_log=False, log_config=None))
        with dashboard.running(runtime, host=settings.host, port=settings.dashboard_port) as dashboard_url, \
                working(runtime, settings.worker_threads), observed(runtime), _stop_on_signals(server):
            say(f"Dashboard: {dashboard_url}  (sign in with a read or admin key of a project)")
            say(f"Nexus is serving {base}  (health: {base}/health/ready; stop with Ctrl-C)")
            # What start-up made (modules, the app, caches) lives as long as the process: frozen, the
            # collector stops scanning it on every collection (measured: +8% events/s on /v1/batch).
            gc.freeze()
            server.run(sockets=[listener])
    say("Nexus stopped")


def _no_projects(settings: Settings) -> str:
    """A store with no project is most often a new one made by mistake: the data dir is relative to the
    working directory, so a start from elsewhere creates another, empty store."""
    address = parse_url(settings.clickhouse_url)
    where = (f"the store at {settings.data_dir} (the data dir is NEXUS_DATA_DIR, by default .nexus in the "
             f"working directory)" if address.engine == "chdb" else address.describe())
    return (f"Note: no projects in {where}; create one with the instance admin key (POST /v1/projects), "
            f"or start with --demo")


def _instance_key(runtime: Runtime, say: Callable[[str], None]) -> None:
    """Without NEXUS_ADMIN_KEY, the first start creates the instance admin key and prints it, once; later
    starts find it stored (as a hash). API processes starting together take turns through Redis, so
    exactly one of them creates and prints it."""
    if runtime.settings.admin_key:
        return
    with runtime.redis.client.lock("nexus:lock:instance-key", timeout=60, blocking_timeout=60):
        if keys.instance_keys(runtime.clickhouse):
            return
        key, secret = keys.create_instance_key(runtime.clickhouse)
    say(f"Instance admin key {key.key_id} (manages projects and keys; shown only now, store it): {secret}")


def _limit_malloc_arenas() -> None:
    """At most two glibc malloc arenas for the threads started from here on (ClickHouse's, the API's).
    By default each new thread may get its own, up to 8 per core, and their half-empty arenas kept
    ~85 MB more resident over 3M ingested events (peak 982 MB vs 897 MB) at the same throughput.
    Nothing happens on a C library without mallopt."""
    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass


@contextmanager
def _stop_on_signals(server: uvicorn.Server) -> Iterator[None]:
    """SIGTERM/SIGINT ask the server to stop gracefully, whenever they arrive: before uvicorn installs
    its own handlers, while it runs, and after (uvicorn re-raises them once stopped, which would otherwise
    kill the process before Redis and ClickHouse are closed)."""

    def stop(*_: object) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on accepted sockets whose protocol says
    # TCP. Without it every request on a kept-alive connection waited ~40 ms (Nagle against delayed ACKs).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as e:
        listener.close()
        raise InvalidConfig(f"cannot listen on {host}:{port}: {e.strerror}") from None
    listener.listen(2048)  # connections queue from now on, even before uvicorn accepts them
    return listener
