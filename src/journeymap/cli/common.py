"""What every command shares: its options, opening a workspace, failing cleanly, printing JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.markup import escape
from rich.console import Console

from journeymap.ingest.store import StoreLocked
from journeymap.journey.load import DefinitionError
from journeymap.workspace import Workspace

err = Console(stderr=True)

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", help="The workspace folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

USER_ERRORS = (ValueError, DefinitionError, FileNotFoundError, IsADirectoryError, StoreLocked)
"""Errors that are the user's to fix: printed as one line, exit code 1, no traceback."""


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)  # messages quote [extras] and paths
    raise typer.Exit(1)


@contextmanager
def workspace_for(path: Path) -> Iterator[Workspace]:
    """The workspace, closed afterwards; a user error inside the block becomes `fail`."""
    ws = Workspace(path)
    try:
        yield ws
    except USER_ERRORS as exc:
        fail(str(exc))
    finally:
        ws.close()


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"
