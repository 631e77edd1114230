"""Fold new events into the journey state: only the units whose events or persona changed are recomputed.

The state holds, per level L (person, account), what the journey views read:

  state_events_L  each journey event annotated (stage hit, touchpoint, persona) with the unit's
                  current_stage and stage_before: engine.annotate.annotate + engine.stages.with_current_stage
  state_visits_L  each stage visit: engine.stages.visits. A view: the visits each unit has left
                  (state_closed_visits_L, every visit but its last) and its last visit, from state_units_L
  state_units_L   unit_id, persona, events, signature, last_ts, last_seq: what the next fold compares; and
                  the unit's last stage visit (last_visit_no, last_stage, last_entered_at, last_entry_seq),
                  where an appended unit's tail starts

A unit's last visit is the one that changes as events arrive (where it leads, when a new visit follows), and it
is kept in one place only, the unit's row, which every fold that touches the unit writes again anyway: so a
fold of appended events only adds the visits that closed, and never looks for rows among every visit to
delete them (at 10M events, a scan of 7.4M visits per level per refresh).

and keys of the store's `meta` table: `state.version` (the layout below), `state.L.annotation` (the
definition it was computed under, engine.annotate.annotation_key) and `state.L.journey` (the journey
version it reflects, which identity.stitch bumps with every rebuild of the journey events).

Which units a fold looks at: when the stitch vouches for the journey events (identity.journey_events: since
the version the state reflects they only gained rows past the state's mark `state.L.seq` and the moves listed
in `journey_moves`), only the units with events past the mark, the units moved rows left or joined, and the
units whose persona rules now give another persona; their new signature is the folded one XOR the new events'.
Otherwise (the journey events were written whole since) every unit's signature is computed and compared.

How a fold finds what to recompute: each unit's signature is the count and the XOR of hash(seq) over its
journey events, so a unit that gained an event (new or late: timestamps before the state's latest are
the same case), lost one (an unload, an erase), or was joined with another by an identity merge gets a
new signature; a unit whose persona rules now give another persona (its traits, or its account's,
changed) is compared on persona. Those units are deleted from the state and recomputed from all their
events; every other unit's rows stay. Each unit's rows depend only on its own events and persona, so a
fold gives the same rows as a rebuild from scratch (tests/test_state_fold.py checks it on random logs
split into random batches). A changed definition, or a state written by another layout, is rebuilt
whole, and the report says why.

A level's tables are written in one transaction with its meta keys: a fold interrupted by kill -9 leaves each
level's previous state and keys, or its new ones, never a part; readers take each level's state only when it is
current (journeymap.state.read) and compute a stale one's from the events until the next refresh completes the
fold. When both levels are folded into a current state (not rebuilt) and the store may use more than one
thread, the levels fold at once, each on its own connection and in its own transaction: a small fold's
statements read tables of one or two row groups, which DuckDB runs on one thread, so the other level uses the
other core (at 10M events the fold of the newest 1% took 1.13-1.33 s where one level after the other took
1.68-1.96 s, alternated in one process: docs/benchmarks.md). Otherwise (a rebuild, whose statements already
use every thread; a layout or definition changed; one thread) everything is written in one transaction.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import duckdb
import ibis

from journeymap.engine.annotate import ANNOTATED_COLUMNS, annotate, annotation_key
from journeymap.engine.backends import duckdb_engine
from journeymap.engine.personas import UNASSIGNED, units
from journeymap.engine.stages import visits, with_current_stage
from journeymap.engine.unit_events import LEVELS, unit_events
from journeymap.identity.journey_events import MOVES, WHOLE_KEY
from journeymap.ingest.store import cursor, has_table, table_names, view_names
from journeymap.journey.definition import JourneyDefinition

STATE_VERSION = "4"
"""The layout of the state tables; a state written under another is rebuilt, never read."""

JOURNEY_VERSION_KEY = "journey.version"


def tables(level: str) -> dict[str, str]:
    """What readers read for `level`: the annotated events, the stage visits (a view) and the units."""
    return {"events": f"state_events_{level}", "visits": f"state_visits_{level}", "units": f"state_units_{level}"}


def stored(level: str) -> dict[str, str]:
    """The tables the fold writes for `level`: the events, the closed visits and the units (with their last
    visits); `tables(level)["visits"]` is the view over the last two."""
    return {"events": f"state_events_{level}", "closed": f"state_closed_visits_{level}",
            "units": f"state_units_{level}"}


VISITS_VIEW = """
    CREATE OR REPLACE VIEW {visits} AS
    SELECT unit_id, persona, stage, entered_at, entry_seq, visit_no, left_at, next_stage FROM {closed}
    UNION ALL
    SELECT unit_id, persona, last_stage AS stage, last_entered_at AS entered_at, last_entry_seq AS entry_seq,
           last_visit_no AS visit_no, NULL::TIMESTAMP AS left_at, NULL::VARCHAR AS next_stage
    FROM {units} WHERE last_visit_no IS NOT NULL"""
"""state_visits_L: a unit's last visit has no left_at or next_stage (engine.stages.visits: nothing follows it)."""


