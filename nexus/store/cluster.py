"""The cluster layout: Nexus's schema as ClickHouse DDL for a cluster of shards and replicas (NEXUS_CLICKHOUSE_CLUSTER).

The layout is rendered from `sql/schema.sql`, the schema the migrations produce (a test keeps the two equal), so
a cluster is created in the shape of the current schema in one pass, and every table is covered by construction:

- **Sharded**: `events` and the rollups its materialized views fill (`events_hourly`, `events_daily`, `sessions`).
  Each is a Replicated table `<name>_local` on every node (one replication group per shard) and a Distributed
  table `<name>` over them, which is the name every query and insert uses. The views read `events_local` and
  write `<rollup>_local` on the same node: a materialized view sees the block inserted into its own shard.
- **On every node**: everything else — identities and persons, metadata, cohort members, predictions, the
  migrations record. One replication group spans the whole cluster, so every node holds all of their rows and a
  query's joins on them (resolving ids to persons, person traits, cohort members) are complete on each shard.

`events` is sharded by `cityHash64(distinct_id)`: the id an event was sent with, the same value as `events.id_key`
and, for an id never linked to another, the person key analyses group by. The key is stable: an insert never
looks up identity state, and an identify, alias or merge never moves a stored row. A person whose ids hash to
different shards has events on several shards; analyses stay exact because each shard resolves ids against the
full identities table and returns partial aggregates per person, which the initiating node merges (ClickHouse's
two-stage distributed GROUP BY). The README's deployment section and docs/deployment.md weigh the trade-off.
"""

from __future__ import annotations

import re

import msgspec

from nexus.errors import InvalidConfig
from nexus.store.sql_files import load

SHARDING_KEY = "cityHash64(distinct_id)"
SHARDED_SOURCE = "events"  # the table inserts go to; the rollups its views fill are sharded with it
LOCAL_SUFFIX = "_local"

# Every node's replica of a table registers under one Keeper path; the macros come from each node's config
# (clickhouse/cluster/macros-*.xml): `{shard}` groups a shard's replicas, `{replica}` names a node cluster-wide.
SHARDED_PATH = "/clickhouse/tables/{{shard}}/{{database}}/{table}"
EVERYWHERE_PATH = "/clickhouse/tables/all/{{database}}/{table}"
REPLICA = "{replica}"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TABLE = re.compile(r"CREATE TABLE (\w+)\n\((?P<body>.*?)\n\)\nENGINE = (?P<engine>\w+)(?:\((?P<args>[^)]*)\))?"
                    r"(?P<rest>.*)", re.S)
_ALTER = re.compile(r"ALTER TABLE (\w+)\s+(.*)", re.S)
# The changes a Distributed table takes too, so that it keeps the columns of the tables it reads.
_COLUMN_CHANGE = re.compile(r"(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b")
_VIEW = re.compile(r"CREATE MATERIALIZED VIEW (\w+) TO (\w+)\n(?P<columns>\(.*?\n\))\nAS (?P<select>SELECT.*)", re.S)


class Table(msgspec.Struct, frozen=True):
    """A table of the single-node schema: its column and index lines, engine, arguments and the clauses after."""

    name: str
    body: str
    engine: str
    args: str
    rest: str

    @property
    def columns(self) -> str:
        """The column lines only: a Distributed table holds no indexes."""
        lines = [line for line in self.body.splitlines() if line.strip().startswith("`")]
        return ",\n".join(line.rstrip(",") for line in lines)


class View(msgspec.Struct, frozen=True):
    name: str
    target: str
    columns: str
    select: str


class Layout(msgspec.Struct, frozen=True):
    """The cluster's DDL in the order it must run, and which tables are sharded."""

    cluster: str
    statements: list[str]
    sharded: list[str]
    everywhere: list[str]
    views: list[str]


def check_cluster_name(cluster: str) -> str:
    if not _NAME.fullmatch(cluster):
        raise InvalidConfig(f"NEXUS_CLICKHOUSE_CLUSTER must be a cluster name from remote_servers (letters, digits, "
                            f"_), not {cluster!r}")
    return cluster


def on_cluster_clause(cluster: str) -> str:
    return f"ON CLUSTER `{cluster}`"


def parse_schema(schema: str) -> tuple[list[Table], list[View]]:
    """The tables and materialized views of a `nexus migrate --dump-schema` file."""
    tables, views = [], []
    for statement in (_without_leading_comments(s) for s in re.split(r";\n(?=\n|$)", schema)):
        if statement.startswith("CREATE TABLE"):
            match = _TABLE.match(statement)
            if match is None:
                raise ValueError(f"cannot read the table in: {statement[:80]}")
            tables.append(Table(match[1], match["body"].strip("\n"), match["engine"], match["args"] or "", match["rest"].strip()))
        elif statement.startswith("CREATE MATERIALIZED VIEW"):
            match = _VIEW.match(statement)
            if match is None:
                raise ValueError(f"cannot read the view in: {statement[:80]}")
            views.append(View(match[1], match[2], match["columns"], match["select"]))
        elif statement:
            raise ValueError(f"the cluster layout has no rule for: {statement[:80]}")
    return tables, views


