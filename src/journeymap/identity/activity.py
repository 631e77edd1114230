"""One pass over `events`: activity per raw identifier tuple and account.

An event's raw tuple is (user_id, email, anonymous_id, previous_id on alias calls) as stored, before
any cleaning. Persons and accounts are sums over `_activity` rows (one per distinct tuple and
account_id: a few hundred thousand for a million events), and events find their row again through
`activity_key`, a hash of those five values. The keys are checked to be unique among the rows, which
makes the joins on them exact; on a collision the salt changes and the pass runs again.

`identity_activity` keeps the rows (without keys) between stitches, so that a stitch whose events up to the
mark are the ones the last stitch saw aggregates only the events past the mark and adds them to it: the
scan of every event was the largest part of a stitch after a small load. Otherwise (an unload, an erase,
retention) it is aggregated from all the events again. It holds raw identifiers, so `journeymap erase`
relies on that: the stitch after an erase aggregates it whole.
"""

from __future__ import annotations

from journeymap.ingest.store import has_table


def _tuple(rows: str, from_events: bool) -> str:
    previous = f"CASE WHEN {rows}.type = 'alias' THEN {rows}.previous_id END" if from_events else f"{rows}.previous_id"
    return f"{rows}.user_id, {rows}.email, {rows}.anonymous_id, {previous}"


def tuple_key_sql(rows: str, salt: int, from_events: bool = True) -> str:
    """SQL for the hash of a row's raw identifier tuple (`from_events`: the row is an events row)."""
    return f"hash({salt}, {_tuple(rows, from_events)})"


def activity_key_sql(rows: str, salt: int, from_events: bool = True) -> str:
    """SQL for the hash of a row's raw identifier tuple and account_id."""
    return f"hash({salt}, {_tuple(rows, from_events)}, {rows}.account_id)"


ACTIVITY = "identity_activity"
_RAW = ("user_id", "email", "anonymous_id", "previous_id", "account_id")
_AGGREGATE = """
    SELECT user_id, email, anonymous_id, CASE WHEN type = 'alias' THEN previous_id END AS previous_id,
           account_id, count(*) AS events, min(ts) AS first_seen, max(ts) AS last_seen, max(seq) AS last_seq
    FROM events {where}
    GROUP BY ALL"""


def build_activity(con, since: int | None = None) -> int:
    """`_activity`: events, first and last ts and last seq per raw (identifier tuple, account_id), with
    its keys. `since`: the mark of the last stitch when the events up to it are the ones it saw; only the
    events past it are aggregated then, into `_activity_new` too (what identity.delta resolves). Returns the
    salt the keys were made with."""
    if since is not None and has_table(con, ACTIVITY):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _activity_new AS {_AGGREGATE.format(where='WHERE seq > ?')}",
                    [since])
        same = " AND ".join(f"a.{c} IS NOT DISTINCT FROM n.{c}" for c in _RAW)
        con.execute(f"""
            UPDATE {ACTIVITY} a SET events = a.events + n.events, first_seen = least(a.first_seen, n.first_seen),
                   last_seen = greatest(a.last_seen, n.last_seen), last_seq = greatest(a.last_seq, n.last_seq)
            FROM _activity_new n WHERE {same}""")
        con.execute(f"""
            INSERT INTO {ACTIVITY} SELECT n.* FROM _activity_new n
            WHERE NOT EXISTS (SELECT 1 FROM {ACTIVITY} a WHERE {same})""")
    else:
        con.execute("DROP TABLE IF EXISTS _activity_new")
        con.execute(f"CREATE OR REPLACE TABLE {ACTIVITY} AS {_AGGREGATE.format(where='')}")
    salt = 0
    while True:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _activity AS
            SELECT {activity_key_sql('r', salt, from_events=False)} AS activity_key,
                   {tuple_key_sql('r', salt, from_events=False)} AS tuple_key, r.*
            FROM {ACTIVITY} r
        """)
        if _keys_unique(con):
            return salt
        salt += 1


def _keys_unique(con) -> bool:
    return bool(con.execute("""
        SELECT count(DISTINCT activity_key) = count(*)
           AND count(DISTINCT tuple_key) = count(DISTINCT (user_id, email, anonymous_id, previous_id))
        FROM _activity
    """).fetchall()[0][0])
