"""Which journey state tables readers may use: those written for this definition, at the journey
version the store is at now, by this layout. Anything else is stale and the engine computes instead."""

from __future__ import annotations

import duckdb

from journeymap.engine.annotate import annotation_key
from journeymap.engine.unit_events import LEVELS
from journeymap.journey.definition import JourneyDefinition
from journeymap.state.fold import JOURNEY_VERSION_KEY, STATE_VERSION, meta, present, rebuild_reason, tables


def current_tables(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition) -> dict:
    """{(level, annotation key): {"events": table, "visits": table}} for each level whose state is current:
    what `Engine.journey` takes."""
    known = meta(con)
    if known.get("state.version") != STATE_VERSION:
        return {}
    key = annotation_key(definition)
    journey = known.get(JOURNEY_VERSION_KEY, "0")
    return {(level, key): {k: v for k, v in tables(level).items() if k != "units"} for level in LEVELS
            if known.get(f"state.{level}.annotation") == key and known.get(f"state.{level}.journey") == journey}


def status(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition | None) -> list[dict]:
    """Per level: whether the state is current, and if not why (`journeymap state`)."""
    known = meta(con)
    key = annotation_key(definition) if definition is not None else None
    out = []
    for level in LEVELS:
        t = tables(level)
        why = rebuild_reason(con, known, level, key)
        if why is None and known.get(f"state.{level}.journey") != known.get(JOURNEY_VERSION_KEY, "0"):
            why = "events arrived since"
        elif why is not None and why.startswith("journeymap.yml"):
            why += " since"
        row = {"level": level, "current": why is None, "stale_because": why, "units": None, "events": None,
               "visits": None}
        if present(con, level):
            row["units"], row["events"], row["visits"] = (con.execute(f"SELECT count(*) FROM {t[k]}").fetchone()[0]
                                                          for k in ("units", "events", "visits"))
        out.append(row)
    return out
