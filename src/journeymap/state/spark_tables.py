"""What a Spark workspace's refresh does after its stitch, and the journey tables its analyses read.

The refresh folds the Spark state (state.spark_fold), whose files then are the analyses' journey tables: the
events by month, persons and accounts, which the store writes only for what changed (state.spark_files). Where
there is no Spark state (a URI `engine.path`), or its files lag the store (a fold that failed or was killed),
the tables are written whole (engine.spark_backend) and read from there (docs/spark.md, "What runs where").
"""

from __future__ import annotations

from pathlib import Path

from journeymap.engine.backends import Engine, spark_engine
from journeymap.engine.spark_backend import drop_whole_exports, export_workspace, spark_engine_for, spark_session_for
from journeymap.ingest.store import has_table
from journeymap.journey.definition import JourneyDefinition
from journeymap.state.fold import meta
from journeymap.state.spark_files import read_manifest
from journeymap.state.spark_fold import current_views, fold_workspace, state_root

WHOLE_TABLES_KEY = "state.spark.whole_tables"
"""The store's journey version and highest seq when a refresh last wrote the journey tables whole (no Spark state,
or its fold failed): the analyses read those files until the Spark state's are the store's again."""


def refresh_on_spark(con, workspace_path: str | Path, definition: JourneyDefinition, rebuild: bool = False):
    """What a refresh does on a Spark workspace after its stitch (Workspace.refresh, the server's loader): the
    journey state folded by Spark jobs, whose files the analyses then read (journey_files): the store writes the
    events of the dates and months that changed, not every event. Returns (where each journey table's Parquet now
    is: a list of paths that together hold it, the fold's report or None, why it did not run).

    A fold that fails is said, not raised: the events are in, the journey tables are written whole for the
    analyses (as on a URI `engine.path`, which gets no Spark state), and the next refresh folds again. An
    export that fails raises."""
    try:
        report, note = fold_workspace(con, workspace_path, definition, rebuild)
    except Exception as exc:  # noqa: BLE001 - said in the refresh's result; the next refresh folds again
        report, note = None, (f"the journey state was not folded on Spark ({type(exc).__name__}: {exc}); "
                              "analyses compute from the events, written whole, until a refresh folds it")
    files = journey_files(con, workspace_path, definition)
    if files is None:  # no Spark state, a fold that failed before its commit, or no event left
        exported = export_workspace(con, workspace_path, definition.engine)
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [WHOLE_TABLES_KEY, _store_mark(con)])
        return {name: [path] for name, path in exported.items()}, report, note
    drop_whole_exports(definition.engine, workspace_path)  # stale since this fold's commit
    con.execute("DELETE FROM meta WHERE key = ?", [WHOLE_TABLES_KEY])
    return files, report, note


def _store_mark(con) -> str:
    """The store's journey version and highest seq, as the manifest's `events_journey:events_seq` reads."""
    version = int(meta(con).get("journey.version", 0))
    (top,) = con.execute("SELECT max(seq) FROM journey_events").fetchall()[0]
    return f"{version}:{top}"


def journey_files(con, workspace_path: str | Path, definition: JourneyDefinition) -> dict[str, list[str]] | None:
    """journey_events, persons and accounts as the Spark state's files hold them (the events' month folders the
    manifest names, and its persons and accounts files), when they reflect the store's latest stitch (the
    manifest's journey version and highest seq are the store's); None when they do not (no fold yet, a fold that
    failed or was killed), when no event is left, or on a URI `engine.path` (no Spark state)."""
    root = state_root(workspace_path, definition)
    if root is None or not has_table(con, "journey_events"):
        return None
    manifest = read_manifest(root)
    if not manifest.get("months") or not manifest.get("persons") or not manifest.get("accounts"):
        return None
    if f"{manifest.get('events_journey')}:{manifest.get('events_seq')}" != _store_mark(con):
        return None
    return {"journey_events": [str(root / p) for p in sorted(manifest["months"].values())],
            "persons": [str(root / manifest["persons"])], "accounts": [str(root / manifest["accounts"])]}


def journey_engine(con, workspace_path: str | Path, definition: JourneyDefinition) -> Engine:
    """The engine of a Spark workspace's analyses (Workspace.engine): the journey tables from the Spark state's
    files when they are the store's (journey_files), else written whole now (a local `engine.path`: they lag
    the store only after a fold failed or was killed) or read where the last refresh wrote them whole (a URI);
    and the state's events and visits of each level whose state is current (current_views)."""
    session = spark_session_for(definition.engine)
    files = journey_files(con, workspace_path, definition)
    if files is not None:
        engine = spark_engine(session, files)
    else:  # written whole by the last refresh when its fold failed (the meta key says so), else now
        lagging = state_root(workspace_path, definition) is not None and (
            meta(con).get(WHOLE_TABLES_KEY) != _store_mark(con))
        engine = spark_engine_for(con, workspace_path, definition.engine, export=lagging)
    engine.journey = current_views(session, con, workspace_path, definition)
    return engine
