"""Identity stitching: rebuild identity_map, persons and accounts from `events`, and bring journey_events up to
them (identity.journey_events: the new events inserted, the moved ones updated, or written whole).

The pipeline: `_activity` (the one aggregation over events) -> identifiers and their links ->
connected components (numpy, over the distinct links only) -> identity_map -> persons -> journey_events
-> accounts. All but the components is DuckDB SQL. The rebuild is one transaction: readers see the old
tables or the new ones, never a mix, and a failure leaves the old ones.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pyarrow as pa

from journeymap.identity.activity import build_activity
from journeymap.identity.components import components
from journeymap.identity.journey_events import build_journey_events, check_events
from journeymap.identity.links import PERSON_ID_SQL, build_identifiers
from journeymap.identity.profiles import build_accounts, build_lookup, build_persons, build_resolved

_TEMP_TABLES = ("_activity", "_tuples", "_ids", "_members", "_hubs", "_links", "_roots", "_lookup", "_resolved")


@dataclass(frozen=True)
class StitchResult:
    """What a rebuild found. `largest_component` is the identifier count of the biggest person: a
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

    def to_dict(self) -> dict:
        return asdict(self)


def stitch(con: duckdb.DuckDBPyConnection) -> StitchResult:
    """Rebuild the identity tables from `events`, in one transaction.

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
        counts = _rebuild(con)
        for table in _TEMP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return StitchResult(**counts, seconds=round(time.perf_counter() - started, 3))


def _rebuild(con: duckdb.DuckDBPyConnection) -> dict:
    check = check_events(con)
    salt = build_activity(con, since=check.mark)
    identifiers = build_identifiers(con)
    links = con.sql("SELECT node, hub FROM _links").to_arrow_table()
    roots = components(identifiers, links["node"].to_numpy(), links["hub"].to_numpy())
    _write_identity_map(con, roots)

    sizes = np.bincount(roots, minlength=identifiers)
    largest_root = int(sizes.argmax()) if identifiers else None
    build_lookup(con)
    build_persons(con, salt)
    build_resolved(con)
    (version,) = con.execute("SELECT coalesce(max(value::BIGINT), 0) + 1 FROM meta "
                             "WHERE key = 'journey.version'").fetchall()[0]
    written = build_journey_events(con, salt, version, check)
    build_accounts(con)
    # Readers of the journey state compare this with the version the state was folded at (journeymap.state).
    con.execute("INSERT OR REPLACE INTO meta VALUES ('journey.version', ?)", [str(version)])

    # every event is one _resolved row's (its tuple and account), so the totals need no scan of the events
    events, unresolved = con.execute(
        "SELECT coalesce(sum(events), 0)::BIGINT, coalesce(sum(events) FILTER (WHERE person_id IS NULL), 0)::BIGINT "
        "FROM _resolved").fetchall()[0]
    largest_person_id = None
    if largest_root is not None:
        largest_person_id = con.execute(
            f"SELECT {PERSON_ID_SQL.format(t='_ids')} FROM _ids WHERE node = ?", [largest_root]
        ).fetchall()[0][0]
    return {
        "persons": int((sizes > 0).sum()),
        "identifiers": identifiers,
        "merged_components": int((sizes > 1).sum()),
        "accounts": con.execute("SELECT count(*) FROM accounts").fetchall()[0][0],
        "events": events,
        "unresolved_events": unresolved,
        "largest_component": int(sizes.max()) if identifiers else 0,
        "largest_person_id": largest_person_id,
        "journey_events": written,
    }


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
