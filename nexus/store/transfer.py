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
compared with the source's as it is then (read again by the child), and the destination's rollups with its events.
A table whose engine merges the versions of a key (Replacing-, AggregatingMergeTree) is read with FINAL on both
sides: its versions are exported as the one row they stand for, since an insert may collapse them anyway
(optimize_on_insert), and a batch inserted twice on resume then stays one row per key.

A slice's rows and checksum in the journal are those of the rows written to its file (summed from the same query),
and a rerun exports again any slice whose rows or checksum changed in the source since. The staging directory's
plan.json names the source project and the two stores: a directory of another copy, or one with other files and no
plan, is refused, and at the end only the files the copy wrote are removed.

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
# What the copy writes into the staging directory besides the slices' files.
RECORDS = ("plan.json", "exported.jsonl", "target.json", "loaded.jsonl", "source.jsonl")
ROW_CHECKSUM = "cityHash64(toString(tuple(* EXCEPT (project_id))))"  # a slice's checksum sums it over its rows
ROW_HASH = "_nexus_row_hash"  # that hash as an extra column of a slice's export, which the file does not keep


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
    stores: str = ""  # "source → destination", their URLs without passwords: the pair this staging serves


class Loaded(msgspec.Struct, frozen=True):
    table: str
    slice: str
    batches: int  # batches of the slice inserted so far
    rows: int
    file: str = ""  # the exported file they came from (a slice exported again has another)


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
    return {name: slice_expression(key) for name, key, _ in _project_tables(client)}


def final_tables(client: Client) -> set[str]:
    """The copied tables whose engine merges a key's versions, so that their rows are read with FINAL."""
    return {name for name, _, engine in _project_tables(client)
            if re.search(r"(Replacing|Aggregating)MergeTree$", engine)}


def _project_tables(client: Client) -> list[tuple[str, str, str]]:
    database = client.query("SELECT currentDatabase()").result_rows[0][0]
    views = client.query("SELECT create_table_query FROM system.tables WHERE database = {db:String} "
                         "AND engine = 'MaterializedView'", parameters={"db": database}).result_rows
    filled = {m[1] for (query,) in views if (m := re.search(r"\bTO\s+`?[\w]+`?\.`?(\w+)`?", query))}
    rows = client.query(
        "SELECT t.name, t.partition_key, t.engine FROM system.tables AS t WHERE t.database = {db:String} AND "
        "t.engine LIKE '%MergeTree' AND t.name IN (SELECT table FROM system.columns WHERE database = {db:String} "
        "AND name = 'project_id') ORDER BY t.name = 'projects', t.name", parameters={"db": database}).result_rows
    placement = placements.of(client)
    return [(placement.whole(name), key, engine) for name, key, engine in rows
            if name not in filled and name not in NOT_COPIED]


def json_columns(client: Client, table: str) -> list[str]:
    return _columns_of_type(client, table, "JSON%")


def _columns_of_type(client: Client, table: str, pattern: str) -> list[str]:
    return [name for (name,) in client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
        "AND type LIKE {pattern:String} ORDER BY position", parameters={"t": table, "pattern": pattern}).result_rows]


def slices(client: Client, table: str, expression: str, project_id: int, final: bool) -> list[tuple[str, int, int]]:
    """(slice, rows, checksum) of the project's rows in the table (its FINAL rows if `final`)."""
    return [(s, int(n), int(h or 0)) for s, n, h in client.query(
        f"SELECT {expression} AS slice, count(), sum({ROW_CHECKSUM}) FROM {_source(table, final)} "
        "WHERE project_id = {p:UInt32} GROUP BY slice ORDER BY slice", parameters={"p": project_id}).result_rows]


def fingerprints(client: Client, plan: Plan, project_id: int) -> dict[tuple[str, str], tuple[int, int]]:
    """(table, slice) → (rows, checksum) of the project in this store."""
    final = final_tables(client)
    return {(table, value): (rows, checksum) for table, expression in plan.slice_expressions.items()
            for value, rows, checksum in slices(client, table, expression, project_id, table in final)}


def _source(table: str, final: bool) -> str:
    return f"`{table}`" + (" FINAL" if final else "")