def _drop(con, names) -> None:
    """Drop each of `names` the store has, as the table or view it is (state_visits_L was a table before layout 4)."""
    views, found = view_names(con), table_names(con)
    for name in sorted(names):
        if name in views:
            con.execute(f"DROP VIEW {name}")
        elif name in found:
            con.execute(f"DROP TABLE {name}")


def drop_state(con) -> None:
    """Drop every table and view of the store named state_..."""
    like = "state\\_%"
    _drop(con, view_names(con, like) | table_names(con, like))


def present(con, level: str) -> bool:
    """Whether the store has the state of `level`: its tables and its visits view."""
    return set(stored(level).values()) <= table_names(con) and tables(level)["visits"] in view_names(con)


@dataclass
class LevelFold:
    level: str
    mode: str
    """rebuild (from scratch), fold (changed units only), or unchanged."""
    reason: str
    units: int
    """Units in the state after the fold."""
    changed_units: int
    """Units whose rows changed (all of them on a rebuild), removed ones included."""
    seconds: float
    appended_units: int = 0
    """Of changed_units, those whose new events all came after their folded ones: their new events were folded
    onto their state, the rest recomputed from all their events."""
    new_units: int = 0
    """Of changed_units, those the state did not have yet (all of them on a rebuild)."""
    late_units: int = 0
    """Of changed_units, those that only gained events, some earlier than their folded ones: refolded from the
    last visit before their earliest new event rather than from all their events."""
    looked_at: str = "all"
    """Which units the fold compared with the state: "named" (those with new events, moved rows or another
    persona, as the stitch vouches) or "all" (every unit's signature computed)."""


@dataclass
class FoldReport:
    levels: list[LevelFold]
    journey_version: int
    seconds: float
    at_once: bool = False
    """Whether the levels folded at once, each in its own transaction (the module's docstring says when)."""

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


def rebuild_reason(con: duckdb.DuckDBPyConnection, known: dict[str, str], level: str, key: str | None) -> str | None:
    """Why the state of `level` cannot be folded into and must be rebuilt (None: it can): the one rule the
    fold and `journeymap state` (state.read.status) both apply. `known`: the store's meta keys."""
    written = known.get("state.version")
    if written is not None and written != STATE_VERSION:  # its tables may be another set
        return f"the state was written by layout {written}, this journeymap reads {STATE_VERSION}"
    if not present(con, level):
        return "no state yet"
    if written is None:
        return f"the state was written by a layout before {STATE_VERSION}"
    if known.get(f"state.{level}.annotation") != key:
        return "journeymap.yml's stages, touchpoints or personas changed"
    return None


