"""Incremental identity resolution: the identifier tuples of the events loaded since the last stitch, resolved
against identity_map instead of the graph of every identifier.

Each person of identity_map is a connected component of the identifier graph, named after its most trusted
identifier. New tuples only add links, so the components after them are the old ones joined through the new
tuples: contract every person to one node, its naming identifier (the person_id says it: `u:ann` is
(user_id, "ann")), add the identifiers nobody had, link each new tuple's members, and the components of that
small graph are the merges. The root of a merged component is the most trusted of its nodes, which is the most
trusted identifier of all its members, so the person_id is the one a rebuild gives.

One thing a rebuild does differently: a `previous_id` that no event carries as an id is taken for an
anonymous_id (links.py). A new tuple that names such a value as a user_id would move the older alias to the
user, and the node out of identity_map; the stitch then rebuilds instead (`resolve_delta` returns False, having
written nothing). Older alias tuples whose `previous_id` a new identifier now names are resolved again with the
new tuples, as a rebuild would link them.

Temp tables: `_dtuples` (the tuples to resolve, cleaned), `_dlookup` (their persons), `_remap` (old person ->
the person it merged into), `_touched` (the persons whose rows change), `_lookup` (the person of every tuple
of a touched person: a full stitch's `_lookup` has every tuple).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from journeymap.identity.components import components
from journeymap.identity.links import PERSON_TRUST_SQL, TRUST_SQL, cleaned_tuple_sql

TEMP_TABLES = ("_dtuples", "_dseen", "_dmembers", "_dnodes", "_droots", "_dlookup", "_remap", "_touched")

# a node's person_id from its rank (links.TRUST_SQL) and value: PERSON_ID_SQL's prefix, by rank
_PREFIX = "CASE {r} WHEN 0 THEN 'u:' WHEN 1 THEN 'e:' ELSE 'a:' END"


def resolve_delta(con) -> bool:
    """Resolve the tuples of `_activity_new` (built by build_activity) against identity_map, update identity_map
    and build `_lookup`. False, with nothing written, when only a rebuild gives the right answer."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _dtuples AS
        SELECT DISTINCT n.tuple_key, {cleaned_tuple_sql('n')} FROM _activity_new n
    """)
    # the identifiers the new tuples carry, and whether identity_map knows them
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _dseen AS
        SELECT s.id_type, s.id_value, m.person_id FROM (
            SELECT 'user_id' AS id_type, u AS id_value FROM _dtuples WHERE u IS NOT NULL
            UNION SELECT 'email', e FROM _dtuples WHERE e IS NOT NULL
            UNION SELECT 'anonymous_id', a FROM _dtuples WHERE a IS NOT NULL
        ) s LEFT JOIN identity_map m USING (id_type, id_value)
    """)
    # a new user_id whose value identity_map has as an anonymous_id: that may be an older alias's previous_id
    # taken for an anonymous_id, which a rebuild now links to the user instead
    (clash,) = con.execute("""
        SELECT count(*) FROM _dseen s JOIN identity_map m ON m.id_type = 'anonymous_id' AND m.id_value = s.id_value
        WHERE s.id_type = 'user_id' AND s.person_id IS NULL
    """).fetchall()[0]
    if clash:
        return False
    # older alias tuples whose previous_id a new user_id or anonymous_id names: a rebuild links them to it too
    con.execute(f"""
        INSERT INTO _dtuples
        SELECT * FROM (
            SELECT DISTINCT t.tuple_key, {cleaned_tuple_sql('t')}
            FROM identity_activity t WHERE t.previous_id IS NOT NULL
              AND t.tuple_key NOT IN (SELECT tuple_key FROM _dtuples)
        ) o
        WHERE o.p IN (SELECT id_value FROM _dseen WHERE person_id IS NULL AND id_type IN ('user_id', 'anonymous_id'))
    """)
    _link(con)
    _apply(con)
    return True


