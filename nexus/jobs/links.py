"""Signed download links: a URL to one export's file that works without a key until it expires, for the
recipients of a scheduled run (a webhook, an e-mail). The signature is an HMAC-SHA256 over the project,
the job and the expiry, with a secret every API and worker process shares through Redis."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlencode

import redis

from nexus.errors import Unauthorized

_SECRET = "nexus:links:secret"


def signed_url(redis_client: redis.Redis, public_url: str, project_id: int, job_id: str, valid_seconds: int) -> str:
    expires = int(time.time()) + valid_seconds
    query = urlencode({"project": project_id, "expires": expires,
                       "signature": _signature(redis_client, project_id, job_id, expires)})
    return f"{public_url.rstrip('/')}/v1/exports/{job_id}/file?{query}"


def verified(redis_client: redis.Redis, job_id: str, project_id: int | None, expires: int | None,
             signature: str) -> int:
    """The link's project when its signature is right and it has not expired."""
    if project_id is None or expires is None:
        raise Unauthorized("a signed link needs project, expires and signature")
    expected = _signature(redis_client, project_id, job_id, expires)
    # As bytes: compare_digest refuses a str with a character outside ASCII, which a caller may well send.
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Unauthorized("this link's signature is not valid")
    if expires < time.time():
        raise Unauthorized("this link has expired: ask for the file with a key")
    return project_id


def _signature(redis_client: redis.Redis, project_id: int, job_id: str, expires: int) -> str:
    redis_client.set(_SECRET, secrets.token_hex(32), nx=True)
    key = redis_client.get(_SECRET)
    message = f"{project_id}:{job_id}:{expires}".encode()
    return hmac.new(key if isinstance(key, bytes) else key.encode(), message, hashlib.sha256).hexdigest()
