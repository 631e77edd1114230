"""Columns and files: timestamps as each tool writes them, canonical event tables, Parquet and CSV.

Events are gathered as small column batches (`EventBatch`) and turned into one Arrow table at the end;
nothing here loops over events in Python.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def _ts(seconds: np.ndarray, tz: str = "UTC") -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64), type=pa.timestamp("s", tz=tz))


def iso(seconds: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """ISO 8601 in UTC with a Z, as Zendesk and most APIs export."""
    out = pc.strftime(_ts(seconds), format="%Y-%m-%dT%H:%M:%SZ")
    return out if mask is None else pc.if_else(pa.array(mask), pa.nulls(len(out), pa.string()), out)


def local_time(seconds: np.ndarray, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> pa.Array:
    """Wall-clock time in `tz` with no offset: what a CRM export in the owner's zone looks like."""
    return pc.strftime(_ts(seconds, tz), format=fmt)


def json_objects(keys: list[str], columns: list[pa.Array | np.ndarray | str | int]) -> pa.Array:
    """JSON object text per row from columns of plain strings and numbers (values need no escaping)."""
    pieces: list = []
    for i, (key, col) in enumerate(zip(keys, columns, strict=True)):
        pieces.append(("{" if i == 0 else ",") + json.dumps(key) + ":")
        if isinstance(col, str | int | float):
            pieces[-1] += json.dumps(col)
            continue
        arr = pa.array(col) if not isinstance(col, pa.Array) else col
        if pa.types.is_string(arr.type):
            pieces[-1] += '"'
            pieces += [arr, '"']
        else:
            pieces.append(pc.cast(arr, pa.string()))
    pieces.append("}")
    if not any(isinstance(p, pa.Array) for p in pieces):
        raise ValueError("json_objects needs at least one column")
    merged: list = []
    for p in pieces:  # adjacent literals join into one
        if merged and isinstance(p, str) and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    return pc.binary_join_element_wise(*merged, "")


def codes_to_strings(codes: np.ndarray, vocabulary: list[str] | tuple[str, ...]) -> pa.Array:
    """Small-vocabulary string columns (event names, JSON snippets) from integer codes."""
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), pa.array(list(vocabulary))).cast(
        pa.string()
    )


def take(values: pa.Array, index: np.ndarray | None) -> pa.Array:
    """values[index], null where index < 0."""
    if index is None:
        return pa.nulls(0, pa.string())
    index = np.asarray(index)
    return values.take(pa.array(index, mask=index < 0))


CANONICAL_COLUMNS = ("message_id", "ts", "event", "type", "source", "channel", "user_id", "anonymous_id", "email",
                     "account_id", "properties", "traits")


@dataclass
class EventBatch:
    """Rows sharing a source. String columns are Arrow arrays of the batch's length, or one value."""

    ts: np.ndarray
    event: pa.Array | str
    source: str
    type: pa.Array | str = "track"
    channel: pa.Array | str | None = None
    user_id: pa.Array | None = None
    anonymous_id: pa.Array | None = None
    email: pa.Array | None = None
    account_id: pa.Array | None = None
    properties: pa.Array | str | None = None
    traits: pa.Array | str | None = None

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class EventLog:
    prefix: str
    batches: list[EventBatch] = field(default_factory=list)

    def add(self, batch: EventBatch) -> None:
        if len(batch):
            self.batches.append(batch)

    def to_table(self, end: int, rng: np.random.Generator | None = None, duplicates: float = 0.001) -> pa.Table:
        """All batches as one canonical table, sorted by time, cut at `end`, with message ids.

        With `rng`, a `duplicates` share of rows is written twice (same message id and content), as
        client retries do."""
        cols: dict[str, list[pa.Array]] = {c: [] for c in CANONICAL_COLUMNS if c not in ("message_id", "ts")}
        ts = np.concatenate([b.ts for b in self.batches]).astype(np.int64)
        for bt in self.batches:
            n = len(bt)
            for name in cols:
                value = getattr(bt, name)
                if value is None:
                    value = pa.nulls(n, pa.string())
                elif isinstance(value, str):
                    value = pa.repeat(pa.scalar(value, pa.string()), n)
                cols[name].append(value)
        table = pa.table({name: pa.concat_arrays(parts) for name, parts in cols.items()})
        # a stable sort keeps a second's events in the order they were added (signup before identify)
        micros = ts * 1_000_000
        order = np.argsort(micros, kind="stable")
        keep = order[ts[order] <= end]
        table = table.take(pa.array(keep))
        message_id = pc.binary_join_element_wise(self.prefix, pc.cast(pa.array(np.arange(len(keep))), pa.string()), "")
        table = table.append_column("ts", pa.array(micros[keep], type=pa.timestamp("us")))
        table = table.append_column("message_id", message_id).select(list(CANONICAL_COLUMNS))
        if rng is not None and duplicates > 0 and len(keep):
            again = np.flatnonzero(rng.random(len(keep)) < duplicates)
            rows = np.sort(np.concatenate([np.arange(len(keep)), again]), kind="stable")
            table = table.take(pa.array(rows))
        return table


def write_parquet(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=256 * 1024)
    return path


def write_csv(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))
    return path


def canonical_csv(table: pa.Table) -> pa.Table:
    """The canonical table with `ts` as ISO text, as a CSV export would carry it."""
    seconds = table.column("ts").cast(pa.timestamp("s"), safe=False).cast(pa.timestamp("s", tz="UTC"))
    ts = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
    return table.set_column(table.schema.get_field_index("ts"), "ts", ts)
