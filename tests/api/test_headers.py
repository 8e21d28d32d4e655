"""Security headers on every answer, and the OpenAPI page at /schema served without any other host."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from nexus.api.headers import HTML_POLICY

pytestmark = pytest.mark.security  # the outside security review's attacks: pytest -m security


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/health/live", 200),
    ("GET", "/schema/openapi.json", 200),
    ("GET", "/v1/ingest/metrics", 401),
    ("GET", "/no/such/path", 404),
    ("POST", "/e/", 400),
])
def test_every_answer_carries_the_security_headers(http, method, path, status):
    answer = http.request(method, path, content=b"")
    assert answer.status_code == status
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")


def test_the_schema_page_loads_nothing_from_another_host(http):
    page = http.get("/schema")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert policy == HTML_POLICY and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["cache-control"] == "no-store"
    # Nothing inline for the policy to block: every script and style is a file of this origin.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) and "<style" not in page.text
    assert not re.search(r"\s(style|on[a-z]+)=", page.text)
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(urls) == 4 and all(not urlsplit(u).netloc and u.startswith("/schema/") for u in urls)
    for url in urls:
        asset = http.get(url)
        assert asset.status_code == 200 and len(asset.content) > 100, url
        assert "max-age" in asset.headers["cache-control"] and asset.headers["x-content-type-options"] == "nosniff"
    assert http.get("/schema/assets/index.html").status_code == 404
    assert http.get("/schema/swagger").text == page.text


def test_the_openapi_document_lists_the_short_paths(http):
    paths = http.get("/schema/openapi.json").json()["paths"]
    assert {"/v1/t", "/v1/b", "/v1/track", "/v1/batch", "/e"} <= set(paths)
    assert not any(p.startswith("/schema/assets") for p in paths)
