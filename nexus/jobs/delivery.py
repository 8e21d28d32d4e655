"""Delivery of a scheduled run's file to its schedule's destinations: a folder under NEXUS_DELIVERY_DIR, a
webhook, e-mail recipients.

Each target (a folder, a webhook, one recipient) gets the file once: its result is recorded in the job's
`deliveries` as soon as it is known, and a later attempt of the job sends only to the targets that have not
succeeded yet. A failure that may pass (connection refused, a timeout, HTTP 5xx or 429, an SMTP 4xx) makes
the job retry with backoff (Transient); one that will not (HTTP 4xx, a refused address, a bad setting)
fails the job at once, naming the targets and why (with the failures that may pass beside it: retrying could
not get every target its file).

Webhooks are POSTed to over http.client, connected to the address that was checked (nexus.jobs.addresses),
never following redirects. With a secret, `X-Nexus-Signature: sha256=<hex>` is the HMAC-SHA256 of
`<X-Nexus-Timestamp>.<body>` under it: a receiver recomputes it and refuses old timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import shutil
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import msgspec

from nexus.errors import NexusError
from nexus.exports.request import MEDIA_TYPES
from nexus.jobs import addresses, links, schedules
from nexus.jobs.schedules import Email, Folder, Webhook
from nexus.jobs.store import Delivery
from nexus.jobs.worker import JobContext, Transient
from nexus.meta import records
from nexus.timezones import zone

TIMEOUT_SECONDS = 30
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024  # mail servers refuse larger messages: send a link instead
_CHUNK = 1 << 20
_SMTP_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class Failed(Exception):
    """One target's failure: why, and whether the same delivery may succeed later."""

    def __init__(self, reason: str, may_pass: bool):
        super().__init__(reason)
        self.may_pass = may_pass


def deliver(context: JobContext, path: Path) -> None:
    """Send the run's file (at `path`) to every target of its schedule that has not had it yet."""
    job = context.job
    record = schedules.find(context.runtime.clickhouse, job.project_id, job.schedule_id)
    plan = record.plan
    results = [d for d in msgspec.json.decode(job.deliveries, type=list[Delivery]) if d.ok]
    done = {d.destination for d in results}
    failures: list[tuple[str, Failed]] = []
    for destination in plan.destinations:
        pending = [name for name in schedules.label(destination) if name not in done]
        if not pending:
            continue
        for name, outcome in zip(pending, _send(context, record, destination, path, pending)):
            results.append(Delivery(name, not isinstance(outcome, Failed), str(outcome), records.now()))
            if isinstance(outcome, Failed):
                failures.append((name, outcome))
        context.save(deliveries=msgspec.json.encode(results).decode())
    if failures:
        reason = "; ".join(f"{name}: {failure}" for name, failure in failures)
        if all(failure.may_pass for _, failure in failures):
            raise Transient(f"delivery failed: {reason}")
        raise NexusError(f"delivery failed: {reason}")


def _send(context: JobContext, record: schedules.Record, destination: schedules.Destination, path: Path,
          pending: list[str]) -> list[str | Failed]:
    """What became of each pending target of `destination`: a detail when it got the file, else Failed."""
    try:
        if isinstance(destination, Folder):
            return [_to_folder(context, destination, path)]
        if isinstance(destination, Webhook):
            return [_to_webhook(context, destination, path)]
        recipients = [name.removeprefix("email ") for name in pending]
        return _by_email(context, record, destination, path, recipients)
    except Failed as failure:
        return [failure] * len(pending)


# Folders ----------------------------------------------------------------------------------------------------


def _to_folder(context: JobContext, destination: Folder, path: Path) -> str:
    """Copy the file into the folder under its download name, never over another file: a name taken already
    gets the run's due time, then a number."""
    settings, job = context.runtime.settings, context.job
    if not settings.delivery_dir:
        raise Failed("folder destinations are off here (NEXUS_DELIVERY_DIR is not set)", may_pass=False)
    root = Path(settings.delivery_dir).resolve()
    folder = (root / destination.path).resolve()
    if not folder.is_relative_to(root):  # a symbolic link out of the delivery directory
        raise Failed(f"{destination.path} leads out of the delivery directory", may_pass=False)
    stem, dot, extension = job.file_name.rpartition(".")
    due = f"{job.due_at:%Y%m%d-%H%M%S}" if job.due_at else job.job_id
    names = [job.file_name, f"{stem}-{due}{dot}{extension}",
             *(f"{stem}-{due}-{n}{dot}{extension}" for n in range(2, 100))]
    partial = folder / f".{job.job_id}.partial"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, partial)
        for name in names:
            try:
                os.link(partial, folder / name)  # whole at once, and never over an existing file
                return f"copied to {Path(destination.path) / name}"
            except FileExistsError:
                continue
        raise Failed(f"{len(names)} files named like {job.file_name} are in the folder already", may_pass=False)
    except PermissionError as e:
        raise Failed(f"cannot write there: {e.strerror}", may_pass=False) from None
    except OSError as e:  # a full disk, a volume gone: it may be back later
        raise Failed(f"cannot write there: {e.strerror or e}", may_pass=True) from None
    finally:
        partial.unlink(missing_ok=True)