def applied_migrations(client: Client) -> list[int]:
    return [v for (v,) in client.query("SELECT DISTINCT version FROM schema_migrations ORDER BY version").result_rows]


# The exporting side (in the child process that owns the source) ---------------------------------------

def export(client: Client, project_ref: str, staging: Path, say: Callable[[str], None], stores: str = "") -> None:
    """Write the project's rows into `staging`: plan.json, then per slice an Arrow file and a line in
    exported.jsonl; a slice listed there with the rows and checksum it still has is passed over. `stores` names
    the pair of stores the copy is between. `say` gets "total N" and "rows N" lines."""
    project = projects.get(client, project_ref)
    tables = copied_tables(client)
    final = final_tables(client)
    plan = Plan(project.project_id, project.name, applied_migrations(client), tables,
                {table: json_columns(client, table) for table in tables}, stores)
    _claim(staging, plan)
    (staging / "plan.json").write_bytes(msgspec.json.encode(plan))
    exported = {(s.table, s.slice): s for s in read_lines(staging / "exported.jsonl", Slice)}  # the last line wins
    found = [(table, *found) for table, expression in tables.items()
             for found in slices(client, table, expression, project.project_id, table in final)]
    say(f"total {sum(rows for _, _, rows, _ in found)}")
    with (staging / "exported.jsonl").open("ab") as journal:
        for table, value, rows, checksum in found:
            earlier = exported.get((table, value))
            if earlier and (earlier.rows, earlier.checksum) == (rows, checksum):
                say(f"rows {rows}")
                continue
            file = f"{table}-{secrets.token_hex(6)}.arrow"
            written, written_checksum = _write_slice(client, table, tables[table], plan.json_columns[table],
                                                     table in final, project.project_id, value, staging / file, say)
            journal.write(msgspec.json.encode(Slice(table, value, written, written_checksum, file)) + b"\n")
            journal.flush()
            if earlier:
                (staging / earlier.file).unlink(missing_ok=True)


def _claim(staging: Path, plan: Plan) -> None:
    """Refuse a staging directory that serves another copy, or holds other files and no copy's plan."""
    if (staging / "plan.json").is_file():
        earlier = msgspec.json.decode((staging / "plan.json").read_bytes(), type=Plan)
        if (earlier.source_project_id, earlier.stores) != (plan.source_project_id, plan.stores):
            raise InvalidRequest(f"{staging} holds the copy of project {earlier.source_project_id} "
                                 f"({earlier.stores or 'other stores'}): give this copy another --staging", "staging")
    elif staging.is_dir() and any(staging.iterdir()):
        raise InvalidRequest(f"{staging} holds other files and no copy's plan.json: give --staging a new or empty "
                             "directory (the copy removes its files at the end)", "staging")
    staging.mkdir(parents=True, exist_ok=True)


