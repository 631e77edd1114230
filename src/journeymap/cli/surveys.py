"""`journeymap surveys`: NPS, CSAT and CES by stage, touchpoint, persona or period."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, print_json, workspace_for


def _cell(s: dict | None, kind: str) -> str:
    if not s:
        return "–"
    if kind == "csat":
        value = f"{100 * s['score']:.1f}%"
        ci = "" if s["ci_low"] is None else f" ({100 * s['ci_low']:.0f}–{100 * s['ci_high']:.0f})"
    else:
        value = f"{s['score']:.1f}" if kind == "nps" else f"{s['score']:.2f}"
        ci = "" if s["ci_low"] is None else f" ({s['ci_low']:.1f}–{s['ci_high']:.1f})"
    return f"{value}{ci} n={s['n']:,}"


def register(app: typer.Typer) -> None:
    @app.command()
    def surveys(
        workspace: WorkspaceOpt = Path("."),
        group: Annotated[str, typer.Option(help="stage, touchpoint, persona or period.")] = "stage",
        interval: Annotated[str, typer.Option(help="For --group period: day, week, month, quarter, year.")] = "month",
        by: Annotated[str | None, typer.Option("--by", help="Unit of analysis: person or account.")] = None,
        as_json: JsonOpt = False,
    ):
        """NPS, CSAT and CES with 95% confidence intervals, per stage, touchpoint, persona or period."""
        with workspace_for(workspace) as ws:
            result = ws.surveys(group, interval, by)
        if as_json:
            print_json(result)
            return
        table = Table(group, "NPS (95% CI)", "CSAT (95% CI)", "CES (95% CI)")
        for row in result["rows"]:
            table.add_row(str(row["value"]), *[_cell(row.get(k), k) for k in ("nps", "csat", "ces")])
        Console().print(table)
