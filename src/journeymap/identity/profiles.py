"""The tables built on top of identity_map: persons, accounts and journey_events.

Every event is resolved to its person through one hash join on the event's most trusted identifier
(`links.key_sql`) against `_lookup`, a key -> person_id table as small as identity_map.
"""

from __future__ import annotations

from journeymap.identity.links import clean_sql, key_sql

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


def build_lookup(con) -> None:
    """`_lookup(key, person_id)`: the person of every key an event can be looked up by."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _lookup AS
        SELECT CASE id_type WHEN 'user_id' THEN 'u:' WHEN 'email' THEN 'e:' ELSE 'a:' END || id_value AS key,
               person_id
        FROM identity_map
        UNION ALL
        -- previous_id's identifiers all sit on the same alias call, so they share one person
        SELECT 'p:' || t.p, any_value(m.person_id)
        FROM (SELECT DISTINCT p FROM _tuples WHERE p IS NOT NULL) t
        JOIN identity_map m ON m.id_type IN ('user_id', 'anonymous_id') AND m.id_value = t.p
        GROUP BY t.p
    """)


def build_persons(con) -> None:
    """`persons`: one row per person with their span, main account, identifiers and latest traits."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _person_events AS
        SELECT l.person_id, {clean_sql('e.account_id')} AS account_id, e.ts, e.seq,
               CASE WHEN e.type = 'identify' THEN e.traits END AS traits
        FROM events e JOIN _lookup l ON l.key = {key_sql('e')}
    """)
    con.execute(f"""
        CREATE OR REPLACE TABLE persons AS
        WITH spans AS (
            SELECT person_id, min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS events
            FROM _person_events GROUP BY person_id
        ),
        named AS (
            SELECT person_id, account_id, count(*) AS n, max({{'ts': ts, 'seq': seq}}) AS latest
            FROM _person_events WHERE account_id IS NOT NULL GROUP BY ALL
        ),
        -- the account named most often; a tie goes to the one named most recently
        main_account AS (
            SELECT person_id, arg_max(account_id, {{'n': n, 'latest': latest}}) AS account_id
            FROM named GROUP BY person_id
        ),
        ids AS (
            SELECT person_id,
                   list(id_value ORDER BY id_value) FILTER (WHERE id_type = 'user_id') AS user_ids,
                   list(id_value ORDER BY id_value) FILTER (WHERE id_type = 'email') AS emails
            FROM identity_map GROUP BY person_id
        ),
        traits AS ({_LATEST_TRAITS.format(src="(SELECT person_id AS owner, ts, seq, traits FROM _person_events WHERE traits IS NOT NULL)")})
        SELECT s.person_id, a.account_id, s.first_seen, s.last_seen, s.events,
               coalesce(i.user_ids, []) AS user_ids, coalesce(i.emails, []) AS emails,
               coalesce(t.traits, '{{}}') AS traits
        FROM spans s
        LEFT JOIN main_account a USING (person_id)
        LEFT JOIN ids i USING (person_id)
        LEFT JOIN traits t ON t.owner = s.person_id
        ORDER BY s.person_id
    """)


def build_journey_events(con) -> None:
    """`journey_events`: every event with its person_id; account_id falls back to the person's account."""
    con.execute(f"""
        CREATE OR REPLACE TABLE journey_events AS
        SELECT e.* REPLACE (coalesce({clean_sql('e.account_id')}, p.account_id) AS account_id),
               l.person_id
        FROM events e
        LEFT JOIN _lookup l ON l.key = {key_sql('e')}
        LEFT JOIN persons p ON p.person_id = l.person_id
    """)


def build_accounts(con) -> None:
    """`accounts`: one row per account named by an event or a person, with traits from group calls."""
    group_calls = (
        f"(SELECT {clean_sql('account_id')} AS owner, ts, seq, traits FROM events WHERE type = 'group')"
    )
    con.execute(f"""
        CREATE OR REPLACE TABLE accounts AS
        WITH spans AS (
            SELECT account_id, min(ts) AS first_seen, max(ts) AS last_seen,
                   count(DISTINCT person_id) AS persons, count(*) AS events
            FROM journey_events WHERE account_id IS NOT NULL GROUP BY account_id
        ),
        traits AS ({_LATEST_TRAITS.format(src=group_calls)})
        SELECT s.account_id, s.first_seen, s.last_seen, s.persons, s.events,
               coalesce(t.traits, '{{}}') AS traits
        FROM spans s LEFT JOIN traits t ON t.owner = s.account_id
        ORDER BY s.account_id
    """)
