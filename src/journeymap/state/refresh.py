"""A refresh: raw events past the retention dropped, identity stitched from the events, then the journey state
folded in (state.fold)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from journeymap.identity import stitch
from journeymap.identity.stitch import StitchResult
from journeymap.journey.definition import JourneyDefinition
from journeymap.state.fold import FoldReport, fold, forget_before
from journeymap.state.spark_tables import refresh_on_spark


@dataclass
class RefreshResult:
    stitch: StitchResult
    state: FoldReport | None
    """None without a journey definition: there is nothing to fold the events into."""
    risk: Any = None
    """What the churn model did after the fold (insights.risk.stored.RiskRefresh): set by the callers above
    this layer (Workspace.refresh, the server's loader thread), which own the models; None when not run."""
    act: Any = None
    """What the playbooks did after the churn scores (act.evaluate.ActReport): new entries per playbook; set by
    the same callers; None when not run."""
    spark_state: FoldReport | None = None
    """On a Spark workspace, the Spark fold of the journey state (state.spark_fold), set by Workspace.refresh;
    None elsewhere, or when it did not run (`spark_state_note` says why)."""
    spark_tables: dict[str, list[str]] | None = None
    """On a Spark workspace, the Parquet paths that together hold each journey table now: the Spark state's files
    (the event-date folders, persons and accounts), or one file or folder each where they were written whole
    (state.spark_tables.refresh_on_spark)."""
    spark_state_note: str = ""
    """Why the Spark fold did not run or failed (a URI `engine.path`, a Spark error); empty when it ran."""
    retention: dict = field(default_factory=dict)
    """{raw_events, before, dropped} when journeymap.yml sets `retention.raw_events`: events older than `before`
    (the latest event's time less the retention) were dropped by this refresh; empty otherwise."""


def drop_expired(con: duckdb.DuckDBPyConnection, raw_events: str, seconds: float) -> dict:
    """Delete the events older than the latest event's time less `seconds`, and their rows in the journey state,
    whose units keep their stage visits (state.fold.forget_before), in one transaction; returns what was done."""
    latest = con.execute("SELECT max(ts) FROM events").fetchall()[0][0]
    if latest is None:
        return {"raw_events": raw_events, "before": None, "dropped": 0}
    before = con.execute("SELECT ?::TIMESTAMP - to_microseconds(?::BIGINT)",
                         [latest, int(seconds * 1e6)]).fetchall()[0][0]
    con.begin()
    try:
        dropped = con.execute("DELETE FROM events WHERE ts < ?", [before]).fetchall()[0][0]
        if dropped:
            forget_before(con, before)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return {"raw_events": raw_events, "before": before, "dropped": dropped}


def refresh(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition | None, rebuild: bool = False,
            workspace_path: str | Path | None = None) -> RefreshResult:
    """Drop the expired raw events, stitch, then fold: with DuckDB, or on a Spark engine with Spark jobs when
    `workspace_path` says where its Parquet lives (state.spark_tables.refresh_on_spark: an export that fails
    raises); without it a Spark workspace gets no fold here, and its caller folds it."""
    kept = definition.retention if definition is not None else None
    expired = drop_expired(con, kept.raw_events, kept.raw_events_seconds) if kept and kept.raw_events else {}
    result = RefreshResult(stitch(con), None, retention=expired)
    if definition is None:
        return result
    if definition.engine.backend != "spark":
        result.state = fold(con, definition, rebuild=rebuild)
    elif workspace_path is not None:  # the state folded by Spark jobs, its files the analyses' journey tables
        result.spark_tables, result.spark_state, result.spark_state_note = refresh_on_spark(
            con, workspace_path, definition, rebuild)
    return result