def layout(cluster: str, schema: str | None = None) -> Layout:
    """The DDL that creates the current schema on `cluster`: Replicated tables, Distributed tables, views."""
    check_cluster_name(cluster)
    tables, views = parse_schema(load("schema.sql") if schema is None else schema)
    sharded = {SHARDED_SOURCE} | {v.target for v in views if _reads(v.select) == SHARDED_SOURCE}
    on = on_cluster_clause(cluster)
    statements = [replicated_table(t, on, local=t.name in sharded) for t in tables]
    statements += [distributed_table(t, on, cluster) for t in tables if t.name in sharded]
    statements += [_view(v, on, sharded) for v in views]
    return Layout(cluster, statements, sorted(sharded), sorted(t.name for t in tables if t.name not in sharded),
                  sorted(v.name for v in views))


def on_cluster(statement: str, plan: Layout) -> list[str]:
    """A migration's ALTER TABLE as it runs on the cluster: on a sharded table, every change to `<name>_local` on
    every shard and the column changes to the Distributed table too; on any other table, the same ALTER on every
    node; a view's new query reads `events_local`. Anything else (a back-fill, TRUNCATE, EXCHANGE, DROP) has no
    rule here and raises ValueError: the layout re-creates new tables and views, the rest is applied by hand."""
    match = _ALTER.match(statement.strip())
    if match is None:
        raise ValueError(f"no cluster rule for: {statement.strip().splitlines()[0]}")
    name, changes = match[1], match[2].strip()
    on = on_cluster_clause(plan.cluster)
    if name in plan.views:
        if not changes.startswith("MODIFY QUERY"):
            raise ValueError(f"no cluster rule for changing view {name}: {changes.splitlines()[0]}")
        return [f"ALTER TABLE {name} {on} " + re.sub(rf"\bFROM {SHARDED_SOURCE}\b", f"FROM {SHARDED_SOURCE}{LOCAL_SUFFIX}",
                                                       changes)]
    if name in plan.everywhere:
        return [f"ALTER TABLE {name} {on}\n{changes}"]
    if name not in plan.sharded:
        raise ValueError(f"table {name} is not in the cluster layout")
    columns = [c for c in _split_changes(changes) if _COLUMN_CHANGE.match(c)]
    local = [f"ALTER TABLE {name}{LOCAL_SUFFIX} {on}\n{changes}"]
    return local + ([f"ALTER TABLE {name} {on}\n" + ",\n".join(columns)] if columns else [])


def _split_changes(changes: str) -> list[str]:
    """The comma-separated changes of one ALTER, split at commas outside parentheses and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for index, char in enumerate(changes):
        escaped = index > 0 and changes[index - 1] == "\\"
        if quote:
            quote = "" if char == quote and not escaped else quote
        elif char in "'`":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    return [*parts, "".join(current).strip()]


def replicated_table(table: Table, on: str, *, local: bool) -> str:
    name = table.name + LOCAL_SUFFIX if local else table.name
    path = (SHARDED_PATH if local else EVERYWHERE_PATH).format(table=name)
    args = ", ".join(a for a in (f"'{path}'", f"'{REPLICA}'", table.args) if a)
    return (f"CREATE TABLE IF NOT EXISTS {name} {on}\n(\n{table.body}\n)\n"
            f"ENGINE = Replicated{table.engine}({args})\n{table.rest}")


def distributed_table(table: Table, on: str, cluster: str) -> str:
    # Only `events` takes inserts through its Distributed table; rollups are written by the views on each shard,
    # so their Distributed tables have no sharding key and ClickHouse refuses an insert into them.
    key = f", {SHARDING_KEY}" if table.name == SHARDED_SOURCE else ""
    comment = re.search(r"COMMENT '(?:[^'\\]|\\.)*'$", table.rest)
    return (f"CREATE TABLE IF NOT EXISTS {table.name} {on}\n(\n{table.columns}\n)\n"
            f"ENGINE = Distributed(`{cluster}`, currentDatabase(), {table.name}{LOCAL_SUFFIX}{key})"
            + (f"\n{comment[0]}" if comment else ""))


def _view(view: View, on: str, sharded: set[str]) -> str:
    source = _reads(view.select)
    if source not in sharded or view.target not in sharded:
        raise ValueError(f"view {view.name} reads {source} into {view.target}: the cluster layout shards both or neither")
    select = re.sub(rf"\bFROM {source}\b", f"FROM {source}{LOCAL_SUFFIX}", view.select)
    return (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view.name} {on} TO {view.target}{LOCAL_SUFFIX}\n"
            f"{view.columns}\nAS {select}")


def _reads(select: str) -> str:
    tables = set(re.findall(r"\bFROM (\w+)", select)) | set(re.findall(r"\bJOIN (\w+)", select))
    if len(tables) != 1:
        raise ValueError(f"a materialized view must read one table, not {sorted(tables)}")
    return tables.pop()


def _without_leading_comments(statement: str) -> str:
    lines = statement.strip().splitlines()
    while lines and (lines[0].startswith("--") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines)