# Webhooks ---------------------------------------------------------------------------------------------------


def _to_webhook(context: JobContext, destination: Webhook, path: Path) -> str:
    job = context.job
    headers = {"User-Agent": "Nexus", "X-Nexus-Job": job.job_id, "X-Nexus-Schedule": job.schedule_id}
    if destination.mode == "link":
        body: bytes | IO[bytes] = msgspec.json.encode({
            "job_id": job.job_id, "schedule_id": job.schedule_id, "due_at": job.due_at, "file_name": job.file_name,
            "rows": job.rows, "bytes": job.bytes, "url": _link(context)})
        headers["Content-Type"] = "application/json"
        return _post(context, destination, headers, body, [body])
    headers["Content-Type"] = _media_type(job.file_name)
    headers["Content-Disposition"] = f'attachment; filename="{job.file_name}"'
    headers["Content-Length"] = str(path.stat().st_size)
    with path.open("rb") as file:
        return _post(context, destination, headers, file, _chunks(path))


def _post(context: JobContext, destination: Webhook, headers: dict[str, str], body: bytes | IO[bytes],
          signed: Iterable[bytes]) -> str:
    """POST `body` (`signed`: its bytes again, in parts, for the signature) to the webhook."""
    url = urlsplit(destination.url)
    host, secure = url.hostname or "", url.scheme == "https"
    try:
        port = url.port or (443 if secure else 80)
        checked = addresses.reachable(host, port, bool(context.runtime.settings.webhook_private_addresses))
    except addresses.Unreachable as e:
        raise Failed(str(e), e.may_pass) from None
    except ValueError:
        raise Failed(f"{destination.url!r} has no valid port", may_pass=False) from None
    if destination.secret:
        timestamp = str(int(time.time()))
        mac = hmac.new(destination.secret.encode(), timestamp.encode() + b".", hashlib.sha256)
        for part in signed:
            mac.update(part)
        headers |= {"X-Nexus-Timestamp": timestamp, "X-Nexus-Signature": f"sha256={mac.hexdigest()}"}
    connection = (http.client.HTTPSConnection(host, port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context())
                  if secure else http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS))
    # Connect to the addresses that were checked, not to whatever the name resolves to by now; the Host
    # header and the TLS certificate still go by the name.
    connection._create_connection = _connect_to(checked, port)  # type: ignore[attr-defined]
    try:
        connection.request("POST", (url.path or "/") + (f"?{url.query}" if url.query else ""), body, headers)
        answer = connection.getresponse()
        text = answer.read(300).decode("utf-8", "replace").strip()
    except ssl.SSLCertVerificationError as e:
        raise Failed(f"its TLS certificate is not valid: {e.verify_message}", may_pass=False) from None
    except TimeoutError:
        raise Failed(f"no answer within {TIMEOUT_SECONDS} s", may_pass=True) from None
    except OSError as e:  # refused, reset, unreachable: the receiver may be back later
        raise Failed(f"cannot connect: {e.strerror or e}", may_pass=True) from None
    except http.client.HTTPException as e:
        raise Failed(f"answered something other than HTTP: {type(e).__name__}", may_pass=True) from None
    finally:
        connection.close()
    status = f"answered HTTP {answer.status}" + (f": {text[:200]}" if text else "")
    if 200 <= answer.status < 300:
        return status
    # Server errors, rate limits and timeouts may pass; anything else (4xx, a redirect) is the URL's fault.
    raise Failed(status, may_pass=answer.status >= 500 or answer.status in (408, 425, 429))


def _connect_to(checked: list[str], port: int) -> Callable[..., socket.socket]:
    """http.client's connect, to the first of `checked` that answers (as socket.create_connection tries
    each address of a name)."""

    def connect(_: object, *args: Any) -> socket.socket:
        for address in checked[:-1]:
            try:
                return socket.create_connection((address, port), *args)
            except OSError:
                continue
        return socket.create_connection((checked[-1], port), *args)

    return connect


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while part := file.read(_CHUNK):
            yield part


