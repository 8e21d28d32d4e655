"""Commands that keep a store safe and move it: backup, restore (nexus.store.backup) and copy
(nexus.store.transfer)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from nexus.cli.base import database, fail, load_settings, main, progress, reports_errors


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--url", help="Back up the Nexus serving at this URL, while it serves; PATH is on its machine.")
@click.option("--key", envvar="NEXUS_ADMIN_KEY", show_envvar=True, help="With --url: the instance admin key.")
@reports_errors
def backup(path: Path, url: str | None, key: str | None) -> None:
    """Back the embedded store up to the new directory PATH (ClickHouse's BACKUP): on the store itself, or
    with --url through a running server, which pauses its event writer for the backup's length."""
    from nexus.store.backup import BackupSummary

    if url:
        from nexus.meta.remote import call
        from nexus.store.backup import BackupRequest

        if not key:
            fail("--url needs --key (or NEXUS_ADMIN_KEY): the instance admin key of that server")
        summary = call(url.rstrip("/"), key, "POST", "/v1/backups", BackupSummary, BackupRequest(str(path)),
                       timeout=3600)
    else:
        from nexus.store import backup as backups
        from nexus.store.client import parse_url

        store_url = load_settings().clickhouse_url
        summary = backups.backup(database(store_url), parse_url(store_url), path)
    events = summary.tables.get("events")
    click.echo(f"backed up {len(summary.tables) + len(summary.unchecked)} tables ({events.rows if events else 0:,} "
               f"events) to {summary.path} in {summary.seconds:.1f} s"
               + (f"; written while it ran, so a restore cannot check them: {', '.join(summary.unchecked)}"
                  if summary.unchecked else ""))


@main.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask first.")
@reports_errors
def restore(path: Path, yes: bool) -> None:
    """Replace the embedded store's database with the backup at PATH (the server stopped), then check every
    table's rows and checksum against the backup's record."""
    from nexus.store import backup as backups
    from nexus.store import migrations
    from nexus.store.client import parse_url

    store_url = load_settings().clickhouse_url
    address = parse_url(store_url)
    if not yes:
        click.confirm(f"Replace everything in {address.describe()} with the backup at {path}?", abort=True)
    client = database(store_url, migrate=False)
    restored = backups.restore(client, address, path)
    applied = migrations.migrate(client)  # a backup of an older version gets the newer schema
    events = restored.get("events")
    click.echo(f"restored {len(restored)} tables ({events.rows if events else 0:,} events) from {path}; "
               f"rows and checksums match the backup" + (f"; applied {len(applied)} newer migrations" if applied else ""))


@main.command()
@click.option("--project", "project_ref", required=True, help="Project name or id in the source store.")
@click.option("--from", "source", required=True, metavar="URL", help="The source store: chdb:///dir or http(s)://…")
@click.option("--to", "destination", required=True, metavar="URL", help="The destination store (migrated to the "
              "same version); it gets the project under the same name and its next free id.")
@click.option("--staging", type=click.Path(file_okay=False, path_type=Path),
              help="Directory of the rows in transit and of the copy's progress (default: under NEXUS_DATA_DIR/copies, "
                   "one per project and pair of stores); the same directory resumes an interrupted copy.")
@click.option("--batch-rows", type=click.IntRange(min=1, max=65_000), default=50_000, show_default=True,
              help="Rows per insert into the destination (at most 65,000: each insert must stay one part).")
@reports_errors
def copy(project_ref: str, source: str, destination: str, staging: Path | None, batch_rows: int) -> None:
    """Copy a project's data and metadata to another store in Arrow batches, resumable after an
    interruption (run the same command again), then verify every partition's rows and checksum."""
    import hashlib

    from nexus.store import transfer
    from nexus.store.client import parse_url, redact_url

    for url in (source, destination):
        parse_url(url)  # a malformed URL is refused before anything starts
    if source == destination:
        fail("--from and --to name the same store")
    pair = hashlib.sha256(f"{source}\0{destination}".encode()).hexdigest()[:12]
    staging = staging or load_settings().data_dir / "copies" / f"{re.sub(r'[^A-Za-z0-9_-]', '_', project_ref)}-{pair}"
    stores = f"{redact_url(source)} → {redact_url(destination)}"
    total = _export(source, project_ref, staging, stores, redact_url(source))
    client = database(destination)
    with progress(f"Writing to {redact_url(destination)}", total=total) as advance:
        project_id = transfer.load(client, staging, lambda n: advance(n, total), batch_rows)
    _export(source, project_ref, staging, stores, redact_url(source), step="source")
    problems = transfer.verify(client, staging, project_id)
    for problem in problems:
        click.echo(f"differs: {problem}", err=True)
    if problems:
        fail(f"the copy differs from the source in {len(problems)} places; the rows in transit are kept in {staging}")
    slices = transfer.read_lines(staging / "exported.jsonl", transfer.Slice)
    transfer.remove_staging(staging)
    click.echo(f"copied project {project_ref!r}: {total:,} rows of {len({s.table for s in slices})} tables in "
               f"{len(slices)} partitions, each with equal rows and checksum; its id in the destination is {project_id}")


def _export(source: str, project_ref: str, staging: Path, stores: str, shown: str, step: str = "export") -> int:
    """Run the exporting child on the source (its `step`: the export, or the source's fingerprints for the
    verification), following its progress; the rows it found."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-m", "nexus.store.transfer_source", source, project_ref, str(staging),
                              stores, step], stdout=subprocess.PIPE, text=True)
    total, error = 0, ""
    with progress(f"Reading from {shown}") as advance:
        for line in child.stdout:
            word, _, value = line.strip().partition(" ")
            if word == "total":
                total = int(value)
            elif word == "rows":
                advance(int(value), total)
            elif word == "error":
                error = value
    if child.wait() != 0:
        fail(error or f"reading the source failed (exit status {child.returncode})")
    return total
