"""`journeymap backup OUT` and `journeymap restore BACKUP`: a consistent copy of a workspace, and back.

While `journeymap serve` holds the workspace, `backup` asks the server (`POST /-/backup` with the local token
of its server file: cli/forward.py, server/admin.py), which copies its store on its own connection with the
loader paused. `restore` never runs against a served or locked workspace. docs/store.md, "Backup and restore".
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import duckdb
import typer

from journeymap.cli.common import JsonOpt, WorkspaceOpt, err, fail_with, print_json, workspace_for
from journeymap.cli.forward import request, server_for
from journeymap.errors import WorkspaceError
from journeymap.ingest.backup import MANIFEST, check_out, read_manifest, write_backup
from journeymap.ingest.journal import Journal
from journeymap.ingest.store import DEFINITION_FILE, SCHEMA_VERSION, STORE_FILE, StoreTooNew, store_path
from journeymap.server.local import SERVER_FILE, alive, read


def _refuse_if_in_use(workspace: Path) -> None:
    """WorkspaceError when a server runs on the workspace or anything holds its store."""
    server = read(workspace)
    if server is not None and alive(server.pid):
        raise WorkspaceError(f"{workspace} is served by pid {server.pid} at {server.url}; stop the server "
                             "before restoring into it (nothing was changed)")
    store = store_path(workspace)
    if store.exists():
        try:
            duckdb.connect(str(store)).close()
        except duckdb.Error as exc:
            if "lock" in str(exc).lower():
                raise WorkspaceError(f"{store} is open in another process ({str(exc).splitlines()[0]}); stop it "
                                     "before restoring into this workspace (nothing was changed)") from None
            # a damaged or newer store is what --force replaces: not a reason to refuse


def restore_into(backup: Path, workspace: Path, force: bool) -> dict:
    manifest = read_manifest(backup)
    version = manifest.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise StoreTooNew(f"{backup} holds a store of schema version {version}, made by a newer journeymap; this "
                          f"journeymap reads schema version {SCHEMA_VERSION} and older. Upgrade journeymap "
                          "(pip install -U journeymap) to restore it; nothing was changed")
    if workspace.exists() and not workspace.is_dir():
        raise WorkspaceError(f"{workspace} is a file, not a workspace folder")
    if workspace.is_dir():
        _refuse_if_in_use(workspace)
        present = sorted(p.name for p in workspace.iterdir())
        if present and not force:
            raise WorkspaceError(f"{workspace} is not empty ({', '.join(present[:5])}{', ...' if len(present) > 5 else ''}); "
                                 "restore into a new or empty folder, or pass --force to replace its store, "
                                 f"{DEFINITION_FILE} and journal with the backup's")
        for name in (STORE_FILE, STORE_FILE + ".wal", DEFINITION_FILE, SERVER_FILE):
            (workspace / name).unlink(missing_ok=True)
        shutil.rmtree(workspace / "journal", ignore_errors=True)
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(backup / STORE_FILE, workspace / STORE_FILE)
    if (backup / DEFINITION_FILE).is_file():
        shutil.copyfile(backup / DEFINITION_FILE, workspace / DEFINITION_FILE)
    if (backup / "journal").is_dir():
        shutil.copytree(backup / "journal", workspace / "journal")
    # The segments the backup holds are loaded now (as the server would at its start): duplicates of events
    # already in the store are skipped on message_id.
    from journeymap.server.runner import StoreRunner  # the loader's machinery: only when a backup needs it

    runner = StoreRunner(workspace, Journal(workspace / "journal"))
    runner.open()
    runner.stop()  # loads every segment, stitches when events were added, closes the store
    return {"backup": str(backup), "workspace": str(workspace), "created_at": manifest.get("created_at"),
            "segments_loaded": runner.stats["segments_loaded"], "accepted": runner.stats["accepted"],
            "duplicate": runner.stats["duplicate"], "rejected": runner.stats["rejected"]}


def register(app: typer.Typer) -> None:
    @app.command()
    def backup(
        out: Annotated[Path, typer.Argument(help="A new (or empty) folder to write the backup to.")],
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ):
        """Copy the workspace (store, journeymap.yml, journal segments not yet loaded) to OUT, consistently,
        also while `journeymap serve` runs on it."""
        with workspace_for(workspace) as ws:
            target = check_out(out)
            server = server_for(ws)
            if server is None:
                manifest = write_backup(ws.con, ws.path, target)
            else:
                manifest = request(server, "POST", "/-/backup", body={"out": str(target)})
        if as_json:
            print_json({**manifest, "backup": str(target)})
            return
        err.print(f"backed up {workspace} to {target}: {manifest['events_in_store']:,} events in the store, "
                  f"{len(manifest['journal_segments'])} journal segment(s) not loaded yet "
                  f"(`journeymap restore {target} --workspace W` brings it back)", highlight=False)

    @app.command()
    def restore(
        backup: Annotated[Path, typer.Argument(help=f"A folder written by `journeymap backup` (with its {MANIFEST}).")],
        workspace: WorkspaceOpt = Path("."),
        force: Annotated[bool, typer.Option("--force", help="Replace the store, journeymap.yml and journal of a "
                                            "workspace that is not empty.")] = False,
        as_json: JsonOpt = False,
    ):
        """Bring a backup back into a new (or, with --force, an existing) workspace and load its journal segments."""
        try:
            result = restore_into(backup.absolute(), workspace.absolute(), force)
        except Exception as exc:  # noqa: BLE001 - every error leaves as a message and an exit code
            fail_with(exc)
        if as_json:
            print_json(result)
            return
        err.print(f"restored {backup} into {workspace}; {result['segments_loaded']} journal segment(s) loaded: "
                  f"{result['accepted']:,} events added, {result['duplicate']:,} already in the store", highlight=False)
