"""One pass over `events`: activity per raw identifier tuple and account.

An event's raw tuple is (user_id, email, anonymous_id, previous_id on alias calls) as stored, before
any cleaning. Persons and accounts are sums over `_activity` rows (one per distinct tuple and
account_id: a few hundred thousand for a million events), and events find their row again through
`activity_key`, a hash of those five values. The keys are checked to be unique among the rows, which
makes the joins on them exact; on a collision the salt changes and the pass runs again.
"""

from __future__ import annotations


def _tuple(rows: str, from_events: bool) -> str:
    previous = f"CASE WHEN {rows}.type = 'alias' THEN {rows}.previous_id END" if from_events else f"{rows}.previous_id"
    return f"{rows}.user_id, {rows}.email, {rows}.anonymous_id, {previous}"


def tuple_key_sql(rows: str, salt: int, from_events: bool = True) -> str:
    """SQL for the hash of a row's raw identifier tuple (`from_events`: the row is an events row)."""
    return f"hash({salt}, {_tuple(rows, from_events)})"


def activity_key_sql(rows: str, salt: int, from_events: bool = True) -> str:
    """SQL for the hash of a row's raw identifier tuple and account_id."""
    return f"hash({salt}, {_tuple(rows, from_events)}, {rows}.account_id)"


def build_activity(con) -> int:
    """`_activity`: events, first and last ts and last seq per raw (identifier tuple, account_id), with
    its keys. Returns the salt the keys were made with."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _activity_rows AS
        SELECT user_id, email, anonymous_id, CASE WHEN type = 'alias' THEN previous_id END AS previous_id,
               account_id, count(*) AS events, min(ts) AS first_seen, max(ts) AS last_seen, max(seq) AS last_seq
        FROM events
        GROUP BY ALL
    """)
    salt = 0
    while True:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _activity AS
            SELECT {activity_key_sql('r', salt, from_events=False)} AS activity_key,
                   {tuple_key_sql('r', salt, from_events=False)} AS tuple_key, r.*
            FROM _activity_rows r
        """)
        if _keys_unique(con):
            con.execute("DROP TABLE _activity_rows")
            return salt
        salt += 1


def _keys_unique(con) -> bool:
    return bool(con.execute("""
        SELECT count(DISTINCT activity_key) = count(*)
           AND count(DISTINCT tuple_key) = count(DISTINCT (user_id, email, anonymous_id, previous_id))
        FROM _activity
    """).fetchall()[0][0])
