"""The journey state folded by Spark jobs: state.fold's fold, over the Parquet of state.spark_files.

The rules are state.fold's (docs/state.md), and the rows the same (tests/test_spark_fold.py compares both on the
demo loaded in batches): each unit's signature is its event count and the XOR of a hash of each event's seq
(`xxhash64` here, DuckDB's `hash` there, so the signatures differ and nothing else does); a unit whose events
or persona changed is recomputed from all its events, or from its events past the mark when it has no others;
a unit that only gained events is refolded from the last stage visit its new events cannot change (the cut).
The annotation, the visits and the current stage are the engine's Ibis expressions (engine.annotate,
engine.stages) compiled for Spark; the comparisons are Spark SQL.

The store stays the system of record (docs/spark.md): it stitches identity, says which units an identity
merge moved (`journey_moves`) and writes the events of the dates that changed. Spark reads those and the
state's units and visits, and writes new folders only for what changed: the state's events by event date (the
dates of the events added or replaced), its visits and units by a bucket of the unit (the buckets of the units
changed). The manifest names the folders, and its rename commits the fold.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import ibis

from journeymap.engine.annotate import ANNOTATED_COLUMNS, annotate, annotation_key
from journeymap.engine.backends import Engine
from journeymap.engine.spark_backend import export_folder, spark_session_for, uses_uri
from journeymap.engine.personas import UNASSIGNED, units
from journeymap.engine.stages import visits, with_current_stage
from journeymap.engine.unit_events import LEVELS, unit_events
from journeymap.identity.journey_events import MOVES, WHOLE_KEY
from journeymap.ingest.store import has_table
from journeymap.journey.definition import JourneyDefinition
from journeymap.state.fold import (
    LAST_VISIT_COLUMNS,
    NO_MARK,
    SPARK_JOURNEY_KEY,
    STATE_VERSION,
    UNIT_COLUMNS_OF_C,
    FoldReport,
    LevelFold,
    forget_moves,
    meta,
)
from journeymap.state.spark_files import MANIFEST, commit, dates_past, drop_kept, export_events, read_manifest, sweep

BUCKETS = 16
"""Buckets of the state's visits and units: a fold rewrites the buckets of the units it changed."""

NAMES = ("events", "visits", "units")

RECENT = "_sf_recent_events"
"""The journey events of the dates past a level's mark (_register_recent)."""

_VIEWS = (RECENT, "_sf_new", "_sf_current", "_sf_added_visits", "_sf_classified", "_sf_changed", "_sf_appended",
          "_sf_appended_ids", "_sf_cut", "_sf_old_units", "_sf_old_visits", "_sf_old_events", "_sf_tail_events",
          "_state_touched", "_state_fresh", "_state_whole", "_state_a", "_state_v", "_sf_touched_rows",
          *(f"_sf_write_{name}" for name in NAMES))
"""The temporary views a fold registers and drops when done."""


def spark_fold(session, con, definition: JourneyDefinition, root: str | Path, levels=LEVELS,
               buckets: int = BUCKETS, rebuild: bool = False) -> FoldReport:
    """Bring the Spark state under `root` up to the store's journey events; `rebuild` starts from scratch.

    The store `con` (DuckDB) writes the changed event dates; Spark computes the state and writes the changed
    buckets; the manifest's rename commits both. Returns the same report as state.fold.fold."""
    started = time.perf_counter()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if not has_table(con, "journey_events"):
        return FoldReport([], 0, 0.0)
    old = read_manifest(root)
    sweep(root, old)  # what a fold killed before its commit wrote: its serial is the one this fold takes
    serial = int(old.get("serial", 0)) + 1
    known = meta(con)
    version = int(known.get("journey.version", 0))
    manifest = {**old, **export_events(con, root, old, serial), "serial": serial,
                "levels": dict(old.get("levels", {}))}
    if not manifest["events"]:  # every event gone (an unload, an erase): no state, and none to read
        manifest["levels"] = {}
        commit(root, manifest)
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [SPARK_JOURNEY_KEY, str(version)])
        return FoldReport([], version, round(time.perf_counter() - started, 3))
    _register(session, root, manifest)
    engine = Engine(ibis.pyspark.connect(session), "pyspark")
    key = annotation_key(definition)
    done = []
    for level in levels:
        before = old.get("levels", {}).get(level, {})
        report, manifest["levels"][level] = _fold_level(session, engine, con, definition, level, key, root, before,
                                                        known, serial, buckets, rebuild, manifest)
        manifest["levels"][level].update(annotation=key, journey=version)
        done.append(report)
    for name in _VIEWS:
        session.catalog.dropTempView(name)
    commit(root, manifest)
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [SPARK_JOURNEY_KEY, str(version)])
    forget_moves(con)
    return FoldReport(done, version, round(time.perf_counter() - started, 3))


