"""Which identifiers an event names, and which identifiers it links.

An identifier is a typed value: (`user_id`, "u_42"), (`anonymous_id`, "a7f..."), (`email`, "ann@x.io").
Values are trimmed; emails are also lower-cased; placeholders ("guest", "undefined", "0", ...) are
dropped, so they never identify or link anyone. Every identifier an event names belongs to one person:
an identify call that carries anonymous_id, user_id and email links all three, and so does a track call
sent after login with both ids. On an `alias` call `previous_id` is one more identifier of the event:
the anonymous_id and/or user_id of that value, or a new anonymous_id when neither was ever seen.

The SQL here works on the DISTINCT identifier tuples of the events, which are few (about one per
person and device) however many events there are.
"""

from __future__ import annotations

from journeymap.events.schema import PLACEHOLDER_IDS

ID_TYPES = ("user_id", "email", "anonymous_id")
"""Identifier types in order of trust: the most trusted identifier of a person names them."""

PREFIX = {"user_id": "u:", "email": "e:", "anonymous_id": "a:"}
"""person_id is the prefix of its naming identifier's type followed by the value."""

_WHITESPACE = " \t\n\r\x0b\x0c"
_PLACEHOLDERS = ", ".join("'" + value.replace("'", "''") + "'" for value in sorted(PLACEHOLDER_IDS))


def clean_sql(column: str, lower: bool = False) -> str:
    """SQL for an identifier column as it is compared: trimmed (lower-cased), NULL when a placeholder."""
    trimmed = f"trim({column}, '{_WHITESPACE}')"
    value = f"lower({trimmed})" if lower else trimmed
    return f"CASE WHEN lower({trimmed}) IN ({_PLACEHOLDERS}) THEN NULL ELSE {value} END"


def key_sql(alias: str = "") -> str:
    """SQL for the one identifier an event is looked up by: its most trusted one, as `prefix || value`.

    An event's identifiers all belong to the same person, so one is enough. An alias call naming only
    previous_id is looked up by `p:` + previous_id.
    """
    col = f"{alias}." if alias else ""
    return (
        "coalesce("
        f"'u:' || {clean_sql(col + 'user_id')}, "
        f"'e:' || {clean_sql(col + 'email', lower=True)}, "
        f"'a:' || {clean_sql(col + 'anonymous_id')}, "
        f"CASE WHEN {col}type = 'alias' THEN 'p:' || {clean_sql(col + 'previous_id')} END)"
    )


def build_identifiers(con) -> int:
    """Create temp tables `_tuples` (identifier tuples), `_ids` (numbered identifiers) and `_links`.

    Returns the number of identifiers. `_ids.node` is 0-based and follows the order of trust: type rank
    (user_id, email, anonymous_id), then value.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _tuples AS
        SELECT row_number() OVER () AS tuple, *
        FROM (
            SELECT DISTINCT
                {clean_sql('user_id')} AS u,
                {clean_sql('email', lower=True)} AS e,
                {clean_sql('anonymous_id')} AS a,
                CASE WHEN type = 'alias' THEN {clean_sql('previous_id')} END AS p
            FROM events
        )
        WHERE u IS NOT NULL OR e IS NOT NULL OR a IS NOT NULL OR p IS NOT NULL
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _ids AS
        WITH seen AS (
            SELECT DISTINCT 'user_id' AS id_type, u AS id_value FROM _tuples WHERE u IS NOT NULL
            UNION SELECT DISTINCT 'email', e FROM _tuples WHERE e IS NOT NULL
            UNION SELECT DISTINCT 'anonymous_id', a FROM _tuples WHERE a IS NOT NULL
        ),
        -- a previous_id nobody else carries is taken for the anonymous id it most often is
        orphans AS (
            SELECT DISTINCT 'anonymous_id' AS id_type, p AS id_value FROM _tuples
            WHERE p IS NOT NULL
              AND p NOT IN (SELECT id_value FROM seen WHERE id_type IN ('user_id', 'anonymous_id'))
        )
        SELECT (row_number() OVER (
                    ORDER BY CASE id_type WHEN 'user_id' THEN 0 WHEN 'email' THEN 1 ELSE 2 END, id_value
               ) - 1)::BIGINT AS node,
               id_type, id_value
        FROM (FROM seen UNION ALL FROM orphans)
    """)
    # Each tuple is a star: its members link to its most trusted member. Spanning trees are enough.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _links AS
        WITH members AS (
            SELECT t.tuple, i.node FROM _tuples t JOIN _ids i ON i.id_type = 'user_id' AND i.id_value = t.u
            UNION ALL
            SELECT t.tuple, i.node FROM _tuples t JOIN _ids i ON i.id_type = 'email' AND i.id_value = t.e
            UNION ALL
            SELECT t.tuple, i.node FROM _tuples t JOIN _ids i ON i.id_type = 'anonymous_id' AND i.id_value = t.a
            UNION ALL
            SELECT t.tuple, i.node FROM _tuples t
            JOIN _ids i ON i.id_type IN ('user_id', 'anonymous_id') AND i.id_value = t.p
        ),
        hubs AS (SELECT tuple, node, min(node) OVER (PARTITION BY tuple) AS hub FROM members)
        SELECT DISTINCT node, hub FROM hubs WHERE node <> hub
    """)
    return con.execute("SELECT count(*) FROM _ids").fetchone()[0]
