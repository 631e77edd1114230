"""`journeymap funnel`: an exact event funnel (docs/metrics/funnels.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, fail, pct, print_json, workspace_for
from journeymap.engine.funnel_options import FunnelOptionError, funnel_options
from journeymap.journey.durations import format_duration

out = Console()


def _table(title: str, steps: list[dict]) -> Table:
    table = Table("#", "step", "count", "from previous", "from first", "mean time", "median time", title=title)
    for k, s in enumerate(steps):
        table.add_row(str(k), s["name"] + (" (optional)" if s.get("optional") else ""), f"{s['count']:,}", pct(s["conversion_from_previous"]),
                      pct(s["conversion_from_first"]), format_duration(s["avg_seconds_from_previous"]),
                      format_duration(s["median_seconds_from_previous"]))
    return table


def funnel(
    steps: Annotated[str, typer.Option("--steps", help="Comma-separated event names, e.g. 'signup,invite,pay'.")],
    workspace: WorkspaceOpt = Path("."),
    by: Annotated[str | None, typer.Option("--by", help="Unit of analysis: person or account (default: the definition's, else person).")] = None,
    window: Annotated[str, typer.Option(help="Conversion window: a number and s, m, h, d or w.")] = "14d",
    window_from: Annotated[str, typer.Option("--window-from", help="entry: from the step-1 event; previous: between consecutive steps.")] = "entry",
    order: Annotated[str, typer.Option(help="ordered: other events may come between steps; strict: none may; unordered: step k counts units that did any k steps.")] = "ordered",
    optional: Annotated[list[int] | None, typer.Option("--optional", help="Step number (from 0, never 0) a unit may skip. Repeatable.")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", help="EVENT:FROM:TO (steps from 0): drop attempts with EVENT between those steps. Repeatable.")] = None,
    count: Annotated[str, typer.Option(help="uniques: units, by their furthest attempt; totals: attempts.")] = "uniques",
    breakdown: Annotated[str | None, typer.Option(help="A property to split the funnel by.")] = None,
    attribution: Annotated[str, typer.Option(help="Which step's event gives the breakdown value: first, last or step:N.")] = "first",
    date_from: Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD) an attempt may start.")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day (inclusive) an attempt may start; it may convert later.")] = None,
    tolerance: Annotated[str, typer.Option(help="How far a step may precede the previous one and still count as in order.")] = "0s",
    as_json: JsonOpt = False,
):
    """Exact funnel: units (or attempts) completing the steps in order within the window."""
    from journeymap.engine.funnels import funnel as run_funnel

    if by not in (None, "person", "account"):
        fail("--by must be person or account")
    try:
        options = funnel_options(steps, window=window, window_from=window_from, order=order, count=count,
                                 exclude=exclude or [], tolerance=tolerance, date_from=date_from, date_to=date_to,
                                 breakdown=breakdown, attribution=attribution, optional=optional or [])
    except FunnelOptionError as exc:
        fail(str(exc))
    with workspace_for(workspace) as ws:
        level = by or (ws.definition.analysis.level if ws.definition_path.exists() else "person")
        result = run_funnel(ws.engine, options, level)
    result.pop("histograms", None)  # the Python API's; the CLI contract is steps (and groups)
    if as_json:
        print_json(result)
        return
    out.print(_table("funnel", result["steps"]))
    for g in result.get("groups", []):
        out.print(_table(f"{result['breakdown']} = {g['value']}", g["steps"]))


def register(app: typer.Typer) -> None:
    """Add the `funnel` command to `app`."""
    app.command("funnel")(funnel)
