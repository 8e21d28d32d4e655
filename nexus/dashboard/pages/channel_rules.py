"""The channel rules editor of the Attribution page: the project's rules in order, a line each — its channel and
when it applies, written as `utm_medium in cpc, ppc; utm_source in google` — which an admin key edits, moves,
adds, removes and saves (or edits whole as the JSON that PUT /v1/channels takes), and any key reads.

Rules are read and written by `nexus.meta.channels` (`get`, `decode`, `replace`, `reset`), the functions behind
GET/PUT/DELETE /v1/channels, so the page saves exactly what the API would and is refused with the same reasons.
The reader has no methods for the rules: its own checks (still signed in, the key's rate limit, an admin key for
a change) guard those calls here.

The line form: conditions separated by `;`, each `field op values` with op `in` or `not in` (values separated
by commas, `(empty)` for the empty value), `matches` (an RE2 pattern, the rest of the condition), `is set` or
`is not set`; `every visit` (or nothing) for a rule without conditions. A rule the line form cannot hold
exactly (a value with a comma, a semicolon or spaces at its ends, a pattern with a semicolon) is shown but
kept as it is: the JSON edits it.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any, get_args

import msgspec
import panel as pn

from nexus.dashboard import theme
from nexus.dashboard.pages.shared import html_table
from nexus.dashboard.session import Reader
from nexus.dashboard.shell import error_notice
from nexus.errors import InvalidRequest, NexusError
from nexus.meta import channels
from nexus.meta.channels import ChannelRule, Channels

FIELDS = get_args(channels.Field)
# The line form's words for each operator, longest first (so that "is not set" is not read as "is set").
OPERATORS = {"is not set": "is_not_set", "not in": "not_in", "matches": "regex", "is set": "is_set", "in": "in"}
WORDS = {op: words for words, op in OPERATORS.items()}
EMPTY = "(empty)"
EVERY_VISIT = "every visit"


# --- the line form -------------------------------------------------------------------------------------------

def written(rule: ChannelRule) -> str | None:
    """The rule's conditions in the line form; None when the form cannot hold them exactly."""
    parts = []
    for condition in rule.when:
        words = f"{condition.field} {WORDS[condition.op]}"
        if condition.op in ("is_set", "is_not_set"):
            parts.append(words)
        elif condition.op == "regex":
            parts.append(f"{words} {condition.values[0]}")
        else:
            parts.append(f"{words} {', '.join(value or EMPTY for value in condition.values)}")
    text = "; ".join(parts) or EVERY_VISIT
    try:
        exact = read_when(text, 0) == msgspec.to_builtins(rule.when)
    except InvalidRequest:
        exact = False
    return text if exact else None


def read_when(text: str, index: int) -> list[dict[str, Any]]:
    """Conditions from the line form, as PUT /v1/channels takes them; InvalidRequest names `rules[index].when`."""
    field_name = f"rules[{index}].when"
    if text.strip() in ("", EVERY_VISIT):
        return []
    conditions = []
    for part in text.split(";"):
        field, _, rest = part.strip().partition(" ")
        if field not in FIELDS:
            raise InvalidRequest(f"{field_name}: {field!r} is not a field: use one of {', '.join(FIELDS)}",
                                 field=field_name)
        rest = rest.strip()
        words = next((w for w in OPERATORS if rest == w or rest.startswith(w + " ")), None)
        if words is None:
            raise InvalidRequest(f"{field_name}: after {field} comes one of {', '.join(OPERATORS)}", field=field_name)
        op, values = OPERATORS[words], rest[len(words):].strip()
        if op in ("is_set", "is_not_set"):
            listed = []
        elif op == "regex":
            listed = [values]
        else:
            listed = ["" if value.strip() == EMPTY else value.strip() for value in values.split(",")]
        conditions.append({"field": field, "op": op, "values": listed})
    return conditions


# --- the editor ----------------------------------------------------------------------------------------------

class _Line:
    """One rule as the editor holds it: its channel and condition inputs, or the rule itself when the line
    form cannot hold it."""

    def __init__(self, rule: ChannelRule | None, editable: bool, on_edit: Callable[..., None]):
        text = written(rule) if rule is not None else ""
        self.kept = rule if rule is not None and text is None else None
        self.channel = pn.widgets.TextInput(value=rule.channel if rule else "", placeholder="Channel", width=170,
                                            disabled=not editable or self.kept is not None)
        shown = text if text is not None else msgspec.json.encode(rule.when).decode() + "  (edit as JSON)"
        self.when = pn.widgets.TextInput(value=shown, placeholder="utm_medium in cpc, ppc; utm_source in google",
                                         sizing_mode="stretch_width", disabled=not editable or self.kept is not None)
        self.channel.param.watch(on_edit, "value")
        self.when.param.watch(on_edit, "value")

    def rule(self, index: int) -> Any:
        if self.kept is not None:
            return self.kept
        return {"channel": self.channel.value, "when": read_when(self.when.value, index)}


