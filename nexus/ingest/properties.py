"""Event properties and traits as ClickHouse's JSON column stores them: normalised, or refused per event.

The JSON column stores an object as paths: a key's dots nest it, so `{"p.q": 1}` and `{"p": {"q": 1}}`
are the same path `p.q`, and an object that names one path twice fails the whole insert it is in
(ClickHouse code 117, "Duplicate path") — with every other request of the group-commit block. So each
event's object is brought to the shape the column stores, and an object the column cannot store is
refused here, with the path at fault, before it can reach an insert. The rules (README, "Sending events"):

- keys with dots are nested: `{"p.q": 1, "p": {"r": 2}}` becomes `{"p": {"q": 1, "r": 2}}`;
- refused: one path given twice (`{"p.q": 1, "p": {"q": 2}}`), or a path holding both a value and nested
  keys (`{"p": 1, "p.q": 2}`: the column stores it, but reads it back as an object with the key `p`
  twice, which no JSON reader keeps); null and `{}` hold no path, so they never conflict;
- refused: nesting deeper than MAX_DEPTH levels (objects, arrays and dotted key parts together; the
  engine's parser stops near 1,000 and Python's recursion earlier), and text that is not valid Unicode
  (a lone surrogate cannot be encoded as UTF-8);
- NaN and ±Infinity, which JSON cannot hold (they come from Arrow files: NaN is pandas' missing value),
  become null, as msgspec and JavaScript's JSON.stringify write them; dates, decimals, bytes and other
  values an Arrow file may hold become the JSON msgspec writes for them (ISO 8601, decimal text, base64);
- integers beyond 64 bits are kept: the column stores them exactly, as their decimal text.

Objects in arrays are JSON objects of their own: the same rules apply inside each one.
"""

from __future__ import annotations

import math
import re
from typing import Any, Union

import msgspec

from nexus.errors import InvalidRequest

MAX_DEPTH = 64

_encode = msgspec.json.Encoder().encode
# A dot inside an object key of msgspec's output: the dot, then the rest of a JSON string (characters
# other than a quote or backslash, or escapes), then the quote and colon that only end a key. A string
# value's closing quote is never followed by a colon, and nothing outside strings holds a quote.
DOTTED_KEY = re.compile(rb'\.(?:[^"\\]|\\.)*":')

# Where a value is, built as it is walked and spelled out only for an error: (("properties", "p"), "q").
Where = Union[str, tuple["Where", Union[str, int]]]


def to_json(value: dict[str, Any], field: str) -> str:
    """The JSON text of `value` as the column stores it; raises as `normalise` does.

    Most events need no change: msgspec's text (which writes NaN and Infinity as null, and Arrow values
    as their JSON) is the stored text when it holds no dotted key and too few brackets to nest past
    MAX_DEPTH. Two C-level scans decide that, instead of a walk in Python at several µs an event."""
    try:
        text = _encode(value)
    except (TypeError, ValueError):  # a lone surrogate, or a value msgspec cannot write
        text = b""
    if not text or DOTTED_KEY.search(text) or text.count(b"{") + text.count(b"[") > MAX_DEPTH:
        text = _encode(normalise(value, field))
    return text.decode()


def normalise(value: dict[str, Any], field: str) -> dict[str, Any]:
    """`value` as the JSON column stores it (the same object when nothing changes); raises InvalidRequest
    whose field is the path at fault under `field` (`properties.p.q`) and whose text names only this
    object's own keys."""
    return _object(value, field, 1)


