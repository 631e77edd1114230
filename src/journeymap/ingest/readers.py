"""Streaming readers: each yields Arrow batches with a `_row` column giving the file line or row.

`_row` is what a dead letter reports: for CSV and JSON Lines the 1-based physical line (the header
is line 1), for Parquet the 1-based row. CSV values are read as text, never type-guessed, so a
stray value cannot fail a whole column; the mapping decides how to parse each field. Text files are
read in the dialect (delimiter, encoding) that `sniff` found or the user gave; a non-UTF-8 encoding
is transcoded while reading.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from journeymap.ingest.files import InputFile
from journeymap.ingest.sniff import Dialect

BATCH_BYTES = 8 << 20  # CSV block size: about 50-100k rows per batch
PARQUET_BATCH_ROWS = 512_000


@dataclass
class Malformed:
    line: int | None
    text: str
    detail: str


@dataclass
class ReadState:
    """What the reader learnt besides the batches: bytes consumed so far and rows it could not parse."""

    bytes_read: int = 0
    malformed: deque[Malformed] = field(default_factory=deque)  # appended by the reader thread

    def take_malformed(self) -> list[Malformed]:
        out = []
        while self.malformed:
            out.append(self.malformed.popleft())
        return out


def prefetch(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Read ahead in a thread: parsing the next batch overlaps loading this one (both release the GIL)."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def run() -> None:
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put(b, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    t = threading.Thread(target=run, name="journeymap-reader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


def read_batches(f: InputFile, state: ReadState, dialect: Dialect | None = None) -> Iterator[pa.RecordBatch]:
    if dialect is None or (f.format == "csv" and dialect.delimiter is None):
        dialect = Dialect(delimiter="\t" if f.path.suffixes[0:1] == [".tsv"] else ",")
    if f.format == "parquet":
        yield from _parquet(f, state)
    elif f.format == "csv":
        yield from _csv(f, state, dialect)
    else:
        yield from _lines(f, state, dialect)


def columns(f: InputFile, dialect: Dialect) -> list[str] | None:
    """The columns of a CSV or Parquet file as the batches name them (`_row` aside); None for JSON Lines,
    whose keys are known row by row."""
    if f.format == "parquet":
        return pq.ParquetFile(f.path).schema_arrow.names
    if f.format == "csv":
        return _renamed(_header(f, ReadState(), dialect))
    return None


def _encoding(dialect: Dialect) -> str:
    # pyarrow reads UTF-8 natively; any other name makes it transcode through Python's codec.
    return "utf8" if dialect.encoding.replace("-", "").lower() == "utf8" else dialect.encoding


def _header(f: InputFile, state: ReadState, dialect: Dialect) -> list[str]:
    with _open(f, state) as stream:
        # Only the header: every column is then read as text.
        return pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=1 << 16, encoding=_encoding(dialect)),
            parse_options=pacsv.ParseOptions(delimiter=dialect.delimiter, invalid_row_handler=lambda row: "skip"),
            convert_options=pacsv.ConvertOptions(include_columns=[]),
        ).schema.names


def _renamed(names: list[str]) -> list[str]:
    # Exports from pandas start with an unnamed index column; SQL needs a name for it.
    return [n if n.strip() else f"column_{i + 1}" for i, n in enumerate(names)]


def _parquet(f: InputFile, state: ReadState) -> Iterator[pa.RecordBatch]:
    """Row i is `_row` i, unless the file has its own integer `_row` column: then that names each row (the
    server's columnar copy of a journal segment with damaged records set aside keeps the segment's lines)."""
    pf = pq.ParquetFile(f.path)
    total_rows = max(pf.metadata.num_rows, 1)
    own = "_row" in pf.schema_arrow.names and pa.types.is_integer(pf.schema_arrow.field("_row").type)
    start = 1
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        n = batch.num_rows
        if own:
            i = batch.schema.get_field_index("_row")
            batch = batch.set_column(i, "_row", batch.column(i).cast(pa.int64()))
        else:
            batch = batch.append_column("_row", pa.array(range(start, start + n), pa.int64()))
        yield batch
        start += n
        state.bytes_read = int(f.size * (start - 1) / total_rows)


class _CountingStream:
    """Wraps the raw file so progress can follow compressed bytes."""

    def __init__(self, raw, state: ReadState):
        self._raw, self._state = raw, state

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._state.bytes_read += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._raw, name)


def _open(f: InputFile, state: ReadState) -> pa.NativeFile:
    raw = pa.PythonFile(_CountingStream(open(f.path, "rb"), state), mode="r")
    return pa.CompressedInputStream(raw, "gzip") if f.compression else raw


def _line_numbers(start: int, n: int, skipped: set[int]) -> tuple[pa.Array, int]:
    """The next n line numbers from `start`, skipping lines the parser rejected (already known:
    pyarrow reports a block's invalid rows before it returns the block)."""
    if not skipped or max(skipped) < start:
        return pa.array(range(start, start + n), pa.int64()), start + n
    out, line = [], start
    while len(out) < n:
        if line not in skipped:
            out.append(line)
        line += 1
    return pa.array(out, pa.int64()), line


def _csv(f: InputFile, state: ReadState, dialect: Dialect) -> Iterator[pa.RecordBatch]:
    skipped: set[int] = set()

    def on_invalid(row: pacsv.InvalidRow) -> str:
        # Line numbers from pyarrow count the header as line 1, as an editor does.
        if row.number is not None:
            skipped.add(row.number)
        if row.text.strip():
            detail = f"expected {row.expected_columns} columns, got {row.actual_columns}"
            state.malformed.append(Malformed(row.number, row.text, detail))
        return "skip"

    names = _header(f, state, dialect)
    renamed = _renamed(names)
    state.bytes_read = 0
    with _open(f, state) as stream:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(  # threads lose line numbers
                block_size=BATCH_BYTES, use_threads=False, encoding=_encoding(dialect)),
            parse_options=pacsv.ParseOptions(
                delimiter=dialect.delimiter, newlines_in_values=False, ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
        )
        line = 2
        for batch in reader:
            rows, line = _line_numbers(line, batch.num_rows, skipped)
            if renamed != names:
                batch = batch.rename_columns(renamed)
            yield batch.append_column("_row", rows)


def _lines(f: InputFile, state: ReadState, dialect: Dialect) -> Iterator[pa.RecordBatch]:
    """JSON Lines as raw text, one record per line; the loader parses them in DuckDB, row by row."""
    with _open(f, state) as stream:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=BATCH_BYTES, column_names=["_line"], encoding=_encoding(dialect)),
            parse_options=pacsv.ParseOptions(
                delimiter="\x1e", quote_char=False, escape_char=False, ignore_empty_lines=False,
                invalid_row_handler=lambda row: "skip",
            ),
            convert_options=pacsv.ConvertOptions(column_types={"_line": pa.string()}, strings_can_be_null=False),
        )
        line = 1
        for batch in reader:
            rows = pa.array(range(line, line + batch.num_rows), pa.int64())
            line += batch.num_rows
            yield batch.append_column("_row", rows)
