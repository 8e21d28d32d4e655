"""`nexus sql`: ClickHouse SQL on the store itself, or with --url through a running server's sandbox.

Rows are written while they arrive, in every format, so a result of any size passes in bounded memory.
Locally and through a server the same rows reach the same writers (Arrow batches for the file formats,
the engine's JSON rows for the table), so every format looks the same either way; --max-rows cuts the
result at N rows both ways, and a cut result says so on stderr.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import click
import msgspec

from nexus.cli.base import database, fail, load_settings, main, reports_errors, stdout_binary

FORMATS = ["table", "csv", "json", "ndjson", "parquet", "arrow"]


class _Result:
    """One running result: its rows (table) or batches (file formats), and whether it was cut."""

    def __init__(self, items: Iterator[Any], truncated: Callable[[], bool | None],
                 names: Callable[[], list[str]] = list, note: str = ""):
        self.items = items
        self.truncated = truncated
        self.names = names  # the column names of an empty result, which has no row to read them from
        self.note = note  # said on stderr once the result is written


@main.command()
@click.argument("query")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A value for a {NAME:Type} placeholder.")
@click.option("--max-rows", type=click.IntRange(min=1), help="Return at most this many rows.")
@click.option("--url", help="Query a running Nexus at this URL, in the API's read-only sandbox.")
@click.option("--key", help="A read key of the project to query (with --url).")
@reports_errors
def sql(query: str, output_format: str, output: Path | None, params: tuple[str, ...], max_rows: int | None,
        url: str | None, key: str | None) -> None:
    """Run ClickHouse SQL: on the embedded store directly (all projects, no sandbox; the store must not
    be held by a running server), or with --url/--key through a server's /v1/query sandbox."""
    if output_format in ("parquet", "arrow") and output is None and sys.stdout.isatty():
        fail(f"{output_format} output is binary: use --output FILE or redirect stdout")
    values = _params(params)
    if url and not key:
        fail("--url needs --key: a read key of the project to query")
    table = output_format == "table"
    opened = _remote(url, key, query, values, max_rows, table) if url and key else _local(query, values, max_rows, table)
    with opened as result:
        if table:
            with _text_sink(output) as (out, fit):
                rows = _write_table(result, out, fit)
        else:
            from nexus.exports.stream import write_batches

            with output.open("wb") if output else stdout_binary() as sink:
                rows = write_batches(result.items, output_format, sink)  # type: ignore[arg-type]
        truncated, note = result.truncated(), result.note
    cut = f"cut at --max-rows {max_rows}: the result has more" if truncated else ""
    if table:
        click.echo(f"({rows:,} row{'s' if rows != 1 else ''}{'; ' + cut if cut else ''})", err=True)
    elif cut:
        click.echo(f"({rows:,} rows, {cut})", err=True)
    if note:
        click.echo(note, err=True)


@contextmanager
def _local(query: str, values: dict[str, str], max_rows: int | None, table: bool) -> Iterator[_Result]:
    # The store streams through a session of its own: clickhouse-connect's chDB backend would gather the
    # whole result first. The engine's `limit` stops the query one row past --max-rows (to tell a cut).
    from nexus.adhoc.formats import Cut, cut_batches, cut_lines
    from nexus.adhoc.sandbox import with_times
    from nexus.adhoc.session import open_session
    from nexus.store.client import parse_url

    settings = load_settings()
    client = database(settings.clickhouse_url)
    note = _no_projects_note(client, settings)
    cut = Cut(max_rows) if max_rows else None
    session = open_session(parse_url(settings.clickhouse_url), client,
                           [("limit", cut.engine_limit)] if cut else [])
    truncated = (lambda: cut.truncated) if cut else (lambda: False)
    try:
        if table:
            chunks = session.chunks(query, values, "JSONEachRow")
            if cut:
                chunks = cut_lines(chunks, cut)

            def names() -> list[str]:
                header = session.text(query, values, "JSONCompactEachRowWithNames").split(b"\n", 1)[0]
                return msgspec.json.decode(header) if header else []

            yield _Result(_json_rows(chunks), truncated, names, note)
        else:
            batches = with_times(session, query, values, session.batches(query, values))
            yield _Result(cut_batches(batches, cut) if cut else batches, truncated, note=note)
    finally:
        session.close()


@contextmanager
def _remote(url: str, key: str, query: str, values: dict[str, str], max_rows: int | None,
            table: bool) -> Iterator[_Result]:
    from nexus.adhoc import remote

    # The server's ndjson is the engine's JSON rows, as the local table reads them; its Arrow feeds the
    # same writers as the local store's batches.
    with remote.answer(url, key, query, values, "ndjson" if table else "arrow", max_rows) as answer:
        if not table:
            yield _Result(answer.batches(), lambda: answer.truncated)
            return

        def names() -> list[str]:
            import pyarrow.ipc as ipc

            with remote.answer(url, key, query, values, "arrow", 1) as empty:
                return ipc.open_stream(empty.response).schema.names

        yield _Result(_json_rows(answer.chunks()), lambda: answer.truncated, names)


def _json_rows(chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """JSONEachRow text as one object per row, across chunk boundaries; lines are decoded in place (a
    chunk is a whole engine block, which for wide rows is over 100 MB: no copy of it is made)."""
    decode = msgspec.json.decode
    rest = b""
    for chunk in chunks:
        view, start = memoryview(chunk), 0
        if rest:
            end = chunk.find(b"\n")
            if end < 0:
                rest += chunk
                continue
            yield decode(rest + chunk[:end])
            rest, start = b"", end + 1
        while (end := chunk.find(b"\n", start)) >= 0:
            if end > start:
                yield decode(view[start:end])
            start = end + 1
        rest = chunk[start:]
    if rest.strip():
        yield decode(rest)


def _write_table(result: _Result, out: TextIO, fit: int | None) -> int:
    from nexus.cli.table import write_table

    rows = result.items
    first = next(rows, None)
    if first is None:
        return write_table(result.names(), [], out, fit)
    columns = list(first)

    def cells() -> Iterator[list[str]]:
        yield [_cell(v) for v in first.values()]
        for row in rows:
            yield [_cell(v) for v in row.values()]

    return write_table(columns, cells(), out, fit)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()  # numbers, true/false, arrays and objects as JSON


@contextmanager
def _text_sink(output: Path | None) -> Iterator[tuple[TextIO, int | None]]:
    """Where the table goes, and the width to fit it into (a terminal's; files and pipes get every cell whole)."""
    if output is not None:
        with output.open("w", encoding="utf-8") as handle:
            yield handle, None
        return
    yield sys.stdout, shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    sys.stdout.flush()


def _no_projects_note(client: Any, settings: Any) -> str:
    """A store without projects is most often a new one made by mistake: the data dir is relative to the
    working directory, so running from elsewhere opens (and creates) another store."""
    from nexus.meta import projects
    from nexus.store.client import parse_url

    if projects.list_all(client):
        return ""
    address = parse_url(settings.clickhouse_url)
    if address.engine == "chdb":
        return (f"note: no projects in the store at {settings.data_dir}: the data dir is NEXUS_DATA_DIR, by "
                f"default .nexus in the working directory")
    return f"note: no projects in {address.describe()}"


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"--param takes NAME=VALUE, not {pair!r}")
        values[name] = value
    return values