def fold(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition, levels=LEVELS,
         rebuild: bool = False) -> FoldReport:
    """Bring the journey state up to the journey events, in one transaction, or one per level when the levels fold
    at once (the module's docstring says when); `rebuild` starts from scratch."""
    started = time.perf_counter()
    if not has_table(con, "journey_events"):
        return FoldReport([], journey_version(con), 0.0)
    engine = duckdb_engine(con)
    key = annotation_key(definition)
    if not rebuild and len(levels) > 1 and _at_once(con, meta(con), levels, key):
        # compiled here (Ibis reads the store's schemas on con), handed to the threads, which only run SQL
        compiled = {level: _statements(con, engine, definition, level, key) for level in levels}
        with ThreadPoolExecutor(len(levels), thread_name_prefix="fold") as pool:
            running = [pool.submit(_fold_alone, cursor(con), compiled[level], definition, level, key)
                       for level in levels]
            outcomes = [f.exception() or f.result() for f in running]
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        forget_moves(con)
        return FoldReport(outcomes, journey_version(con), round(time.perf_counter() - started, 3), at_once=True)
    con.begin()
    try:
        known = meta(con)
        version = int(known.get(JOURNEY_VERSION_KEY, 0))
        done = []
        for level in levels:
            done.append(_fold_level(con, engine, definition, level, key, known, rebuild))
            _folded(con, level, key, version)
        _set(con, "state.version", STATE_VERSION)
        _drop_temporary(con)
        forget_moves(con)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return FoldReport(done, version, round(time.perf_counter() - started, 3))


def _at_once(con, known: dict[str, str], levels, key: str) -> bool:
    """Whether the levels may fold at once: each folds into a current layout under this definition (so none is
    rebuilt, and none writes the keys they share), and the store may use more than one thread."""
    if any(rebuild_reason(con, known, level, key) for level in levels):
        return False
    return int(con.execute("SELECT current_setting('threads')").fetchone()[0]) > 1


def _fold_alone(con, sql: _Statements, definition, level: str, key: str) -> LevelFold:
    """Fold one level in a transaction of its own, on `con` (a cursor of the store, closed here), with its
    statements compiled (`sql`)."""
    try:
        con.begin()
        try:
            known = meta(con)
            done = _fold_level(con, None, definition, level, key, known, False, sql)
            _folded(con, level, key, int(known.get(JOURNEY_VERSION_KEY, 0)))
            _drop_temporary(con)
            con.commit()
        except BaseException:
            con.rollback()
            raise
    finally:
        con.close()
    return done


def _folded(con, level: str, key: str, version: int) -> None:
    """The keys that say what `level`'s state reflects: the definition's annotation key and the journey version."""
    _set(con, f"state.{level}.annotation", key)
    _set(con, f"state.{level}.journey", str(version))