def fold_workspace(con, workspace_path: str | Path, definition: JourneyDefinition, rebuild: bool = False):
    """The Spark fold of a workspace whose journeymap.yml says `engine: {backend: spark}`: the state under
    `<engine.path>/state/`. Returns (report, None), or (None, why not) when `engine.path` is a URI: the store
    writes the event dates with DuckDB, which writes a local folder only."""
    root = state_root(workspace_path, definition)
    if root is None:
        return None, (f"the journey state is not folded on Spark: engine.path {definition.engine.path!r} is a URI, "
                      "and the store writes the events by date to a local folder only; analyses compute from the "
                      "events")
    return spark_fold(spark_session_for(definition.engine), con, definition, root, rebuild=rebuild), None


def drop_replaced(workspace_path: str | Path, definition: JourneyDefinition) -> None:
    """Remove the files the last fold replaced, which its commit kept for readers of the state before it
    (spark_files.commit): `journeymap erase` leaves nothing of the erased on disk."""
    root = state_root(workspace_path, definition)
    if root is not None and (root / MANIFEST).exists():
        drop_kept(root)


def state_root(workspace_path: str | Path, definition: JourneyDefinition) -> Path | None:
    """Where a Spark workspace's state lives (None: `engine.path` is a URI, which gets no Spark state)."""
    folder = export_folder(definition.engine, workspace_path)
    if uses_uri(folder) and not folder.startswith("file://"):
        return None
    return Path(folder.removeprefix("file://")) / "state"


def status(con, workspace_path: str | Path, definition: JourneyDefinition) -> list[dict]:
    """Per level, whether the Spark state is current and why not, from its manifest alone (no Spark session):
    `journeymap state` on a Spark workspace. The unit count is the manifest's; events and visits are not
    counted (that would take a Spark job)."""
    root = state_root(workspace_path, definition)
    levels = read_manifest(root).get("levels", {}) if root is not None else {}
    key, journey = annotation_key(definition), int(meta(con).get("journey.version", 0))
    out = []
    for level in LEVELS:
        state = levels.get(level)
        why = ("engine.path is a URI: no journey state is folded on Spark" if root is None else
               _rebuild_reason(state or {}, key, int((state or {}).get("buckets", BUCKETS))))
        if why is None and state.get("journey") != journey:
            why = "events arrived since"
        elif why is not None and why.startswith("journeymap.yml"):
            why += " since"
        out.append({"level": level, "current": why is None, "stale_because": why,
                    "units": state.get("units") if state else None, "events": None, "visits": None})
    return out


