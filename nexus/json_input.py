"""Reading clients' JSON as typed values: the one place where msgspec's failures (malformed, mistyped,
nested too deeply) become an InvalidRequest with a reason and the field at fault."""

from __future__ import annotations

from typing import Any

import msgspec

from nexus.errors import InvalidRequest, reason_and_field


class UnreadableJson(InvalidRequest):
    """JSON that could not be read as its type. `reason` says why ("malformed JSON: …", "the JSON is
    nested too deeply", or msgspec's reason for a mistyped value), `field` the JSON path of the value at
    fault ('' for the whole document), `error` msgspec's own error (None when nested too deeply).
    The message names the field, or 'body', before a mistyped value's reason."""

    def __init__(self, reason: str, field: str, error: msgspec.MsgspecError | None):
        mistyped = isinstance(error, msgspec.ValidationError)
        super().__init__(f"{field or 'body'}: {reason}" if mistyped else reason, field=field or None)
        self.reason = reason
        self.path = field
        self.error = error


def decode_json(data: bytes | str | msgspec.Raw, kind: Any = Any, *, decoder: msgspec.json.Decoder | None = None) -> Any:
    """`data` as `kind` (or through `decoder`, a msgspec Decoder made once for a hot path); UnreadableJson
    when it cannot be."""
    try:
        return decoder.decode(data) if decoder is not None else msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as e:
        reason, field = reason_and_field(e)
        raise UnreadableJson(reason, field, e) from None
    except msgspec.DecodeError as e:
        raise UnreadableJson(f"malformed JSON: {e}", "", e) from None
    except RecursionError:
        raise UnreadableJson("the JSON is nested too deeply", "", None) from None
