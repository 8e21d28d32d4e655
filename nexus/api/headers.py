"""The headers every answer carries: CORS — the write endpoints open to every origin, the others only to
NEXUS_CORS_ORIGINS — and security headers (nosniff, no-store, a strict Content-Security-Policy).

Write keys are public by design (they ship in web pages), so a write endpoint answers any origin with
`Access-Control-Allow-Origin: *` and never with credentials: a page can send events, and read the
answer (an SDK that cannot read it takes it for a failure and sends again). Everything else needs a read
or admin key, which belongs to the analyst, not to a page: its answers are readable only from the
origins an operator lists. Preflights (OPTIONS with Access-Control-Request-Method) are answered by
Litestar's own OPTIONS handler (204); this hook only adds the headers, to every answer, errors included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

# What browser SDKs send beyond the simple headers: analytics-next's HTTP Basic key and retry counter
# (X-Retry-Count), a JSON or gzip body. posthog-js sends simple requests (text/plain, key in the body).
WRITE_REQUEST_HEADERS = "Authorization, Content-Type, Content-Encoding, X-Retry-Count"
READ_REQUEST_HEADERS = "Authorization, Content-Type, Content-Encoding"
# SDKs wait as long as Retry-After says (429, 503); the browser hides any header not listed here.
EXPOSED = "Retry-After, X-Nexus-Truncated"  # X-Nexus-Truncated: an ad-hoc SQL answer cut at max_rows
PREFLIGHT_MAX_AGE = "7200"  # Chromium's cap, in seconds

# HTML is only the API's own pages (/schema): scripts, styles and images from this origin, nothing
# inline, no frames, no forms, no base URL. Other answers are data and run nothing when opened.
HTML_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"


class ResponseHeaders:
    """A Litestar `before_send` hook; `write_paths` are the endpoints that take write keys, as their routes
    say them (a `{name:type}` segment stands for any one segment: /v1/experiments/{key:str}/assign)."""

    def __init__(self, write_paths: Iterable[str], read_origins: Iterable[str]):
        paths = [_normal(p) for p in write_paths]
        self.write_paths = frozenset(p for p in paths if "{" not in p)
        self.write_templates = [re.compile("[^/]+".join(re.escape(part) for part in re.split(r"\{[^}]*\}", p)))
                                for p in paths if "{" in p]
        self.read_origins = frozenset(read_origins)

    def takes_write_keys(self, path: str) -> bool:
        path = _normal(path)
        return path in self.write_paths or any(t.fullmatch(path) for t in self.write_templates)

    async def __call__(self, message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope["type"] != "http":
            return
        headers = MutableScopeHeaders.from_message(message)
        request = dict(scope["headers"])
        preflight = scope["method"] == "OPTIONS" and b"access-control-request-method" in request
        if self.takes_write_keys(scope["path"]):
            headers["Access-Control-Allow-Origin"] = "*"
            _cors(headers, preflight, "GET, POST, OPTIONS", WRITE_REQUEST_HEADERS)
        else:
            headers.extend_header_value("Vary", "Origin")
            origin = request.get(b"origin", b"").decode("latin-1")
            if origin in self.read_origins:
                headers["Access-Control-Allow-Origin"] = origin
                _cors(headers, preflight, "GET, POST, PUT, DELETE, OPTIONS", READ_REQUEST_HEADERS)
        _security(headers)


def _cors(headers: MutableScopeHeaders, preflight: bool, methods: str, request_headers: str) -> None:
    if preflight:
        headers["Access-Control-Allow-Methods"] = methods
        headers["Access-Control-Allow-Headers"] = request_headers
        headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    else:
        headers["Access-Control-Expose-Headers"] = EXPOSED


def _security(headers: MutableScopeHeaders) -> None:
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if "cache-control" not in headers:  # static assets say how long they keep; every other answer is data
        headers["Cache-Control"] = "no-store"
    html = headers.get("content-type", "").startswith("text/html")
    headers["Content-Security-Policy"] = HTML_POLICY if html else DATA_POLICY


def _normal(path: str) -> str:
    return path.rstrip("/") or "/"
