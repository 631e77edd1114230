"""What every command shares: its options, opening a workspace, failing cleanly, printing JSON, progress.

Errors are shown by type (journeymap.errors): a JourneymapError prints its message and exits with its
`exit_code` (2 a bad option, 3 not enough data, 1 any other user error); an unexpected exception is an
internal error (exit 70) with a one-line summary, and its traceback only with JOURNEYMAP_DEBUG=1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from journeymap.analyses.base import to_json
from journeymap.errors import InternalError, JourneymapError, WorkspaceError, raised_by_journeymap
from journeymap.workspace import Workspace

err = Console(stderr=True)


def _flags_without_a_type() -> None:
    """Typer's Rich help writes a type after every option, `<bool>` after flags too (`--json <bool>`), as if a
    flag took a value; none does, and Typer's plain help already leaves it out (TyperOption.get_help_record), so
    the Rich help shows no type for a flag either. Typers that do not write one have nothing to change."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "flags_untyped", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.flags_untyped = True
    TyperOption.display_type_rich = display_type_rich


_flags_without_a_type()

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", help="The workspace folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

LEGACY_USER_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
"""Errors raised with a user-facing message by modules not yet on journeymap.errors (exit 1, no traceback):
a ValueError only when journeymap raised it; a library's is an internal error (errors.raised_by_journeymap)."""


def fail(message: str, code: int = 1) -> NoReturn:
    # soft_wrap: a long path is never cut mid-word by a newline, so it can be copied from the terminal whole.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # messages quote [extras] and paths
    raise typer.Exit(code)


def fail_with(exc: BaseException) -> NoReturn:
    """Show an error by its type and exit with its code."""
    if isinstance(exc, JourneymapError):
        fail(str(exc), exc.exit_code)
    if isinstance(exc, LEGACY_USER_ERRORS) and (raised_by_journeymap(exc) or isinstance(exc, OSError)):
        fail(str(exc), 1)
    if os.environ.get("JOURNEYMAP_DEBUG"):
        raise exc
    internal = InternalError(f"{type(exc).__name__}: {exc}")
    fail(f"internal error ({internal}); this is a bug: please report it, with the output of the same command "
         "run with JOURNEYMAP_DEBUG=1", internal.exit_code)


@contextmanager
def workspace_for(path: Path) -> Iterator[Workspace]:
    """The workspace, closed afterwards; an error inside the block is shown by `fail_with`."""
    if not path.is_dir():
        fail_with(WorkspaceError(f"{path}: no such workspace folder; create one with `journeymap init {path}`"))
    ws = Workspace(path)
    try:
        yield ws
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - every error leaves as a message and an exit code
        fail_with(exc)
    finally:
        ws.close()


@contextmanager
def progress_for(name: str, quiet: bool = False):
    """A progress bar on stderr for a slow analysis: `progress(message, fraction or None)`."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=err,
                  transient=True, disable=quiet or not err.is_terminal) as bar:
        task = bar.add_task(name, total=1.0)

        def progress(message: str, fraction: float | None = None) -> None:
            bar.update(task, description=message, **({"completed": fraction} if fraction is not None else {}))

        yield progress


def print_json(data) -> None:
    """JSON for scripts, encoded as the server encodes it (analyses.base.to_json): ISO dates, never a bare NaN."""
    sys.stdout.write(to_json(data, indent=2) + "\n")


def print_warnings(warnings: list[dict]) -> None:
    """One line on stderr per warning ({"key", "message", "suggestion"}), as every command shows them."""
    for w in warnings:
        hint = f" ({w['suggestion']})" if w.get("suggestion") else ""
        err.print(f"[yellow]warning:[/] {escape(w['key'])}: {escape(w['message'])}{escape(hint)}", highlight=False,
                  soft_wrap=True)


def shown_time(value, to_seconds: bool = True) -> str:
    """A time as the tables show it, from the store (a datetime) or from JSON (ISO text): 2026-05-01 12:00:00;
    `to_seconds=False` keeps the fraction of a second when there is one."""
    if value is None:
        return ""
    text = str(value).replace("T", " ")
    return text[:19] if to_seconds else text


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"
