"""The one error tree of Nexus; driver errors are wrapped into it where they enter."""


class NexusError(Exception):
    """Base of every error Nexus reports to a person: its message is one clear line."""


class InvalidConfig(NexusError):
    """A setting (an NEXUS_* variable or a CLI option) has a value Nexus cannot use."""


class InvalidRequest(NexusError):
    """The caller asked for something malformed or impossible."""


class NotFound(NexusError):
    """A named thing (project, key, migration) does not exist."""


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
