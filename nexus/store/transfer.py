"""Moves one project's data and metadata from one store to another (embedded → server, server → cluster,
one data dir to another), resumably, and proves the copy equal at the end.

chDB lets a process open one data dir, so the source is read by a child process (nexus.store.transfer_source)
that writes the project's rows as Arrow files into a staging directory, one file per table and slice: a
slice is the table's partition without the project (a month of events, the whole project elsewhere), the
unit counted and checksummed. The parent then inserts each file into the destination in batches of
BATCH_ROWS rows, with the destination's project id in place of the source's. Both halves record what
they finished in the staging directory, so a run that was interrupted takes up where it stopped.

A batch is one insert into one partition, which ClickHouse writes as one part: it is all there or not at
all. The one batch that may have been in flight when a run was killed is settled on resume by counting
the slice's rows in the destination. Materialized views' targets (the rollups) are not copied: inserting
the events feeds them, as it did in the source. The `projects` row goes last, so the project appears in
the destination only once the rest is in.

At the end every slice's rows and checksum (cityHash64 of each row's text without project_id, summed) are
compared with the source's, and the destination's rollups with its events.

On a cluster (nexus.store.placement) a table is copied under the name that reads and inserts into all its shards:
a sharded table's Distributed one, never a node's `<name>_local`. So the source's rows are read from every shard,
the destination's inserts are split over its shards by the sharding key (a batch is then one part per shard), and
the resume count and the verification read the whole destination cluster. Inserts wait until every shard has its
part (`distributed_foreground_insert`), so what the journal records is stored, not queued on one node.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.ipc as ipc
from clickhouse_connect.driver.client import Client

from nexus.errors import InvalidRequest, NexusError
from nexus.meta import projects
from nexus.store import json_insert
from nexus.store import placement as placements

BATCH_ROWS = 50_000  # rows per insert, by default
# At most one block as the engine reads an insert's rows (max_block_size, 65,409), so a batch is one part.
MAX_BATCH_ROWS = 65_000
# Tables of a project's rows that stay with the source: job runs name its files and its workers (a running
# job copied would be taken for one whose worker died, and run again by the destination's).
NOT_COPIED = {"jobs"}
LAST_TABLE = "projects"


class CopyMismatch(NexusError):
    """The destination's rows differ from the source's after a copy."""


class Slice(msgspec.Struct, frozen=True):
    table: str
    slice: str  # the partition's values but the project's, as ClickHouse prints the tuple: "(202610)", "()"
    rows: int
    checksum: int
    file: str  # Arrow IPC file under the staging directory


class Plan(msgspec.Struct, frozen=True):
    """What the source holds for the project: written by the exporting child before any row."""

    source_project_id: int
    project_name: str
    migrations: list[int]
    slice_expressions: dict[str, str]  # table → ClickHouse expression of its slice
    json_columns: dict[str, list[str]]


class Loaded(msgspec.Struct, frozen=True):
    table: str
    slice: str
    batches: int  # batches of the slice inserted so far
    rows: int


def slice_expression(partition_key: str) -> str:
    """The table's partition key without project_id, as one String expression (`toString(tuple(...))`)."""
    key = partition_key.strip()
    if key.startswith("(") and key.endswith(")"):
        key = key[1:-1]
    parts = [part.strip() for part in _top_level_commas(key) if part.strip() and part.strip() != "project_id"]
    return f"toString(tuple({', '.join(parts)}))"


def _top_level_commas(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def copied_tables(client: Client) -> dict[str, str]:
    """Tables of the current database that hold projects' rows (a project_id column), without those a
    materialized view fills: name → slice expression; `projects` last. On a cluster a sharded table is named by
    its Distributed table, with its local table's partition key."""
    database = client.query("SELECT currentDatabase()").result_rows[0][0]
    views = client.query("SELECT create_table_query FROM system.tables WHERE database = {db:String} "
                         "AND engine = 'MaterializedView'", parameters={"db": database}).result_rows
    filled = {m[1] for (query,) in views if (m := re.search(r"\bTO\s+`?[\w]+`?\.`?(\w+)`?", query))}
    rows = client.query(
        "SELECT t.name, t.partition_key FROM system.tables AS t WHERE t.database = {db:String} AND t.engine "
        "LIKE '%MergeTree' AND t.name IN (SELECT table FROM system.columns WHERE database = {db:String} "
        "AND name = 'project_id') ORDER BY t.name = 'projects', t.name", parameters={"db": database}).result_rows
    placement = placements.of(client)
    return {placement.whole(name): slice_expression(key) for name, key in rows
            if name not in filled and name not in NOT_COPIED}


def json_columns(client: Client, table: str) -> list[str]:
    return _columns_of_type(client, table, "JSON%")


def _columns_of_type(client: Client, table: str, pattern: str) -> list[str]:
    return [name for (name,) in client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
        "AND type LIKE {pattern:String} ORDER BY position", parameters={"t": table, "pattern": pattern}).result_rows]


