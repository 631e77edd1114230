"""`journeymap revenue`: the MRR bridge, revenue retention, and churn by kind, reason and plan."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from journeymap.journey.load import DefinitionError
from journeymap.workspace import Workspace


def _money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def register(app: typer.Typer) -> None:
    @app.command()
    def revenue(
        workspace: Annotated[Path, typer.Option("--workspace", "-w", help="The workspace folder.")] = Path("."),
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    ):
        """MRR bridge per month (start + new + reactivation + expansion - contraction - churned = end),
        gross and net revenue retention, logo churn, and churn by voluntary/involuntary, reason and plan."""
        err = Console(stderr=True)
        ws = Workspace(workspace)
        try:
            result = ws.revenue()
        except (ValueError, DefinitionError, FileNotFoundError) as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None
        finally:
            ws.close()
        if as_json:
            sys.stdout.write(json.dumps(result, indent=2) + "\n")
            return
        out = Console()
        table = Table("month", "start", "+new", "+react.", "+exp.", "-contr.", "-churned", "end", "logo churn", "GRR", "NRR")
        for m in result["months"]:
            table.add_row(m["month"], *[_money(m[k]) for k in ("start", "new", "reactivation", "expansion",
                                                               "contraction", "churned", "end")],
                          _pct(m["logo_churn"]), _pct(m["grr"]), _pct(m["nrr"]))
        out.print(table)
        for key in ("by_kind", "by_reason", "by_plan", "by_persona", "by_stage"):
            t = Table(key.removeprefix("by_"), "churns", "accounts", "MRR lost")
            for row in result["churn"][key]:
                t.add_row(str(row["value"] or "–"), f"{row['churns']:,}", f"{row['accounts']:,}", _money(row["mrr_lost"]))
            out.print(t)
