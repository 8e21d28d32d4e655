"""Reading request bodies within limits: the size as sent and, for gzip and deflate, the size once decoded."""

from __future__ import annotations

from litestar import Request

from nexus.errors import InvalidRequest, TooLarge
from nexus.ingest.compression import gunzip, inflate


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, decoded when Content-Encoding says gzip or deflate; TooLarge past `limit` bytes either way."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"the request body is {declared} bytes, over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return gunzip(body, limit)
    if encoding == "deflate":
        return inflate(body, limit)
    if encoding not in ("", "identity"):
        raise InvalidRequest(f"Content-Encoding {encoding!r} is not supported: send gzip, deflate or nothing")
    return body
