"""Where jobs run: worker threads (and the scheduler) inside `nexus serve`, or `nexus worker` on its own."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from nexus.observe.serving import observed
from nexus.observe.serving import prepare as prepare_observing
from nexus.runtime import Runtime, open_runtime
from nexus.settings import Settings


@contextmanager
def working(runtime: Runtime, threads: int) -> Iterator[None]:
    """Job workers and the scheduler running in this process until the block ends; none with 0 threads."""
    if threads <= 0:
        yield
        return
    from nexus.jobs.scheduler import Scheduler

    runtime.jobs.start(threads)
    scheduler = Scheduler(runtime)
    scheduler.start()
    try:
        yield
    finally:
        scheduler.stop()
        runtime.jobs.stop()


def run_worker(settings: Settings, threads: int | None, say: Callable[[str], None] = print) -> None:
    prepare_observing(settings)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with open_runtime(settings, ingest=False) as runtime, working(runtime, threads or settings.worker_threads), \
                observed(runtime):
            say(f"Nexus worker: {threads or settings.worker_threads} threads and the scheduler are running "
                f"(stop with Ctrl-C)")
            stop.wait()
            say("Nexus worker: stopping; running jobs go back to the queue")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("Nexus worker stopped")