def _object(value: dict[Any, Any], where: Where, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise _refuse(f"the object is nested more than {MAX_DEPTH} levels deep", where)
    try:
        keys = "".join(value)  # one C-level pass: are there dots, is every key text
    except TypeError:
        return _nest(value, where, depth)
    if "." in keys:
        return _nest(value, where, depth)
    if not keys.isascii():
        for key in value:
            _text(key, (where, key), "key")
    # No dotted key here: every key is a path of its own, only the values may need work.
    out: dict[str, Any] | None = None
    for key, item in value.items():
        if _as_is(item):
            continue
        new = _value(item, (where, key), depth)
        if new is not item:
            if out is None:
                out = dict(value)
            out[key] = new
    return value if out is None else out


def _as_is(item: Any) -> bool:
    """A value stored as it is, with nothing to check: an ASCII string, an integer, a boolean or null."""
    kind = type(item)
    return (kind is str and item.isascii()) or kind is int or kind is bool or item is None


def _array(items: list[Any] | tuple[Any, ...], where: Where, depth: int) -> list[Any]:
    if depth > MAX_DEPTH:
        raise _refuse(f"the array is nested more than {MAX_DEPTH} levels deep", where)
    out = items if type(items) is list else list(items)
    for i, item in enumerate(items):
        if _as_is(item):
            continue
        new = _value(item, (where, i), depth)
        if new is not item:
            if out is items:
                out = list(items)
            out[i] = new
    return out


def _value(item: Any, where: Where, depth: int) -> Any:
    kind = type(item)
    if kind is str:
        return _text(item, where, "text")
    if kind is dict:
        return _object(item, where, depth + 1)
    if kind is list or kind is tuple:
        return _array(item, where, depth + 1)
    if kind is float:
        return item if math.isfinite(item) else None
    if kind is int or kind is bool or item is None:
        return item
    # Values an Arrow file may hold (datetime, Decimal, bytes, ...): the JSON msgspec writes for them.
    try:
        plain = msgspec.to_builtins(item)
    except (TypeError, ValueError):
        raise _refuse(f"a {kind.__name__} is not a JSON value", where) from None
    return plain if type(plain) is kind else _value(plain, where, depth)


def _nest(value: dict[Any, Any], where: Where, depth: int) -> dict[str, Any]:
    """The object with its dotted keys nested, or refused where two keys meet at one path."""
    tree: dict[str, Any] = {}
    owned = {id(tree)}  # dicts made here, filled in place; any other is copied before it changes
    for key, item in value.items():
        key = key if type(key) is str else str(key)
        _text(key, (where, key), "key")
        parts = key.split(".")
        if depth + len(parts) - 1 > MAX_DEPTH:
            raise _refuse(f"the key nests more than {MAX_DEPTH} levels deep", (where, key))
        _place(tree, parts, _value(item, (where, key), depth + len(parts) - 1), owned, where, [])
    return tree


def _place(node: dict[str, Any], parts: list[str], value: Any, owned: set[int], where: Where,
           above: list[str]) -> None:
    """Put `value` at the path `parts` under `node` (which is at the path `above`)."""
    for part in parts[:-1]:
        above = [*above, part]
        current = node.get(part)
        if _holds_no_path(current):
            current = {}
        elif type(current) is not dict:
            _conflict(where, above, nested=True)
        if id(current) not in owned:
            current = dict(current)
            owned.add(id(current))
        node[part] = node = current
    path = [*above, parts[-1]]
    current = node.get(parts[-1])
    if _holds_no_path(current):
        node[parts[-1]] = value
    elif _holds_no_path(value):
        pass  # stores nothing: the value already there stays
    elif type(current) is dict and type(value) is dict:
        for key, item in value.items():  # two objects at one path: their paths must not meet
            _place(node, [parts[-1], key], item, owned, where, above)
    else:
        _conflict(where, path, nested=type(current) is dict or type(value) is dict)


def _holds_no_path(value: Any) -> bool:
    """null, and objects of nothing but nulls and empty objects: the JSON column stores no path for them."""
    return value is None or (type(value) is dict and all(_holds_no_path(v) for v in value.values()))


def _conflict(where: Where, path: list[str], *, nested: bool) -> None:
    name = ".".join(path)
    if nested:
        raise _refuse(f"{name} is given a value and also nested keys; the JSON column cannot store both at one "
                      "path", (where, name))
    raise _refuse(f"{name} is given twice (a key with dots names the same path as nested objects)", (where, name))


def _text(text: str, where: Where, what: str) -> str:
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise _refuse(f"the {what} is not valid Unicode (it holds a lone surrogate)", where) from None
    return text


def _refuse(reason: str, where: Where) -> InvalidRequest:
    parts: list[str] = []
    while isinstance(where, tuple):
        where, step = where
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    field = where + "".join(reversed(parts))
    # A key with a lone surrogate is named escaped: the answer itself must encode as UTF-8.
    return InvalidRequest(reason, field.encode("utf-8", "backslashreplace").decode())
