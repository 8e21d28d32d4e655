"""What an administrator may do with projects and keys, whoever asks: the API (for an admin key), the CLI
on the store itself, and, with the same methods over HTTP, the CLI against a running server.

The instance admin (its key, or a person at the store itself) manages projects and every project's keys.
A project's admin key manages its own project's keys; to it, other projects and their keys do not
exist: asking for one answers exactly as for one that is missing (404), so no answer tells them apart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Literal

import msgspec
import redis
from clickhouse_connect.driver.client import Client

from nexus.adhoc import limits
from nexus.errors import Forbidden, InvalidRequest, StorageUnavailable, reason_and_field
from nexus.meta import keys, projects
from nexus.meta.projects import Project

_PROJECT_ID = Annotated[int, msgspec.Meta(ge=1, le=projects.MAX_ID)]
_INT64 = 2**63 - 1  # the largest bound msgspec checks; far past any real limit
_LIMIT_MAXIMA = {"max_seconds": 2**32 - 1}  # query_limits stores max_seconds as a UInt32, the rest UInt64


class Caller(msgspec.Struct, frozen=True):
    """Who administers: the instance (project_id None) or the admin key of one project."""

    key_id: str
    project_id: int | None = None

    @property
    def instance(self) -> bool:
        return self.project_id is None


LOCAL = Caller("local")  # a person running the CLI on the store itself
_LOCAL_LOCK = threading.Lock()


class ProjectInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    timezone: str = "UTC"


class KeyInput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    scope: Literal["write", "read", "admin"]
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    project_id: _PROJECT_ID | None = None  # the instance admin names it; a project's admin key may omit it


LimitsInput = msgspec.defstruct(
    "LimitsInput",
    [(name, Annotated[int, msgspec.Meta(ge=0, le=_LIMIT_MAXIMA.get(name, _INT64))] | None, None)
     for name in limits.LIMIT_FIELDS],
    frozen=True,
    forbid_unknown_fields=True,
    module=__name__,
)
LimitsInput.__doc__ = "A key's query limits; a limit left out (or null) goes back to the installation's default."


class KeyView(msgspec.Struct, frozen=True):
    """A key as its administrators see it: never its secret, nor the secret's hash."""

    key_id: str
    project_id: int
    scope: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


class NewKey(KeyView, frozen=True):
    secret: str  # shown in this answer only


class LimitsView(msgspec.Struct, frozen=True):
    key_id: str
    project_id: int
    overrides: dict[str, int]  # the limits set for this key
    limits: limits.QueryLimits  # what its queries run under: the overrides over the defaults


def limits_input(**values: int | None) -> msgspec.Struct:
    """A LimitsInput from keyword values, each checked as the API checks a body's."""
    try:
        return msgspec.convert(values, LimitsInput)
    except msgspec.ValidationError as e:
        reason, field = reason_and_field(e)
        raise InvalidRequest(f"{field}: {reason}" if field else reason, field=field or None) from None


def view(key: keys.ApiKey) -> KeyView:
    return KeyView(key.key_id, key.project_id, key.scope, key.name, key.created_at, key.revoked_at)