def _link(con) -> None:
    """Contract the known identifiers to their person's node, link each tuple's members, and find the roots."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _dmembers AS
        WITH named AS (
            SELECT tuple_key, 'user_id' AS id_type, u AS id_value FROM _dtuples WHERE u IS NOT NULL
            UNION ALL SELECT tuple_key, 'email', e FROM _dtuples WHERE e IS NOT NULL
            UNION ALL SELECT tuple_key, 'anonymous_id', a FROM _dtuples WHERE a IS NOT NULL
        ),
        -- only the values a previous_id names: the union of every known id was most of this statement's time
        wanted AS (SELECT DISTINCT p FROM _dtuples WHERE p IS NOT NULL),
        candidates AS (
            SELECT id_type, id_value FROM identity_map
            WHERE id_type IN ('user_id', 'anonymous_id') AND id_value IN (SELECT p FROM wanted)
            UNION SELECT id_type, id_value FROM _dseen
            WHERE id_type IN ('user_id', 'anonymous_id') AND id_value IN (SELECT p FROM wanted)
        ),
        -- previous_id names the user_id and the anonymous_id of that value that exist, else a new anonymous_id
        previous AS (
            SELECT t.tuple_key, coalesce(c.id_type, 'anonymous_id') AS id_type, t.p AS id_value
            FROM (SELECT DISTINCT tuple_key, p FROM _dtuples WHERE p IS NOT NULL) t
            LEFT JOIN candidates c ON c.id_value = t.p
        ),
        members AS (FROM named UNION FROM previous)
        SELECT m.tuple_key, m.id_type, m.id_value, k.person_id AS was,
               CASE WHEN k.person_id IS NULL THEN {TRUST_SQL.format(t='m.id_type')}
                    ELSE {PERSON_TRUST_SQL.format(p='k.person_id')} END AS rank,
               CASE WHEN k.person_id IS NULL THEN m.id_value ELSE k.person_id[3:] END AS value
        FROM members m LEFT JOIN identity_map k USING (id_type, id_value)
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _dnodes AS
        SELECT (row_number() OVER (ORDER BY rank, value) - 1)::BIGINT AS node, rank, value
        FROM (SELECT DISTINCT rank, value FROM _dmembers)
    """)
    links = con.sql("""
        WITH m AS (SELECT d.tuple_key, n.node FROM _dmembers d JOIN _dnodes n USING (rank, value)),
             hubs AS (SELECT tuple_key, min(node) AS hub FROM m GROUP BY tuple_key)
        SELECT DISTINCT m.node, hubs.hub FROM m JOIN hubs USING (tuple_key) WHERE m.node <> hubs.hub
    """).to_arrow_table()
    (count,) = con.execute("SELECT count(*) FROM _dnodes").fetchall()[0]
    roots = components(count, links["node"].to_numpy(), links["hub"].to_numpy())
    con.register("_droots_arrow", pa.table({"node": np.arange(count, dtype=np.int64), "root": roots}))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _droots AS
        SELECT n.rank, n.value, {_PREFIX.format(r='r.rank')} || r.value AS person_id
        FROM _droots_arrow x JOIN _dnodes n ON n.node = x.node JOIN _dnodes r ON r.node = x.root
    """)
    con.unregister("_droots_arrow")


def _apply(con) -> None:
    """identity_map brought up to the merges and the new identifiers; `_lookup` for every tuple."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _dlookup AS
        SELECT DISTINCT d.tuple_key, r.person_id FROM _dmembers d JOIN _droots r USING (rank, value)
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _remap AS
        SELECT DISTINCT d.was AS old, r.person_id AS new FROM _dmembers d JOIN _droots r USING (rank, value)
        WHERE d.was IS NOT NULL AND d.was <> r.person_id
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _touched AS
        SELECT person_id FROM _dlookup UNION SELECT new FROM _remap UNION SELECT old FROM _remap
    """)
    con.execute("UPDATE identity_map m SET person_id = r.new FROM _remap r WHERE m.person_id = r.old")
    con.execute("""
        INSERT INTO identity_map
        SELECT DISTINCT d.id_type, d.id_value, r.person_id FROM _dmembers d JOIN _droots r USING (rank, value)
        WHERE d.was IS NULL ORDER BY ALL
    """)
    # the person of every tuple of a touched person: the new ones as resolved above, the others as the last
    # stitch resolved them, merged. Nothing else is written again, so nothing else needs looking up.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _lookup AS
        SELECT tuple_key, person_id FROM _dlookup
        UNION ALL
        SELECT DISTINCT a.tuple_key, coalesce(r.new, o.person_id) AS person_id
        FROM (SELECT * FROM identity_resolved WHERE person_id IN (SELECT person_id FROM _touched)) o
        JOIN identity_activity a USING (activity_key) LEFT JOIN _remap r ON r.old = o.person_id
        WHERE a.tuple_key NOT IN (SELECT tuple_key FROM _dtuples)
    """)
