"""Bounded gunzip and inflate for request bodies: never more than the limit decoded, whatever the input claims."""

from __future__ import annotations

import zlib

from nexus.errors import InvalidRequest, TooLarge


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """Decode gzip (members may be concatenated, then zero-padded, as gzip.decompress allows); a body
    decoding to more than `max_bytes` (a zip bomb) stops at max_bytes + 1 bytes with TooLarge."""
    out = bytearray()
    rest = data
    while rest.strip(b"\x00"):
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, max_bytes + 1 - len(out))
        except zlib.error as e:
            raise InvalidRequest(f"the body is not valid gzip: {e}") from None
        if len(out) > max_bytes:
            raise TooLarge(f"the decoded request body is over the limit of {max_bytes} bytes")
        if not inflater.eof:
            raise InvalidRequest("the body is not valid gzip: truncated")
        rest = inflater.unused_data
    return bytes(out)


def inflate(data: bytes, max_bytes: int) -> bytes:
    """Decode `Content-Encoding: deflate`, which is zlib-wrapped (RFC 1950) as HTTP defines it and PostHog's
    SDKs send it; over `max_bytes` decoded is TooLarge, as for gzip."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error as e:
        raise InvalidRequest(f"the body is not valid deflate (zlib) data: {e}") from None
    if len(out) > max_bytes:
        raise TooLarge(f"the decoded request body is over the limit of {max_bytes} bytes")
    if not inflater.eof:
        raise InvalidRequest("the body is not valid deflate (zlib) data: truncated")
    return out
