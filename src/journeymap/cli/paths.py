"""`journeymap paths` and `journeymap variants`: step-by-step paths from an anchor, and whole sequences.

`register(app)` adds both commands to a Typer app; each prints a Rich table, or JSON with `--json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, fail, pct, print_json, workspace_for
from journeymap.engine.paths import labelled_events, paths_result
from journeymap.engine.variants import variants_result
from journeymap.workspace import Workspace

__all__ = ["register"]

SHOWN = 50  # table rows at most; --top makes the rest one 'other' row, --json has everything

ByOpt = Annotated[str | None, typer.Option("--by", help="Unit of analysis: person or account (default: the definition's).")]
LevelOpt = Annotated[str, typer.Option("--level", help="event, stage or touchpoint.")]
CollapseOpt = Annotated[bool, typer.Option("--collapse-repeats", help="Treat A,A,B as A,B.")]
TopOpt = Annotated[int | None, typer.Option("--top", help="Keep the N most common paths; the rest is one 'other' bucket.")]


def _events(ws: Workspace, level: str, by: str | None):
    if by not in (None, "person", "account"):
        fail("--by must be person or account")
    definition = ws.definition if level != "event" or ws.definition_path.exists() else None
    unit_level = by or (definition.analysis.level if definition else "person")
    return labelled_events(ws.engine, definition, level, unit_level)


def paths(
    workspace: WorkspaceOpt = Path("."),
    level: LevelOpt = "event",
    by: ByOpt = None,
    start: Annotated[str | None, typer.Option("--start", help="Paths begin at each unit's first occurrence of this label.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Paths stop at the first occurrence of this label (after --start).")] = None,
    before: Annotated[str | None, typer.Option("--before", help="The steps leading up to each unit's first occurrence of this label.")] = None,
    depth: Annotated[int | None, typer.Option("--depth", help="Steps to show from the anchor (before it with --before).")] = None,
    top: TopOpt = None,
    collapse_repeats: CollapseOpt = False,
    as_json: JsonOpt = False,
):
    """Paths step by step from an anchor: Sankey-ready nodes (depth, label) and links, with 'end' and 'other' made explicit."""
    with workspace_for(workspace) as ws:
        result = paths_result(_events(ws, level, by), start=start, end=end, before=before, depth=depth, top=top,
                              collapse_repeats=collapse_repeats)
    if as_json:
        print_json(result)
        return
    out = Console()
    table = Table("path", "units", "share of all units")
    for p in result["paths"][:SHOWN]:
        table.add_row(" → ".join(p["path"]), f"{p['count']:,}", pct(p["share"]))
    out.print(table)
    if len(result["paths"]) > SHOWN:
        out.print(f"{len(result['paths']) - SHOWN:,} more paths: use --top N to bucket them as 'other', or --json")
    nodes = Table("depth", "step", "units", "share")
    for n in result["nodes"]:
        nodes.add_row(str(n["depth"]), n["label"], f"{n['count']:,}", pct(n["share"]))
    out.print(nodes)
    out.print(f"{result['units']:,} of {result['units_total']:,} units in view, {len(result['links']):,} links")


def variants(
    workspace: WorkspaceOpt = Path("."),
    level: LevelOpt = "event",
    by: ByOpt = None,
    converted: Annotated[str | None, typer.Option("--converted", help="A unit converted when its sequence contains this label.")] = None,
    top: TopOpt = None,
    collapse_repeats: CollapseOpt = False,
    as_json: JsonOpt = False,
):
    """Whole sequences (variants) with counts, share, median duration and, with --converted, converted vs dropped."""
    with workspace_for(workspace) as ws:
        result = variants_result(_events(ws, level, by), converted=converted, top=top, collapse_repeats=collapse_repeats)
    if as_json:
        print_json(result)
        return
    from journeymap.journey.durations import format_duration

    out = Console()
    cols = ["variant", "units", "share", "median duration"] + (["converted", "dropped"] if converted else [])
    table = Table(*cols)
    for v in result["variants"][:SHOWN]:
        row = [" → ".join(v["path"]), f"{v['count']:,}", pct(v["share"]),
               "–" if v["median_seconds"] is None else format_duration(v["median_seconds"])]
        if converted:
            row += [f"{v['converted']:,}", f"{v['dropped']:,}"]
        table.add_row(*row)
    out.print(table)
    if len(result["variants"]) > SHOWN:
        out.print(f"{len(result['variants']) - SHOWN:,} more variants: use --top N to bucket them as 'other', or --json")
    out.print(f"{result['units']:,} units, {result['distinct']:,} distinct variants")


def register(app: typer.Typer) -> None:
    """Add the `paths` and `variants` commands to `app`."""
    app.command("paths")(paths)
    app.command("variants")(variants)