def _drop_temporary(con) -> None:
    for name in ("_state_current", "_state_changed", "_state_appended", "_state_mark", "_state_touched",
                 "_state_new", "_state_fresh", "_state_whole"):
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _fold_level(con, engine, definition, level, key, known, rebuild, sql: _Statements | None = None) -> LevelFold:
    """Fold `level` on `con`, inside the caller's transaction; `sql`: its statements compiled, else compiled on
    `engine` (or read from the compiled ones kept)."""
    started = time.perf_counter()
    t = tables(level)
    w = stored(level)
    reason = "asked" if rebuild else rebuild_reason(con, known, level, key)
    if reason:
        _drop(con, {*t.values(), *w.values()})
    mark = None if reason else known.get(f"state.{level}.seq")
    # Events past the mark arrived since the last fold; without one nothing counts as appended.
    con.execute("CREATE OR REPLACE TEMP TABLE _state_mark AS SELECT ?::BIGINT AS seq",
                [int(mark) if mark not in (None, "") else NO_MARK])
    sql = sql or _statements(con, engine, definition, level, key)
    since = _vouched_since(known, level)
    named = not (reason or since is None or mark in (None, ""))
    if not named:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _state_current AS {sql.current}")
        known_units = t["units"]
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _state_touched AS SELECT DISTINCT unit_id FROM {MOVES} "
                    "WHERE level = ? AND version > ?", [level, since])
        con.execute(f"CREATE OR REPLACE TEMP TABLE _state_new AS {sql.news}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _state_current AS {sql.touched} UNION ALL BY NAME FROM ({sql.delta})")
        # the state's rows of the units looked at; every other unit is unchanged
        known_units = (f"(SELECT * FROM {t['units']} WHERE unit_id IN (SELECT unit_id FROM _state_current) "
                       "OR unit_id IN (SELECT unit_id FROM _state_touched))")
    if reason:
        con.execute("CREATE OR REPLACE TEMP TABLE _state_changed AS SELECT unit_id FROM _state_current")
        con.execute("CREATE OR REPLACE TEMP TABLE _state_appended AS "
                    "SELECT unit_id, false AS late, new_first_ts FROM _state_current LIMIT 0")
    else:
        differs = ("(c.events <> s.events OR c.signature <> s.signature OR c.persona IS DISTINCT FROM s.persona)")
        # Only new events, and the same persona: none lost, no identity merge brought older ones.
        gained = ("(c.new_events > 0 AND c.persona = s.persona AND s.events + c.new_events = c.events "
                  "AND xor(s.signature, c.new_signature) = c.signature)")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _state_classified AS
            SELECT coalesce(c.unit_id, s.unit_id) AS unit_id, s.unit_id IS NULL AS new,
                   c.unit_id IS NOT NULL AND s.unit_id IS NOT NULL AND {gained} AS gained,
                   c.new_first_ts < s.last_ts AS late, c.new_first_ts
            FROM _state_current c FULL JOIN {known_units} s ON c.unit_id = s.unit_id
            -- a unit the state keeps with no events left (retention dropped them all) keeps its rows
            WHERE (c.unit_id IS NULL AND s.events > 0) OR s.unit_id IS NULL
               OR (c.unit_id IS NOT NULL AND {differs})
        """)
        con.execute("CREATE OR REPLACE TEMP TABLE _state_changed AS "
                    "SELECT unit_id FROM _state_classified WHERE NOT gained")
        con.execute("CREATE OR REPLACE TEMP TABLE _state_appended AS "
                    "SELECT unit_id, late, new_first_ts FROM _state_classified WHERE gained")
        new, known_changed = con.execute("SELECT count(*) FILTER (WHERE new), count(*) FILTER (WHERE NOT new AND NOT gained) "
                                         "FROM _state_classified").fetchall()[0]
        con.execute("DROP TABLE _state_classified")
    (changed,) = con.execute("SELECT count(*) FROM _state_changed").fetchall()[0]
    if reason:
        new, known_changed = changed, 0
    appended, late = con.execute("SELECT count(*) FILTER (WHERE NOT late), count(*) FILTER (WHERE late) "
                                 "FROM _state_appended").fetchall()[0]
    if changed or reason:
        # only units the state has rows of (not new ones: most changed units on a day of new customers)
        for name in w.values() if known_changed else ():
            con.execute(f"DELETE FROM {name} WHERE unit_id IN (SELECT unit_id FROM _state_changed)")
        # A changed unit all of whose events are past the mark (a new customer) is read from the events past it,
        # which the events' order by seq keeps to their last row groups; the others (merged, late, lost events)
        # need all their events, which no order helps find: a scan of every journey event.
        con.execute("""CREATE OR REPLACE TEMP TABLE _state_fresh AS SELECT unit_id FROM _state_current
                       WHERE new_events = events AND unit_id IN (SELECT unit_id FROM _state_changed)""")
        con.execute("CREATE OR REPLACE TEMP TABLE _state_whole AS SELECT unit_id FROM _state_changed "
                    "WHERE unit_id NOT IN (SELECT unit_id FROM _state_fresh)")
        (whole,) = con.execute("SELECT count(*) FROM _state_whole").fetchall()[0]
        con.execute(f"CREATE OR REPLACE TEMP TABLE _state_a AS {sql.annotated if whole else sql.fresh}")
        if whole and changed > whole:
            con.execute(f"INSERT INTO _state_a BY NAME {sql.fresh}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _state_v AS {sql.visits}")
        _put(con, w["closed"], "SELECT * FROM _state_v WHERE left_at IS NOT NULL", create=bool(reason))
        _put(con, t["events"], sql.events, create=bool(reason))
        _put(con, t["units"], f"""SELECT {UNIT_COLUMNS_OF_C}, {LAST_VISIT_COLUMNS}
                                  FROM _state_current c LEFT JOIN ({LAST_VISIT.format(visits='_state_v')}) l
                                  ON l.unit_id = c.unit_id WHERE c.unit_id IN (SELECT unit_id FROM _state_changed)""",
             create=bool(reason))
        if reason:
            con.execute(VISITS_VIEW.format(visits=t["visits"], **w))
        con.execute("DROP TABLE _state_a")
        con.execute("DROP TABLE _state_v")
    if appended or late:
        _fold_tails(con, t, w["closed"], sql, late=bool(late))
    (n_units,) = con.execute(f"SELECT count(*) FROM {t['units']}").fetchall()[0]
    latest = con.execute("SELECT max(max_seq) FROM _state_current").fetchall()[0][0]
    if named:
        # _state_current holds the units looked at: every event past the mark is theirs, but the units that only
        # moved (a merge, with no new event) bring their older events' seq, which must not pull the mark back:
        # the events between would be taken for new ones and folded twice
        latest = max(int(mark), latest) if latest is not None else int(mark)
    elif latest is None:
        # no unit of the level has an event (a workspace without accounts): every event was looked at, so the next
        # fold reads those past the highest instead of comparing every unit again (a scan of every event)
        latest = con.execute("SELECT max(seq) FROM journey_events").fetchall()[0][0]
    if latest is not None or reason:
        _set(con, f"state.{level}.seq", "" if latest is None else str(latest))
    return LevelFold(level, "rebuild" if reason else "fold" if changed or appended or late else "unchanged",
                     reason or "", int(n_units), int(changed) + int(appended) + int(late),
                     round(time.perf_counter() - started, 3), int(appended), int(new), int(late),
                     "named" if named else "all")


def _vouched_since(known: dict[str, str], level: str) -> int | None:
    """The journey version the state of `level` reflects when the stitch vouches for every change since (the
    journey events not written whole after it, and their moves listed); None when the fold must compare all."""
    whole, folded = known.get(WHOLE_KEY), known.get(f"state.{level}.journey")
    if not whole or not folded or int(whole) > int(folded):
        return None
    return int(folded)


SPARK_JOURNEY_KEY = "state.spark.journey"
"""Store meta: the journey version the Spark state reflects (state.spark_fold), when there is one."""


def forget_moves(con) -> None:
    """Moves that every state of the store has folded are not needed again: the DuckDB state (both levels) and
    the Spark state (state.spark_fold), whichever the store has."""
    if not has_table(con, MOVES):
        return
    known = meta(con)
    duckdb_state = [known.get(f"state.{level}.journey") for level in LEVELS]
    folded = [known.get(SPARK_JOURNEY_KEY)]
    if any(duckdb_state):
        if not all(duckdb_state):
            return
        folded += duckdb_state
    folded = [int(v) for v in folded if v]
    if folded:
        con.execute(f"DELETE FROM {MOVES} WHERE version <= ?", [min(folded)])


def _fold_tails(con, t: dict[str, str], closed: str, sql: _Statements, late: bool) -> None:
    """Fold the new events of the units in _state_appended into their state from the last visit they cannot change.

    Such a unit only gained events. Its visits before the last one entered before its earliest new event (the
    cut) cannot change, nor can its events up to that entry; so the fold runs the same statements (visits,
    with_current_stage) over the unit's tail alone: that visit's entry, standing for the visit, then its folded
    events after the entry (from state_events_L, already annotated) and the new events. The tail's first visit
    is that visit again, with where it now leads (left_at, next_stage), renumbered to its place; the tail's
    visits and events replace the state's from the cut on. When every new event comes after the unit's folded
    ones (`late` false: appended), the folded events after the entry keep their stages and are not read at all.
    A unit with no visit before its new events has its whole tail re-read from the state.

    An appended unit's cut is its last visit, which its row of state_units_L holds (every folded visit entered
    at or before its last folded event, and its new events are no earlier); only late units' cuts are looked up
    in the visits (`late`: there are some), a join with every visit of the level.

    The tail's visits are written where they now belong: those it left to state_closed_visits_L (`closed`), its
    last to the unit's row. An appended unit has no closed visit from its cut on (its cut is its last visit), so
    only late units' closed visits are deleted."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _state_cut AS
        SELECT a.unit_id, a.late, u.persona, u.last_stage AS stage, u.last_entered_at AS entered_at,
               u.last_entry_seq AS entry_seq, u.last_visit_no AS visit_no
        FROM _state_appended a JOIN {t['units']} u ON u.unit_id = a.unit_id WHERE NOT a.late""")
    if late:
        con.execute(f"""
            INSERT INTO _state_cut BY NAME
            SELECT a.unit_id, a.late, v.persona, v.stage, v.entered_at, v.entry_seq, v.visit_no
            FROM _state_appended a LEFT JOIN (
                SELECT v.unit_id, v.persona, v.stage, v.entered_at, v.entry_seq, v.visit_no
                FROM {t['visits']} v JOIN _state_appended a
                  ON a.unit_id = v.unit_id AND a.late AND v.entered_at <= a.new_first_ts
                QUALIFY row_number() OVER (PARTITION BY v.unit_id ORDER BY v.visit_no DESC) = 1) v
            ON v.unit_id = a.unit_id
            WHERE a.late""")
    after_cut = ("(c.visit_no IS NULL OR e.ts > c.entered_at OR (e.ts = c.entered_at AND e.seq > c.entry_seq))")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _state_a AS {sql.appended}")
    con.execute("INSERT INTO _state_a BY NAME SELECT unit_id, entered_at AS ts, entry_seq AS seq, "
                "stage AS stage_hit, persona FROM _state_cut WHERE visit_no IS NOT NULL")
    columns = ", ".join(f"e.{c}" for c in ANNOTATED_COLUMNS)
    con.execute(f"""INSERT INTO _state_a BY NAME SELECT {columns} FROM {t['events']} e
                    JOIN _state_cut c ON c.unit_id = e.unit_id AND c.late WHERE {after_cut}""")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _state_v AS {sql.visits}")
    # the tail's visits are numbered from 1, its first being the cut visit: renumbered to their place
    renumbered = "v.visit_no + coalesce(c.visit_no - 1, 0)"
    if late:
        con.execute(f"DELETE FROM {closed} v USING _state_cut c WHERE v.unit_id = c.unit_id AND c.late "
                    "AND (c.visit_no IS NULL OR v.visit_no >= c.visit_no)")
    # the tail's visits but its last (the cut visit when a new visit follows it, and those between)
    con.execute(f"""INSERT INTO {closed} BY NAME SELECT v.* REPLACE ({renumbered} AS visit_no)
                    FROM _state_v v JOIN _state_cut c ON c.unit_id = v.unit_id WHERE v.left_at IS NOT NULL""")
    con.execute(f"DELETE FROM {t['events']} e USING _state_cut c WHERE e.unit_id = c.unit_id AND c.late "
                f"AND {after_cut}")
    # every row of the tail but the entry standing for the cut visit (its event's row stays as it was)
    con.execute(f"""INSERT INTO {t['events']} BY NAME SELECT e.* FROM ({sql.events}) e
                    JOIN _state_cut c ON c.unit_id = e.unit_id WHERE {after_cut}""")
    # The tail's last visit is the unit's. A unit with a cut has one (the cut's entry stands for it in the tail);
    # one without has none before its new events, so its last visit, if any, is in the tail too.
    last = ", ".join(f"l.{v} AS {c}" for c, v in zip(LAST_VISIT_NAMES[1:], _VISIT[1:], strict=True))
    # written as a delete and an insert, not an UPDATE: on a 50M-event store DuckDB checkpointed the whole database
    # at the commit of that UPDATE (5-11 s of a 10,000-event refresh), and does not for the delete and the insert
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _state_ur AS
                    SELECT {UNIT_COLUMNS_OF_C}, l.visit_no + coalesce(k.visit_no - 1, 0) AS {LAST_VISIT_NAMES[0]}, {last}
                    FROM _state_current c JOIN _state_cut k ON k.unit_id = c.unit_id
                    LEFT JOIN ({LAST_VISIT.format(visits='_state_v')}) l ON l.unit_id = c.unit_id""")
    con.execute(f"DELETE FROM {t['units']} WHERE unit_id IN (SELECT unit_id FROM _state_ur)")
    con.execute(f"INSERT INTO {t['units']} BY NAME SELECT * FROM _state_ur")
    for name in ("_state_a", "_state_v", "_state_cut", "_state_ur"):
        con.execute(f"DROP TABLE {name}")


