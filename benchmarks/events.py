"""A deterministic synthetic event log shaped like product data, for benchmarks.

Skewed events per customer (log-normal), 30 event names with Zipf-like popularity, several sources,
two years of timestamps, properties as JSON text on a third of the rows.

Two ways to get it:

- `event_table(n)`: the whole log as one in-memory Arrow table (fine up to ~10M events);
- `write_events(path, n, chunk=2_000_000)`: the same log written to Parquet chunk by chunk, in
  constant memory (one chunk at a time; 50M events peak at about 1 GB in the generator), for the
  50M run (`benchmarks/bench_scale.py`):

      .venv/bin/python -c "import sys; sys.path.insert(0, 'benchmarks'); import events; events.write_events('e.parquet', 50_000_000)"

Both draw the customer population once (n // 20 customers, log-normal weights; account = customer // 4)
from `default_rng(seed)`. The first chunk continues that generator, exactly as `event_table` does, so
**`write_events(path, n, chunk=c)` holds the same rows as `event_table(n)` whenever n <= c** (checked by
`python benchmarks/events.py --check`). Chunk i >= 1 draws from its own `default_rng([seed, i])`, so
a larger n is deterministic too and has the same shape (customers, names, sources, two years), but its
rows are not those of `event_table(n)`, which draws all n rows from one generator. message_id is
"m<row number>" across chunks, so ids stay unique.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

EVENT_NAMES = [f"event_{i:02d}" for i in range(30)]
SOURCES = ["product", "product", "product", "marketing", "billing", "support", "crm", "survey"]
START = np.datetime64("2024-01-01T00:00:00", "s").astype(np.int64)
SPAN_S = 2 * 365 * 86400
_POPULARITY = 1 / np.arange(1, 31) ** 1.1
_POPULARITY = _POPULARITY / _POPULARITY.sum()


def _population(n_events: int, seed: int) -> tuple[np.random.Generator, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_customers = max(1, n_events // 20)
    weights = rng.lognormal(0, 1.2, n_customers)
    return rng, weights / weights.sum()


def _chunk(rng: np.random.Generator, p: np.ndarray, n: int, first_id: int) -> pa.Table:
    """n rows drawn from rng, in the order (and with the values) event_table always drew them."""
    customer = rng.choice(len(p), size=n, p=p)
    event = rng.choice(30, size=n, p=_POPULARITY)
    ts = START + rng.integers(0, SPAN_S, n)
    has_props = rng.random(n) < 0.33
    prop_n = rng.integers(0, 100, n)
    source = rng.integers(0, len(SOURCES), n)
    channel = rng.integers(0, 4, n)
    props = np.where(has_props, np.char.add('{"n": ', np.char.add(prop_n.astype(str), "}")), None)
    return pa.table({
        "customer_id": pa.array(np.char.add("c", customer.astype(str))),
        "account_id": pa.array(np.char.add("a", (customer // 4).astype(str))),
        "event": pa.array(np.asarray(EVENT_NAMES)[event]),
        "ts": pa.array(ts.astype("datetime64[s]"), pa.timestamp("s", tz="UTC")),
        "source": pa.array(np.asarray(SOURCES)[source]),
        "channel": pa.array(np.asarray(["web", "app", "email", None], dtype=object)[channel]),
        "message_id": pa.array(np.char.add("m", np.arange(first_id, first_id + n).astype(str))),
        "properties": pa.array(props, pa.string()),
    })


def event_table(n_events: int, seed: int = 7) -> pa.Table:
    """The whole log in memory (unchanged values: one generator draws every column for all n rows)."""
    rng, p = _population(n_events, seed)
    return _chunk(rng, p, n_events, 0)


def write_newest_apart(n_events: int, n_new: int, folder, batches: int | None = None) -> None:
    """`event_table(n_events)` written to `folder` as old.parquet (all but the newest `n_new` events by time) and
    new.parquet, or with `batches` new-0.parquet ... in order of time: what arrives after a store is built."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = event_table(n_events)
    newest = np.argsort(table.column("ts").to_numpy(), kind="stable")[-n_new:]
    is_new = np.zeros(n_events, dtype=bool)
    is_new[newest] = True
    pq.write_table(table.filter(pc.invert(is_new)), f"{folder}/old.parquet")
    if batches is None:
        pq.write_table(table.filter(is_new), f"{folder}/new.parquet")
        return
    for k, part in enumerate(np.array_split(newest, batches)):
        pq.write_table(table.take(part), f"{folder}/new-{k}.parquet")


def write_events(path, n_events: int, seed: int = 7, chunk: int = 2_000_000, compression: str = "zstd") -> int:
    """Write the log to one Parquet file, `chunk` rows at a time (one row group per chunk); returns n_events.

    Memory is one chunk plus the customer weights (8 bytes per customer), whatever n_events is."""
    import pyarrow.parquet as pq

    rng, p = _population(n_events, seed)
    writer = None
    try:
        for i, lo in enumerate(range(0, n_events, chunk)):
            t = _chunk(rng if i == 0 else np.random.default_rng([seed, i]), p, min(chunk, n_events - lo), lo)
            if writer is None:
                writer = pq.ParquetWriter(str(path), t.schema, compression=compression)
            writer.write_table(t, row_group_size=min(chunk, 1_000_000))
            del t
    finally:
        if writer is not None:
            writer.close()
    return n_events


if __name__ == "__main__":
    import argparse
    import sys
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    ap = argparse.ArgumentParser(description="check that write_events(n <= chunk) == event_table(n)")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "e.parquet"
        write_events(f, args.events, chunk=max(args.events, 1))
        ref = event_table(args.events)
        same = pq.read_table(f).cast(ref.schema).equals(ref)  # Parquet stores timestamp[s] as [ms]
        write_events(f, args.events, chunk=max(1, args.events // 3))
        t = pq.read_table(f)
        print(f"n={args.events:,}: chunked == event_table: {same}; 3 chunks: {t.num_rows:,} rows, "
              f"{t.column('message_id').unique().__len__():,} distinct ids")
        sys.exit(0 if same else 1)