def current_views(session, con, workspace_path: str | Path, definition: JourneyDefinition) -> dict:
    """The Spark state's events and visits registered as the temporary views `state_events_L` and
    `state_visits_L` for each level whose state is current (this definition's annotation, the store's journey
    version): `Engine.journey` of a Spark workspace, as state.read.current_tables is of a DuckDB one. Levels whose
    Spark state is stale (or missing) are left out, and the engine computes them from the events."""
    root = state_root(workspace_path, definition)
    if root is None:
        return {}
    levels = read_manifest(root).get("levels", {})
    key, journey = annotation_key(definition), int(meta(con).get("journey.version", 0))
    out = {}
    for level, state in levels.items():
        if (state.get("annotation"), state.get("journey"), state.get("state")) != (key, journey, STATE_VERSION):
            continue
        names = {}
        for name in ("events", "visits"):
            df = _read(session, root, state, name)
            if df is None:
                break
            df.createOrReplaceTempView(names.setdefault(name, f"state_{name}_{level}"))
        else:
            out[(level, key)] = names
    return out


def read_state(session, root: str | Path, level: str, name: str):
    """A DataFrame of the Spark state's table `name` (events, visits, units) of `level`."""
    root = Path(root)
    return _read(session, root, read_manifest(root).get("levels", {}).get(level, {}), name)


def _register(session, root: Path, manifest: dict) -> None:
    """journey_events, persons and accounts as the temporary views the engine's expressions read."""
    session.read.parquet(*[str(root / p) for p in sorted(manifest["events"].values())]).createOrReplaceTempView(
        "journey_events")
    for table in ("persons", "accounts"):
        session.read.parquet(str(root / manifest[table])).createOrReplaceTempView(table)


def _register_recent(session, root: Path, manifest: dict, mark: int) -> None:
    """`_sf_recent_events`: the journey events of the dates holding an event past `mark` (a date whose highest seq
    the manifest does not know is read too), where the fold's new events are. A daily fold then reads the days the
    new events fall on, not every date of the history: each date is a file to open (docs/spark.md)."""
    dates = dates_past(manifest, mark)
    if dates:
        schema = session.table("journey_events").schema
        session.read.schema(schema).parquet(*[str(root / manifest["events"][d]) for d in dates]
                                            ).createOrReplaceTempView(RECENT)
    else:
        session.table("journey_events").where("false").createOrReplaceTempView(RECENT)


def _read(session, root: Path, level_manifest: dict, name: str):
    from pyspark.sql.types import StructType

    folders = sorted(level_manifest.get("tables", {}).get(name, {}).values())
    schema = level_manifest.get("schemas", {}).get(name)
    if not folders:
        return session.createDataFrame([], StructType.fromJson(json.loads(schema))) if schema else None
    reader = session.read.schema(StructType.fromJson(json.loads(schema))) if schema else session.read
    return reader.parquet(*[str(root / f) for f in folders])


def _rebuild_reason(before: dict, key: str, buckets: int) -> str | None:
    if not before:
        return "no state yet"
    if before.get("state") != STATE_VERSION:
        return f"the state was written by layout {before.get('state')}, this journeymap reads {STATE_VERSION}"
    if before.get("annotation") != key:
        return "journeymap.yml's stages, touchpoints or personas changed"
    if int(before.get("buckets", 0)) != buckets:
        return f"the state has {before.get('buckets')} buckets, this fold writes {buckets}"
    return None


def _view(session, name: str, sql: str):
    """Compute `sql` now and keep its rows under `name` for the statements after. Computed now, not cached
    lazily: Spark Connect resolves a plan's views only when it runs, and `_state_a` and `_state_v` are
    registered twice (the changed units, then the appended ones); Spark's cache also took longer (the demo
    test: 144 s against 82 s)."""
    df = session.sql(sql).localCheckpoint()
    df.createOrReplaceTempView(name)
    return df


