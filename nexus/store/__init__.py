"""Nexus's door to ClickHouse through clickhouse-connect: a client from a URL (its errors wrapped once, in
guard), the schema migrations, small reads, the SQL files. Not the only door: on the embedded engine the
ad-hoc SQL sandbox's sessions and `nexus sql` stream through chDB's own connection (nexus.adhoc.session;
see the README's Development section for why)."""
