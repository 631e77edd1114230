"""The load log, and undoing a load.

Every file load (and every journal segment the server loads) is a row of `loads`: its file, source, the
hash of the source mapping it went through, its counts and status. An event's load is in its `seq`
(seq // SEQ_PER_LOAD, see the `event_lineage` view); a dead letter names its load.

`unload` removes a load's events and dead letters and marks it `unloaded` (the row stays, as a record).
What derives from events (identity, journey tables) is the workspace's to rebuild afterwards
(`Workspace.unload` does). `ingest --replace` unloads the earlier loads of the same file and source inside
the new load's transaction (`Loader.load(replacing=...)`): both commit together or neither does.

What an unload cannot give back: a row is stored once. When a later load (another file, or the same file
again) held a row identical to one of this load's, it was counted there as a duplicate and not stored
again; unloading this load removes that row too, and so does a dead letter a later load saw again.
Re-ingesting the later file restores those rows (they are no longer duplicates). `unload` names the
later loads that reported duplicates or rejections, so the user knows which files to re-ingest.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb

from journeymap.errors import UserError
from journeymap.ingest.loader import SEQ_PER_LOAD

__all__ = ["UNLOADED", "UnknownLoad", "earlier_loads", "list_loads", "unload", "unload_in_transaction"]

UNLOADED = "unloaded"

_COLUMNS = ("load_id", "file", "source_name", "mapping_hash", "rows_read", "accepted", "duplicate", "rejected",
            "status", "started_at", "finished_at", "unloaded_at", "replaced_by")


class UnknownLoad(UserError):
    """No load has that id, or it was unloaded already."""


def list_loads(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every load, oldest first: load_id, file, source, mapping_hash, the counts, status and its times."""
    rows = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM loads ORDER BY load_id").fetchall()
    keys = ["source" if c == "source_name" else c for c in _COLUMNS]
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _load(con: duckdb.DuckDBPyConnection, load_id: int) -> dict:
    found = [d for d in list_loads(con) if d["load_id"] == load_id]
    if not found:
        ids = [d["load_id"] for d in list_loads(con)]
        known = f"loads are {_ranges(ids)}" if ids else "there are no loads yet"
        raise UnknownLoad(f"no load {load_id} ({known})")
    load = found[0]
    if load["status"] == UNLOADED:
        by = f" (replaced by load {load['replaced_by']})" if load["replaced_by"] is not None else ""
        raise UnknownLoad(f"load {load_id} ({load['file']}) was already unloaded at {_when(load['unloaded_at'])}{by}: "
                          "nothing to remove")
    return load


def unload_in_transaction(con: duckdb.DuckDBPyConnection, load_id: int, replaced_by: int | None = None) -> dict:
    """Remove load `load_id`'s events and dead letters and mark it unloaded, in the caller's transaction.
    Returns what was removed: {load_id, file, source, events, dead_letters}. UnknownLoad if there is no such
    load or it is unloaded already."""
    load = _load(con, load_id)
    low, high = load_id * SEQ_PER_LOAD, (load_id + 1) * SEQ_PER_LOAD  # a range: DuckDB skips row groups by zone maps
    events = con.execute("DELETE FROM events WHERE seq >= ? AND seq < ?", [low, high]).fetchall()[0][0]
    dead = con.execute("DELETE FROM dead_letters WHERE load_id = ?", [load_id]).fetchall()[0][0]
    con.execute("UPDATE loads SET status = ?, unloaded_at = now()::TIMESTAMP, replaced_by = ? WHERE load_id = ?",
                [UNLOADED, replaced_by, load_id])
    return {"load_id": load_id, "file": load["file"], "source": load["source"], "events": events, "dead_letters": dead}


def unload(con: duckdb.DuckDBPyConnection, load_id: int) -> dict:
    """Unload one load in a transaction of its own: what `unload_in_transaction` returns, plus `later`: the
    live loads after it that reported duplicates or rejections, whose files may need re-ingesting (the
    module's docstring says why)."""
    con.execute("BEGIN TRANSACTION")
    try:
        removed = unload_in_transaction(con, load_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    later = [d for d in list_loads(con)
             if d["load_id"] > load_id and d["status"] != UNLOADED and (d["duplicate"] or d["rejected"])]
    removed["later"] = [{k: d[k] for k in ("load_id", "file", "source", "duplicate", "rejected")} for d in later]
    return removed


def earlier_loads(con: duckdb.DuckDBPyConnection, file: str | Path, source_name: str | None) -> list[int]:
    """The loads not yet unloaded of this file (the same path as given, or the same file from the current
    folder) with this source name (None: loaded without --source), oldest first: what `ingest --replace` replaces."""
    path = Path(file)
    return [d["load_id"] for d in list_loads(con)
            if d["status"] != UNLOADED and d["source"] == source_name and _same_file(d["file"], path)]


def _same_file(stored: str, path: Path) -> bool:
    return stored == str(path) or Path(stored).resolve() == path.resolve()


def _when(ts: datetime | None) -> str:
    return "an unknown time" if ts is None else f"{ts:%Y-%m-%d %H:%M:%S} UTC"


def _ranges(ids: list[int]) -> str:
    """1, 2, 3, 5 -> '1-3, 5'."""
    out: list[str] = []
    start = prev = ids[0]
    for i in [*ids[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(out)
