"""Demo data speed: generate and store N events (default 1M), next to the engine's own ceiling.

Prints a table: generation alone, storing pre-generated Arrow chunks (the insert ceiling), and the two
together as `nexus demo` runs them. Run: python benchmarks/demo.py [--events N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone

from nexus.demo.generator import generate
from nexus.meta import projects
from nexus.store.database import open_database

END = datetime(2026, 11, 1, tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    events = parser.parse_args().events
    client = open_database(f"chdb://{tempfile.mkdtemp(prefix='nexus-bench-')}/clickhouse")
    project = projects.create(client, "bench")

    started = time.perf_counter()
    chunks = list(generate(project.project_id, events, end=END))
    generated = time.perf_counter() - started

    started = time.perf_counter()
    for chunk in chunks:
        client.insert_arrow("events", chunk.events)
        client.insert_arrow("persons", chunk.persons)
        client.insert_arrow("identities", chunk.identities)
    stored = time.perf_counter() - started

    total = generated + stored
    print(f"{'step':<34}{'seconds':>9}{'events/s':>12}")
    for name, seconds in (("generate (Python)", generated), ("store: insert_arrow (ceiling)", stored),
                          ("nexus demo = both", total)):
        print(f"{name:<34}{seconds:>9.1f}{events / seconds:>12,.0f}")
    print(f"storing is {stored / total:.0%} of the demo's time; target: {events:,} events under 60 s: "
          f"{'met' if total < 60 else 'MISSED'}")


if __name__ == "__main__":
    main()