# E-mail -----------------------------------------------------------------------------------------------------


def _by_email(context: JobContext, record: schedules.Record, destination: Email, path: Path,
              recipients: list[str]) -> list[str | Failed]:
    """One message to the destination's addresses (all named in To), sent to the `recipients` still
    waiting for it; what became of each."""
    settings, job = context.runtime.settings, context.job
    plan = record.plan
    due = job.due_at.astimezone(zone(plan.timezone)) if job.due_at else records.now()
    message = EmailMessage()
    message["Subject"] = " ".join(f"{record.name} — {due:%Y-%m-%d %H:%M} {plan.timezone}".split())
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(destination.to)
    summary = f"The run of schedule {record.name!r} due {due:%Y-%m-%d %H:%M %Z}: {job.rows:,} rows in {job.file_name}."
    if destination.mode == "link":
        valid_until = datetime.fromtimestamp(time.time() + _link_seconds(context), zone(plan.timezone))
        message.set_content(f"{summary}\n\nDownload it here until {valid_until:%Y-%m-%d %H:%M %Z}:\n{_link(context)}\n")
    else:
        if job.bytes > MAX_ATTACHMENT_BYTES:
            raise Failed(f"the file ({job.bytes:,} bytes) is too large to attach (at most {MAX_ATTACHMENT_BYTES:,}): "
                         "send a link instead (mode \"link\")", may_pass=False)
        message.set_content(f"{summary}\n\nThe file is attached.\n")
        maintype, _, subtype = _media_type(job.file_name).partition(";")[0].partition("/")
        message.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=job.file_name)
    try:
        with _smtp(settings.smtp_url) as server:
            refused = server.send_message(message, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as e:
        refused = e.recipients
    except smtplib.SMTPResponseException as e:
        raise Failed(f"the mail server answered {e.smtp_code}: {_text(e.smtp_error)}",
                     may_pass=400 <= e.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError) as e:  # disconnected, refused, timed out
        raise Failed(f"cannot reach the mail server: {e}", may_pass=True) from None
    return [Failed(f"the mail server refused it: {refused[r][0]} {_text(refused[r][1])}",
                   may_pass=400 <= refused[r][0] < 500) if r in refused else "sent" for r in recipients]


def _smtp(url: str) -> smtplib.SMTP:
    """A connected, logged-in client for NEXUS_SMTP_URL: smtp://, smtp+starttls:// or smtps://, with an
    optional user:password."""
    parts = urlsplit(url)
    if parts.scheme not in _SMTP_PORTS or not parts.hostname:
        raise Failed("NEXUS_SMTP_URL is not smtp://, smtp+starttls:// or smtps:// with a host", may_pass=False)
    port = parts.port or _SMTP_PORTS[parts.scheme]
    if parts.scheme == "smtps":
        server: smtplib.SMTP = smtplib.SMTP_SSL(parts.hostname, port, timeout=TIMEOUT_SECONDS,
                                                context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(parts.hostname, port, timeout=TIMEOUT_SECONDS)
    try:
        if parts.scheme == "smtp+starttls":
            server.starttls(context=ssl.create_default_context())
        if parts.username:
            server.login(unquote(parts.username), unquote(parts.password or ""))
    except BaseException:
        server.close()
        raise
    return server


def _text(reply: bytes | str) -> str:
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply).strip()


# Links ------------------------------------------------------------------------------------------------------


def _link(context: JobContext) -> str:
    """A download link for the run's file, valid as long as the file is kept."""
    runtime = context.runtime
    if not runtime.settings.public_url:
        raise Failed("links need the address recipients reach this server at (NEXUS_PUBLIC_URL is not set)",
                     may_pass=False)
    return links.signed_url(runtime.redis.client, runtime.settings.public_url, context.job.project_id,
                            context.job.job_id, _link_seconds(context))


def _link_seconds(context: JobContext) -> int:
    return context.runtime.settings.export_retention_hours * 3600


def _media_type(file_name: str) -> str:
    """The file's media type as sent in a webhook's body or an e-mail's attachment: text says it is UTF-8."""
    media = MEDIA_TYPES.get(file_name.rpartition(".")[2], "application/octet-stream")
    return f"{media}; charset=utf-8" if media.startswith("text/") else media
