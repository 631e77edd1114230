"""Fold new events into the journey state: only the units whose events or persona changed are recomputed.

The state holds, per level L (person, account), what the journey views read:

  state_events_L  each journey event annotated (stage hit, touchpoint, persona) with the unit's
                  current_stage and stage_before: engine.annotate.annotate + engine.stages.with_current_stage
  state_visits_L  each stage visit: engine.stages.visits
  state_units_L   unit_id, persona, events, signature: what the next fold compares

and keys of the store's `meta` table: `state.version` (the layout below), `state.L.annotation` (the
definition it was computed under, engine.annotate.annotation_key) and `state.L.journey` (the journey
version it reflects, which identity.stitch bumps with every rebuild of the journey events).

How a fold finds what to recompute: each unit's signature is the count and the XOR of hash(seq) over its
journey events, so a unit that gained an event (new or late: timestamps before the state's latest are
the same case), lost one (an unload, an erase), or was joined with another by an identity merge gets a
new signature; a unit whose persona rules now give another persona (its traits, or its account's,
changed) is compared on persona. Those units are deleted from the state and recomputed from all their
events; every other unit's rows stay. Each unit's rows depend only on its own events and persona, so a
fold gives the same rows as a rebuild from scratch (tests/test_state_fold.py checks it on random logs
split into random batches). A changed definition, or a state written by another layout, is rebuilt
whole, and the report says why.

Everything is written in one transaction with the meta keys: a fold interrupted by kill -9 leaves the
previous state and its keys, which readers then see as stale (journeymap.state.read) until the next
refresh completes the fold.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import duckdb
import ibis

from journeymap.engine.annotate import annotate, annotation_key
from journeymap.engine.backends import duckdb_engine
from journeymap.engine.personas import UNASSIGNED, units
from journeymap.engine.stages import visits, with_current_stage
from journeymap.engine.unit_events import LEVELS, unit_events
from journeymap.ingest.store import has_table
from journeymap.journey.definition import JourneyDefinition

STATE_VERSION = "1"
"""The layout of the state tables; a state written under another is rebuilt, never read."""

JOURNEY_VERSION_KEY = "journey.version"


def tables(level: str) -> dict[str, str]:
    return {"events": f"state_events_{level}", "visits": f"state_visits_{level}", "units": f"state_units_{level}"}


@dataclass
class LevelFold:
    level: str
    mode: str
    """rebuild (from scratch), fold (changed units only), or unchanged."""
    reason: str
    units: int
    """Units in the state after the fold."""
    changed_units: int
    """Units recomputed (all of them on a rebuild), removed ones included."""
    seconds: float


@dataclass
class FoldReport:
    levels: list[LevelFold]
    journey_version: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    if not has_table(con, "meta"):
        return {}
    return dict(con.execute("SELECT key, value FROM meta").fetchall())


def journey_version(con: duckdb.DuckDBPyConnection) -> int:
    return int(meta(con).get(JOURNEY_VERSION_KEY, 0))


def _set(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return has_table(con, table)


def rebuild_reason(con: duckdb.DuckDBPyConnection, known: dict[str, str], level: str, key: str | None) -> str | None:
    """Why the state of `level` cannot be folded into and must be rebuilt (None: it can): the one rule the
    fold and `journeymap state` (state.read.status) both apply. `known`: the store's meta keys."""
    if not all(_exists(con, name) for name in tables(level).values()):
        return "no state yet"
    if known.get("state.version") != STATE_VERSION:
        return f"the state was written by layout {known.get('state.version')}, this journeymap reads {STATE_VERSION}"
    if known.get(f"state.{level}.annotation") != key:
        return "journeymap.yml's stages, touchpoints or personas changed"
    return None


def fold(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition, levels=LEVELS,
         rebuild: bool = False) -> FoldReport:
    """Bring the journey state up to the journey events, in one transaction; `rebuild` starts from scratch."""
    started = time.perf_counter()
    if not _exists(con, "journey_events"):
        return FoldReport([], journey_version(con), 0.0)
    engine = duckdb_engine(con)
    key = annotation_key(definition)
    con.begin()
    try:
        known = meta(con)
        version = int(known.get(JOURNEY_VERSION_KEY, 0))
        done = []
        for level in levels:
            done.append(_fold_level(con, engine, definition, level, key, known, rebuild))
            _set(con, f"state.{level}.annotation", key)
            _set(con, f"state.{level}.journey", str(version))
        _set(con, "state.version", STATE_VERSION)
        con.execute("DROP TABLE IF EXISTS _state_current")
        con.execute("DROP TABLE IF EXISTS _state_changed")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return FoldReport(done, version, round(time.perf_counter() - started, 3))


