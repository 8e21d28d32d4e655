"""API keys: random secrets shown once, stored as SHA-256 hashes, each scoped to one project.

Scopes: `write` sends events only (safe to ship in a web page), `read` runs analyses and queries,
`admin` does everything. Keys carry 240 random bits, so a fast hash suffices: there is nothing to
brute-force that a slow hash would protect.

The instance admin key is stored the same way, as project 0 (no project has that number) with the scope
`instance`, which allows none of the project scopes: it manages projects and keys (nexus.meta.admin) and
reads no events. Every change that must reach other processes' key caches at once bumps a counter in
Redis (`changed`), which they watch.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Literal, get_args

import msgspec
import redis
from clickhouse_connect.driver.client import Client

from nexus.errors import InvalidRequest, NotFound
from nexus.meta import records

TABLE = "api_keys"
KeyScope = Literal["write", "read", "admin"]  # what a key may do: send events, read, administer
SCOPES: tuple[str, ...] = get_args(KeyScope)
INSTANCE = "instance"
INSTANCE_PROJECT = 0
GENERATION = "nexus:keys:generation"
_PREFIX = "nx_"
_KEY_ID_LENGTH = len(_PREFIX) + 8


class ApiKey(msgspec.Struct, frozen=True):
    project_id: int
    key_id: str
    key_hash: str
    scope: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: KeyScope) -> bool:
        return self.active and (self.scope == scope or self.scope == "admin")


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(client: Client, project_id: int, scope: str, name: str = "") -> tuple[ApiKey, str]:
    """A new key for the project; returns the record and the secret, which is not stored anywhere."""
    if scope not in SCOPES:
        raise InvalidRequest(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}", field="scope")
    return _create(client, project_id, scope, name)


def create_instance_key(client: Client) -> tuple[ApiKey, str]:
    """A new instance admin key; returns the record and the secret, which is not stored anywhere."""
    return _create(client, INSTANCE_PROJECT, INSTANCE, "instance admin key")


def instance_keys(client: Client) -> list[ApiKey]:
    """The active instance admin keys."""
    return [k for k in list_keys(client, INSTANCE_PROJECT) if k.active and k.scope == INSTANCE]


def _create(client: Client, project_id: int, scope: str, name: str) -> tuple[ApiKey, str]:
    secret = _PREFIX + secrets.token_urlsafe(30)
    key = ApiKey(
        project_id=project_id,
        key_id=secret[:_KEY_ID_LENGTH],
        key_hash=hash_key(secret),
        scope=scope,
        name=name,
        created_at=records.now(),
        revoked_at=None,
    )
    records.save(client, TABLE, key)
    return key, secret


def list_keys(client: Client, project_id: int | None = None) -> list[ApiKey]:
    if project_id is None:
        return records.select(client, TABLE, ApiKey)
    return records.select(client, TABLE, ApiKey, "project_id = {p:UInt32}", {"p": project_id})


def get(client: Client, key_id: str) -> ApiKey:
    """The key with this public id, revoked or not."""
    found = _by_id(client, key_id)
    if found is None:
        raise not_found(key_id)
    return found


def not_found(key_id: str) -> NotFound:
    """The answer for a key that does not exist, or that the caller may not see: the same for both."""
    return NotFound(f"no API key {key_id!r}: list them with `nexus key list`")


def revoke(client: Client, key_id: str) -> ApiKey:
    """Mark the key revoked (the row stays, for the record); revoking twice is harmless. Other processes
    learn of it when `changed` is called."""
    key = get(client, key_id)
    if key.revoked_at is None:
        key = msgspec.structs.replace(key, revoked_at=records.now())
        records.save(client, TABLE, key)
    return key


def find_active(client: Client, key_id: str) -> ApiKey | None:
    """The key with this public id if it exists and is not revoked, else None."""
    found = _by_id(client, key_id)
    return found if found is not None and found.active else None


def _by_id(client: Client, key_id: str) -> ApiKey | None:
    found = records.select(client, TABLE, ApiKey, "key_id = {k:String}", {"k": key_id})
    return found[0] if found else None


def authenticate(client: Client, secret: str) -> ApiKey | None:
    """The active key whose secret this is, or None."""
    if not secret.startswith(_PREFIX) or len(secret) <= _KEY_ID_LENGTH:
        return None
    found = records.select(client, TABLE, ApiKey, "key_id = {k:String}", {"k": secret[:_KEY_ID_LENGTH]})
    digest = hash_key(secret)
    for key in found:
        if key.active and hmac.compare_digest(key.key_hash, digest):
            return key
    return None


def changed(client: redis.Redis) -> int:
    """Tell every process that keys were revoked: their caches drop what they hold (see nexus.api.auth)."""
    return int(client.incr(GENERATION))


def generation(client: redis.Redis) -> int:
    """How many times keys have changed: a cache built at another generation is stale."""
    return int(client.get(GENERATION) or 0)
