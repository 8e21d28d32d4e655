"""Schedules: a project's exports that run by themselves, on a cron expression in a time zone, and where each
run's file goes (folders under NEXUS_DELIVERY_DIR, webhooks, e-mail). A schedule is checked when it is saved,
so that every stored one can run: its cron, zone and export request, and each destination against the
settings it needs. Relative dates in the export resolve at each run's due time (nexus.jobs.scheduler).

A webhook's signing secret is stored (the `schedules` table is out of ad-hoc SQL's reach) but never shown:
answers show SECRET_MASK in its place, and a PUT that sends the mask back keeps the secret of the same URL.
User strings are stored as given. Records follow the metadata pattern (nexus.meta.records).
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import msgspec
from clickhouse_connect.driver.client import Client

from nexus.errors import InvalidRequest, NotFound
from nexus.exports.request import ExportRequest, checked
from nexus.jobs import addresses, cron
from nexus.json_input import decode_json
from nexus.meta import records
from nexus.timezones import zone

if TYPE_CHECKING:
    from nexus.runtime import Runtime

TABLE = "schedules"
SECRET_MASK = "********"
_ID = re.compile(r"^s_[A-Za-z0-9_-]{12}$")
_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+$")  # one bare address, nothing a header could split
_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Folder(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="folder", tag_field="type"):
    """A folder under NEXUS_DELIVERY_DIR (`path` relative to it) that receives a copy of each run's file."""

    path: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class Webhook(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="webhook", tag_field="type"):
    """An http(s) URL that each run POSTs to: the file itself ("file") or JSON with a signed download link
    ("link"). With a `secret`, the body is signed (X-Nexus-Signature, see nexus.jobs.delivery)."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    secret: Annotated[str, msgspec.Meta(max_length=200)] = ""
    mode: Literal["file", "link"] = "file"


class Email(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="email", tag_field="type"):
    """Recipients of an e-mail per run, with the file attached or a signed download link."""

    to: Annotated[list[Annotated[str, msgspec.Meta(max_length=254)]], msgspec.Meta(min_length=1, max_length=50)]
    mode: Literal["attach", "link"] = "attach"


Destination = Folder | Webhook | Email


class Plan(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a schedule runs, when and where the file goes: the stored definition. `on_missed` says what
    happens to runs that fell due while no scheduler was running: the latest of them runs once, or none."""

    cron: str
    timezone: str = "UTC"
    export: ExportRequest
    destinations: Annotated[list[Destination], msgspec.Meta(min_length=1, max_length=10)]
    on_missed: Literal["run_once", "skip"] = "run_once"


