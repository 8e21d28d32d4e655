"""The one error tree of Nexus; driver errors are wrapped into it where they enter."""


class NexusError(Exception):
    """Base of every error Nexus reports to a person: its message is one clear line."""


class InvalidConfig(NexusError):
    """A setting (an NEXUS_* variable or a CLI option) has a value Nexus cannot use."""


class InvalidRequest(NexusError, ValueError):
    """The caller asked for something malformed or impossible; `field`, when known, is the JSON path of the
    value at fault (`steps[1].where`). A ValueError so that msgspec, decoding a request whose
    `__post_init__` refuses a value, reports where the value was."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotFound(NexusError):
    """A named thing (project, key, migration) does not exist."""


class Unauthorized(NexusError):
    """No API key, or one that does not exist or was revoked."""


class TooLarge(InvalidRequest):
    """A body or an event is over its size limit."""


class RateLimited(NexusError):
    """The caller sent more requests than its limit allows; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(NexusError):
    """The caller's key does not allow this."""


class StorageUnavailable(NexusError):
    """ClickHouse or Redis cannot be reached, opened or written."""


class StoreLocked(StorageUnavailable):
    """The embedded data dir is held by another process."""


class MigrationError(NexusError):
    """The schema cannot be brought up to date safely."""


class QueryFailed(NexusError):
    """ClickHouse refused or failed a query."""


def reason_and_field(error: Exception) -> tuple[str, str]:
    """A msgspec ValidationError's text as (reason, field): msgspec ends it with the JSON path of the value
    at fault (" - at `$.steps[1]`"), given here as `steps[1]`; '' when it is the whole document."""
    reason, _, path = str(error).partition(" - at `$")
    return reason, path.rstrip("`").lstrip(".")