UNIT_COLUMNS = "unit_id, persona, events, signature, last_ts, last_seq"
"""state_units_L: what the next fold compares (last_ts, last_seq: the unit's latest folded event), followed by
LAST_VISIT_COLUMNS."""

UNIT_COLUMNS_OF_C = ", ".join(f"c.{c}" for c in UNIT_COLUMNS.split(", "))
"""UNIT_COLUMNS read from a table aliased `c` (the units now, beside their last visit `l`)."""

LAST_VISIT_NAMES = ("last_visit_no", "last_stage", "last_entered_at", "last_entry_seq")
_VISIT = ("visit_no", "stage", "entered_at", "entry_seq")
"""LAST_VISIT_NAMES as a visit's columns (state_visits_L's, and _state_cut's)."""

LAST_VISIT_COLUMNS = ", ".join(f"l.{v} AS {c}" for c, v in zip(LAST_VISIT_NAMES, _VISIT, strict=True))
"""state_units_L's copy of the unit's last stage visit (NULL: none), where an appended unit's tail starts."""

LAST_VISIT = ("SELECT unit_id, visit_no, stage, entered_at, entry_seq FROM {visits} "
              "QUALIFY row_number() OVER (PARTITION BY unit_id ORDER BY visit_no DESC) = 1")
"""Each unit's last visit among the visits in `{visits}`."""