def _write_slice(client: Client, table: str, expression: str, json_names: list[str], final: bool, project_id: int,
                 value: str, path: Path, say: Callable[[str], None]) -> tuple[int, int]:
    """Write the slice's rows to `path`; their count and checksum, read in the same query as the rows."""
    # JSON columns travel as their text (the destination parses it as the live write path does), UUIDs too
    # (the insert of JSON text reads only plain Arrow types). The row hash is taken of the stored values.
    as_text = [f"toJSONString(`{c}`) AS `{c}`" for c in json_names]
    as_text += [f"toString(`{c}`) AS `{c}`" for c in _columns_of_type(client, table, "%UUID%")]
    replaced = f" REPLACE ({', '.join(as_text)})" if as_text else ""
    query = (f"SELECT *{replaced}, {ROW_CHECKSUM} AS {ROW_HASH} FROM {_source(table, final)} "
             f"WHERE project_id = {{p:UInt32}} AND {expression} = {{s:String}}")
    partial = path.with_suffix(".partial")
    writer, rows, checksum = None, 0, 0
    with client.query_arrow_stream(query, parameters={"p": project_id, "s": value}) as stream:
        for batch in stream:
            hashes = batch.column(batch.schema.get_field_index(ROW_HASH))
            batch = batch.drop_columns([ROW_HASH])
            if writer is None:
                writer = ipc.new_file(partial, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
            checksum = (checksum + sum(hashes.to_pylist())) % 2**64  # as ClickHouse's sum of UInt64 wraps
            say(f"rows {batch.num_rows}")
    if writer is None:
        raise CopyMismatch(f"{table} {value} of the source changed while it was read (its rows are gone): "
                           "run the copy again once the source takes no writes for the project")
    writer.close()
    partial.rename(path)
    return rows, checksum


def record_source(client: Client, staging: Path) -> None:
    """Write the source project's fingerprints as they are now into source.jsonl, for the verification."""
    plan = msgspec.json.decode((staging / "plan.json").read_bytes(), type=Plan)
    found = fingerprints(client, plan, plan.source_project_id)
    (staging / "source.jsonl").write_bytes(b"".join(
        msgspec.json.encode(Slice(table, value, rows, checksum, "")) + b"\n"
        for (table, value), (rows, checksum) in found.items()))


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
    final = final_tables(client)
    loaded = {(entry.table, entry.slice): entry for entry in read_lines(staging / "loaded.jsonl", Loaded)}
    latest = {(s.table, s.slice): s for s in read_lines(staging / "exported.jsonl", Slice)}  # a re-export wins
    exported = sorted(latest.values(), key=lambda s: s.table == LAST_TABLE)
    with (staging / "loaded.jsonl").open("ab") as journal:
        for part in exported:
            progress = loaded.get((part.table, part.slice))
            if progress is None or progress.file != part.file:
                if progress and progress.rows:
                    raise CopyMismatch(
                        f"{part.table} {part.slice} changed in the source after this copy loaded it into the "
                        f"destination (project {project_id} there): remove that project from the destination and "
                        f"{staging}, then copy again once the source takes no writes for the project")
                progress = Loaded(part.table, part.slice, 0, 0, part.file)
            if progress.rows == part.rows:
                advance(part.rows)
                continue
            settled = _settled(client, plan, project_id, part, progress, batch_rows, part.table in final)
            if settled != progress:
                journal.write(msgspec.json.encode(settled) + b"\n")
            progress = settled
            advance(progress.rows)
            for number, batch in enumerate(_batches(staging / part.file, project_id, batch_rows)):
                if number < progress.batches:
                    continue
                _insert(client, part.table, batch, plan.json_columns[part.table])
                progress = Loaded(part.table, part.slice, number + 1, progress.rows + batch.num_rows, part.file)
                journal.write(msgspec.json.encode(progress) + b"\n")
                journal.flush()
                advance(batch.num_rows)
    return project_id


def _settled(client: Client, plan: Plan, project_id: int, part: Slice, progress: Loaded, batch_rows: int,
             final: bool) -> Loaded:
    """The slice's progress, counting the batch a killed run may have inserted without recording it (a table read
    with FINAL holds one row per key, so a batch inserted again there counts once)."""
    present = client.query(f"SELECT count() FROM {_source(part.table, final)} WHERE project_id = {{p:UInt32}} AND "
                           f"{plan.slice_expressions[part.table]} = {{s:String}}",
                           parameters={"p": project_id, "s": part.slice}).result_rows[0][0]
    if present == progress.rows:
        return progress
    in_flight = min(batch_rows, part.rows - progress.batches * batch_rows)
    if present == progress.rows + in_flight:  # it was inserted, then the run stopped before recording it
        return Loaded(part.table, part.slice, progress.batches + 1, present, part.file)
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
    """Every slice's rows and checksum in the destination against the source's as record_source found them last,
    and the rollups against the events: what differs, one line each (empty when the copy is whole)."""
    plan = msgspec.json.decode((staging / "plan.json").read_bytes(), type=Plan)
    found = fingerprints(client, plan, project_id)
    expected = {(s.table, s.slice): (s.rows, s.checksum) for s in read_lines(staging / "source.jsonl", Slice)}
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


def remove_staging(staging: Path) -> None:
    """Remove the files the copy wrote into `staging`, then the directory if nothing else is left in it."""
    for name in {s.file for s in read_lines(staging / "exported.jsonl", Slice)} | set(RECORDS):
        (staging / name).unlink(missing_ok=True)
    for partial in staging.glob("*.partial"):  # a slice's file cut short by a kill
        partial.unlink()
    try:
        staging.rmdir()
    except OSError:  # other files, or the working directory itself
        pass


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

