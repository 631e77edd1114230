"""`journeymap interviews DIR`: load interview transcripts as events (the `voice` analysis reads them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from journeymap.cli.common import JsonOpt, WorkspaceOpt, print_json, workspace_for




def register(app: typer.Typer) -> None:
    @app.command()
    def interviews(
        directory: Annotated[Path, typer.Argument(help="A folder of .txt transcripts, one per interview.")],
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ):
        """Add interview transcripts: each .txt file starts with `email: ...` and `date: YYYY-MM-DD` lines,
        a blank line, then the text. They are ingested as `interview_transcript` events (adding again adds nothing)."""
        with workspace_for(workspace) as ws:
            result = ws.add_interviews(directory)
        if as_json:
            print_json(result)
            return
        Console().print(f"{result['transcripts']:,} transcripts: {result['accepted']:,} accepted, "
                        f"{result['duplicate']:,} duplicate, {result['rejected']:,} rejected ({result['file']})")
