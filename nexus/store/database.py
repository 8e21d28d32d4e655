"""Opens the Nexus database named by a URL: connect, create the database, apply pending migrations."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from nexus.store import migrations
from nexus.store.client import connect, parse_url


def open_database(url: str, *, migrate: bool = True, cluster: str = "") -> Client:
    """A client bound to the Nexus database at `url`, its schema up to date unless migrate=False; with
    `cluster` (NEXUS_CLICKHOUSE_CLUSTER) the database and its tables are created on every node of it."""
    address = parse_url(url)
    client = connect(address)
    migrations.use_database(client, address.database, cluster=cluster)
    if migrate:
        migrations.migrate(client, cluster=cluster)
    return client