def slices(client: Client, table: str, expression: str, project_id: int) -> list[tuple[str, int, int]]:
    """(slice, rows, checksum) of the project's rows in the table."""
    return [(s, int(n), int(h or 0)) for s, n, h in client.query(
        f"SELECT {expression} AS slice, count(), sum(cityHash64(toString(tuple(* EXCEPT (project_id))))) "
        f"FROM `{table}` WHERE project_id = {{p:UInt32}} GROUP BY slice ORDER BY slice",
        parameters={"p": project_id}).result_rows]


def applied_migrations(client: Client) -> list[int]:
    return [v for (v,) in client.query("SELECT DISTINCT version FROM schema_migrations ORDER BY version").result_rows]


# The exporting side (in the child process that owns the source) ---------------------------------------

def export(client: Client, project_ref: str, staging: Path, say: Callable[[str], None]) -> None:
    """Write the project's rows into `staging`: plan.json, then per slice an Arrow file and a line in
    exported.jsonl; slices already listed there are passed over. `say` gets "total N" and "rows N" lines."""
    staging.mkdir(parents=True, exist_ok=True)
    project = projects.get(client, project_ref)
    tables = copied_tables(client)
    plan = Plan(project.project_id, project.name, applied_migrations(client), tables,
                {table: json_columns(client, table) for table in tables})
    (staging / "plan.json").write_bytes(msgspec.json.encode(plan))
    done = {(s.table, s.slice) for s in read_lines(staging / "exported.jsonl", Slice)}
    found = [(table, *found) for table, expression in tables.items()
             for found in slices(client, table, expression, project.project_id)]
    say(f"total {sum(rows for _, _, rows, _ in found)}")
    with (staging / "exported.jsonl").open("ab") as journal:
        for table, value, rows, checksum in found:
            if (table, value) in done:
                say(f"rows {rows}")
                continue
            file = f"{table}-{secrets.token_hex(6)}.arrow"
            _write_slice(client, table, tables[table], plan.json_columns[table], project.project_id, value,
                         staging / file, say)
            journal.write(msgspec.json.encode(Slice(table, value, rows, checksum, file)) + b"\n")
            journal.flush()


def _write_slice(client: Client, table: str, expression: str, json_names: list[str], project_id: int, value: str,
                 path: Path, say: Callable[[str], None]) -> None:
    # JSON columns travel as their text (the destination parses it as the live write path does), UUIDs too
    # (the insert of JSON text reads only plain Arrow types).
    as_text = [f"toJSONString(`{c}`) AS `{c}`" for c in json_names]
    as_text += [f"toString(`{c}`) AS `{c}`" for c in _columns_of_type(client, table, "%UUID%")]
    replaced = f" REPLACE ({', '.join(as_text)})" if as_text else ""
    query = (f"SELECT *{replaced} FROM `{table}` WHERE project_id = {{p:UInt32}} AND {expression} = {{s:String}}")
    partial = path.with_suffix(".partial")
    writer = None
    with client.query_arrow_stream(query, parameters={"p": project_id, "s": value}) as stream:
        for batch in stream:
            if writer is None:
                writer = ipc.new_file(partial, batch.schema)
            writer.write_batch(batch)
            say(f"rows {batch.num_rows}")
    if writer is None:
        raise CopyMismatch(f"{table} {value} of the source changed while it was read (its rows are gone): "
                           "run the copy again once the source takes no writes for the project")
    writer.close()
    partial.rename(path)


# The loading side (in the process that owns the destination) ------------------------------------------

class Target(msgspec.Struct, frozen=True):
    """Chosen by a copy's first load, kept by the runs that resume it."""

    project_id: int  # in the destination
    batch_rows: int  # batches are numbered in the journal: a resumed run cuts the slices the same way


def target(client: Client, plan: Plan, staging: Path, batch_rows: int) -> Target:
    """The destination's id for the project: the one chosen by an earlier run of this copy, or the next free
    one. A destination project of the same name that this copy did not make is refused."""
    chosen = staging / "target.json"
    if chosen.is_file():
        return msgspec.json.decode(chosen.read_bytes(), type=Target)
    if applied_migrations(client) != plan.migrations:
        raise InvalidRequest("the two stores are at different schema versions: run `nexus migrate` on the "
                             "older one (Nexus of the same version on both)", "to")
    existing = projects.list_all(client)
    if any(p.name == plan.project_name for p in existing):
        raise InvalidRequest(f"the destination has a project named {plan.project_name!r} already", "project")
    used = max([p.project_id for p in existing] + [
        client.query(f"SELECT max(project_id) FROM `{table}`").result_rows[0][0] or 0 for table in plan.slice_expressions])
    found = Target(used + 1, batch_rows)
    chosen.write_bytes(msgspec.json.encode(found))
    return found


