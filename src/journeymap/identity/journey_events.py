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
"""

from __future__ import annotations

from journeymap.identity.activity import activity_key_sql
from journeymap.ingest.store import table_names

_KEYS = ("identity.seq", "identity.count", "identity.checksum", "identity.salt")


def build_journey_events(con, salt: int) -> str:
    """Events keep every column; person_id is NULL for rows naming nobody (account-only billing rows).
    Returns how the table was written: "rebuilt" or "updated"."""
    known = dict(con.execute(f"SELECT key, value FROM meta WHERE key IN {_KEYS}").fetchall())
    mark = int(known["identity.seq"]) if known.get("identity.seq") else None
    # one scan of the events' seq: whether those up to the mark are the ones written, and the totals to record
    # (journey_events holds exactly the events once this stitch is done)
    below, below_checksum, count, checksum, seq = con.execute("""
        SELECT count(*) FILTER (WHERE seq <= $mark), coalesce(bit_xor(hash(seq)) FILTER (WHERE seq <= $mark), 0),
               count(*), bit_xor(hash(seq)), max(seq)
        FROM events""", {"mark": mark if mark is not None else -1}).fetchall()[0]
    updatable = (mark is not None and _same_layout(con) and all(known.get(k) for k in _KEYS)
                 and known["identity.salt"] == str(salt) and below == int(known["identity.count"])
                 and str(below_checksum) == known["identity.checksum"])
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
            SELECT r.activity_key, r.person_id, r.account_id FROM _resolved r JOIN identity_resolved o USING (activity_key)
            WHERE r.person_id IS DISTINCT FROM o.person_id OR r.account_id IS DISTINCT FROM o.account_id
        """)
        if con.execute("SELECT count(*) FROM _moved").fetchall()[0][0]:
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
    con.execute("CREATE OR REPLACE TABLE identity_resolved AS SELECT activity_key, person_id, account_id FROM _resolved")
    for key, value in zip(_KEYS, (seq, count, checksum, salt), strict=True):
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, "" if value is None else str(value)])
    return how


def _same_layout(con) -> bool:
    """Whether journey_events and identity_resolved exist, and journey_events has the events' columns (a
    migration that changed them means writing it whole)."""
    if not {"journey_events", "identity_resolved"} <= table_names(con):
        return False
    columns = dict(con.execute(
        "SELECT table_name, list(column_name || ' ' || data_type ORDER BY column_index) "
        "FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name IN ('events', 'journey_events') GROUP BY ALL").fetchall())
    return columns.get("journey_events") == [*columns.get("events", []), "person_id VARCHAR"]
