"""`journeymap revenue`: the MRR bridge, revenue retention, and churn by kind, reason and plan."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, pct, print_json, workspace_for


def _money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def register(app: typer.Typer) -> None:
    @app.command()
    def revenue(
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ):
        """MRR bridge per month (start + new + reactivation + expansion - contraction - churned = end),
        gross and net revenue retention, logo churn, and churn by voluntary/involuntary, reason and plan."""
        with workspace_for(workspace) as ws:
            result = ws.revenue()
        if as_json:
            print_json(result)
            return
        out = Console()
        table = Table("month", "start", "+new", "+react.", "+exp.", "-contr.", "-churned", "end", "logo churn", "GRR", "NRR")
        for m in result["months"]:
            table.add_row(m["month"], *[_money(m[k]) for k in ("start", "new", "reactivation", "expansion",
                                                               "contraction", "churned", "end")],
                          pct(m["logo_churn"]), pct(m["grr"]), pct(m["nrr"]))
        out.print(table)
        for key in ("by_kind", "by_reason", "by_plan", "by_persona", "by_stage"):
            t = Table(key.removeprefix("by_"), "churns", "accounts", "MRR lost")
            for row in result["churn"][key]:
                t.add_row(str(row["value"] or "–"), f"{row['churns']:,}", f"{row['accounts']:,}", _money(row["mrr_lost"]))
            out.print(t)