def _fold_level(session, engine, con, definition, level, key, root, before, known, serial, buckets, rebuild, exported):
    started = time.perf_counter()
    reason = "asked" if rebuild else _rebuild_reason(before, key, buckets)
    if reason:
        before = {}
    mark = None if reason else before.get("seq")
    since = before.get("journey")
    whole_since = known.get(WHOLE_KEY)
    named = not (reason or mark is None or since is None or not whole_since or int(whole_since) > int(since))
    mark = NO_MARK if mark is None else int(mark)
    _register_recent(session, root, exported, mark)
    sql = _statements(engine, definition, level, key, mark)
    # the state's events are read only when a fold needs them (late units, units recomputed that the state had):
    # listing every date's folder costs seconds
    old = {name: _read(session, root, before, name) for name in ("visits", "units")}
    if old["units"] is None:  # no state: the rebuild's comparison finds every unit new
        old["units"] = session.sql("SELECT CAST(NULL AS STRING) AS unit_id, CAST(NULL AS STRING) AS persona, "
                                   "CAST(0 AS BIGINT) AS events, CAST(0 AS BIGINT) AS signature, "
                                   "CAST(NULL AS TIMESTAMP_NTZ) AS last_ts, CAST(0 AS BIGINT) AS last_seq, "
                                   "CAST(NULL AS BIGINT) AS last_visit_no, CAST(NULL AS STRING) AS last_stage, "
                                   "CAST(NULL AS TIMESTAMP_NTZ) AS last_entered_at, "
                                   "CAST(NULL AS BIGINT) AS last_entry_seq WHERE false")
    for name in ("visits", "units"):
        if old[name] is not None:
            old[name].createOrReplaceTempView(f"_sf_old_{name}")
    if named:
        moved = [(u,) for (u,) in con.execute(f"SELECT DISTINCT unit_id FROM {MOVES} WHERE level = ? AND version > ?",
                                               [level, int(since)]).fetchall()] if has_table(con, MOVES) else []
        session.createDataFrame(moved, "unit_id string").createOrReplaceTempView("_state_touched")
        _view(session, "_sf_new", sql.news)
        # without moved units, the touched units' whole history is not read: every date would be opened for none
        _view(session, "_sf_current", f"{sql.touched} UNION ALL {sql.delta}" if moved else sql.delta)
        known_units = ("(SELECT * FROM _sf_old_units WHERE unit_id IN (SELECT unit_id FROM _sf_current) "
                       "OR unit_id IN (SELECT unit_id FROM _state_touched))")
    else:
        _view(session, "_sf_current", sql.current)
        known_units = "_sf_old_units"
    differs = "(c.events <> s.events OR c.signature <> s.signature OR NOT (c.persona <=> s.persona))"
    gained = ("(c.new_events > 0 AND c.persona = s.persona AND s.events + c.new_events = c.events "
              "AND (s.signature ^ c.new_signature) = c.signature)")
    _view(session, "_sf_classified", f"""
        SELECT coalesce(c.unit_id, s.unit_id) AS unit_id, s.unit_id IS NULL AS new, c.unit_id IS NULL AS gone,
               coalesce(c.unit_id IS NOT NULL AND s.unit_id IS NOT NULL AND {gained}, false) AS gained,
               coalesce(c.new_first_ts < s.last_ts, false) AS late, c.new_first_ts,
               coalesce(c.new_events = c.events, false) AS fresh
        FROM _sf_current c FULL JOIN {known_units} s ON c.unit_id = s.unit_id
        WHERE (c.unit_id IS NULL AND s.events > 0) OR s.unit_id IS NULL
           OR (c.unit_id IS NOT NULL AND {differs})""")
    changed, fresh, new, gone, appended, late, latest = session.sql(
        "SELECT count_if(NOT gained), count_if(NOT gained AND fresh), count_if(new), count_if(gone), "
        "count_if(gained AND NOT late), count_if(gained AND late), (SELECT max(max_seq) FROM _sf_current) "
        "FROM _sf_classified").first()
    session.sql("SELECT unit_id FROM _sf_classified WHERE NOT gained").createOrReplaceTempView("_sf_changed")
    session.sql("SELECT unit_id, late, new_first_ts FROM _sf_classified WHERE gained").createOrReplaceTempView(
        "_sf_appended")
    session.sql("SELECT unit_id FROM _sf_appended").createOrReplaceTempView("_sf_appended_ids")
    if old["visits"] is not None:
        _view(session, "_sf_cut", _CUT)
    else:  # no state (a rebuild): nothing is appended
        session.sql("SELECT CAST(NULL AS STRING) AS unit_id, false AS late, CAST(NULL AS BIGINT) AS visit_no, "
                    "CAST(NULL AS TIMESTAMP_NTZ) AS entered_at, CAST(NULL AS BIGINT) AS entry_seq WHERE false"
                    ).createOrReplaceTempView("_sf_cut")
    added = {name: [] for name in NAMES}
    if changed:
        _changed_rows(session, sql, added, whole=int(changed) - int(fresh), fresh=int(fresh))
    changed_known = bool(int(changed) - int(new)) or bool(late)
    if changed_known and (events := _read(session, root, before, "events")) is not None:
        old["events"] = events
        events.createOrReplaceTempView("_sf_old_events")
    if appended or late:
        _tail_rows(session, sql, added, late=bool(late))
    added["units"].append(_unit_rows(session, added["visits"]))
    tables, schemas = _write(session, root, level, before, serial, buckets, old, added)
    if named:
        latest = max(mark, latest) if latest is not None else mark
    elif latest is None:  # no unit of the level has an event: as state.fold, the mark is the highest event looked at
        latest = exported.get("events_seq")
    n_units = int(before.get("units", 0)) + int(new) - int(gone)
    level_manifest = {"state": STATE_VERSION, "buckets": buckets, "tables": tables, "schemas": schemas,
                      "seq": latest if latest not in (None, NO_MARK) else None, "units": n_units}
    report = LevelFold(level, "rebuild" if reason else "fold" if changed or appended or late else "unchanged",
                       reason or "", n_units, int(changed) + int(appended) + int(late),
                       round(time.perf_counter() - started, 3), int(appended), int(new), int(late),
                       "named" if named else "all")
    return report, level_manifest


