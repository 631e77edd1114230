"""What a refresh derives per unit beside the journey state (the scored texts, the churn features) and folds
the same way: a unit's derived rows depend on its own events alone, so only the units whose `state_units_L`
row (event count and XOR signature) changed since the rows were made are read again, and units gone from the
state lose theirs. Each derived table keeps, per unit, the `events` and `signature` it was made from."""

from __future__ import annotations

from journeymap.state.fold import tables


def stale_units(con, level: str, made_from: str | None, into: str) -> tuple[int, int]:
    """Write temp table `into` (unit_id): the units of level `level` whose row in `made_from` (a table with
    unit_id, events, signature) is missing or differs from their `state_units_L` row, and the units `made_from`
    has that the state no longer has; every unit of the state when `made_from` is None (a rebuild). Returns
    (units to read again, units gone)."""
    units = tables(level)["units"]
    if made_from is None:
        sql = f"SELECT unit_id FROM {units}"
    else:
        sql = f"""SELECT u.unit_id FROM {units} u LEFT JOIN {made_from} m USING (unit_id)
                  WHERE m.unit_id IS NULL OR m.events <> u.events OR m.signature <> u.signature
                  UNION ALL
                  SELECT unit_id FROM {made_from} WHERE unit_id NOT IN (SELECT unit_id FROM {units})"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {into} AS {sql}")
    read, gone = con.execute(f"""SELECT count(*) FILTER (WHERE unit_id IN (SELECT unit_id FROM {units})),
                                        count(*) FILTER (WHERE unit_id NOT IN (SELECT unit_id FROM {units}))
                                 FROM {into}""").fetchone()
    return int(read), int(gone)
