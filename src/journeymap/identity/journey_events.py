"""journey_events: every event with its person_id, and an account_id that falls back to the person's.

A table, not a view: the engine scans it many times. Writing it whole was most of a stitch's time (DuckDB
compresses every copied string column), so a stitch writes only what changed since the last one:

- the events loaded since (seq above the mark `identity.seq`) are inserted, resolved through `_resolved`;
- the earlier events whose raw identifier tuple and account now resolve to another person or account (an
  identity merge, a person's main account that changed) are updated in place.

`identity_resolved` keeps what the last stitch resolved each (tuple, account) row to, and `meta` the mark,
the count and a checksum (XOR of hash(seq)) of the events written, and the salt of the keys. When the events
up to the mark are no longer those written (an unload, an erase, retention, rows inserted below the mark)
or the salt changed, the table is written whole, as it always was; either way the rows are the same
(tests/test_state_fold.py compares a stitch after every batch with one stitch of everything).

What changed is named for the journey state's fold (state.fold), so that it need not compare every unit:
`journey_moves` (version, level, unit_id) lists the persons and accounts that lost or gained updated rows, by
the journey version of the stitch that moved them, and the meta key `journey.whole` is the version at which
the table was last written whole (or first stitched by a journeymap that records moves). Since that version,
journey_events changed only by inserts past the mark and by the moves listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from journeymap.identity.activity import activity_key_sql
from journeymap.ingest.store import has_table, table_names

_KEYS = ("identity.seq", "identity.count", "identity.checksum", "identity.salt", "journey.whole")

WHOLE_KEY = "journey.whole"
MOVES = "journey_moves"
_MOVES_COLUMNS = "(version BIGINT, level VARCHAR, unit_id VARCHAR)"
MOVES_KEPT = 1_000_000
"""The most moves listed; past it the list starts again (and a fold of an older state compares every unit)."""


@dataclass(frozen=True)
class EventsCheck:
    """What the events are now against what the last stitch wrote."""

    mark: int | None
    """The last stitch's mark when the events up to it are the ones it saw (none gone, none added below it);
    None when they are not, or there was no stitch."""
    salt: str | None
    """The salt of the keys the last stitch wrote."""
    count: int
    checksum: int | None
    seq: int | None
    """The totals to record: journey_events holds exactly these events once the stitch is done."""
    whole: str | None
    """`journey.whole`: the journey version at which journey_events was last written whole."""


def check_events(con) -> EventsCheck:
    """One scan of the events' seq: whether those up to the mark are the ones written, and the totals."""
    known = dict(con.execute(f"SELECT key, value FROM meta WHERE key IN {_KEYS}").fetchall())
    mark = int(known["identity.seq"]) if known.get("identity.seq") else None
    below, below_checksum, count, checksum, seq = con.execute("""
        SELECT count(*) FILTER (WHERE seq <= $mark), coalesce(bit_xor(hash(seq)) FILTER (WHERE seq <= $mark), 0),
               count(*), bit_xor(hash(seq)), max(seq)
        FROM events""", {"mark": mark if mark is not None else -1}).fetchall()[0]
    same = (mark is not None and all(known.get(k) for k in _KEYS[:4]) and below == int(known["identity.count"])
            and str(below_checksum) == known["identity.checksum"])
    return EventsCheck(mark if same else None, known.get("identity.salt"), count, checksum, seq, known.get(WHOLE_KEY))


