"""`journeymap act` (playbooks: who would enter now, backtests) and `journeymap explain` (docs/playbooks.md).

`act` is a Typer group: further commands (sending, retrying deliveries, tasks) are added with `@act.command()`
in their own module and registered the same way (`register`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, fail_with, print_json, shown_time, workspace_for
from journeymap.cli.forward import read_report
from journeymap.errors import OptionError

act = typer.Typer(help="Act on the journey: who enters the playbooks and why (docs/playbooks.md), and delivering "
                       "what they fired (docs/delivery.md).", no_args_is_help=False,
                  invoke_without_command=True)

PlaybookOpt = Annotated[str, typer.Option("--playbook", "-p", help="A playbook id from journeymap.yml.")]


def parse_time(value: str | None, option: str) -> dt.datetime | None:
    """A date or time such as 2026-05-01 or 2026-05-01T12:00 (UTC), naive as the store keeps times."""
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        fail_with(OptionError(f"--{option} takes a date or time such as 2026-05-01 or 2026-05-01T12:00, not {value!r}",
                              option=option))
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


@act.callback()
def act_main(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say who would enter each playbook now, and why; "
                                                            "nothing is recorded or sent.")] = False,
    playbook: Annotated[str | None, typer.Option("--playbook", "-p", help="Only this playbook.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many entries listed per playbook.")] = 100,
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
):
    """Playbooks. With --dry-run: who would enter each playbook at the next refresh (the rule, the values, the
    times), and whether it would be sent (history before the playbook's watermark and the holdout are not)."""
    if ctx.invoked_subcommand is not None:
        return
    if not dry_run:
        fail_with(OptionError("journeymap act: pass --dry-run to see who would enter each playbook now, or a command "
                              "(journeymap act --help); refreshes evaluate the playbooks", option="dry_run"))
    with workspace_for(workspace) as ws:  # the server's answer while it holds the store (cli/forward.py)
        out = read_report(ws, "dry-run", playbook=playbook)
    for p in out["playbooks"]:
        p["listed"] = min(limit, len(p["entries"]))
        p["entries"] = p["entries"][:limit]
    if as_json:
        print_json(out)
        return
    console = Console()
    if not out["playbooks"]:
        console.print("no playbooks in journeymap.yml (docs/playbooks.md)")
    for p in out["playbooks"]:
        if p["error"]:
            console.print(f"[bold]{p['playbook']}[/]: not evaluated: {p['error']}", soft_wrap=True)
            continue
        console.print(f"[bold]{p['playbook']}[/]: {p['entered']:,} would enter ({p['sent']:,} sent, "
                      f"{p['holdout']:,} held out, {p['backfill']:,} before the watermark {p['watermark']})")
        table = Table("unit", "entry", "entered at", "owner", "send", "why")
        for e in p["entries"]:
            r = e["reason"]
            table.add_row(e["unit"], str(e["entry"]), shown_time(e["entered_at"], False), e["owner"] or "", "yes" if e["send"] else "no",
                          f"{r['rule']}: " + ", ".join(f"{k} {v}" for k, v in r["values"].items()))
        if p["entries"]:
            console.print(table)


@act.command()
def backtest(
    playbook: PlaybookOpt,
    start: Annotated[str | None, typer.Option("--from", help="First day (default: the data's first).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (default: the data's latest event).")] = None,
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
):
    """Replay history: how many units the playbook would have entered per week, and what then happened to them
    (goal reached, exited, churned). Nothing is written."""
    t0, t1 = parse_time(start, "from"), parse_time(end, "to")
    if t1 is not None and end is not None and len(end.strip()) == 10:
        t1 += dt.timedelta(days=1) - dt.timedelta(microseconds=1)  # a day: up to its end
    with workspace_for(workspace) as ws:  # the server's answer while it holds the store (cli/forward.py)
        out = read_report(ws, "backtest", playbook=playbook, start=t0, end=t1)
    if as_json:
        print_json(out)
        return
    console = Console()
    table = Table("week", "entered", "held out", "goal reached", "exited", "churned", "median days to goal")
    for w in out["weeks"]:
        days = "" if w["median_days_to_goal"] is None else f"{w['median_days_to_goal']:.1f}"
        table.add_row(str(w["week"]), f"{w['entered']:,}", f"{w['holdout']:,}", f"{w['goal_reached']:,}",
                      f"{w['exited']:,}", f"{w['churned']:,}", days)
    console.print(table)
    t = out["total"]
    rate = "" if t["goal_rate"] is None else f", goal rate {t['goal_rate']:.1%}"
    console.print(f"{out['playbook']}: {t['entered']:,} entries{rate}", highlight=False)
    if out.get("note"):
        console.print(f"note: {out['note']}", highlight=False)


def _effect_line(rate: dict | None, note: str | None) -> str:
    return rate["text"] if rate else (note or "–")


@act.command()
def playbooks(workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False):
    """The playbooks: what each enters on, its volume and its measured effect on the goal (treated against held
    out, as the last refresh stored it; docs/playbooks.md, "Measured effect")."""
    with workspace_for(workspace) as ws:  # the server's answer while it holds the store (cli/forward.py)
        out = read_report(ws, "playbooks")
    if as_json:
        print_json(out)
        return
    console = Console()
    if not out["playbooks"]:
        console.print("no playbooks in journeymap.yml (docs/playbooks.md)")
    for p in out["playbooks"]:
        v = p["volume"] or {}
        console.print(f"[bold]{p['id']}[/] ({p['entry_kind']}): {v.get('entries', 0):,} entries, "
                      f"{v.get('last_30_days', 0):,} in the last 30 days; {_effect_line(p['goal'], p['note'])}",
                      highlight=False, soft_wrap=True)


@act.command()
def show(
    playbook: Annotated[str, typer.Argument(help="A playbook id from journeymap.yml.")],
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
):
    """One playbook: its definition, volume, measured effect (goal and churn rate, MRR change, treated against
    held out) and its recent firings, as the web app's playbook page shows them."""
    with workspace_for(workspace) as ws:  # the server's answer while it holds the store (cli/forward.py)
        out = read_report(ws, "playbook", playbook=playbook)
    if as_json:
        print_json(out)
        return
    console = Console()
    v = out["volume"] or {}
    console.print(f"[bold]{out['name']}[/] ({out['id']}): enters on {out['entry_kind']}; holdout {out['holdout']:.0%}; "
                  f"window {out['window'] or '–'}", highlight=False, soft_wrap=True)
    console.print(f"  volume: {v.get('entries', 0):,} entries ({v.get('last_30_days', 0):,} in the last 30 days), "
                  f"{v.get('live', 0):,} live, {v.get('sent', 0):,} sent", highlight=False)
    console.print(f"  measured entries: {out['measured'] or 0:,}" + (f"; {out['note']}" if out["note"] else ""),
                  highlight=False, soft_wrap=True)
    for key in ("goal", "churn"):
        if out[key]:
            console.print(f"  {out[key]['text']}", highlight=False, soft_wrap=True)
    if out["mrr"] and out["mrr"]["ci_low"] is not None:
        m = out["mrr"]
        console.print(f"  MRR change {m['difference']:+,.1f} treated vs held out (95% Welch CI {m['ci_low']:+,.1f} to "
                      f"{m['ci_high']:+,.1f})", highlight=False)
    table = Table("unit", "entry", "entered at", "side", "sent", "owner", "run ended")
    for e in out["recent"]:
        side = "held out" if e["holdout"] else "treated"
        table.add_row(e["unit_id"], str(e["entry"]), shown_time(e["entered_at"], to_seconds=False), side,
                      "yes" if e["sent"] else "no", e["owner"] or "", e["exit_reason"] or "open")
    if out["recent"]:
        console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(act, name="act")

    @app.command()
    def explain(
        unit: Annotated[str, typer.Argument(help="A unit id (an account or person id, as the map shows it).")],
        playbook: PlaybookOpt,
        at: Annotated[str | None, typer.Option("--at", help="As of this time (default: the data's latest event).")] = None,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ):
        """Why UNIT entered a playbook, or which condition kept it out, at a given time."""
        when = parse_time(at, "at")
        with workspace_for(workspace) as ws:  # the server's answer while it holds the store (cli/forward.py)
            out = read_report(ws, "explain", playbook=playbook, unit=unit, at=when)
        if as_json:
            print_json(out)
            return
        console = Console()
        console.print(f"[bold]{out['unit']}[/] / {out['playbook']} at {shown_time(out['at'], to_seconds=False)}: "
                      f"{out['verdict']}", soft_wrap=True)
        for c in out["conditions"]:
            mark = "[green]yes[/]" if c["holds"] else "[red]no[/]"
            console.print(f"  {c['condition']}: {mark} ({c['moments']} moment{'s' if c['moments'] != 1 else ''})",
                          soft_wrap=True)
            for why in c.get("why_not", []):
                console.print(f"    {why}", highlight=False, soft_wrap=True)
        for e in out["entries"]:
            console.print(f"  entry {e['entry']} at {shown_time(e['entered_at'], to_seconds=False)}, owner {e['owner']}"
                          f"{' (holdout)' if e['holdout'] else ''}: {e['reason']['values']}", highlight=False,
                          soft_wrap=True)