def editor(reader: Reader, on_change: Callable[[], None]) -> pn.viewable.Viewable:
    """The rules as lines to edit (an admin key) or a table (a read key), whether direct visits give way, and
    the whole as JSON; saving or restoring the defaults calls `on_change` (every answer depends on the rules)."""
    editable = reader.can_edit
    lines: list[_Line] = []
    rows = pn.Column(sizing_mode="stretch_width", css_classes=["nx-rule-lines"])
    state = theme.html("", margin=(0, 10))
    non_direct = pn.widgets.Checkbox(name="Direct visits get no credit when another touch is in the lookback",
                                     disabled=not editable)
    direct = pn.widgets.TextInput(name="Direct channel", width=170, disabled=not editable)
    text = pn.widgets.TextAreaInput(name="As PUT /v1/channels takes them (JSON)", height=260,
                                    sizing_mode="stretch_width", disabled=not editable)
    add = pn.widgets.Button(label="+ Add a rule", button_type="light", width=120, visible=editable)
    save = pn.widgets.Button(label="Save rules", button_type="primary", width=120, visible=editable)
    save_json = pn.widgets.Button(label="Save JSON", button_type="primary", width=120, visible=editable)
    restore = pn.widgets.Button(label="Restore the default rules", button_type="light", width=200, visible=editable)
    message = theme.html("", visible=False, css_classes=["nx-rules-message"])
    # What a save would meet, checked as each edit reaches the server: the editor says at once what is wrong
    # (and a test knows its edit has arrived before it presses Save).
    lines_check = theme.html("", margin=(0, 10), css_classes=["nx-lines-check"], visible=editable)
    json_check = theme.html("", margin=(0, 10), css_classes=["nx-json-check"], visible=editable)

    def draw_lines() -> None:
        if not editable:
            rows.objects = [html_table(["#", "Channel", "When"], [
                [str(i), line.channel.value, line.when.value] for i, line in enumerate(lines, 1)], numeric_from=3)]
            return
        drawn = []
        for i, line in enumerate(lines):
            buttons = [pn.widgets.Button(label=label, button_type="light", width=36, description=tip,
                                         disabled=disabled, margin=(5, 2))
                       for label, tip, disabled in (("↑", "Move up", i == 0),
                                                    ("↓", "Move down", i == len(lines) - 1),
                                                    ("✕", "Remove", len(lines) == 1))]
            buttons[0].on_click(lambda _, i=i: move(i, i - 1))
            buttons[1].on_click(lambda _, i=i: move(i, i + 1))
            buttons[2].on_click(lambda _, i=i: remove(i))
            drawn.append(pn.Row(theme.html(f"<div class='nx-muted'>{i + 1}</div>", width=24, sizing_mode="fixed",
                                           margin=(12, 4)),
                                line.channel, line.when, *buttons, sizing_mode="stretch_width"))
        rows.objects = drawn

    def move(at: int, to: int) -> None:
        lines.insert(to, lines.pop(at))
        draw_lines()
        check_lines()

    def remove(at: int) -> None:
        del lines[at]
        draw_lines()
        check_lines()

    def verdict(body: Callable[[], bytes]) -> str:
        try:
            settings = channels.decode(body())
        except NexusError as error:
            return f"<div class='nx-notice nx-warning'>Not yet: {escape(str(error))}</div>"
        return f"<div class='nx-muted'>Ready to save: {len(settings.rules)} rules.</div>"

    def check_lines(*_: Any) -> None:
        if editable:
            lines_check.object = verdict(from_lines)

    def check_json(*_: Any) -> None:
        if editable:
            json_check.object = verdict(lambda: text.value.encode())

    def show(current: Channels) -> None:
        lines[:] = [_Line(rule, editable, check_lines) for rule in current.rules]
        state.object = f"<div class='nx-muted' data-role='rules-state'>{escape(_state(current))}</div>"
        non_direct.value, direct.value = current.last_non_direct, current.direct_channel
        text.value = _json(current)
        restore.disabled = current.default
        draw_lines()
        check_lines()

    def from_lines() -> bytes:
        return msgspec.json.encode({"rules": [line.rule(i) for i, line in enumerate(lines)],
                                    "last_non_direct": non_direct.value, "direct_channel": direct.value.strip()})

    def change(work: Callable[[], Channels], done: str) -> None:
        try:
            show(work())
        except NexusError as error:
            message.object, message.visible = error_notice(error).object, True
            return
        message.object = f"<div class='nx-notice nx-info' role='status'>{escape(done)}</div>"
        message.visible = True
        on_change()

    def added(_: Any) -> None:
        lines.append(_Line(None, editable, check_lines))
        draw_lines()
        check_lines()

    saved = "Saved: the numbers below use the new rules."
    add.on_click(added)
    save.on_click(lambda _: change(lambda: reader.save_channels(from_lines()), saved))
    save_json.on_click(lambda _: change(lambda: reader.save_channels(text.value.encode()), saved))
    restore.on_click(lambda _: change(reader.reset_channels, "The default rules are back."))
    text.param.watch(check_json, "value")
    non_direct.param.watch(check_lines, "value")
    direct.param.watch(check_lines, "value")
    show(reader.channels())
    as_json = pn.Card(text, json_check, save_json, title="As JSON", collapsed=True, sizing_mode="stretch_width",
                      css_classes=["nx-rules-json"])
    return pn.Card(state, rows, add, pn.Row(non_direct, direct), lines_check, pn.Row(save, restore), message, as_json,
                   title="Channel rules", collapsed=True, sizing_mode="stretch_width", css_classes=["nx-channel-rules"],
                   margin=(5, 6))


def _state(current: Channels) -> str:
    where = "The default rules" if current.default else (
        f"Saved by key {current.updated_by} on {current.updated_at:%Y-%m-%d %H:%M} UTC" if current.updated_at
        else "Saved rules")
    return (f"{where}. The first rule that matches a visit's entry source names its channel, else "
            f"{channels.FALLBACK}.")


def _json(current: Channels) -> str:
    """The settings as PUT /v1/channels takes them, a rule a line."""
    head = msgspec.json.encode({"last_non_direct": current.last_non_direct, "direct_channel": current.direct_channel})
    rules = ",\n  ".join(msgspec.json.encode(rule).decode() for rule in current.rules)
    return f'{head.decode()[:-1]}, "rules": [\n  {rules}\n]}}'
