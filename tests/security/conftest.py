"""The outside security review's attacks, replayed against the real server over loopback: project A
(the attacker, holding only its own keys) beside project B, whose rows carry marker strings that must
never show in anything A gets back, nor change what A's queries read."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.api.conftest import Server, http, server, server_env  # noqa: F401  (the API tests' fixtures)

B_SECRET = "ZZSECRET"
B_MARKERS = (B_SECRET, "b-victim", "b.example", "zz_secret_event")


def send(http_client: httpx.Client, write_key: str, messages: list[dict]) -> None:
    answer = http_client.post("/v1/batch", json={"batch": messages}, auth=(write_key, ""))
    assert answer.status_code == 200, answer.text


def events(prefix: str, people: int, per_person: int, properties: dict, url: str, event: str,
           run: str = "") -> list[dict]:
    """Tracked events of `people` persons on one day in October 2026, each person identified once. Message
    ids start with `run`, new each time by default: modules share one redis-server, whose dedup would
    drop a repeated id."""
    run = run or uuid.uuid4().hex[:8]
    messages = []
    for p in range(people):
        user = f"{prefix}-{p}"
        messages.append({"type": "identify", "userId": user, "traits": {**properties, "plan": "pro"},
                         "messageId": f"{run}-{user}-identify", "timestamp": "2026-10-20T11:00:00Z"})
        for i in range(per_person):
            messages.append({"type": "track", "event": event, "userId": user, "properties": properties,
                             "messageId": f"{run}-{user}-{i}", "timestamp": f"2026-10-20T12:{i % 60:02d}:00Z",
                             "context": {"page": {"url": url}}})
    return messages


@pytest.fixture(scope="module")
def keys_of(server: Server) -> dict[str, tuple[int, dict[str, str]]]:
    return {name: server.project_with_keys(name) for name in ("a", "b")}


def read_headers(keys_of: dict, project: str = "a") -> dict[str, str]:
    return {"Authorization": f"Bearer {keys_of[project][1]['read']}"}
