"""Ad-hoc SQL against a running Nexus over HTTP (`nexus sql --url --key`): the same endpoint, the same
sandbox as any API client. HTTP through the standard library; Arrow answers read with pyarrow."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from nexus.errors import (
    Forbidden,
    InvalidRequest,
    NexusError,
    NotFound,
    QueryFailed,
    RateLimited,
    StorageUnavailable,
    Unauthorized,
)

_CHUNK = 1 << 20
_ERRORS: dict[int, type[NexusError]] = {400: QueryFailed, 401: Unauthorized, 403: Forbidden, 404: NotFound,
                                         413: InvalidRequest, 429: RateLimited, 503: StorageUnavailable}


class RemoteAnswer:
    """An answer of /v1/query as it arrives: its bytes, or (format arrow) its record batches, and whether
    the server cut it at max_rows (None: it did not say)."""

    def __init__(self, response: http.client.HTTPResponse):
        self.response = response
        flag = response.headers.get("X-Nexus-Truncated")
        self.truncated: bool | None = None if flag is None else flag == "true"

    def chunks(self) -> Iterator[bytes]:
        try:
            while chunk := self.response.read(_CHUNK):
                yield chunk
        except (http.client.IncompleteRead, http.client.HTTPException, OSError):
            raise _cut_short() from None

    def batches(self) -> Iterator[pa.RecordBatch]:
        import pyarrow.ipc as ipc

        try:
            yield from ipc.open_stream(self.response)
        except (pa.ArrowException, http.client.IncompleteRead, http.client.HTTPException, OSError):
            raise _cut_short() from None


@contextmanager
def answer(url: str, key: str, sql: str, params: dict[str, Any] | None, fmt: str, max_rows: int | None = None,
           timeout: float = 300) -> Iterator[RemoteAnswer]:
    """POST the query; the answer streams while the block runs."""
    with _post(url, key, sql, params, fmt, max_rows, timeout) as response:
        yield RemoteAnswer(response)


def _cut_short() -> QueryFailed:
    return QueryFailed("the server stopped sending the result before its end; its log has the reason, often a "
                       "limit such as max_result_rows")


def _post(url: str, key: str, sql: str, params: dict[str, Any] | None, fmt: str, max_rows: int | None,
          timeout: float) -> http.client.HTTPResponse:
    body: dict[str, Any] = {"sql": sql, "params": params or {}, "format": fmt}
    if max_rows is not None:
        body["max_rows"] = max_rows
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/query", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise _error(e.code, e.read()) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise StorageUnavailable(f"cannot reach Nexus at {url}: {reason}") from None


def _error(status: int, body: bytes) -> NexusError:
    try:
        message = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        message = body.decode(errors="replace")[:300] or f"HTTP {status}"
    return _ERRORS.get(status, NexusError)(message)
