"""Persons and accounts: one row each, rolled up from `identity_activity` once identity_map is known."""

from __future__ import annotations

from journeymap.identity.activity import tuple_key_sql
from journeymap.identity.links import PERSON_ID_SQL, clean_sql

# The latest non-null value of each key across a set of traits objects, as JSON object text (keys
# sorted so that a rebuild writes the same text). Reads rows (owner, ts, seq, traits) from `src`.
_LATEST_TRAITS = """
    SELECT owner, '{{' || string_agg(to_json(key) || ':' || value, ',' ORDER BY key) || '}}' AS traits
    FROM (
        SELECT s.owner, j.key, arg_max(j.value, {{'ts': s.ts, 'seq': s.seq}}) AS value
        FROM (SELECT * FROM {src} WHERE json_valid(traits) AND json_type(traits) = 'OBJECT') s,
             json_each(s.traits) j
        WHERE j.type <> 'NULL'
        GROUP BY ALL
    )
    GROUP BY owner
"""


def created_at_sql(traits: str) -> str:
    """The profile's creation time from its `createdAt` (Segment's reserved trait) or `created_at`
    trait, as naive UTC: ISO 8601 text (a missing offset means UTC), or unix seconds or milliseconds.
    NULL when absent or unreadable, so callers fall back to the first event."""
    raw = f"coalesce(json_extract_string({traits}, '$.createdAt'), json_extract_string({traits}, '$.created_at'))"
    num = f"try_cast({raw} AS DOUBLE)"
    return f"""coalesce(
        timezone('UTC', try_cast({raw} AS TIMESTAMPTZ)),
        CASE WHEN {num} >= 1e11 THEN timezone('UTC', to_timestamp({num} / 1000))
             WHEN {num} > 0 THEN timezone('UTC', to_timestamp({num})) END)"""


def build_lookup(con) -> None:
    """`_lookup`: the person of every raw identifier tuple (tuples naming nobody are absent)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _lookup AS
        SELECT h.tuple_key, {PERSON_ID_SQL.format(t="r")} AS person_id
        FROM _hubs h
        JOIN _roots ON _roots.node = h.hub
        JOIN _ids r ON r.node = _roots.root
    """)


TRAITS = "identity_traits"
"""Each person's latest non-null value of each identify trait, with the (ts, seq) of the call that set it: what
a stitch that adds events to a person, or merges two, needs to know to write the person's traits again."""

_TRAIT_VALUES = """
    SELECT s.person_id, j.key, j.value, {{'ts': s.ts, 'seq': s.seq}} AS set_at
    FROM (SELECT l.person_id, e.ts, e.seq, e.traits
          FROM events e JOIN {lookup} l ON l.tuple_key = {key}
          WHERE e.type = 'identify' AND e.traits IS NOT NULL AND json_valid(e.traits)
            AND json_type(e.traits) = 'OBJECT' {since}) s,
         json_each(s.traits) j
    WHERE j.type <> 'NULL'
"""
_LATEST = "SELECT person_id, key, arg_max(value, set_at) AS value, max(set_at) AS set_at FROM ({rows}) GROUP BY ALL"


