"""A page's own settings (a funnel's steps, a trend's series), kept in the URL beside the global ones."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

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
    keep_json_in_url()
    pn.state.location.sync(settings, {name: name for name in names})
    return settings


def keep_json_in_url(location: Any = None) -> None:
    """Make this session's URL keep JSON settings as JSON. Panel's `Location.update_query` re-reads the
    query through `parse_query`, which turns a JSON text (`[{"event":"a"}]`) into a list, and writes it
    back with `urlencode`, that is as Python's repr (`[{'event': 'a'}]`): a link's steps, series or filters
    were lost as soon as another setting changed. Here the query is merged as the texts it holds."""
    location = location or pn.state.location
    if location is None or getattr(location, "_keeps_json", False):
        return

    def update_query(**values: Any) -> None:
        query = dict(parse_qsl(location.search[1:], keep_blank_values=True))
        query.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()})
        location.search = "?" + urlencode(query)

    location.update_query = update_query
    location._keeps_json = True


def json_list(text: str) -> list[Any]:
    """A setting that holds a JSON list; anything else is an empty list."""
    try:
        value = json.loads(text) if text else []
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