def _unit_rows(session, visits: list):
    """The rows of state_units_L for the changed and appended units, each with its last visit among the visits
    the fold adds (a changed unit's are all of them, an appended unit's all from its cut on)."""
    if visits:
        _union(visits).createOrReplaceTempView("_sf_added_visits")
    else:
        session.sql("SELECT CAST(NULL AS STRING) AS unit_id, CAST(NULL AS BIGINT) AS visit_no, "
                    "CAST(NULL AS STRING) AS stage, CAST(NULL AS TIMESTAMP_NTZ) AS entered_at, "
                    "CAST(NULL AS BIGINT) AS entry_seq WHERE false").createOrReplaceTempView("_sf_added_visits")
    return session.sql(f"""
        SELECT {UNIT_COLUMNS_OF_C}, {LAST_VISIT_COLUMNS}
        FROM _sf_current c LEFT JOIN (
            SELECT * FROM (SELECT unit_id, visit_no, stage, entered_at, entry_seq,
                                  row_number() OVER (PARTITION BY unit_id ORDER BY visit_no DESC) AS _rn
                           FROM _sf_added_visits) WHERE _rn = 1) l ON l.unit_id = c.unit_id
        WHERE c.unit_id IN (SELECT unit_id FROM _sf_changed UNION ALL SELECT unit_id FROM _sf_appended)""")


def _union(frames: list):
    """The rows of every DataFrame in `frames` (at least one), columns matched by name."""
    return functools.reduce(lambda a, b: a.unionByName(b), frames)


def _changed_rows(session, sql, added, whole: int, fresh: int) -> None:
    """The rows of the changed units, from all their events (`whole` of them), or from their events past the mark
    when they have no others (`fresh`: new customers). As in state.fold, the statement over every date's events
    runs only when some unit needs its whole history: a day of new customers alone reads the new days' events only."""
    session.sql("SELECT unit_id FROM _sf_classified WHERE NOT gained AND fresh").createOrReplaceTempView(
        "_state_fresh")
    session.sql("SELECT unit_id FROM _sf_classified WHERE NOT gained AND NOT fresh").createOrReplaceTempView(
        "_state_whole")
    parts = [session.sql(q) for q, n in ((sql.annotated, whole), (sql.fresh, fresh)) if n]
    a = _union(parts).localCheckpoint()
    a.createOrReplaceTempView("_state_a")
    added["visits"].append(_view(session, "_state_v", sql.visits))
    added["events"].append(session.sql(sql.events).localCheckpoint())


