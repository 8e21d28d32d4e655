"""An answer's time limit covers sending it. A client that stops reading blocks the server's writes;
without a bound it would hold its query, engine session and slot for as long as it liked. A handler
sets the deadline of its answer (`set_deadline`) and what to let go when it passes; the `send_deadline`
middleware bounds every write by it and, when one blocks past it, lets go and cuts the connection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
import anyio.to_thread
from litestar import Request
from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("nexus.api")

_STATE_KEY = "nexus_deadline"


class Deadline:
    def __init__(self, at: float, on_expiry: Callable[[], None]):
        self.at = at
        self.on_expiry = on_expiry


class AnswerTimedOut(Exception):
    """The client did not take the answer before its deadline: the connection is cut."""


def set_deadline(request: Request, seconds: int, on_expiry: Callable[[], None] = lambda: None) -> None:
    """The answer to `request` must be sent within `seconds` from now (0: no limit)."""
    if seconds > 0:
        request.scope["state"][_STATE_KEY] = Deadline(time.monotonic() + seconds, on_expiry)


def send_deadline(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def bounded_send(message: Message) -> None:
            deadline: Deadline | None = scope.get("state", {}).get(_STATE_KEY)
            if deadline is None:
                await send(message)
                return
            # A write that does not wait (the client reads) completes even just past the deadline;
            # only one blocked on a full socket buffer is cut.
            with anyio.move_on_after(max(deadline.at - time.monotonic(), 0)) as bound:
                await send(message)
            if bound.cancelled_caught:
                log.warning("%s: the client stopped reading; the answer was cut at its deadline", scope["path"])
                await anyio.to_thread.run_sync(deadline.on_expiry)
                raise AnswerTimedOut(scope["path"])

        await app(scope, receive, bounded_send)

    return middleware