NO_MARK = 2**62
"""The mark when there is none: no event is past it, so every changed unit is recomputed whole."""


@dataclass(frozen=True)
class _Statements:
    current: str
    """unit_id, persona, events, signature, last_ts, last_seq of every unit now (the annotation's filter and
    persona rule), max_seq (the next mark), and new_events, new_signature, new_first_ts: the same over its
    events past _state_mark."""
    touched: str
    """The same for the units in _state_touched only, from all their events."""
    news: str
    """_state_new: the other units' new events (past _state_mark): count, signature, first ts, last (ts, seq)."""
    delta: str
    """The same as `current` for the units in _state_new, from their folded row and _state_new, and for those
    whose persona changed (their folded row, no new events)."""
    annotated: str
    """The annotated events of the units in _state_whole (the changed units with events up to the mark)."""
    fresh: str
    """The annotated events of the units in _state_fresh (the changed units whose every event is past the mark)."""
    appended: str
    """The annotated events of the units in _state_appended past _state_mark."""
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
        ev_sql, units_sql = engine.backend.compile(ev), engine.backend.compile(units(engine, definition, level))
        new = "seq > (SELECT seq FROM _state_mark)"

        def current_of(where: str) -> str:
            return f"""
            SELECT s.unit_id, coalesce(p.persona, '{UNASSIGNED}') AS persona, s.events, s.signature,
                   s._last.ts AS last_ts, s._last.seq AS last_seq, s.max_seq,
                   s.new_events, coalesce(s.new_signature, 0::UBIGINT) AS new_signature, s.new_first_ts
            FROM (SELECT unit_id, count(*) AS events, bit_xor(hash(seq)) AS signature,
                         max(struct_pack(ts := ts, seq := seq)) AS _last, max(seq) AS max_seq,
                         count(*) FILTER (WHERE {new}) AS new_events,
                         bit_xor(hash(seq)) FILTER (WHERE {new}) AS new_signature,
                         min(ts) FILTER (WHERE {new}) AS new_first_ts
                  FROM ({ev_sql}) {where} GROUP BY unit_id) s
            LEFT JOIN ({units_sql}) p ON p.unit_id = s.unit_id"""

        current = current_of("")
        touched = current_of("WHERE unit_id IN (SELECT unit_id FROM _state_touched)")
        state_units = tables(level)["units"]
        # A unit with no events left (retention dropped them all) is looked at only when it gains some, as in
        # the full comparison, where it is not among the units with events.
        news = f"""
            SELECT unit_id, count(*) AS new_events, bit_xor(hash(seq)) AS new_signature, min(ts) AS new_first_ts,
                   max(struct_pack(ts := ts, seq := seq)) AS _last, max(seq) AS max_seq
            FROM ({ev_sql}) WHERE {new} AND unit_id NOT IN (SELECT unit_id FROM _state_touched) GROUP BY unit_id"""
        delta = f"""
            WITH p AS (SELECT unit_id, persona FROM ({units_sql}))
            SELECT n.unit_id, coalesce(p.persona, '{UNASSIGNED}') AS persona,
                   coalesce(s.events, 0) + n.new_events AS events,
                   xor(coalesce(s.signature, 0::UBIGINT), n.new_signature) AS signature,
                   CASE WHEN s.unit_id IS NULL OR n._last > struct_pack(ts := s.last_ts, seq := s.last_seq)
                        THEN n._last.ts ELSE s.last_ts END AS last_ts,
                   CASE WHEN s.unit_id IS NULL OR n._last > struct_pack(ts := s.last_ts, seq := s.last_seq)
                        THEN n._last.seq ELSE s.last_seq END AS last_seq,
                   n.max_seq, n.new_events, n.new_signature, n.new_first_ts
            FROM _state_new n LEFT JOIN {state_units} s USING (unit_id) LEFT JOIN p USING (unit_id)
            UNION ALL BY NAME
            SELECT s.unit_id, coalesce(p.persona, '{UNASSIGNED}') AS persona, s.events, s.signature, s.last_ts,
                   s.last_seq, NULL::BIGINT AS max_seq, 0::BIGINT AS new_events, 0::UBIGINT AS new_signature,
                   NULL::TIMESTAMP AS new_first_ts
            FROM {state_units} s LEFT JOIN p USING (unit_id)
            WHERE coalesce(p.persona, '{UNASSIGNED}') <> s.persona AND s.events > 0
              AND s.unit_id NOT IN (SELECT unit_id FROM _state_touched) AND s.unit_id NOT IN (SELECT unit_id FROM _state_new)"""
        whole = ibis.table({"unit_id": ev.unit_id.type()}, name="_state_whole")
        fresh = ibis.table({"unit_id": ev.unit_id.type()}, name="_state_fresh")
        appended = ibis.table({"unit_id": ev.unit_id.type(), "late": "boolean", "new_first_ts": ev.ts.type()},
                              name="_state_appended")
        mark = ibis.table({"seq": "int64"}, name="_state_mark")
        # every unit annotated here is in _state_current (a unit left with no events has nothing to annotate),
        # with the persona `current` gave it from the same rules
        personas = ibis.table({"unit_id": ev.unit_id.type(), "persona": "string"}, name="_state_current")
        annotated = annotate(engine, definition, level, only=whole, personas=personas)
        a = ibis.table(annotated.schema(), name="_state_a")
        v = ibis.table(visits(a).schema(), name="_state_v")
        if len(_COMPILED) >= 64:
            _COMPILED.clear()
        _COMPILED[cache_key] = _Statements(current, touched, news, delta, engine.backend.compile(annotated),
                                           engine.backend.compile(annotate(engine, definition, level, only=fresh,
                                                                           after_seq=mark.seq.max(),
                                                                           personas=personas)),
                                           engine.backend.compile(annotate(engine, definition, level, only=appended,
                                                                           after_seq=mark.seq.max(),
                                                                           personas=personas)),
                                           engine.backend.compile(visits(a)),
                                           engine.backend.compile(with_current_stage(a, v)))
    return _COMPILED[cache_key]


def forget_before(con: duckdb.DuckDBPyConnection, before) -> dict[str, int]:
    """Drop the state's event rows older than `before` (retention.raw_events drops their raw events in the same
    transaction) and keep everything else: the units' stage visits, and the units themselves, whose event count
    and signature now cover their kept events only, so that the next fold finds them unchanged. Returns the
    event rows dropped per level."""
    out = {}
    for level in LEVELS:
        t = tables(level)
        if not present(con, level):
            continue
        con.execute(f"""
            UPDATE {t['units']} u SET events = u.events - d.n, signature = xor(u.signature, d.x)
            FROM (SELECT unit_id, count(*) AS n, bit_xor(hash(seq)) AS x FROM {t['events']} WHERE ts < ?
                  GROUP BY unit_id) d
            WHERE u.unit_id = d.unit_id""", [before])
        out[level] = con.execute(f"DELETE FROM {t['events']} WHERE ts < ?", [before]).fetchall()[0][0]
    return out


def _put(con, table: str, sql: str, create: bool) -> None:
    if create:
        con.execute(f"CREATE TABLE {table} AS {sql}")
    else:
        con.execute(f"INSERT INTO {table} BY NAME {sql}")
