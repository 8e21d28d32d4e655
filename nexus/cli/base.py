"""The `nexus` command group and what its commands share: settings, the store, one-line errors, output.

Every failure a person can cause or fix prints one line on stderr and exits non-zero; tracebacks are
kept for NEXUS_LOG_LEVEL=debug.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from clickhouse_connect.driver.client import Client

from nexus import settings as settings_module
from nexus.errors import NexusError

_DEBUG = False


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn NexusError (and any unexpected error) into one line on stderr and exit status 1. ClickHouse's
    and Redis's errors arrive as NexusErrors: their clients wrap them (nexus.store.guard, nexus.redis_server)."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except NexusError as e:
            fail(str(e))
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as e:
            if _DEBUG:
                raise
            fail(f"unexpected {type(e).__name__}: {e} (set NEXUS_LOG_LEVEL=debug for a traceback)")

    return wrapper


def load_settings() -> settings_module.Settings:
    global _DEBUG
    value = settings_module.load()
    _DEBUG = value.log_level == "debug"
    logging.basicConfig(level=value.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if not _DEBUG:
        # The driver logs each failure it raises; we report the raised error once, in one line.
        for driver in ("clickhouse_connect", "urllib3"):
            logging.getLogger(driver).setLevel(logging.CRITICAL)
    return value


def database(url: str | None = None, *, migrate: bool = True) -> Client:
    from nexus.store.database import open_database

    settings = load_settings()
    return open_database(url or settings.clickhouse_url, migrate=migrate, cluster=settings.clickhouse_cluster)


class _Nexus(click.Group):
    """The group, with click's usage errors (an unknown option, a bad value, a missing argument) as one
    `error:` line too, exit status 2; its four lines (usage, hint, blank, error) were not the one line
    the rest of the CLI prints. A group called bare still shows its help."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as e:
            e.show()
            sys.exit(e.exit_code)
        except click.ClickException as e:
            message = " ".join(e.format_message().split())
            if isinstance(e, click.UsageError) and e.ctx is not None:
                message += f" (see {e.ctx.command_path} --help)"
            click.echo(f"error: {message}", err=True)
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Nexus, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Nexus: product analytics on ClickHouse."""


def stdout_binary():
    """A binary handle on stdout, for formats that are not text."""
    import os

    return os.fdopen(os.dup(sys.stdout.fileno()), "wb")


def print_table(columns: list[str], rows: list[tuple]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    # Piped output is read by programs and people with wide pagers: do not wrap it at 80 columns.
    Console(width=None if sys.stdout.isatty() else 100_000).print(table)
    click.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})", err=True)


class progress:
    """A rich progress bar on stderr when it is a terminal; `advance(n, total)` moves it."""

    def __init__(self, description: str, total: int | None = None):
        self.description = description
        self.total = total

    def __enter__(self) -> Callable[[int, int], None]:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self.task = None

        def advance(n: int, total: int) -> None:
            """Move by n; a total of 0 means unknown (the bar then counts without an end)."""
            if self.task is None:
                self.progress.start()
                self.task = self.progress.add_task(self.description, total=total or None)
            self.progress.advance(self.task, n)
            if self.progress.tasks[0].finished:
                self.progress.stop()

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.progress.stop()
