"""What acting on the journey stores about units that `journeymap erase` removes: their playbook entries, their
outbox rows (a pending firing would name them) and their remembered health band."""

from __future__ import annotations

import duckdb

TABLES = ("act_entries", "act_outbox", "act_health")


def forget(con: duckdb.DuckDBPyConnection, unit_ids: list[str]) -> dict[str, int]:
    """Delete the rows of these units (person or account ids) from the act tables; counts per table."""
    present = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}
    out = {}
    for table in TABLES:
        if table in present and unit_ids:
            out[table] = con.execute(f"DELETE FROM {table} WHERE unit_id IN (SELECT unnest(?::VARCHAR[]))",
                                     [unit_ids]).fetchone()[0]
    return out