def build_journey_events(con, salt: int, version: int, check: EventsCheck, partial: bool = False) -> str:
    """Events keep every column; person_id is NULL for rows naming nobody (account-only billing rows).
    `version`: the journey version this stitch makes; `check`: check_events before anything was written;
    `partial`: `_resolved` holds only the rows that may have changed, and every row of the events past the
    mark (identity.delta). Returns how the table was written: "rebuilt" or "updated"."""
    mark = check.mark
    updatable = mark is not None and check.salt == str(salt) and same_layout(con)
    how = "updated" if updatable else "rebuilt"
    resolved = f"LEFT JOIN _resolved r ON r.activity_key = {activity_key_sql('e', salt)}"
    if how == "rebuilt":
        con.execute(f"""
            CREATE OR REPLACE TABLE journey_events AS
            SELECT e.* REPLACE (r.account_id AS account_id), r.person_id
            FROM events e {resolved}
        """)
    else:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _moved AS
            SELECT r.activity_key, r.person_id, r.account_id, o.person_id AS was_person, o.account_id AS was_account
            FROM _resolved r JOIN identity_resolved o USING (activity_key)
            WHERE r.person_id IS DISTINCT FROM o.person_id OR r.account_id IS DISTINCT FROM o.account_id
        """)
        if con.execute("SELECT count(*) FROM _moved").fetchall()[0][0]:
            _record_moves(con, version)
            con.execute(f"""
                UPDATE journey_events j SET person_id = m.person_id, account_id = m.account_id
                FROM (SELECT e.seq, r.person_id, r.account_id FROM events e
                      JOIN _moved r ON r.activity_key = {activity_key_sql('e', salt)} WHERE e.seq <= ?) m
                WHERE j.seq = m.seq
            """, [mark])
        con.execute("DROP TABLE _moved")
        con.execute(f"""
            INSERT INTO journey_events BY NAME
            SELECT e.* REPLACE (r.account_id AS account_id), r.person_id
            FROM events e {resolved} WHERE e.seq > ?
        """, [mark])
    # Start the list again when the table was written whole, or the list has grown past MOVES_KEPT (nothing folds
    # them away on a workspace without a journey state, e.g. on Spark): from here on the fold can trust inserts
    # past its mark and the moves listed; a state folded before compares every unit once.
    if (how == "rebuilt" or not check.whole or not has_table(con, MOVES)
            or con.execute(f"SELECT count(*) FROM {MOVES}").fetchall()[0][0] > MOVES_KEPT):
        con.execute(f"CREATE OR REPLACE TABLE {MOVES} {_MOVES_COLUMNS}")
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [WHOLE_KEY, str(version)])
    if partial and how == "updated":
        con.execute("DELETE FROM identity_resolved WHERE activity_key IN (SELECT activity_key FROM _resolved)")
        con.execute("INSERT INTO identity_resolved SELECT activity_key, person_id, account_id FROM _resolved")
    else:
        con.execute("CREATE OR REPLACE TABLE identity_resolved AS "
                    "SELECT activity_key, person_id, account_id FROM _resolved")
    for key, value in zip(_KEYS[:4], (check.seq, check.count, check.checksum, salt), strict=True):
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, "" if value is None else str(value)])
    return how


def _record_moves(con, version: int) -> None:
    """The persons and accounts whose rows up to the mark the update below gives or takes (both sides)."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {MOVES} {_MOVES_COLUMNS}")
    con.execute(f"""
        INSERT INTO {MOVES}
        SELECT DISTINCT $version, level, unit_id FROM (
            SELECT 'person' AS level, unnest([was_person, person_id]) AS unit_id FROM _moved
            WHERE was_person IS DISTINCT FROM person_id
            UNION ALL
            SELECT 'account', unnest([was_account, account_id]) FROM _moved WHERE was_account IS DISTINCT FROM account_id)
        WHERE unit_id IS NOT NULL""", {"version": version})


def same_layout(con) -> bool:
    """Whether journey_events and identity_resolved exist, and journey_events has the events' columns (a
    migration that changed them means writing it whole)."""
    if not {"journey_events", "identity_resolved"} <= table_names(con):
        return False
    columns = dict(con.execute(
        "SELECT table_name, list(column_name || ' ' || data_type ORDER BY column_index) "
        "FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name IN ('events', 'journey_events') GROUP BY ALL").fetchall())
    return columns.get("journey_events") == [*columns.get("events", []), "person_id VARCHAR"]
