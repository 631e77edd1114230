"""Which identifiers an event names, and which identifiers it links.

An identifier is a typed value: (`user_id`, "u_42"), (`anonymous_id`, "a7f..."), (`email`, "ann@x.io").
Values are trimmed; emails are also lower-cased; placeholders ("guest", "undefined", "0", ...) are
dropped, so they never identify or link anyone. Every identifier an event names belongs to one person:
an identify call that carries anonymous_id, user_id and email links all three, and so does a track call
sent after login with both ids. On an `alias` call `previous_id` is one more identifier of the event:
the anonymous_id and/or user_id of that value, or a new anonymous_id when neither was ever seen.

All of this works on the distinct raw identifier tuples of `identity_activity` (about one per person and
device, however many events there are), never on events one by one.
"""

from __future__ import annotations

from journeymap.events.schema import PLACEHOLDER_IDS

PERSON_ID_SQL = "CASE {t}.id_type WHEN 'user_id' THEN 'u:' WHEN 'email' THEN 'e:' ELSE 'a:' END || {t}.id_value"
"""person_id is a type prefix (u:, e:, a:) and the value of the person's most trusted identifier."""

TRUST_SQL = "CASE {t} WHEN 'user_id' THEN 0 WHEN 'email' THEN 1 ELSE 2 END"
"""The order of trust of an id_type expression `t`: user_id, email, anonymous_id (then the value orders)."""

PERSON_TRUST_SQL = "CASE left({p}, 2) WHEN 'u:' THEN 0 WHEN 'e:' THEN 1 ELSE 2 END"
"""TRUST_SQL of a person_id's naming identifier, from its prefix; its value is `{p}[3:]`."""

WHITESPACE = " \t\n\r\x0b\x0c"
"""What trimming removes: ASCII whitespace."""

_PLACEHOLDERS = "[" + ", ".join("'" + value.replace("'", "''") + "'" for value in sorted(PLACEHOLDER_IDS)) + "]"


def clean_sql(column: str, lower: bool = False) -> str:
    """SQL for an identifier column as it is compared: trimmed (lower-cased), NULL when a placeholder."""
    # the WHITESPACE characters; regexp_replace is several times faster than trim(x, chars) on DuckDB
    trimmed = f"regexp_replace({column}, '^[\\t\\n\\v\\f\\r ]+|[\\t\\n\\v\\f\\r ]+$', '', 'g')"
    value = f"lower({trimmed})" if lower else trimmed
    return f"CASE WHEN list_contains({_PLACEHOLDERS}, lower({trimmed})) THEN NULL ELSE {value} END"


def cleaned_tuple_sql(rows: str) -> str:
    """The select list of a raw identifier tuple's columns as they are compared (clean_sql): u, e, a, p."""
    return (f"{clean_sql(f'{rows}.user_id')} AS u, {clean_sql(f'{rows}.email', lower=True)} AS e, "
            f"{clean_sql(f'{rows}.anonymous_id')} AS a, {clean_sql(f'{rows}.previous_id')} AS p")


def build_identifiers(con) -> int:
    """Create temp tables `_tuples`, `_ids` (numbered identifiers), `_members`, `_hubs` and `_links`.

    `_ids.node` is 0-based and follows the order of trust: type (user_id, email, anonymous_id), then
    value. Each tuple is a star: its members link to its hub, its most trusted member. Returns the
    number of identifiers.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _tuples AS
        SELECT t.tuple_key, {cleaned_tuple_sql('t')}
        FROM (SELECT DISTINCT tuple_key, user_id, email, anonymous_id, previous_id FROM identity_activity) t
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ids AS
        WITH seen AS (
            SELECT DISTINCT 'user_id' AS id_type, u AS id_value FROM _tuples WHERE u IS NOT NULL
            UNION SELECT DISTINCT 'email', e FROM _tuples WHERE e IS NOT NULL
            UNION SELECT DISTINCT 'anonymous_id', a FROM _tuples WHERE a IS NOT NULL
        ),
        -- a previous_id that no event carries as an id is taken for an anonymous_id (Segment's usual case)
        orphans AS (
            SELECT DISTINCT 'anonymous_id' AS id_type, p AS id_value FROM _tuples
            WHERE p IS NOT NULL
              AND p NOT IN (SELECT id_value FROM seen WHERE id_type IN ('user_id', 'anonymous_id'))
        )
        SELECT (row_number() OVER (
                    ORDER BY {TRUST_SQL.format(t='id_type')}, id_value
               ) - 1)::BIGINT AS node,
               id_type, id_value
        FROM (FROM seen UNION ALL FROM orphans)
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _members AS
        SELECT t.tuple_key, i.node FROM _tuples t JOIN _ids i ON i.id_type = 'user_id' AND i.id_value = t.u
        UNION ALL
        SELECT t.tuple_key, i.node FROM _tuples t JOIN _ids i ON i.id_type = 'email' AND i.id_value = t.e
        UNION ALL
        SELECT t.tuple_key, i.node FROM _tuples t JOIN _ids i ON i.id_type = 'anonymous_id' AND i.id_value = t.a
        UNION ALL
        SELECT t.tuple_key, i.node FROM _tuples t
        JOIN _ids i ON i.id_type IN ('user_id', 'anonymous_id') AND i.id_value = t.p
    """)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _hubs AS SELECT tuple_key, min(node) AS hub FROM _members GROUP BY tuple_key"
    )
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _links AS
        SELECT DISTINCT m.node, h.hub FROM _members m JOIN _hubs h USING (tuple_key) WHERE m.node <> h.hub
    """)
    return con.execute("SELECT count(*) FROM _ids").fetchall()[0][0]