def _fold_level(con, engine, definition, level, key, known, rebuild) -> LevelFold:
    started = time.perf_counter()
    t = tables(level)
    reason = "asked" if rebuild else rebuild_reason(con, known, level, key)
    if reason:
        for name in t.values():
            con.execute(f"DROP TABLE IF EXISTS {name}")
    sql = _statements(con, engine, definition, level, key)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _state_current AS {sql.current}")
    if reason:
        con.execute(f"CREATE TABLE {t['units']} AS SELECT * FROM _state_current LIMIT 0")
        con.execute("CREATE OR REPLACE TEMP TABLE _state_changed AS SELECT unit_id FROM _state_current")
    else:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _state_changed AS
            SELECT coalesce(c.unit_id, s.unit_id) AS unit_id
            FROM _state_current c FULL JOIN {t['units']} s ON c.unit_id = s.unit_id
            WHERE c.unit_id IS NULL OR s.unit_id IS NULL OR c.events <> s.events
               OR c.signature <> s.signature OR c.persona IS DISTINCT FROM s.persona
        """)
    (changed,) = con.execute("SELECT count(*) FROM _state_changed").fetchone()
    if changed or reason:
        for name in ("events", "visits", "units"):
            if not reason:
                con.execute(f"DELETE FROM {t[name]} WHERE unit_id IN (SELECT unit_id FROM _state_changed)")
        con.execute(f"INSERT INTO {t['units']} SELECT * FROM _state_current "
                    "WHERE unit_id IN (SELECT unit_id FROM _state_changed)")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _state_a AS {sql.annotated}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _state_v AS {sql.visits}")
        _put(con, t["visits"], "SELECT * FROM _state_v", create=bool(reason))
        _put(con, t["events"], sql.events, create=bool(reason))
        con.execute("DROP TABLE _state_a")
        con.execute("DROP TABLE _state_v")
    (n_units,) = con.execute(f"SELECT count(*) FROM {t['units']}").fetchone()
    return LevelFold(level, "rebuild" if reason else "fold" if changed else "unchanged", reason or "",
                     int(n_units), int(changed), round(time.perf_counter() - started, 3))


@dataclass(frozen=True)
class _Statements:
    current: str
    """unit_id, persona, events, signature of every unit now (the annotation's filter and persona rule)."""
    annotated: str
    """The annotated events of the units in _state_changed."""
    visits: str
    """Their stage visits, from _state_a."""
    events: str
    """Their events with current_stage and stage_before, from _state_a and _state_v."""


_COMPILED: dict[tuple, _Statements] = {}
"""The fold's SQL by (level, annotation key, the schema of the tables it reads): compiling the Ibis
expressions costs about a second per level, running them on a small batch a fraction of that."""


def _statements(con, engine, definition, level: str, key: str) -> _Statements:
    schema = tuple(con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE table_name IN ('journey_events', 'persons', 'accounts') AND database_name = current_database() ORDER BY ALL").fetchall())
    cache_key = (level, key, schema)
    if cache_key not in _COMPILED:
        ev = unit_events(engine, level)
        current = f"""
            SELECT s.unit_id, coalesce(p.persona, '{UNASSIGNED}') AS persona, s.events, s.signature
            FROM (SELECT unit_id, count(*) AS events, bit_xor(hash(seq)) AS signature
                  FROM ({engine.backend.compile(ev)}) GROUP BY unit_id) s
            LEFT JOIN ({engine.backend.compile(units(engine, definition, level))}) p ON p.unit_id = s.unit_id"""
        changed = ibis.table({"unit_id": ev.unit_id.type()}, name="_state_changed")
        annotated = annotate(engine, definition, level, only=changed)
        a = ibis.table(annotated.schema(), name="_state_a")
        v = ibis.table(visits(a).schema(), name="_state_v")
        if len(_COMPILED) >= 64:
            _COMPILED.clear()
        _COMPILED[cache_key] = _Statements(current, engine.backend.compile(annotated),
                                           engine.backend.compile(visits(a)),
                                           engine.backend.compile(with_current_stage(a, v)))
    return _COMPILED[cache_key]


def _put(con, table: str, sql: str, create: bool) -> None:
    if create:
        con.execute(f"CREATE TABLE {table} AS {sql}")
    else:
        con.execute(f"INSERT INTO {table} BY NAME {sql}")
