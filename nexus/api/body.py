"""Reading request bodies within limits: the size as sent and, for gzip, the size once decoded."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request

from nexus.errors import InvalidRequest, TooLarge, reason_and_field
from nexus.ingest.compression import gunzip


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, gunzipped when Content-Encoding says gzip; TooLarge past `limit` bytes either way."""
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
    if encoding not in ("", "identity"):
        raise InvalidRequest(f"Content-Encoding {encoding!r} is not supported: send gzip or nothing")
    return body


def decode_json(body: bytes, kind: Any) -> Any:
    """The body as `kind`; a malformed or mistyped one is InvalidRequest naming the field and the reason."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as e:
        reason, field = reason_and_field(e)
        raise InvalidRequest(f"{field or 'body'}: {reason}", field=field or None) from None
    except msgspec.DecodeError as e:
        raise InvalidRequest(f"malformed JSON: {e}") from None
    except RecursionError:
        raise InvalidRequest("the JSON is nested too deeply") from None