def build_traits(con, salt: int, since: int | None = None) -> None:
    """`identity_traits` from every identify call, or (`since`: the last stitch's mark; an incremental stitch,
    identity.delta) the touched persons' rows, renamed by `_remap`, with the calls past the mark."""
    key = tuple_key_sql("e", salt)
    if since is None:
        rows = _TRAIT_VALUES.format(lookup="_lookup", key=key, since="")
        con.execute(f"CREATE OR REPLACE TABLE {TRAITS} AS {_LATEST.format(rows=rows)} ORDER BY person_id, key")
        return
    rows = f"""
        SELECT coalesce(r.new, t.person_id) AS person_id, t.key, t.value, t.set_at
        FROM {TRAITS} t LEFT JOIN _remap r ON r.old = t.person_id
        WHERE t.person_id IN (SELECT person_id FROM _touched)
        UNION ALL
        {_TRAIT_VALUES.format(lookup="_dlookup", key=key, since="AND e.seq > $since")}"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _dtraits AS {_LATEST.format(rows=rows)}", {"since": since})
    con.execute(f"DELETE FROM {TRAITS} WHERE person_id IN (SELECT person_id FROM _touched)")
    con.execute(f"INSERT INTO {TRAITS} SELECT * FROM _dtraits ORDER BY person_id, key")
    con.execute("DROP TABLE _dtraits")


def build_persons(con, touched: bool = False) -> None:
    """`persons`: one row per person with their span, main account, identifiers and latest traits (from
    identity_traits). `touched`: only the rows of the persons in `_touched` are written again (identity.delta)."""
    only = "WHERE person_id IN (SELECT person_id FROM _touched)" if touched else ""
    select = f"""
        WITH activity AS (
            SELECT l.person_id, {clean_sql('a.account_id')} AS account_id, a.events, a.first_seen,
                   a.last_seen, a.last_seq
            FROM identity_activity a JOIN (SELECT * FROM _lookup {only}) l USING (tuple_key)
        ),
        spans AS (
            SELECT person_id, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
                   sum(events)::BIGINT AS events
            FROM activity GROUP BY person_id
        ),
        named AS (
            SELECT person_id, account_id, sum(events) AS n, max(last_seen) AS last_seen, max(last_seq) AS last_seq
            FROM activity WHERE account_id IS NOT NULL GROUP BY ALL
        ),
        -- the account named most often; a tie goes to the one named most recently (then later in input)
        main_account AS (
            SELECT person_id, arg_max(account_id, {{'n': n, 'ts': last_seen, 'seq': last_seq}}) AS account_id
            FROM named GROUP BY person_id
        ),
        ids AS (
            SELECT person_id,
                   list(id_value ORDER BY id_value) FILTER (WHERE id_type = 'user_id') AS user_ids,
                   list(id_value ORDER BY id_value) FILTER (WHERE id_type = 'email') AS emails
            FROM identity_map {only} GROUP BY person_id
        ),
        traits AS (
            SELECT person_id, '{{' || string_agg(to_json(key) || ':' || value, ',' ORDER BY key) || '}}' AS traits
            FROM {TRAITS} {only} GROUP BY person_id
        )
        SELECT s.person_id, a.account_id, s.first_seen, s.last_seen, s.events,
               coalesce(i.user_ids, []) AS user_ids, coalesce(i.emails, []) AS emails,
               coalesce(t.traits, '{{}}') AS traits, {created_at_sql('t.traits')} AS created_at
        FROM spans s
        LEFT JOIN main_account a USING (person_id)
        LEFT JOIN ids i USING (person_id)
        LEFT JOIN traits t USING (person_id)
        ORDER BY s.person_id
    """
    if not touched:
        con.execute(f"CREATE OR REPLACE TABLE persons AS {select}")
        return
    con.execute(f"DELETE FROM persons {only}")
    con.execute(f"INSERT INTO persons {select}")


def build_resolved(con, touched: bool = False) -> None:
    """`_resolved`: person_id and account_id of every `identity_activity` row (what journey_events joins).

    An event counts for its own account, else for its person's. `touched` (identity.delta): only the rows
    that may resolve differently (those of the tuples resolved again and of the persons written again), and
    `_taccounts`: the accounts those rows counted for before or count for now.
    """
    # the delta's `_lookup` holds exactly the touched persons' tuples
    rows = ("(SELECT * FROM identity_activity WHERE tuple_key IN (SELECT tuple_key FROM _dtuples UNION "
            "SELECT tuple_key FROM _lookup))") if touched else "identity_activity"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _resolved AS
        SELECT a.activity_key, l.person_id, coalesce({clean_sql('a.account_id')}, p.account_id) AS account_id,
               a.events, a.first_seen, a.last_seen
        FROM {rows} a
        LEFT JOIN _lookup l USING (tuple_key)
        LEFT JOIN persons p USING (person_id)
    """)
    if touched:
        # a new group call is an event too: its account is one of its row's
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _taccounts AS
            SELECT account_id FROM _resolved WHERE account_id IS NOT NULL
            UNION SELECT o.account_id FROM identity_resolved o JOIN _resolved USING (activity_key)
            WHERE o.account_id IS NOT NULL
        """)


def build_accounts(con, touched: bool = False) -> None:
    """`accounts`: every account an event counts for, with traits from group calls.

    `persons` counts the distinct people with events counted for the account. `touched` (identity.delta):
    only the accounts of `_taccounts` are written again, from identity_resolved.
    """
    group_calls = f"(SELECT {clean_sql('account_id')} AS owner, ts, seq, traits FROM events WHERE type = 'group')"
    if touched:
        group_calls = f"(SELECT * FROM {group_calls} WHERE owner IN (SELECT account_id FROM _taccounts))"
    rows = "_resolved" if not touched else """(
        SELECT r.account_id, r.person_id, a.events, a.first_seen, a.last_seen
        FROM (SELECT * FROM identity_resolved WHERE account_id IN (SELECT account_id FROM _taccounts)) r
        JOIN identity_activity a USING (activity_key))"""
    select = f"""
        WITH spans AS (
            SELECT account_id, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
                   count(DISTINCT person_id) AS persons, sum(events)::BIGINT AS events
            FROM {rows} WHERE account_id IS NOT NULL GROUP BY account_id
        ),
        traits AS ({_LATEST_TRAITS.format(src=group_calls)})
        SELECT s.account_id, s.first_seen, s.last_seen, s.persons, s.events,
               coalesce(t.traits, '{{}}') AS traits, {created_at_sql('t.traits')} AS created_at
        FROM spans s LEFT JOIN traits t ON t.owner = s.account_id
        ORDER BY s.account_id
    """
    if not touched:
        con.execute(f"CREATE OR REPLACE TABLE accounts AS {select}")
        return
    con.execute("DELETE FROM accounts WHERE account_id IN (SELECT account_id FROM _taccounts)")
    con.execute(f"INSERT INTO accounts {select}")
