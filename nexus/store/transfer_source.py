"""The exporting half of `nexus copy`, run as a child process because chDB lets a process open one data
dir: `python -m nexus.store.transfer_source URL PROJECT STAGING STORES` writes the project's rows into STAGING
(nexus.store.transfer.export; STORES names the copy's pair of stores) and prints its progress, one "total N" or
"rows N" line at a time. With a fifth argument `source` it writes the source's fingerprints as they are now for
the verification (nexus.store.transfer.record_source) instead."""

from __future__ import annotations

import sys
from pathlib import Path

from nexus.errors import NexusError
from nexus.store import transfer
from nexus.store.database import open_database


def main(url: str, project: str, staging: str, stores: str, step: str = "export") -> int:
    try:
        client = open_database(url, migrate=False)
        if step == "source":
            transfer.record_source(client, Path(staging))
        else:
            transfer.export(client, project, Path(staging), lambda line: print(line, flush=True), stores)
    except NexusError as e:
        print(f"error {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
