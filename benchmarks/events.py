"""A deterministic synthetic event log shaped like product data, for benchmarks.

Skewed events per customer (log-normal), 30 event names with Zipf-like popularity, several sources,
two years of timestamps, properties as JSON text on a third of the rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

EVENT_NAMES = [f"event_{i:02d}" for i in range(30)]
SOURCES = ["product", "product", "product", "marketing", "billing", "support", "crm", "survey"]


def event_table(n_events: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    n_customers = max(1, n_events // 20)
    weights = rng.lognormal(0, 1.2, n_customers)
    customer = rng.choice(n_customers, size=n_events, p=weights / weights.sum())
    popularity = 1 / np.arange(1, 31) ** 1.1
    event = rng.choice(30, size=n_events, p=popularity / popularity.sum())
    start = np.datetime64("2024-01-01T00:00:00", "s").astype(np.int64)
    ts = start + rng.integers(0, 2 * 365 * 86400, n_events)
    props = np.where(rng.random(n_events) < 0.33, np.char.add('{"n": ', np.char.add(rng.integers(0, 100, n_events).astype(str), "}")), None)
    return pa.table({
        "customer_id": pa.array(np.char.add("c", customer.astype(str))),
        "account_id": pa.array(np.char.add("a", (customer // 4).astype(str))),
        "event": pa.array(np.asarray(EVENT_NAMES)[event]),
        "ts": pa.array(ts.astype("datetime64[s]"), pa.timestamp("s", tz="UTC")),
        "source": pa.array(np.asarray(SOURCES)[rng.integers(0, len(SOURCES), n_events)]),
        "channel": pa.array(np.asarray(["web", "app", "email", None], dtype=object)[rng.integers(0, 4, n_events)]),
        "message_id": pa.array(np.char.add("m", np.arange(n_events).astype(str))),
        "properties": pa.array(props, pa.string()),
    })
