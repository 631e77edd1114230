"""`journeymap retention`, `lifecycle` and `stickiness`: cohort analyses of raw events, no journey definition needed.

``register(app)`` adds them; every command prints a Rich table, or JSON with ``--json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, fail, pct, print_json, workspace_for

out = Console()

ByOpt = Annotated[str, typer.Option("--by", help="Unit of analysis: person or account (active when any of its persons is).")]
IntervalOpt = Annotated[str, typer.Option("--interval", help="day, week (Monday, UTC), month or quarter.")]
FromOpt = Annotated[str | None, typer.Option("--from", help="First interval to report (a date, YYYY-MM-DD).")]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last interval to report (a date, YYYY-MM-DD).")]
EventOpt = Annotated[str | None, typer.Option("--event", help="Only this event makes a unit active (default: any).")]


def _run(workspace: Path, fn, **kwargs) -> dict:
    if not (workspace / "journeymap.duckdb").exists() and not (workspace / "journeymap.yml").exists():
        fail(f"{workspace} is not a workspace; create one with `journeymap init`")
    with workspace_for(workspace) as ws:
        return fn(ws.engine, **kwargs)


def _emit(data: dict, as_json: bool, table: Table) -> None:
    if as_json:
        print_json(data)
    else:
        out.print(table)


def register(app: typer.Typer) -> None:
    """Add the retention, lifecycle and stickiness commands to `app`."""

    @app.command()
    def retention(
        start: Annotated[str, typer.Option("--start", help="The event that puts a unit in a cohort.")],
        return_event: Annotated[str, typer.Option("--return", help="The event that counts as coming back (may equal --start).")],
        interval: IntervalOpt = "week",
        mode: Annotated[str, typer.Option("--mode", help="first_time: cohort of the first start event; recurring: every interval with one.")] = "first_time",
        period: Annotated[str, typer.Option("--period", help="on: returned in exactly period k; on_or_after: in k or later.")] = "on",
        rolling: Annotated[bool, typer.Option("--rolling", help="Periods of 1/7/30/90 days from each unit's own start event.")] = False,
        brackets: Annotated[str | None, typer.Option("--brackets", help="Day ranges after the start event, e.g. 1-3,4-7,8-14.")] = None,
        date_from: FromOpt = None, date_to: ToOpt = None, by: ByOpt = "person",
        workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False,
    ):
        """Cohort retention: of the units that did --start, how many did --return in each later period."""
        from journeymap.engine.retention import retention as run

        data = _run(workspace, run, start=start, return_event=return_event, interval=interval, mode=mode, period=period,
                    rolling=rolling, brackets=brackets, level=by, date_from=date_from, date_to=date_to)
        width = max((len(c["values"]) for c in data["cohorts"]), default=0)
        heads = [f"{lo_hi}d" for lo_hi in data["brackets"]] or [f"{'P' if not rolling else 'R'}{k}" for k in range(width)]
        table = Table("cohort", "size", *heads, title=f"Retention: {start} -> {return_event} ({mode}, {period})")
        for c in data["cohorts"]:
            cells = [f"{v} ({pct(r)})" for v, r in zip(c["values"], c["rates"], strict=True)]
            table.add_row(c["start"], str(c["size"]), *cells, *[""] * (width - len(cells)))
        _emit(data, as_json, table)

    @app.command()
    def lifecycle(
        interval: IntervalOpt = "week", event: EventOpt = None,
        new_by: Annotated[str, typer.Option("--new-by", help="first_event, or created_at (the profile's createdAt trait, else its first event of any kind).")] = "first_event",
        date_from: FromOpt = None, date_to: ToOpt = None, by: ByOpt = "person",
        workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False,
    ):
        """New, returning, resurrecting and dormant units per interval, with the quick ratio."""
        from journeymap.engine.lifecycle import lifecycle as run

        data = _run(workspace, run, interval=interval, event=event, new_by=new_by, level=by,
                    date_from=date_from, date_to=date_to)
        table = Table("interval", "new", "returning", "resurrecting", "dormant", "active", "quick ratio", title="Lifecycle")
        for r in data["intervals"]:
            qr = "-" if r["quick_ratio"] is None else f"{r['quick_ratio']:.2f}"
            table.add_row(r["start"], *(str(r[k]) for k in ("new", "returning", "resurrecting", "dormant", "active")), qr)
        _emit(data, as_json, table)

    @app.command()
    def stickiness(
        interval: Annotated[str, typer.Option("--interval", help="week, month or quarter: count active days in each.")] = "week",
        event: EventOpt = None, date_from: FromOpt = None, date_to: ToOpt = None, by: ByOpt = "person",
        workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False,
    ):
        """How many days units are active per interval, and DAU/MAU per month."""
        from journeymap.engine.lifecycle import stickiness as run

        data = _run(workspace, run, interval=interval, event=event, level=by, date_from=date_from, date_to=date_to)
        width = max((len(r["distribution"]) for r in data["intervals"]), default=0)
        table = Table("interval", "units", *[f"{k}d" for k in range(1, width + 1)], title="Stickiness: units by active days")
        for r in data["intervals"]:
            cells = [str(v) for v in r["distribution"]]
            table.add_row(r["start"], str(r["units"]), *cells, *[""] * (width - len(cells)))
        monthly = Table("month", "days", "avg DAU", "MAU", "DAU/MAU", title="DAU/MAU")
        for m in data["dau_mau"]:
            monthly.add_row(m["month"], str(m["days"]), f"{m['avg_dau']:.2f}", str(m["mau"]), pct(m["dau_mau"]))
        _emit(data, as_json, table)
        if not as_json:
            out.print(monthly)
