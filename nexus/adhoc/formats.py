"""The formats an ad-hoc query answers in (media types, file extensions) and the cut of a result at max_rows.

JSON and NDJSON come from the engine itself; CSV, Arrow and Parquet are written from the engine's Arrow
batches by the one writer of each format, nexus.exports.stream (so CSV is formula-safe here as in exports)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import pyarrow as pa

Format = Literal["json", "ndjson", "csv", "arrow", "parquet"]
FORMATS: tuple[str, ...] = ("json", "ndjson", "csv", "arrow", "parquet")

MEDIA_TYPES = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}

# File name extensions, for Content-Disposition (an Arrow IPC *stream* is .arrows).
EXTENSIONS = {"json": "json", "ndjson": "ndjson", "csv": "csv", "arrow": "arrows", "parquet": "parquet"}


class Cut:
    """A result cut at `rows` rows (a request's max_rows). The engine is asked for one row more (its `limit`
    setting), so a result that fills the cut can be told from one that was cut: `truncated` is None until
    that is known, then whether rows past the cut were dropped."""

    def __init__(self, rows: int):
        self.rows = rows
        self.truncated: bool | None = None

    @property
    def engine_limit(self) -> int:
        return self.rows + 1


def cut_batches(batches: Iterable[pa.RecordBatch], cut: Cut) -> Iterator[pa.RecordBatch]:
    """The batches, up to `cut.rows` rows; stops reading at the first row past it."""
    left = cut.rows
    for batch in batches:
        if batch.num_rows > left:
            if left:
                yield batch.slice(0, left)
            cut.truncated = True
            return
        left -= batch.num_rows
        yield batch
    cut.truncated = False


def cut_lines(chunks: Iterable[bytes], cut: Cut) -> Iterator[bytes]:
    """The engine's JSONEachRow output, up to `cut.rows` rows (a line each); stops reading at the first
    byte past them."""
    wanted = cut.rows
    for chunk in chunks:
        if wanted == 0:
            if chunk:
                cut.truncated = True
                return
            continue
        if chunk.count(b"\n") < wanted:
            wanted -= chunk.count(b"\n")
            yield chunk
            continue
        end = -1
        for _ in range(wanted):
            end = chunk.index(b"\n", end + 1)
        wanted = 0
        yield chunk[:end + 1]
        if end + 1 < len(chunk):
            cut.truncated = True
            return
    cut.truncated = False
