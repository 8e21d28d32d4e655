"""What the schedule tests share: a schedule's body and keys' headers."""

from __future__ import annotations

from typing import Any

SMALL_EXPORT = {"source": {"type": "sql", "query": "SELECT arrayJoin([1, 2, 3]) AS n, concat('x', toString(n)) AS label"},
                "format": "csv"}
# Due on the first of January only: no scheduler running in the background reaches it during a test.
YEARLY = "0 0 1 1 *"


def schedule_body(destinations: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    return {"name": "Weekly export", "cron": YEARLY, "timezone": "UTC", "export": SMALL_EXPORT,
            "destinations": destinations, **changes}


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}