_AFTER_CUT = "(c.visit_no IS NULL OR e.ts > c.entered_at OR (e.ts = c.entered_at AND e.seq > c.entry_seq))"
"""An event of an appended unit after its cut visit's entry: what the tail refolds."""

_CUT = """
    SELECT a.unit_id, a.late, v.persona, v.stage, v.entered_at, v.entry_seq, v.visit_no
    FROM _sf_appended a LEFT JOIN (
        SELECT * FROM (
            SELECT v.unit_id, v.persona, v.stage, v.entered_at, v.entry_seq, v.visit_no,
                   row_number() OVER (PARTITION BY v.unit_id ORDER BY v.visit_no DESC) AS _rn
            FROM _sf_old_visits v JOIN _sf_appended a ON a.unit_id = v.unit_id AND v.entered_at <= a.new_first_ts)
        WHERE _rn = 1) v
    ON v.unit_id = a.unit_id"""
"""Per appended unit, its last visit entered before its earliest new event (none: the whole tail is refolded)."""


def _tail_rows(session, sql, added, late: bool) -> None:
    """state.fold._fold_tails on Spark: the appended units' visits and events from their cut on (`late`: some of
    them have late events, so their folded events after the cut are read again; `_sf_old_events` is registered)."""
    tail = session.sql(sql.appended)
    entries = session.sql("SELECT unit_id, entered_at AS ts, entry_seq AS seq, stage AS stage_hit, persona "
                          "FROM _sf_cut WHERE visit_no IS NOT NULL")
    a = tail.unionByName(entries, allowMissingColumns=True)
    if late:
        columns = ", ".join(f"e.{c}" for c in ANNOTATED_COLUMNS)
        a = a.unionByName(session.sql(f"SELECT {columns} FROM _sf_old_events e JOIN _sf_cut c "
                                      f"ON c.unit_id = e.unit_id AND c.late WHERE {_AFTER_CUT}"))
    a = a.localCheckpoint()
    a.createOrReplaceTempView("_state_a")
    v = _view(session, "_state_v", sql.visits)
    renumbered = ", ".join("v.visit_no + coalesce(c.visit_no - 1, 0) AS visit_no" if c == "visit_no" else f"v.{c}"
                           for c in v.columns)
    added["visits"].append(session.sql(f"SELECT {renumbered} FROM _state_v v JOIN _sf_cut c ON c.unit_id = v.unit_id")
                           .localCheckpoint())
    # every row of the tail but the entry standing for the cut visit (its event's row stays as it was)
    session.sql(sql.events).localCheckpoint().createOrReplaceTempView("_sf_tail_events")
    added["events"].append(session.sql(f"SELECT e.* FROM _sf_tail_events e JOIN _sf_cut c ON c.unit_id = e.unit_id "
                                       f"WHERE {_AFTER_CUT}"))


_REMOVED = {
    "units": "u.unit_id IN (SELECT unit_id FROM _sf_appended)",
    "visits": "c.unit_id IS NOT NULL AND (c.visit_no IS NULL OR u.visit_no >= c.visit_no)",
    "events": "c.unit_id IS NOT NULL AND c.late "
              "AND (c.visit_no IS NULL OR u.ts > c.entered_at OR (u.ts = c.entered_at AND u.seq > c.entry_seq))",
}
"""The rows of an appended unit that its tail replaces (`u`: the state's row, `c`: the unit's cut)."""


