"""A workspace's backup: a folder with a consistent copy of the store, journeymap.yml and the journal.

    OUT/backup.json                    what it is: when, the schema version, the segments, the events in the store
    OUT/journeymap.duckdb              the store, copied in one transaction (COPY FROM DATABASE): one moment of it
    OUT/journeymap.yml                 when the workspace has one
    OUT/journal/seg-N.jsonl            every segment not yet loaded at that moment (the open one up to its last
                                       whole record), and journal/quarantine.jsonl

`write_backup` runs on a connection that holds the store (the CLI's own, or the server's writer connection
with its loader paused: server/admin.py), so no segment is loaded while it copies: each event acknowledged
before the backup started is in the copied store or in a copied segment. `journeymap restore` copies these
back and loads the segments (duplicates are skipped on message_id, as on every load). docs/store.md, "Backup
and restore".
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from journeymap.errors import InputError, WorkspaceError
from journeymap.ingest.journal import QUARANTINE, segment_number
from journeymap.ingest.store import DEFINITION_FILE, SCHEMA_VERSION, STORE_FILE, schema_version

MANIFEST = "backup.json"

__all__ = ["MANIFEST", "read_manifest", "write_backup", "check_out"]


def check_out(out: str | Path) -> Path:
    """The backup folder to write: a new one, or an empty one (a backup never overwrites anything)."""
    out = Path(out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise WorkspaceError(f"{out} already exists and is not an empty folder; a backup is written to a new folder")
    if not out.parent.is_dir():
        raise WorkspaceError(f"{out.parent}: no such folder to write the backup in")
    return out


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _copy_whole_records(src: Path, dst: Path) -> int:
    """Copy a segment up to its last newline (a record being written now was not acknowledged yet)."""
    data = src.read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    if data:
        dst.write_bytes(data)
    return len(data)


def write_backup(con: duckdb.DuckDBPyConnection, workspace: str | Path, out: str | Path) -> dict:
    """Write the backup of `workspace` to the folder `out` (new or empty) and return its manifest.

    `con` is a connection to the workspace's store; nothing may load journal segments into it meanwhile (the
    caller holds the store, or the server's loader lock)."""
    workspace, out = Path(workspace), check_out(out)
    existed = out.exists()
    out.mkdir(exist_ok=True)
    try:
        return _write(con, workspace, out)
    except BaseException:
        # A half-written backup would pass for a whole one (and block the next try at the same OUT): remove
        # what this call wrote, and the folder itself when it made it.
        if existed:
            for child in out.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _write(con: duckdb.DuckDBPyConnection, workspace: Path, out: Path) -> dict:
    journal = workspace / "journal"
    (out / "journal").mkdir()
    segments = []
    # Listed first: a segment listed here is loaded (in the store) or copied below; one made after is newer.
    for path in sorted(journal.glob("seg-*.jsonl")) if journal.is_dir() else []:
        if segment_number(path) is None or not path.is_file():
            continue
        if _copy_whole_records(path, out / "journal" / path.name):
            segments.append(path.name)
    if (journal / QUARANTINE).is_file():
        shutil.copyfile(journal / QUARANTINE, out / "journal" / QUARANTINE)
    if (workspace / DEFINITION_FILE).is_file():
        shutil.copyfile(workspace / DEFINITION_FILE, out / DEFINITION_FILE)
    alias = f"journeymap_backup_{os.getpid()}"
    tmp = out / f"{STORE_FILE}.tmp"
    source = con.execute("SELECT current_database()").fetchone()[0]
    con.execute(f"ATTACH {_lit(str(tmp))} AS {alias}")
    try:
        con.execute(f'COPY FROM DATABASE "{source}" TO {alias}')  # one transaction: the store at one moment
        events = con.execute(f"SELECT count(*) FROM {alias}.events").fetchone()[0]
    finally:
        con.execute(f"DETACH {alias}")
    os.replace(tmp, out / STORE_FILE)
    manifest = {
        "journeymap_backup": 1,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "workspace": str(workspace.absolute()),
        "schema_version": schema_version(con) or SCHEMA_VERSION,
        "events_in_store": events,
        "journal_segments": segments,
        "definition": (out / DEFINITION_FILE).is_file(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(backup: str | Path) -> dict:
    """The manifest of a backup folder; InputError saying what is missing when it is not one."""
    backup = Path(backup)
    if not backup.is_dir():
        raise InputError(f"{backup}: no such backup folder (make one with `journeymap backup OUT`)")
    try:
        manifest = json.loads((backup / MANIFEST).read_text())
    except FileNotFoundError:
        raise InputError(f"{backup} is not a journeymap backup: it has no {MANIFEST}") from None
    except ValueError as exc:
        raise InputError(f"{backup / MANIFEST}: not valid JSON ({exc})") from None
    if not (backup / STORE_FILE).is_file():
        raise InputError(f"{backup} is not a complete backup: {STORE_FILE} is missing")
    return manifest
