"""A page's own settings (a funnel's steps, a trend's series), kept in the URL beside the global ones."""

from __future__ import annotations

import json
from typing import Any

import panel as pn
import param


def synced(settings: param.Parameterized) -> param.Parameterized:
    """`settings` with the values the URL gives (a value that does not fit keeps its default), then kept
    in the URL as they change."""
    names = [name for name in settings.param if name != "name"]
    for name, values in (pn.state.session_args or {}).items():
        if name in names and values:
            text = values[0].decode(errors="replace")
            try:
                kind = settings.param[name]
                value: Any = text
                if isinstance(kind, param.Boolean):
                    value = text.lower() in ("1", "true", "yes")
                elif isinstance(kind, param.Integer):
                    value = int(text)
                settings.param.update(**{name: value})
            except (ValueError, TypeError):
                continue
    pn.state.location.sync(settings, {name: name for name in names})
    return settings


def json_list(text: str) -> list[Any]:
    """A setting that holds a JSON list; anything else is an empty list."""
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
