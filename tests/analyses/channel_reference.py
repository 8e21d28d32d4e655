"""The channel rules applied in plain Python, as nexus.meta.channels documents them: the reference the attribution
tests and benchmark hold the SQL's multiIf to."""

from __future__ import annotations

import re2

from nexus.meta import channels


def python_channel(row: dict, settings: channels.ChannelSettings) -> str:
    """The rules applied in Python, as the docstring of nexus.meta.channels states them."""
    for rule in settings.rules:
        if all(_holds(condition, row) for condition in rule.when):
            return rule.channel
    return channels.FALLBACK


def _holds(condition: channels.Condition, row: dict) -> bool:
    value = row[condition.field]
    if condition.op in ("is_set", "is_not_set"):
        return (value != "") == (condition.op == "is_set")
    if condition.op == "regex":
        return re2.search(condition.values[0], value) is not None
    folded = condition.field.startswith("utm_")
    inside = (value.lower() if folded else value) in {v.lower() if folded else v for v in condition.values}
    return inside == (condition.op == "in")
