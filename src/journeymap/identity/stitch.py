"""Identity stitching: bring identity_map, persons and accounts up to `events`, and journey_events up to them
(identity.journey_events: the new events inserted, the moved ones updated, or written whole).

The pipeline: `identity_activity` (the one aggregation over events) -> identifiers and their links ->
connected components (numpy, over the distinct links only) -> identity_map -> persons -> journey_events
-> accounts. All but the components is DuckDB SQL. A stitch is one transaction: readers see the old
tables or the new ones, never a mix, and a failure leaves the old ones.

When the events up to the last stitch's mark are the ones it saw, identity is resolved incrementally
(identity.delta): only the tuples of the events past the mark, against identity_map, and only the persons they
touch are written again. Otherwise, or when `resolve_delta` declines, everything is resolved again. Either
way the tables hold the same rows (tests/test_identity_delta.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pyarrow as pa

from journeymap.errors import InternalError
from journeymap.identity import delta
from journeymap.identity.activity import ACTIVITY, build_activity
from journeymap.identity.components import components
from journeymap.identity.journey_events import build_journey_events, check_events, same_layout
from journeymap.identity.links import PERSON_ID_SQL, PERSON_TRUST_SQL, build_identifiers
from journeymap.identity.profiles import (
    TRAITS,
    build_accounts,
    build_lookup,
    build_persons,
    build_resolved,
    build_traits,
)
from journeymap.ingest.store import table_names

_TEMP_TABLES = ("_activity_new", "_taccounts", "_tuples", "_ids", "_members", "_hubs", "_links", "_roots",
                "_lookup", "_resolved", *delta.TEMP_TABLES)
LAYOUT = "2"
"""The layout of the identity tables an incremental stitch updates in place (meta `identity.layout`); a store
whose tables were written under another is resolved whole."""


@dataclass(frozen=True)
class StitchResult:
    """What a stitch found. `largest_component` is the identifier count of the biggest person: a
    shared identifier (an office email, a kiosk's anonymous id) shows up here as one huge person."""

    persons: int
    identifiers: int
    merged_components: int
    """Persons known by more than one identifier."""
    accounts: int
    events: int
    unresolved_events: int
    """Events with no person (account-only rows such as billing)."""
    largest_component: int
    largest_person_id: str | None
    seconds: float
    journey_events: str = "rebuilt"
    """How journey_events was written: "updated" (the new events inserted, the moved ones updated) or "rebuilt"."""
    identity: str = "resolved"
    """How identity was resolved: "updated" (the new tuples against identity_map) or "resolved" (all of it)."""

    def to_dict(self) -> dict:
        return asdict(self)


def stitch(con: duckdb.DuckDBPyConnection) -> StitchResult:
    """Bring the identity tables up to `events`, in one transaction (incrementally when it can: module docstring).

    >>> import tempfile
    >>> from journeymap.ingest.store import open_store
    >>> con = open_store(tempfile.mkdtemp())
    >>> con.execute(
    ...     "INSERT INTO events (message_id, ts, event, type, source, user_id, anonymous_id, seq)"
    ...     " VALUES ('m1', '2025-01-01', 'Signed in', 'identify', 'product', 'ann', 'a1', 1),"
    ...     "        ('m2', '2025-01-02', 'Viewed', 'page', 'product', NULL, 'a1', 2)"
    ... ).fetchall()
    [(2,)]
    >>> stitch(con).persons
    1
    >>> con.execute("SELECT seq, person_id FROM journey_events ORDER BY seq").fetchall()
    [(1, 'u:ann'), (2, 'u:ann')]
    """
    started = time.perf_counter()
    con.begin()
    try:
        counts = _stitch(con)
        for table in _TEMP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return StitchResult(**counts, seconds=round(time.perf_counter() - started, 3))


def _stitch(con: duckdb.DuckDBPyConnection) -> dict:
    check = check_events(con)
    incremental = check.mark is not None and _updatable(con)
    salt = build_activity(con, since=check.mark if incremental else None,
                          salt=int(check.salt) if check.salt is not None else None)
    partial = incremental and check.salt == str(salt) and delta.resolve_delta(con)
    if partial:
        build_traits(con, salt, since=check.mark)
        build_persons(con, touched=True)
        counts = _identity_counts(con)
    else:
        counts = _resolve(con, salt)
        build_traits(con, salt)
        build_persons(con)
    build_resolved(con, touched=partial)
    (version,) = con.execute("SELECT coalesce(max(value::BIGINT), 0) + 1 FROM meta "
                             "WHERE key = 'journey.version'").fetchall()[0]
    written = build_journey_events(con, salt, version, check, partial=partial)
    if partial and written != "updated":  # _updatable checked what build_journey_events checks
        raise InternalError("an incremental stitch found journey_events it cannot update")
    build_accounts(con, touched=partial)
    # Readers of the journey state compare this with the version the state was folded at (journeymap.state).
    con.execute("INSERT OR REPLACE INTO meta VALUES ('journey.version', ?)", [str(version)])
    con.execute("INSERT OR REPLACE INTO meta VALUES ('identity.layout', ?)", [LAYOUT])

    # every event is one resolved row's (its tuple and account), so the totals need no scan of the events
    events, unresolved = con.execute("""
        SELECT coalesce(sum(events), 0)::BIGINT,
               coalesce(sum(events) FILTER (WHERE activity_key IN (
                   SELECT activity_key FROM identity_resolved WHERE person_id IS NULL)), 0)::BIGINT
        FROM identity_activity""").fetchall()[0]
    return {
        **counts,
        "accounts": con.execute("SELECT count(*) FROM accounts").fetchall()[0][0],
        "events": events,
        "unresolved_events": unresolved,
        "journey_events": written,
    }


def _updatable(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the identity tables a stitch would update are there, in this journeymap's layout."""
    if not {"identity_map", "persons", "identity_resolved", TRAITS, ACTIVITY} <= table_names(con):
        return False
    layout = con.execute("SELECT value FROM meta WHERE key = 'identity.layout'").fetchall()
    return layout == [(LAYOUT,)] and same_layout(con)


def _resolve(con: duckdb.DuckDBPyConnection, salt: int) -> dict:
    """identity_map and `_lookup` from every identifier tuple: the components of the whole graph."""
    identifiers = build_identifiers(con)
    links = con.sql("SELECT node, hub FROM _links").to_arrow_table()
    roots = components(identifiers, links["node"].to_numpy(), links["hub"].to_numpy())
    _write_identity_map(con, roots)
    build_lookup(con)

    sizes = np.bincount(roots, minlength=identifiers)
    largest_person_id = None
    if identifiers:
        largest_person_id = con.execute(
            f"SELECT {PERSON_ID_SQL.format(t='_ids')} FROM _ids WHERE node = ?", [int(sizes.argmax())]
        ).fetchall()[0][0]
    return {
        "persons": int((sizes > 0).sum()),
        "identifiers": identifiers,
        "merged_components": int((sizes > 1).sum()),
        "largest_component": int(sizes.max()) if identifiers else 0,
        "largest_person_id": largest_person_id,
        "identity": "resolved",
    }


def _identity_counts(con: duckdb.DuckDBPyConnection) -> dict:
    """What `_resolve` reports, read from identity_map: the largest person on a tie is the one whose naming
    identifier is the most trusted, as the components' order gives it."""
    persons, identifiers, merged, largest, largest_person_id = con.execute(f"""
        WITH sizes AS (SELECT person_id, count(*) AS n FROM identity_map GROUP BY person_id)
        SELECT count(*), coalesce(sum(n), 0)::BIGINT, count(*) FILTER (WHERE n > 1), coalesce(max(n), 0),
               (SELECT person_id FROM sizes
                ORDER BY n DESC, {PERSON_TRUST_SQL.format(p='person_id')}, person_id[3:]
                LIMIT 1)
        FROM sizes
    """).fetchall()[0]
    return {"persons": persons, "identifiers": identifiers, "merged_components": merged,
            "largest_component": largest, "largest_person_id": largest_person_id, "identity": "updated"}


def _write_identity_map(con: duckdb.DuckDBPyConnection, roots: np.ndarray) -> None:
    """identity_map: each identifier with the person its component's root names."""
    con.register("_roots_arrow", pa.table({"node": np.arange(len(roots), dtype=np.int64), "root": roots}))
    con.execute("CREATE OR REPLACE TEMP TABLE _roots AS SELECT * FROM _roots_arrow")
    con.unregister("_roots_arrow")
    con.execute(f"""
        CREATE OR REPLACE TABLE identity_map AS
        SELECT i.id_type, i.id_value, {PERSON_ID_SQL.format(t="r")} AS person_id
        FROM _ids i JOIN _roots USING (node) JOIN _ids r ON r.node = _roots.root
        ORDER BY i.id_type, i.id_value
    """)
