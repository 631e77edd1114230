"""One pass over `events`: activity per raw identifier tuple and account.

An event's raw tuple is (user_id, email, anonymous_id, previous_id on alias calls) as stored, before
any cleaning. Persons and accounts are sums over `identity_activity` rows (one per distinct tuple and
account_id: a few hundred thousand for a million events), and events find their row again through
`activity_key`, a hash of those five values (`tuple_key`: of the tuple's four). The keys are unique among
the rows, which makes the joins on them exact; on a collision the salt changes and every key is made again.

`identity_activity` keeps the rows and their keys between stitches, so that a stitch whose events up to the
mark are the ones the last stitch saw aggregates only the events past the mark (`_activity_new`), checks only
their keys against the kept ones, and adds them: the scan of every event, then the hash of every row and the
check of every key, were the largest part of a stitch after a small load. Otherwise (an unload, an erase,
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
_TUPLE = ("user_id", "email", "anonymous_id", "previous_id")
_AGGREGATE = """
    SELECT {keys}, r.* FROM (
        SELECT user_id, email, anonymous_id, CASE WHEN type = 'alias' THEN previous_id END AS previous_id,
               account_id, count(*) AS events, min(ts) AS first_seen, max(ts) AS last_seen, max(seq) AS last_seq
        FROM events {where}
        GROUP BY ALL) r"""


def _keys(salt: int) -> str:
    return (f"{activity_key_sql('r', salt, from_events=False)} AS activity_key, "
            f"{tuple_key_sql('r', salt, from_events=False)} AS tuple_key")


def _same(columns: tuple[str, ...]) -> str:
    return " AND ".join(f"a.{c} IS NOT DISTINCT FROM n.{c}" for c in columns)


def build_activity(con, since: int | None = None, salt: int | None = None) -> int:
    """`identity_activity`: events, first and last ts and last seq per raw (identifier tuple, account_id), with
    its keys. `since` and `salt`: the mark of the last stitch when the events up to it are the ones it saw, and
    the salt of the keys it kept; only the events past the mark are aggregated then, into `_activity_new` too
    (what identity.delta resolves). Returns the salt the keys are made with."""
    if since is not None and salt is not None and has_table(con, ACTIVITY):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _activity_new AS "
                    f"{_AGGREGATE.format(keys=_keys(salt), where='WHERE seq > ?')}", [since])
        if _keys_unique(con, new=True):
            con.execute(f"""
                UPDATE {ACTIVITY} a SET events = a.events + n.events, first_seen = least(a.first_seen, n.first_seen),
                       last_seen = greatest(a.last_seen, n.last_seen), last_seq = greatest(a.last_seq, n.last_seq)
                FROM _activity_new n WHERE a.activity_key = n.activity_key""")
            con.execute(f"INSERT INTO {ACTIVITY} SELECT * FROM _activity_new "
                        f"WHERE activity_key NOT IN (SELECT activity_key FROM {ACTIVITY})")
            return salt
        # a new key collides: the events aggregated again, and every key made with the next salts
        start = salt + 1
    else:
        start = 0
    con.execute("DROP TABLE IF EXISTS _activity_new")
    con.execute(f"CREATE OR REPLACE TABLE {ACTIVITY} AS {_AGGREGATE.format(keys=_keys(start), where='')}")
    salt = start
    while not _keys_unique(con):
        salt += 1
        con.execute(f"UPDATE {ACTIVITY} r SET activity_key = {activity_key_sql('r', salt, from_events=False)}, "
                    f"tuple_key = {tuple_key_sql('r', salt, from_events=False)}")
    return salt


def _keys_unique(con, new: bool = False) -> bool:
    """Whether equal keys mean equal values: among all the rows, or (`new`) among `_activity_new`'s and between
    them and the kept rows."""
    if not new:
        return bool(con.execute(f"""
            SELECT count(DISTINCT activity_key) = count(*)
               AND count(DISTINCT tuple_key) = count(DISTINCT (user_id, email, anonymous_id, previous_id))
            FROM {ACTIVITY}""").fetchall()[0][0])
    return bool(con.execute(f"""
        SELECT (SELECT count(DISTINCT activity_key) = count(*)
                   AND count(DISTINCT tuple_key) = count(DISTINCT (user_id, email, anonymous_id, previous_id))
                FROM _activity_new)
           AND NOT EXISTS (SELECT 1 FROM _activity_new n JOIN {ACTIVITY} a USING (activity_key)
                           WHERE NOT ({_same((*_TUPLE, 'account_id'))}))
           AND NOT EXISTS (SELECT 1 FROM _activity_new n JOIN {ACTIVITY} a USING (tuple_key)
                           WHERE NOT ({_same(_TUPLE)}))""").fetchall()[0][0])