class Administration:
    """The admin actions open to one caller. With `redis` (every server, and the CLI when NEXUS_REDIS_URL
    is set), processes coordinate through it: a revoked key is announced to every key cache
    (nexus.api.auth), and projects are created one at a time. Limits and new keys need no notice: they
    are read when used."""

    def __init__(self, client: Client, caller: Caller, defaults: limits.QueryLimits,
                 redis_client: redis.Redis | None = None):
        self.client = client
        self.caller = caller
        self.defaults = defaults
        self.redis = redis_client

    def create_project(self, data: ProjectInput) -> Project:
        self._instance_only("create projects")
        # A project takes the next free number and a free name: two at once would both take the same
        # number, and the later row would replace the earlier project.
        with self._one_at_a_time("projects"):
            return projects.create(self.client, data.name, data.timezone)

    def list_projects(self) -> list[Project]:
        """Every project for the instance admin; a project's admin key sees its own."""
        if self.caller.instance:
            return projects.list_all(self.client)
        return [projects.get(self.client, self._project(None))]

    def find_project(self, reference: str) -> Project:
        """The project named or numbered `reference`, among those the caller administers."""
        project = projects.get(self.client, reference)
        if not self.caller.instance and project.project_id != self.caller.project_id:
            raise projects.not_found(reference)
        return project

    def create_key(self, data: KeyInput) -> NewKey:
        key, secret = keys.create(self.client, self._project(data.project_id), data.scope, data.name)
        return NewKey(*msgspec.structs.astuple(view(key)), secret=secret)

    def list_keys(self, project_id: int | None = None) -> list[KeyView]:
        """The keys of one project, or for the instance admin without a project, of all (its own too)."""
        if project_id is not None or not self.caller.instance:
            project_id = self._project(project_id)
        return [view(k) for k in keys.list_keys(self.client, project_id)]

    def revoke_key(self, key_id: str) -> KeyView:
        revoked = keys.revoke(self.client, self._key(key_id).key_id)
        if self.redis is not None:
            try:
                keys.changed(self.redis)
            except redis.RedisError as e:
                raise StorageUnavailable(f"the key is revoked, but Redis did not take the notice ({e}): other "
                                         f"processes may accept it until their caches expire (10 s)") from None
        return view(revoked)

    def set_limits(self, key_id: str, data: msgspec.Struct) -> LimitsView:
        """Store a key's query limits (a LimitsInput): all of them, one not given goes back to the default."""
        key = self._key(key_id)
        overrides = msgspec.structs.asdict(data)
        limits.set_for_key(self.client, key.project_id, key.key_id, **overrides)
        return LimitsView(key.key_id, key.project_id, {k: v for k, v in overrides.items() if v is not None},
                          limits.for_key(self.client, key.key_id, self.defaults))

    def get_limits(self, key_id: str) -> LimitsView:
        """A key's query limits: those set for it, and those its queries run under."""
        key = self._key(key_id)
        overrides = limits.overrides_of(self.client, key.key_id)
        return LimitsView(key.key_id, key.project_id, overrides, msgspec.structs.replace(self.defaults, **overrides))

    @contextmanager
    def _one_at_a_time(self, what: str) -> Iterator[None]:
        if self.redis is None:
            with _LOCAL_LOCK:  # the embedded store belongs to this process alone
                yield
            return
        lock = self.redis.lock(f"nexus:lock:{what}", timeout=60, blocking_timeout=30)
        try:
            acquired = lock.acquire()
        except redis.RedisError as e:
            raise StorageUnavailable(f"cannot take the {what} lock in Redis: {e}") from None
        if not acquired:
            raise StorageUnavailable(f"another process has held the {what} lock for 30 s: try again")
        try:
            yield
        finally:
            try:
                lock.release()
            except redis.RedisError:
                pass  # it expires by itself

    def _instance_only(self, action: str) -> None:
        if not self.caller.instance:
            raise Forbidden(f"a project's admin key cannot {action}: that takes the instance admin key")

    def _project(self, project_id: int | None) -> int:
        """The project an action is about: the caller's own, or for the instance admin the one named."""
        if self.caller.instance:
            if project_id is None:
                raise InvalidRequest("project_id is required: the instance admin administers every project, so "
                                     "name one (in the CLI: --project)", field="project_id")
            return projects.get(self.client, project_id).project_id
        if project_id is not None and project_id != self.caller.project_id:
            raise projects.not_found(project_id)
        return self.caller.project_id  # type: ignore[return-value]

    def _key(self, key_id: str) -> keys.ApiKey:
        key = keys.get(self.client, key_id)
        if not self.caller.instance and key.project_id != self.caller.project_id:
            raise keys.not_found(key_id)
        return key
