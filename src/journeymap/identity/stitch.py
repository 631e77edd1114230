"""Identity stitching: rebuild identity_map, persons, accounts and journey_events from `events`.

The work is DuckDB SQL except the connected components, which run in numpy over the DISTINCT links
between identifiers (never over events). The rebuild is one transaction: readers see the old tables
or the new ones, never a mix.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pyarrow as pa

from journeymap.identity.components import components
from journeymap.identity.links import build_identifiers
from journeymap.identity.profiles import build_accounts, build_journey_events, build_lookup, build_persons

_TEMP_TABLES = ("_tuples", "_ids", "_links", "_roots", "_lookup", "_person_events")


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

    def to_dict(self) -> dict:
        return asdict(self)


def stitch(con: duckdb.DuckDBPyConnection) -> StitchResult:
    """Rebuild the identity tables from `events`, in one transaction."""
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
    identifiers = build_identifiers(con)
    links = con.sql("SELECT node, hub FROM _links").to_arrow_table()
    roots = components(identifiers, links["node"].to_numpy(), links["hub"].to_numpy())
    _write_identity_map(con, roots)

    sizes = np.bincount(roots, minlength=identifiers)
    largest_root = int(sizes.argmax()) if identifiers else None
    build_lookup(con)
    build_persons(con)
    build_journey_events(con)
    build_accounts(con)

    events, unresolved = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE person_id IS NULL) FROM journey_events"
    ).fetchone()
    largest_person_id = None
    if largest_root is not None:
        largest_person_id = con.execute(
            "SELECT person_id FROM identity_map i JOIN _ids USING (id_type, id_value) WHERE node = ?",
            [largest_root],
        ).fetchone()[0]
    return {
        "persons": int((sizes > 0).sum()),
        "identifiers": identifiers,
        "merged_components": int((sizes > 1).sum()),
        "accounts": con.execute("SELECT count(*) FROM accounts").fetchone()[0],
        "events": events,
        "unresolved_events": unresolved,
        "largest_component": int(sizes.max()) if identifiers else 0,
        "largest_person_id": largest_person_id,
    }


def _write_identity_map(con: duckdb.DuckDBPyConnection, roots: np.ndarray) -> None:
    """identity_map: each identifier with the person its component's root names."""
    _roots = pa.table({"node": np.arange(len(roots), dtype=np.int64), "root": roots})  # noqa: F841
    con.execute("CREATE OR REPLACE TEMP TABLE _roots AS SELECT * FROM _roots_arrow".replace("_roots_arrow", "_roots"))
    con.execute("""
        CREATE OR REPLACE TABLE identity_map AS
        SELECT i.id_type, i.id_value,
               CASE r.id_type WHEN 'user_id' THEN 'u:' WHEN 'email' THEN 'e:' ELSE 'a:' END || r.id_value
                   AS person_id
        FROM _ids i JOIN _roots USING (node) JOIN _ids r ON r.node = _roots.root
        ORDER BY i.id_type, i.id_value
    """)
