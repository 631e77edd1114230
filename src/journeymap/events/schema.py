"""The canonical event: one row of the `events` table, whatever tool it came from.

Timestamps are stored as naive `TIMESTAMP` values that always mean UTC (`ts`), so DuckDB and Spark
read them the same way. `properties` and `traits` are JSON object text.
"""

from __future__ import annotations

import pyarrow as pa

SOURCES = ("product", "crm", "billing", "support", "survey", "marketing", "other")
"""The systems an event can come from."""

EVENT_TYPES = ("track", "identify", "alias", "group", "page", "screen")
"""Segment's call types; file rows are `track` unless a mapping says otherwise."""

PERSON_IDS = ("user_id", "anonymous_id", "email")
"""Identifiers of a person, in order of trust."""

PLACEHOLDER_IDS = frozenset(
    {"", "null", "none", "nil", "nan", "undefined", "anonymous", "anon", "guest", "unknown",
     "0", "-1", "n/a", "na", "-", "test", "user", "[object object]", "00000000-0000-0000-0000-000000000000"}
)
"""Identifier values that name nobody. They never identify or merge anyone (compared lower-cased, trimmed)."""

MAX_EVENT_BYTES = 32 * 1024
"""An event whose serialised size exceeds this is rejected (Segment's own limit)."""

MAX_ID_CHARS = 512
MIN_TS = "1990-01-01"
MAX_FUTURE_SECONDS = 86400
"""Timestamps before MIN_TS or more than a day in the future are absurd."""

CANONICAL_FIELDS = (
    "message_id", "ts", "event", "type", "source", "channel", "user_id", "anonymous_id", "email",
    "previous_id", "account_id", "properties", "traits",
)
"""Fields a source mapping can fill."""

EVENTS_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("ts", pa.timestamp("us")),
        ("event", pa.string()),
        ("type", pa.string()),
        ("source", pa.string()),
        ("channel", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("email", pa.string()),
        ("previous_id", pa.string()),
        ("account_id", pa.string()),
        ("properties", pa.string()),
        ("traits", pa.string()),
        ("seq", pa.int64()),
    ]
)
"""The stored columns. `seq` is input order (ties on `ts` are broken by it) and encodes the load and
the file line (view `event_lineage`)."""


def is_placeholder(value: str | None) -> bool:
    """True for identifier values that name nobody.

    >>> is_placeholder(" Guest "), is_placeholder("u_42")
    (True, False)
    """
    return value is None or value.strip().lower() in PLACEHOLDER_IDS