def load(client: Client, staging: Path, advance: Callable[[int], None], batch_rows: int = BATCH_ROWS) -> int:
    """Insert every exported slice not loaded yet, `batch_rows` rows per insert (unless an earlier run of
    the copy chose otherwise); returns the destination's project id."""
    if not 0 < batch_rows <= MAX_BATCH_ROWS:
        raise InvalidRequest(f"batch rows must be 1 to {MAX_BATCH_ROWS:,}, not {batch_rows:,}", "batch_rows")
    plan = msgspec.json.decode((staging / "plan.json").read_bytes(), type=Plan)
    if placements.of(client).cluster:  # this client is the copy's own (nexus copy opens it for the destination)
        client.set_client_setting("distributed_foreground_insert", 1)
    chosen = target(client, plan, staging, batch_rows)
    project_id, batch_rows = chosen.project_id, chosen.batch_rows
    loaded = {(entry.table, entry.slice): entry for entry in read_lines(staging / "loaded.jsonl", Loaded)}
    exported = sorted(read_lines(staging / "exported.jsonl", Slice), key=lambda s: s.table == LAST_TABLE)
    with (staging / "loaded.jsonl").open("ab") as journal:
        for part in exported:
            progress = loaded.get((part.table, part.slice), Loaded(part.table, part.slice, 0, 0))
            if progress.rows == part.rows:
                advance(part.rows)
                continue
            settled = _settled(client, plan, project_id, part, progress, batch_rows)
            if settled != progress:
                journal.write(msgspec.json.encode(settled) + b"\n")
            progress = settled
            advance(progress.rows)
            for number, batch in enumerate(_batches(staging / part.file, project_id, batch_rows)):
                if number < progress.batches:
                    continue
                _insert(client, part.table, batch, plan.json_columns[part.table])
                progress = Loaded(part.table, part.slice, number + 1, progress.rows + batch.num_rows)
                journal.write(msgspec.json.encode(progress) + b"\n")
                journal.flush()
                advance(batch.num_rows)
    return project_id


def _settled(client: Client, plan: Plan, project_id: int, part: Slice, progress: Loaded, batch_rows: int) -> Loaded:
    """The slice's progress, counting the batch a killed run may have inserted without recording it."""
    present = client.query(f"SELECT count() FROM `{part.table}` WHERE project_id = {{p:UInt32}} AND "
                           f"{plan.slice_expressions[part.table]} = {{s:String}}",
                           parameters={"p": project_id, "s": part.slice}).result_rows[0][0]
    if present == progress.rows:
        return progress
    in_flight = min(batch_rows, part.rows - progress.batches * batch_rows)
    if present == progress.rows + in_flight:  # it was inserted, then the run stopped before recording it
        return Loaded(part.table, part.slice, progress.batches + 1, present)
    raise CopyMismatch(f"{part.table} {part.slice}: the destination has {present} rows where {progress.rows} were "
                       "recorded (was the destination project written to by something else?)")


def _batches(path: Path, project_id: int, batch_rows: int) -> Iterator[pa.Table]:
    """The file's rows in batches of `batch_rows`, with the destination's project id."""
    with ipc.open_file(path) as reader:
        table = reader.read_all()
    index = table.schema.get_field_index("project_id")
    for start in range(0, table.num_rows, batch_rows):
        batch = table.slice(start, batch_rows)
        yield batch.set_column(index, "project_id", pa.array([project_id] * batch.num_rows, pa.uint32()))


def _insert(client: Client, table: str, batch: pa.Table, json_names: list[str]) -> None:
    if json_names:
        json_insert.insert(client, table, batch, json_columns=json_names)
    else:
        client.insert_arrow(table, batch)


def verify(client: Client, staging: Path, project_id: int) -> list[str]:
    """Every slice's rows and checksum in the destination against the source's, and the rollups against the
    events: what differs, one line each (empty when the copy is whole)."""
    plan = msgspec.json.decode((staging / "plan.json").read_bytes(), type=Plan)
    expected = {(s.table, s.slice): (s.rows, s.checksum) for s in read_lines(staging / "exported.jsonl", Slice)}
    found = {(table, value): (rows, checksum) for table, expression in plan.slice_expressions.items()
             for value, rows, checksum in slices(client, table, expression, project_id)}
    problems = [f"{table} {value}: {found.get((table, value), (0, 0))[0]} rows (checksum "
                f"{found.get((table, value), (0, 0))[1]}) where the source has {rows} (checksum {checksum})"
                for (table, value), (rows, checksum) in sorted(expected.items())
                if found.get((table, value)) != (rows, checksum)]
    problems += [f"{table} {value}: {rows} rows the source does not have" for (table, value), (rows, _) in
                 sorted(found.items()) if (table, value) not in expected]
    events = client.query("SELECT count() FROM events WHERE project_id = {p:UInt32}", parameters={"p": project_id})
    rolled = client.query("SELECT sum(events) FROM events_daily WHERE project_id = {p:UInt32}",
                          parameters={"p": project_id})
    if events.result_rows[0][0] != (rolled.result_rows[0][0] or 0):
        problems.append(f"events_daily counts {rolled.result_rows[0][0]} events where events has {events.result_rows[0][0]}")
    return problems


def read_lines(path: Path, kind: type) -> list:
    """A journal's entries; a last line cut short by a kill is left out."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_bytes().splitlines():
        try:
            entries.append(msgspec.json.decode(line, type=kind))
        except msgspec.DecodeError:
            break
    return entries

