"""journey_events: every event with its person_id, and an account_id that falls back to the person's.

A table, not a view: the engine scans it many times. Writing it is most of a stitch's time (DuckDB
compresses every copied string column); the join itself is one hash join on a 64-bit key against
`_resolved`, which has one row per raw (identifier tuple, account_id).
"""

from __future__ import annotations

from journeymap.identity.activity import activity_key_sql


def build_journey_events(con, salt: int) -> None:
    """Events keep every column; person_id is NULL for rows naming nobody (account-only billing rows)."""
    con.execute(f"""
        CREATE OR REPLACE TABLE journey_events AS
        SELECT e.* REPLACE (r.account_id AS account_id), r.person_id
        FROM events e
        LEFT JOIN _resolved r ON r.activity_key = {activity_key_sql('e', salt)}
    """)
