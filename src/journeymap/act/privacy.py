"""Erasing a person from what acting on the journey stored: the entries, outbox rows and tasks about their
units, and any row whose reason or payload names them (an NPS comment quoted in a follow-up, their email as
a recipient). Called by `journeymap erase` before the store is compacted (docs/privacy.md)."""

from __future__ import annotations

import duckdb

from journeymap.ingest.store import has_table, table_names
from journeymap.state.erase import MIN_SUBSTRING

QUOTED_MIN = 20
"""A string property of the person's events this long may be quoted by a playbook (an NPS comment in a
detractor follow-up) and is searched for; shorter ones (a plan name, 'web') name nobody."""


def quoted_texts(con: duckdb.DuckDBPyConnection, person_ids: list[str], accounts: list[str]) -> list[str]:
    """The texts the erased events carry (string properties of QUOTED_MIN characters or more): read before
    the events are deleted, searched for in what acting stored."""
    if not has_table(con, "journey_events"):
        return []
    rows = con.execute("""
        SELECT DISTINCT json_extract_string(j.value, '$') AS text
        FROM journey_events e, json_each(e.properties) j
        WHERE (e.person_id IN (SELECT unnest(?::VARCHAR[])) OR e.account_id IN (SELECT unnest(?::VARCHAR[])))
          AND json_valid(e.properties) AND j.type = 'VARCHAR'""", [person_ids, accounts]).fetchall()
    return sorted(r[0] for r in rows if r[0] and len(r[0]) >= QUOTED_MIN)


def erase_units(con: duckdb.DuckDBPyConnection, unit_ids: list[str], needles: list[str]) -> dict[str, int]:
    """Delete, from every act_* table, the rows of these units and the rows whose text columns name a needle
    (an identifier of the erased person, or a text from `quoted_texts`: the same matching as the erase of
    dead letters), then what depended on a deleted entry (its outbox rows, their tasks). Returns the rows
    removed per table. Every act table is covered, including ones added later, as long as it keeps the
    unit in `unit_id`."""
    tables = sorted(table_names(con, "act\\_%"))
    if not tables:
        return {}
    con.execute("CREATE OR REPLACE TEMP TABLE _act_erase_units AS SELECT unnest(?::VARCHAR[]) AS id", [unit_ids])
    con.execute("CREATE OR REPLACE TEMP TABLE _act_erase_needles AS SELECT unnest(?::VARCHAR[]) AS v", [needles])
    removed = {}
    try:
        for table in tables:
            columns = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
                                  "AND database_name = current_database()", [table]).fetchall()
            text = [c for c, kind in columns if kind in ("VARCHAR", "JSON")]
            conditions = ["unit_id IN (SELECT id FROM _act_erase_units)"] if "unit_id" in dict(columns) else []
            conditions += [f"""EXISTS (SELECT 1 FROM _act_erase_needles n WHERE
                                (length(n.v) >= {MIN_SUBSTRING} AND contains(lower(coalesce({c}::VARCHAR, '')), lower(n.v)))
                                OR contains(coalesce({c}::VARCHAR, ''), '"' || n.v || '"'))""" for c in text]
            if conditions:
                n = con.execute(f"DELETE FROM {table} WHERE {' OR '.join(conditions)}").fetchone()[0]
                if n:
                    removed[table] = int(n)
        # An outbox row whose entry is gone, and a task whose outbox row is gone, go too: they were about it.
        cascades = (("act_outbox", "act_entries", "(playbook, unit_id, entry) NOT IN "
                                                  "(SELECT (playbook, unit_id, entry) FROM act_entries)"),
                    ("act_tasks", "act_outbox", "key NOT IN (SELECT key FROM act_outbox)"))
        for table, parent, orphan in cascades:
            if table in tables and parent in tables:
                n = con.execute(f"DELETE FROM {table} WHERE {orphan}").fetchone()[0]
                if n:
                    removed[table] = removed.get(table, 0) + int(n)
    finally:
        con.execute("DROP TABLE IF EXISTS _act_erase_units")
        con.execute("DROP TABLE IF EXISTS _act_erase_needles")
    return removed
