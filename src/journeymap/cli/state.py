"""`journeymap refresh` and `journeymap state`: fold the events into the journey state, and say how it stands
(journeymap.state; docs/state.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, print_json, workspace_for
from journeymap.cli.forward import read_report


def register(app: typer.Typer) -> None:
    @app.command()
    def refresh(
        workspace: WorkspaceOpt = Path("."),
        rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the journey state from scratch rather than "
                                                                "fold in what changed.")] = False,
        as_json: JsonOpt = False,
    ):
        """Stitch identities and fold new events into the journey state (ingest and the server do this after
        every load; run it after editing journeymap.yml so that views read the state again)."""
        with workspace_for(workspace) as ws:
            result = ws.refresh(rebuild=rebuild)
        out = {"identity": result.stitch.to_dict(), "state": result.state.to_dict() if result.state else None,
               "risk": result.risk.to_dict() if result.risk is not None else None,
               "retention": result.retention or None,
               "act": result.act.to_dict() if result.act is not None else None,
               **({"spark_state": result.spark_state.to_dict() if result.spark_state else
                   {"note": result.spark_state_note}} if result.spark_state or result.spark_state_note else {})}
        if as_json:
            print_json(out)
            return
        console = Console()
        if result.retention:
            r = result.retention
            console.print(f"retention: {r['dropped']:,} raw events older than {r['raw_events']} before the latest event "
                          f"({r['before']:%Y-%m-%d %H:%M:%S} UTC) dropped" if r["before"] else
                          "retention: no events", highlight=False)
        console.print(f"identity: {result.stitch.persons:,} persons, {result.stitch.accounts:,} accounts, "
                      f"{result.stitch.events:,} events in {result.stitch.seconds:.1f} s", highlight=False)
        if result.spark_state_note:
            console.print(result.spark_state_note, highlight=False, soft_wrap=True)
        report, where = (result.state, "") if result.state is not None else (result.spark_state, " on Spark")
        if report is None:
            console.print("journey state: none (no journeymap.yml)", highlight=False)
            return
        for lv in report.levels:
            why = f" ({lv.reason})" if lv.reason else ""
            whole = lv.changed_units - lv.appended_units - lv.late_units - lv.new_units
            how = (f" ({lv.appended_units:,} appended, {lv.late_units:,} late, {lv.new_units:,} new, {whole:,} "
                   "recomputed whole)" if lv.mode == "fold" else "")
            console.print(f"journey state{where}, {lv.level}: {lv.mode}{why}: {lv.changed_units:,} of {lv.units:,} "
                          f"units changed{how} in {lv.seconds:.1f} s", highlight=False, soft_wrap=True)
        if result.risk is not None:
            console.print(result.risk.describe(), highlight=False, soft_wrap=True)
        if result.act is not None and result.act.playbooks:
            console.print(f"playbooks: {result.act.describe()}", highlight=False, soft_wrap=True)

    @app.command()
    def state(workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False):
        """Whether the journey state is current for the events and journeymap.yml, per unit of analysis, and its
        size; and the same for what each refresh writes beside it (churn and health scores, scored customer
        texts). What is stale is not read: analyses compute from the events until `journeymap refresh`."""
        with workspace_for(workspace) as ws:
            report = read_report(ws, "state")  # the server's answer while it holds the store (cli/forward.py)
        rows, written = report["levels"], report["refreshed"]
        if as_json:
            print_json({"levels": rows, "refreshed": written})
            return
        console = Console()
        table = Table("unit", "current", "units", "events", "visits")
        for r in rows:
            table.add_row(r["level"], "yes" if r["current"] else f"no: {r['stale_because']}",
                          *(f"{r[k]:,}" if r[k] is not None else "" for k in ("units", "events", "visits")))
        console.print(table)
        other = Table("written at refresh", "table", "current", "rows", "model")
        for r in written:
            other.add_row(r["name"], r["table"], "yes" if r["current"] else f"no: {r['stale_because']}",
                          f"{r['rows']:,}" if r["rows"] is not None else "",
                          str(r["model_version"]) if r["model_version"] is not None else "")
        console.print(other)
        if not all(r["current"] for r in rows + written):
            console.print(f"`journeymap refresh --workspace {workspace}` brings it up to date", highlight=False,
                          soft_wrap=True)
