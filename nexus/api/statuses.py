"""Every error class and its HTTP status, in one place: the app's error handler and the import's answer
(which reports what stopped it rather than raising) both read it."""

from __future__ import annotations

from nexus.errors import (EngineError, Forbidden, InvalidRequest, LimitExceeded, NotFound, QueryFailed, RateLimited,
                          StorageUnavailable, TooLarge, Unauthorized)

# First match wins: subclasses before their parents. A NexusError that is none of these (and any other
# exception) is a 500 with an error id.
_STATUS: dict[type[Exception], int] = {
    TooLarge: 413,            # a body or an event over its size limit
    InvalidRequest: 400,      # a malformed or impossible request, with its `field`
    LimitExceeded: 400,       # a query went over a limit: `limit` names it, the message says how to raise it
    QueryFailed: 400,         # the caller's own SQL failed: the engine's reason
    Unauthorized: 401,
    Forbidden: 403,           # the key's scope, or SQL that the sandbox refuses before running it
    NotFound: 404,
    RateLimited: 429,         # with Retry-After
    StorageUnavailable: 503,  # ClickHouse or Redis unreachable or overloaded, with Retry-After
    EngineError: 500,         # SQL Nexus wrote failed: an error id; the SQL and the engine's text go to the log
}


def status_for(kind: type[Exception]) -> int:
    """The HTTP status of an error of class `kind`."""
    return next((code for known, code in _STATUS.items() if issubclass(kind, known)), 500)


def status_of(error: Exception) -> int:
    return status_for(type(error))