def _partition(name: str, buckets: int) -> tuple[str, str]:
    """(column, expression) of the folder a row of table `name` goes to: the events by event date (a day's new
    events land in that day's folder, so a fold of them writes only it), the visits and units by a bucket of
    unit_id (a unit's visits and its row are rewritten together)."""
    if name == "events":
        return "event_date", "date_format(ts, 'yyyy-MM-dd')"
    return "bucket", f"CAST(pmod(xxhash64(unit_id), {buckets}) AS STRING)"


def _write(session, root, level, before, serial, buckets, old, added):
    """Write the folders that hold a row that changed: their rows kept, less those replaced, plus those added.
    Returns the folders per table, and each table's schema (an empty table is read with it).

    A folder is touched by a row added or removed: for the visits and units the buckets of the units changed or
    appended; for the events the dates of the events added, and (when some unit the state had was changed, or
    some late unit is refolded from its cut: `old` then has the events) the dates of the rows they replace, which
    only a read of those units' rows in every date's folder finds."""
    from pyspark.sql import functions as F

    tables, schemas = {}, {}
    removed = {name: f"u.unit_id IN (SELECT unit_id FROM _sf_changed) OR coalesce({_REMOVED[name]}, false)"
               for name in NAMES}
    touched = []  # the folders of the rows added, and of the rows removed, of every table: one Spark job
    for name in NAMES:
        key = _partition(name, buckets)[1]
        if added[name]:
            _union(added[name]).createOrReplaceTempView(f"_sf_write_{name}")
            touched.append(f"SELECT '{name}' AS t, {key} AS k FROM _sf_write_{name}")
        if old.get(name) is not None:
            touched.append(f"SELECT '{name}' AS t, {key} AS k FROM (SELECT u.* FROM _sf_old_{name} u "
                           f"LEFT JOIN _sf_cut c ON c.unit_id = u.unit_id WHERE {removed[name]})")
    keys_of = {name: set() for name in NAMES}
    for t, k in session.sql(" UNION ".join(touched)).collect() if touched else ():
        if k is not None:
            keys_of[t].add(k)
    for name in NAMES:
        column, key = _partition(name, buckets)
        folders = dict(before.get("tables", {}).get(name, {}))
        frames = list(added[name])
        keys = keys_of[name]
        if not keys:
            tables[name], schemas[name] = folders, before.get("schemas", {}).get(name)
            continue
        kept_from = [folders[k] for k in sorted(keys) if k in folders]
        if kept_from:  # the rows of the touched folders that stay
            _read(session, root, {"tables": {name: dict(enumerate(kept_from))}, "schemas": before.get("schemas", {})},
                  name).createOrReplaceTempView("_sf_touched_rows")
            frames.insert(0, session.sql(f"SELECT u.* FROM _sf_touched_rows u LEFT JOIN _sf_cut c ON c.unit_id = u.unit_id "
                                         f"WHERE NOT ({removed[name]})"))
        df = _union(frames)
        schemas[name] = df.schema.json()
        folder = f"state_{name}_{level}/v={serial}"
        df.withColumn(column, F.expr(key)).repartition(column).write.partitionBy(column).parquet(str(root / folder))
        for k in keys:
            folders.pop(k, None)
        folders.update({p.name.split("=", 1)[1]: f"{folder}/{p.name}" for p in (root / folder).glob(f"{column}=*")})
        tables[name] = folders
    return tables, schemas


@dataclass(frozen=True)
class _Statements:
    current: str
    touched: str
    news: str
    delta: str
    annotated: str
    fresh: str
    appended: str
    visits: str
    events: str


