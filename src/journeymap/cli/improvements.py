"""`journeymap improvements add|list|set|show`: improvements that are owned and measured (docs/improvements.md).

They live in the workspace's store (insights/improvements/store.py). `show` measures a shipped improvement's
effect on its metric (insights/improvements/effect.py). While `journeymap serve` holds the store, each command
asks the server instead (`/api/v1/improvements`, with the local token of its server file: cli/forward.py), which
writes the same tables and answers the same JSON.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, err, print_json, workspace_for
from journeymap.cli.forward import request, server_for
from journeymap.errors import OptionError
from journeymap.insights.improvements import store
from journeymap.workspace import Workspace

StatusOpt = Annotated[str | None, typer.Option("--status", help="idea, planned, in progress, shipped or dropped.")]
OwnerOpt = Annotated[str | None, typer.Option("--owner", help="Who owns it: a person or a team.")]
StageOpt = Annotated[str | None, typer.Option("--stage", help="The stage id of journeymap.yml it improves.")]
MetricOpt = Annotated[str | None, typer.Option("--metric", help="The metric it should move, one the targets know: "
                                                                "conversion, reached, nps, csat, ces, ttv_p50, ...")]
TargetOpt = Annotated[str | None, typer.Option("--target", help="The metric's target value: 35%, 0.35, 3d, 40.")]
ShipOpt = Annotated[str | None, typer.Option("--ship-date", help="YYYY-MM-DD; shipping without one uses today.")]
PersonaOpt = Annotated[str | None, typer.Option("--persona", help="A persona id: the improvement is for them only.")]
FeatureOpt = Annotated[str | None, typer.Option("--feature", help="The key feature, for --metric adoption.")]
CompareOpt = Annotated[str | None, typer.Option(
    "--compare", help="stage:ID or persona:ID it should not affect: the difference-in-differences comparison.")]


def effect_of(ws: Workspace, imp: store.Improvement, level: str | None = None) -> dict:
    """The measured effect, or why there is none (Workspace.improvement_effect)."""
    return ws.improvement_effect(imp, level)


def _from_dict(d: dict) -> store.Improvement:
    """An improvement as the server answered it (JSON), for the same tables and lines as a local one."""
    fields = {k: d.get(k) for k in store.Improvement.__dataclass_fields__ if k != "history"}
    fields["ship_date"] = dt.date.fromisoformat(d["ship_date"]) if d.get("ship_date") else None
    for k in ("created_at", "updated_at"):
        fields[k] = dt.datetime.fromisoformat(d[k])
    return store.Improvement(**fields, history=d.get("history") or [])


def _path(improvement_id: str) -> str:
    return "/api/v1/improvements/" + urllib.parse.quote(improvement_id, safe="")


def _say(note: str | None) -> None:
    if note:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


def _show(imp: store.Improvement, effect: dict | None = None) -> None:
    out = Console()
    target = f" → {imp.target}" if imp.target else ""
    out.print(f"[bold]{escape(imp.title)}[/] ({imp.id})", highlight=False)
    out.print(f"  stage {imp.stage}{' · persona ' + imp.persona if imp.persona else ''} · owner {imp.owner or '–'}"
              f" · {imp.status}{' ' + imp.ship_date.isoformat() if imp.ship_date else ''}", highlight=False)
    out.print(f"  metric {imp.metric}{target}{' · compare ' + imp.comparison if imp.comparison else ''}",
              highlight=False)
    for h in imp.history:
        moved = h["to"] if h["from"] == h["to"] else f"{h['from'] or '–'} → {h['to']}"
        out.print(f"  {h['at'][:19]}  {moved}{'  ' + escape(h['note']) if h['note'] else ''}", highlight=False)
    if effect is not None:
        out.print(f"  verdict: {escape(effect.get('verdict_text') or '–')}", highlight=False)
        if effect.get("effect") is not None:
            out.print(f"  effect: {effect['effect']:+.3g} {effect['unit']} (95% CI {effect['ci_low']:+.3g} to "
                      f"{effect['ci_high']:+.3g}); before {effect['before']:.3g}, after {effect['after']:.3g} "
                      f"({effect['weeks_before']} and {effect['weeks_after']} weeks)", highlight=False)
        if effect.get("method"):
            out.print(f"  method: {effect['method'].upper()}, because {escape(effect['why'])}", highlight=False)
        if effect.get("seasonality"):
            out.print(f"  seasonality: {escape(effect['seasonality'])}", highlight=False)


def register(app: typer.Typer) -> None:
    imp = typer.Typer(help="Improvements: owned, with a status, and measured once shipped (docs/improvements.md).",
                      no_args_is_help=True)
    app.add_typer(imp, name="improvements")

    @imp.command("add")
    def add(
        stage: Annotated[str, typer.Option("--stage", help="The stage id of journeymap.yml it improves.")],
        metric: Annotated[str, typer.Option("--metric", help="The metric it should move, one the targets know: "
                                                             "conversion, reached, nps, csat, ces, ttv_p50, ...")],
        title: Annotated[str | None, typer.Option("--title", help="What the improvement is.")] = None,
        opportunity: Annotated[str | None, typer.Option(
            "--opportunity", help="Promote an opportunity of the stage: its text, or its number (1, 2, ...) among the "
                                  "stage's opportunities in journeymap.yml; keeps its text and stage.")] = None,
        owner: OwnerOpt = None,
        status: Annotated[str, typer.Option("--status", help="idea, planned, in progress, shipped or dropped.")] = "idea",
        target: TargetOpt = None,
        ship_date: ShipOpt = None,
        persona: PersonaOpt = None,
        feature: FeatureOpt = None,
        compare: CompareOpt = None,
        improvement_id: Annotated[str | None, typer.Option("--id", help="Its id (default: from the title).")] = None,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ):
        """Add an improvement, or promote one of the map's opportunities (--opportunity)."""
        with workspace_for(workspace) as ws:
            if (title is None) == (opportunity is None):
                raise OptionError("give --title, or --opportunity to promote one of the stage's opportunities",
                                  option="title")
            fields = dict(owner=owner, status=status, persona=persona, feature=feature, target=target,
                          comparison=compare, ship_date=ship_date, improvement_id=improvement_id)
            server = server_for(ws)
            if server is not None:
                body = {"stage": stage, "metric": metric, "title": title, "opportunity": opportunity, "owner": owner,
                        "status": status, "persona": persona, "feature": feature, "target": target,
                        "compare": compare, "ship_date": ship_date, "id": improvement_id}
                answer = request(server, "POST", "/api/v1/improvements", body={k: v for k, v in body.items() if v})
                item, note = _from_dict(answer), answer.get("note")
            elif opportunity is not None:
                item, note = store.promote(ws.con, ws.definition, stage, opportunity, metric=metric, **fields)
            else:
                item, note = store.add(ws.con, ws.definition, title=title, stage=stage, metric=metric, **fields)
        if as_json:
            print_json({**item.as_dict(), "note": note})
            return
        _say(note)
        err.print(f"added {item.id}: {escape(item.title)} ({item.stage}, {item.status})", highlight=False)

    @imp.command("list")
    def list_(status: StatusOpt = None, stage: StageOpt = None, workspace: WorkspaceOpt = Path("."),
              as_json: JsonOpt = False):
        """List improvements, oldest first."""
        with workspace_for(workspace) as ws:
            server = server_for(ws)
            if server is not None:
                query = [(k, v) for k, v in (("status", status), ("stage", stage)) if v is not None]
                rows = [_from_dict(d) for d in request(server, "GET", "/api/v1/improvements", query)["improvements"]]
            else:
                if stage is not None:
                    store.check_stage(ws.definition, stage)
                rows = store.list_improvements(ws.con, status=status, stage=stage)
        if as_json:
            print_json({"improvements": [r.as_dict() for r in rows]})
            return
        table = Table("id", "title", "stage", "owner", "status", "metric", "target", "shipped")
        for r in rows:
            table.add_row(r.id, r.title, r.stage, r.owner or "", r.status, r.metric, r.target or "",
                          r.ship_date.isoformat() if r.ship_date else "")
        Console().print(table)

    @imp.command("set")
    def set_(
        improvement_id: Annotated[str, typer.Argument(help="The improvement's id (`journeymap improvements list`).")],
        status: StatusOpt = None, owner: OwnerOpt = None, ship_date: ShipOpt = None, target: TargetOpt = None,
        title: Annotated[str | None, typer.Option("--title")] = None, stage: StageOpt = None, metric: MetricOpt = None,
        persona: Annotated[str | None, typer.Option("--persona", help="A persona id, or none.")] = None,
        feature: FeatureOpt = None,
        compare: Annotated[str | None, typer.Option("--compare", help="stage:ID, persona:ID, or none.")] = None,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ):
        """Change an improvement: its status (kept in its history), owner, ship date, target, ..."""
        with workspace_for(workspace) as ws:
            server = server_for(ws)
            if server is not None:
                body = {"status": status, "owner": owner, "ship_date": ship_date, "target": target, "title": title,
                        "stage": stage, "metric": metric, "persona": persona, "feature": feature, "compare": compare}
                answer = request(server, "PATCH", _path(improvement_id),
                                 body={k: v for k, v in body.items() if v is not None})
                item, note = _from_dict(answer), answer.get("note")
            else:
                item, note = store.update(ws.con, ws.definition, improvement_id, status=status, owner=owner,
                                          ship_date=ship_date, target=target, title=title, stage=stage, metric=metric,
                                          persona=persona, feature=feature, comparison=compare)
        if as_json:
            print_json({**item.as_dict(), "note": note})
            return
        _say(note)
        err.print(f"{item.id}: {item.status}" + (f", shipped {item.ship_date}" if item.ship_date else ""),
                  highlight=False)

    @imp.command("show")
    def show(
        improvement_id: Annotated[str, typer.Argument(help="The improvement's id (`journeymap improvements list`).")],
        by: Annotated[str | None, typer.Option("--by", help="person or account: the units the metric counts "
                                                            "(default: analysis.level).")] = None,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ):
        """An improvement, its history, and once shipped its measured effect (method, 95% CI, verdict)."""
        with workspace_for(workspace) as ws:
            server = server_for(ws)
            if server is not None:
                answer = request(server, "GET", _path(improvement_id), [("by", by)] if by else None)
                item, effect = _from_dict(answer), answer["effect"]
            else:
                item = store.get(ws.con, improvement_id)
                effect = effect_of(ws, item, by)
        if as_json:
            print_json({**item.as_dict(), "effect": effect})
            return
        _show(item, effect)
