"""`journeymap clv`: customer lifetime value by persona and acquisition channel, and LTV:CAC."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, fail, pct, print_json, workspace_for


def _money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _months(x: float | None) -> str:
    return "unbounded" if x is None else f"{x:.1f}"


def register(app: typer.Typer) -> None:
    @app.command()
    def clv(
        workspace: WorkspaceOpt = Path("."),
        margin: Annotated[float, typer.Option(help="Gross margin on MRR, between 0 and 1.")] = 0.8,
        discount: Annotated[float, typer.Option(help="Annual discount rate, e.g. 0.1 for 10%.")] = 0.10,
        spend: Annotated[Path | None, typer.Option(help="CSV of acquisition spend: channel, spend[, month YYYY-MM]; adds CAC and LTV:CAC.")] = None,
        touch_sources: Annotated[str, typer.Option("--touch-sources", help="Sources whose first event with a channel names the acquisition channel.")] = "marketing,crm",
        as_json: JsonOpt = False,
    ):
        """Lifetime value of subscription accounts: a shifted-beta-geometric retention curve fitted to
        monthly cohorts, CLV per new account by persona and channel, and LTV:CAC with a spend file."""
        if spend is not None and not spend.is_file():
            fail(f"--spend {spend}: no such file")
        with workspace_for(workspace) as ws:
            try:
                result = ws.clv(margin=margin, annual_discount=discount, spend=spend,
                                touch_sources=tuple(s.strip() for s in touch_sources.split(",") if s.strip()))
            except ValueError as exc:
                fail(str(exc))
        if as_json:
            print_json(result)
            return
        out = Console()
        m = result["model"]
        out.print(f"{result['accounts']:,} paying accounts in {result['cohorts']} monthly cohorts; "
                  f"sBG alpha {m['alpha']:.3g}, beta {m['beta']:.3g}; month-1 retention {pct(result['month_1_retention'])}; "
                  f"expected lifetime {_months(result['expected_lifetime_months'])} months")
        out.print(f"CLV of a new account: {_money(result['clv'])} (first-month MRR {_money(result['first_month_mrr'])}, "
                  f"margin {margin:.0%}, {discount:.0%} a year)")
        for key in ("persona", "channel"):
            t = Table(key, "accounts", "churned", "MRR", "month-1 ret.", "lifetime (months)", "CLV", "curve")
            for r in result["segments"][key]:
                t.add_row(str(r["value"]), f"{r['accounts']:,}", f"{r['churned']:,}", _money(r["first_month_mrr"]),
                          pct(r["month_1_retention"]), _months(r["expected_lifetime_months"]), _money(r["clv"]),
                          r["retention_curve"])
            out.print(t)
        if "cac" in result:
            t = Table("channel", "spend", "new accounts", "CAC", "CLV", "LTV:CAC")
            for r in result["cac"]:
                t.add_row(r["channel"], _money(r["spend"]), f"{r['new_accounts']:,}", _money(r["cac"]), _money(r["clv"]),
                          "–" if r["ltv_cac"] is None else f"{r['ltv_cac']:.1f}")
            out.print(t)
        for note in result["notes"]:
            out.print(f"[dim]{note}[/dim]")