def _statements(engine, definition, level: str, key: str, mark: int) -> _Statements:
    """state.fold's statements in Spark SQL; the Ibis expressions compiled for Spark."""
    ev = unit_events(engine, level)
    ev_sql, units_sql = engine.backend.compile(ev), engine.backend.compile(units(engine, definition, level))
    recent_sql = engine.backend.compile(unit_events(engine, level, RECENT))
    new = f"seq > {mark}"

    def current_of(where: str) -> str:
        return f"""
        SELECT s.unit_id, coalesce(p.persona, '{UNASSIGNED}') AS persona, s.events, s.signature,
               s._last.ts AS last_ts, s._last.seq AS last_seq, s.max_seq,
               s.new_events, coalesce(s.new_signature, CAST(0 AS BIGINT)) AS new_signature, s.new_first_ts
        FROM (SELECT unit_id, count(*) AS events, bit_xor(xxhash64(seq)) AS signature,
                     max(named_struct('ts', ts, 'seq', seq)) AS _last, max(seq) AS max_seq,
                     count(*) FILTER (WHERE {new}) AS new_events,
                     bit_xor(xxhash64(seq)) FILTER (WHERE {new}) AS new_signature,
                     min(ts) FILTER (WHERE {new}) AS new_first_ts
              FROM ({ev_sql}) {where} GROUP BY unit_id) s
        LEFT JOIN ({units_sql}) p ON p.unit_id = s.unit_id"""

    news = f"""
        SELECT unit_id, count(*) AS new_events, bit_xor(xxhash64(seq)) AS new_signature, min(ts) AS new_first_ts,
               max(named_struct('ts', ts, 'seq', seq)) AS _last, max(seq) AS max_seq
        FROM ({recent_sql}) WHERE {new} AND unit_id NOT IN (SELECT unit_id FROM _state_touched) GROUP BY unit_id"""
    later = "(s.unit_id IS NULL OR n._last > named_struct('ts', s.last_ts, 'seq', s.last_seq))"
    delta = f"""
        SELECT n.unit_id, coalesce(p.persona, '{UNASSIGNED}') AS persona,
               coalesce(s.events, 0) + n.new_events AS events,
               coalesce(s.signature, CAST(0 AS BIGINT)) ^ n.new_signature AS signature,
               CASE WHEN {later} THEN n._last.ts ELSE s.last_ts END AS last_ts,
               CASE WHEN {later} THEN n._last.seq ELSE s.last_seq END AS last_seq,
               n.max_seq, n.new_events, n.new_signature, n.new_first_ts
        FROM _sf_new n LEFT JOIN _sf_old_units s ON s.unit_id = n.unit_id
        LEFT JOIN ({units_sql}) p ON p.unit_id = n.unit_id
        UNION ALL
        SELECT s.unit_id, coalesce(p.persona, '{UNASSIGNED}') AS persona, s.events, s.signature, s.last_ts,
               s.last_seq, CAST(NULL AS BIGINT) AS max_seq, CAST(0 AS BIGINT) AS new_events,
               CAST(0 AS BIGINT) AS new_signature, CAST(NULL AS TIMESTAMP_NTZ) AS new_first_ts
        FROM _sf_old_units s LEFT JOIN ({units_sql}) p ON p.unit_id = s.unit_id
        WHERE coalesce(p.persona, '{UNASSIGNED}') <> s.persona AND s.events > 0
          AND s.unit_id NOT IN (SELECT unit_id FROM _state_touched) AND s.unit_id NOT IN (SELECT unit_id FROM _sf_new)"""
    ids = {"unit_id": ev.unit_id.type()}
    after = ibis.literal(mark, type="int64")
    annotated = annotate(engine, definition, level, only=ibis.table(ids, name="_state_whole"))
    a = ibis.table(annotated.schema(), name="_state_a")
    v = ibis.table(visits(a).schema(), name="_state_v")
    compile = engine.backend.compile
    return _Statements(
        current_of(""), current_of("WHERE unit_id IN (SELECT unit_id FROM _state_touched)"), news, delta,
        compile(annotated),
        compile(annotate(engine, definition, level, only=ibis.table(ids, name="_state_fresh"), after_seq=after,
                         events=RECENT)),
        compile(annotate(engine, definition, level, only=ibis.table(ids, name="_sf_appended_ids"), after_seq=after,
                         events=RECENT)),
        compile(visits(a)), compile(with_current_stage(a, v)))
