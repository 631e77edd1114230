"""`journeymap moments`: moments of truth — early behaviours ranked by the retention that goes with them.

JSON output and every statistic are documented in docs/metrics/moments-of-truth.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, fail, pct, print_json, workspace_for
from journeymap.journey.durations import parse_duration


def _days(text: str, option: str) -> float:
    try:
        days = parse_duration(text) / 86400
    except ValueError as exc:
        fail(f"{option}: {exc}")
    if days <= 0:
        fail(f"{option} must be positive")
    return days


def _ci(lo: float | None, hi: float | None, digits: int = 2) -> str:
    return "–" if lo is None or hi is None else f"{lo:.{digits}f}–{hi:.{digits}f}"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "–" if x is None else format(x, fmt)


def register(app: typer.Typer) -> None:
    @app.command()
    def moments(
        workspace: WorkspaceOpt = Path("."),
        by: Annotated[str | None, typer.Option("--by", help="person or account (default: the definition's level).")] = None,
        within: Annotated[str, typer.Option("--within", help="Behaviour window after the start, e.g. 14d.")] = "14d",
        horizon: Annotated[str, typer.Option("--horizon", help="Retained = not churned this long after the start.")] = "90d",
        min_units: Annotated[int, typer.Option("--min-units", help="Doers and non-doers needed to be ranked.")] = 30,
        population: Annotated[str | None, typer.Option(
            "--population", help="customers (reached the customer stage; default when defined) or started.")] = None,
        exclude: Annotated[list[str] | None, typer.Option(
            "--exclude", help="Behaviour id (event:x, touchpoint:y) or event name to leave out; repeatable.")] = None,
        include: Annotated[list[str] | None, typer.Option(
            "--include", help="Keep a behaviour the leakage rules leave out; repeatable.")] = None,
        top: Annotated[int, typer.Option(help="Rows to show in the table (JSON has all).")] = 20,
        as_json: JsonOpt = False,
    ):
        """Which behaviours in the first days go with retention: reach, retention with and without, lift with a
        95% interval, q-values, persona checks, and a suggested activation definition. Correlation, not causation."""
        if by not in (None, "person", "account"):
            fail("--by must be person or account")
        within_days, horizon_days = _days(within, "--within"), _days(horizon, "--horizon")
        with workspace_for(workspace) as ws:
            result = ws.moments(level=by, within_days=within_days, horizon_days=horizon_days, min_units=min_units,
                                population=population, exclude=exclude, include=include)
        if as_json:
            print_json(result)
            return
        out = Console()
        u = result["units"]
        title = (f"Moments of truth: done within {result['within_days']:g} days of the start, retained at "
                 f"{result['horizon_days']:g} days ({result['population']}, by {result['level']})")
        t = Table("#", "behaviour", "reach", "ret. with", "ret. without", "lift", "95% CI", "diff.", "q", "impact",
                  "persona check", title=title)
        ranked = [m for m in result["moments"] if m["ranked"]]
        for m in ranked[:top]:
            t.add_row(str(m["rank"]), m["behaviour"], pct(m["reach"]), pct(m["retention_with"]), pct(m["retention_without"]),
                      _num(m["lift"], ".3f"), _ci(*m["lift_ci"], digits=3), _num(m["difference"], "+.3f"),
                      _num(m["q_value"], ".3g"), _num(m["impact"], ".1f"), "; ".join(m["flags"]) or "ok")
        out.print(t)
        out.print(f"{u['analysed']:,} units analysed, {pct(u['retention'])} retained; {u['censored']:,} left out as "
                  f"right-censored (started less than {result['horizon_days']:g} days before the data ends), "
                  f"{u['not_customers']:,} never customers, {u['left_before_window_end']:,} churned inside the window; "
                  f"{len(ranked):,} behaviours ranked, {len(result['excluded']):,} left out as outcome-defining "
                  "(see --json `excluded`).", highlight=False)
        warnings = sorted((m for m in ranked if (m["difference"] or 0) < 0 and (m["q_value"] or 1) < 0.05),
                          key=lambda m: m["impact"] or 0)
        if warnings:
            out.print("Warning signs (significantly lower retention): " + ", ".join(
                f"{m['behaviour']} (lift {m['lift']:.2f})" for m in warnings[:5]), highlight=False)
        a = result["activation"]
        if a and a["definition"]:
            w = next(x for x in a["windows"] if x["within_days"] == a["within_days"])
            out.print(f"[bold]Suggested activation:[/] {a['definition']} (reach {pct(w['reach'])}, lift "
                      f"{_num(w['lift'], '.3f')}, Youden's J {_num(w['youden_j'], '.3f')}).", highlight=False)
        else:
            out.print("No activation suggestion: no behaviour has a significant positive difference.")
        out.print(f"[italic]{result['caveat']}[/]", highlight=False)