class ScheduleInput(Plan, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a client sends to create or replace a schedule."""

    name: _Text
    paused: bool = False


class Schedule(msgspec.Struct, frozen=True):
    """A schedule as the API shows it: secrets masked; `next_run_at` is None while paused."""

    schedule_id: str
    name: str
    cron: str
    timezone: str
    export: dict[str, Any]  # the ExportRequest, as plain JSON (its Struct's defaults trip the OpenAPI generator)
    destinations: list[Destination]
    on_missed: str
    paused: bool
    next_run_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class Record(msgspec.Struct, frozen=True):
    """The stored row, secrets included: for the scheduler and delivery, never an answer."""

    project_id: int
    schedule_id: str
    name: str
    definition: str  # the Plan as JSON
    paused: bool
    created_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def plan(self) -> Plan:
        return msgspec.json.decode(self.definition, type=Plan)


def create(runtime: Runtime, project_id: int, data: ScheduleInput, created_by: str) -> Schedule:
    checked_input = _checked(runtime, project_id, data, None)
    now = records.now()
    record = Record(project_id, "s_" + secrets.token_urlsafe(9), checked_input.name, _encode_plan(checked_input),
                    checked_input.paused, created_by, now, now)
    records.save(runtime.clickhouse, TABLE, record)
    return view(record)


def list_all(client: Client, project_id: int) -> list[Schedule]:
    found = records.select(client, TABLE, Record, "project_id = {p:UInt32}", {"p": project_id})
    return sorted((view(r) for r in found), key=lambda s: (s.name, s.schedule_id))


def get(client: Client, project_id: int, schedule_id: str) -> Schedule:
    return view(find(client, project_id, schedule_id))


def find(client: Client, project_id: int, schedule_id: str) -> Record:
    found = records.select(client, TABLE, Record, "project_id = {p:UInt32} AND schedule_id = {s:String}",
                           {"p": project_id, "s": schedule_id}) if _ID.match(schedule_id) else []
    if not found:
        # The same answer for another project's schedule as for a missing one.
        raise NotFound(f"no schedule {schedule_id!r} in this project")
    return found[0]


def active(client: Client) -> list[Record]:
    """Every project's schedules that are not paused: what the scheduler evaluates."""
    return records.select(client, TABLE, Record, "NOT paused")


def replace(runtime: Runtime, project_id: int, schedule_id: str, data: ScheduleInput) -> Schedule:
    """Replace everything but the id, author and creation time. Runs due before the change are not made up."""
    current = find(runtime.clickhouse, project_id, schedule_id)
    checked_input = _checked(runtime, project_id, data, current)
    record = msgspec.structs.replace(current, name=checked_input.name, definition=_encode_plan(checked_input),
                                     paused=checked_input.paused, updated_at=records.now())
    records.save(runtime.clickhouse, TABLE, record)
    return view(record)


def set_paused(client: Client, project_id: int, schedule_id: str, paused: bool) -> Schedule:
    """Pause or resume; a resumed schedule runs from now on (runs due while it was paused never run)."""
    record = find(client, project_id, schedule_id)
    if record.paused != paused:
        record = msgspec.structs.replace(record, paused=paused, updated_at=records.now())
        records.save(client, TABLE, record)
    return view(record)


def delete(client: Client, project_id: int, schedule_id: str) -> None:
    records.save(client, TABLE, find(client, project_id, schedule_id), deleted=True)


def view(record: Record) -> Schedule:
    plan = record.plan
    masked = [msgspec.structs.replace(d, secret=SECRET_MASK) if isinstance(d, Webhook) and d.secret else d
              for d in plan.destinations]
    next_run = None if record.paused else cron.next_due(plan.cron, plan.timezone, records.now())
    return Schedule(record.schedule_id, record.name, plan.cron, plan.timezone, msgspec.to_builtins(plan.export), masked,
                    plan.on_missed, bool(record.paused), next_run, record.created_by, record.created_at,
                    record.updated_at)


def label(destination: Destination) -> list[str]:
    """How deliveries name the destination's targets (one per e-mail recipient); no secret, no query string."""
    if isinstance(destination, Folder):
        return [f"folder {destination.path}"]
    if isinstance(destination, Webhook):
        url = urlsplit(destination.url)
        return [f"webhook {url.scheme}://{url.hostname}{f':{url.port}' if url.port else ''}{url.path}"]
    return [f"email {address}" for address in destination.to]


def _encode_plan(data: ScheduleInput) -> str:
    return msgspec.json.encode(Plan(**{f: getattr(data, f) for f in Plan.__struct_fields__})).decode()


def _checked(runtime: Runtime, project_id: int, data: ScheduleInput, current: Record | None) -> ScheduleInput:
    """`data` with every bound checked (also when built in Python, where a Struct checks none), runnable in
    this project with this process's settings, and masked secrets replaced by the stored ones."""
    data = decode_json(msgspec.json.encode(data), ScheduleInput)
    if not data.name.strip():
        raise InvalidRequest("name: a schedule's name cannot be blank", field="name")
    zone(data.timezone)
    cron.check(data.cron, data.timezone)
    settings = runtime.settings
    try:
        checked(runtime.queries, project_id, data.export, settings.export_max_rows)
    except InvalidRequest as e:
        field = f"export.{e.field}" if e.field else "export"
        raise InvalidRequest(f"export.{e}" if e.field else f"export: {e}", field=field) from None
    except NotFound as e:
        raise InvalidRequest(f"export.source: {e}", field="export.source") from None
    stored = {d.url: d.secret for d in current.plan.destinations if isinstance(d, Webhook)} if current else {}
    destinations, seen = [], set()
    for i, destination in enumerate(data.destinations):
        at = f"destinations[{i}]"
        if isinstance(destination, Webhook) and destination.secret == SECRET_MASK:
            if not stored.get(destination.url):
                raise InvalidRequest(f"{at}.secret: {SECRET_MASK} keeps the secret this webhook has, and this URL "
                                     "has none: send the secret itself", field=f"{at}.secret")
            destination = msgspec.structs.replace(destination, secret=stored[destination.url])
        _check_destination(runtime, destination, at)
        for name in label(destination):
            if name in seen:
                raise InvalidRequest(f"{at}: {name} is named twice in this schedule", field=at)
            seen.add(name)
        destinations.append(destination)
    return msgspec.structs.replace(data, destinations=destinations)


def _check_destination(runtime: Runtime, destination: Destination, at: str) -> None:
    settings = runtime.settings
    if isinstance(destination, Folder):
        if not settings.delivery_dir:
            raise InvalidRequest(f"{at}: folder destinations are off here (NEXUS_DELIVERY_DIR is not set)", field=at)
        path = PurePosixPath(destination.path)
        if path.is_absolute() or ".." in path.parts or "\\" in destination.path or "\0" in destination.path:
            raise InvalidRequest(f"{at}.path: a folder is a relative path under the delivery directory, without "
                                 "'..' or backslashes", field=f"{at}.path")
    elif isinstance(destination, Webhook):
        url = urlsplit(destination.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise InvalidRequest(f"{at}.url: a webhook is an http:// or https:// URL with a host", field=f"{at}.url")
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
            addresses.reachable(url.hostname, port, bool(settings.webhook_private_addresses))
        except ValueError:  # a port out of range
            raise InvalidRequest(f"{at}.url: {destination.url!r} has no valid port", field=f"{at}.url") from None
        except addresses.Unreachable as e:
            raise InvalidRequest(f"{at}.url: {e}", field=f"{at}.url") from None
        _check_link(settings.public_url, destination.mode == "link", at)
    else:
        if not settings.smtp_url:
            raise InvalidRequest(f"{at}: e-mail destinations are off here (NEXUS_SMTP_URL is not set)", field=at)
        for j, address in enumerate(destination.to):
            if not _ADDRESS.match(address):
                raise InvalidRequest(f"{at}.to[{j}]: {address!r} is not an e-mail address", field=f"{at}.to[{j}]")
        _check_link(settings.public_url, destination.mode == "link", at)


def _check_link(public_url: str, wanted: bool, at: str) -> None:
    if wanted and not public_url:
        raise InvalidRequest(f"{at}.mode: links need the address recipients reach this server at (NEXUS_PUBLIC_URL "
                             "is not set): send the file instead", field=f"{at}.mode")
