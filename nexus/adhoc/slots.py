"""How many ad-hoc queries run at once in this process, and who may hold them.

Each running query holds an engine session and a thread, so they are bounded; and the bound is shared,
so that one client cannot hold every slot (four stalled streams of one read key used to answer 429 to
everyone). One key may hold at most half of the slots, one project all but one: another project can
always start a query, and another key of the same project usually can. A query that finds no slot
waits for one, up to `queue_seconds`, then gets a 429 that says which share was full.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from nexus.errors import RateLimited


class Slots:
    def __init__(self, total: int, queue_seconds: float):
        if total < 1:
            raise ValueError(f"at least one query slot is needed, not {total}")
        self.total = total
        self.per_project = max(1, total - 1)
        self.per_key = max(1, total // 2)
        self.queue_seconds = queue_seconds
        self._changed = threading.Condition()
        self._running = 0
        self._by_project: Counter[int] = Counter()
        self._by_key: Counter[str] = Counter()

    def acquire(self, project_id: int, key_id: str = "") -> Callable[[], None]:
        """Take a slot for a query of `project_id` run with `key_id` ("" when no key runs it: the CLI,
        jobs); returns the function that gives it back (calling it twice gives it back once)."""
        deadline = time.monotonic() + self.queue_seconds
        with self._changed:
            while (full := self._full(project_id, key_id)) is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RateLimited(f"too many ad-hoc queries are running {full}; retry shortly", retry_after=2)
                self._changed.wait(remaining)
            self._running += 1
            self._by_project[project_id] += 1
            self._by_key[key_id] += 1
        released = threading.Event()

        def release() -> None:
            with self._changed:
                if released.is_set():
                    return
                released.set()
                self._running -= 1
                self._by_project -= Counter({project_id: 1})  # `-=` drops counts that reach 0
                self._by_key -= Counter({key_id: 1})
                self._changed.notify_all()

        return release

    def _full(self, project_id: int, key_id: str) -> str | None:
        """Which share has no room left, said for the caller; None when the query may start."""
        if key_id and self._by_key[key_id] >= self.per_key:
            return f"with this key ({self.per_key} of {self.total} at most)"
        if self._by_project[project_id] >= self.per_project:
            return f"for this project ({self.per_project} of {self.total} at most)"
        if self._running >= self.total:
            return f"in this process ({self.total})"
        return None
