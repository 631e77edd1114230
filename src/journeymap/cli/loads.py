"""`journeymap loads` and `journeymap unload LOAD_ID`: the load log, and undoing one load (ingest/loads.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, print_json, shown_time, workspace_for
from journeymap.cli.forward import read_report


def register(app: typer.Typer) -> None:
    @app.command()
    def loads(workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False):
        """List the loads: id, file, source, mapping hash, rows read, accepted, duplicate, rejected, status, when it
        started (UTC). --json adds when each finished and was unloaded, and whether its mapping changed since."""
        with workspace_for(workspace) as ws:
            rows = read_report(ws, "loads")["loads"]  # the server's answer while it holds the store (cli/forward.py)
        if as_json:
            print_json({"loads": rows})
            return
        out = Console()
        table = Table("load", "file", "source", "mapping", "rows", "accepted", "duplicate", "rejected", "status", "when")
        for d in rows:
            mapping = d["mapping_hash"] or ""
            if d["mapping_changed"] and d["status"] != "unloaded":
                mapping += " (changed since)"
            status = d["status"] + (f" (by {d['replaced_by']})" if d["replaced_by"] is not None else "")
            table.add_row(str(d["load_id"]), escape(d["file"]), escape(d["source"] or ""), mapping, f"{d['rows_read']:,}",
                          f"{d['accepted']:,}", f"{d['duplicate']:,}", f"{d['rejected']:,}", status,
                          shown_time(d["started_at"]))
        out.print(table)
        live = [d for d in rows if d["status"] != "unloaded"]
        out.print(f"{len(rows):,} loads, {len(live):,} live; times are UTC. "
                  f"Undo one with `journeymap unload LOAD_ID --workspace {workspace}`", highlight=False, soft_wrap=True)
        if any(d["mapping_changed"] for d in live):
            out.print(f"a mapping changed since it loaded a file: `journeymap ingest FILE --source SOURCE --replace "
                      f"--workspace {workspace}` reloads it through the new mapping", highlight=False, soft_wrap=True)

    @app.command()
    def unload(
        load_id: Annotated[int, typer.Argument(help="The load's id, from `journeymap loads`.")],
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ):
        """Undo a load: remove its events and dead letters, rebuild identity and the journey, mark it unloaded.

        A row a later load held too was stored once, counted there as a duplicate: it leaves with this load;
        re-ingest the later file to restore it (the later loads that reported duplicates are named)."""
        with workspace_for(workspace) as ws:
            removed = ws.unload(load_id)
        if as_json:
            print_json(removed)
            return
        out = Console()
        source = f", source {removed['source']}" if removed["source"] else ""
        out.print(f"unloaded load {load_id} ({removed['file']}{source}): removed {removed['events']:,} events and "
                  f"{removed['dead_letters']:,} dead letters; identity and journey tables rebuilt",
                  highlight=False, soft_wrap=True)
        for d in removed["later"]:
            flag = f" --source {d['source']}" if d["source"] else ""
            out.print(f"  load {d['load_id']} ({d['file']}) reported {d['duplicate']:,} duplicates and "
                      f"{d['rejected']:,} rejections: any it shared with load {load_id} left with it; restore them with "
                      f"`journeymap ingest {d['file']}{flag} --workspace {workspace}`", highlight=False, soft_wrap=True)
