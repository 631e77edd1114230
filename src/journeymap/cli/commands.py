"""CLI commands generated from the registry (journeymap.analyses): one command per analysis.

Each option of an analysis's parameter model becomes a flag (`--` + its alias or name), with the model's help,
choices and default; values reach the model as typed, so a bad one gets the registry's message and exit code
2 on every surface alike. The command adds only what is the terminal's: `--workspace`, `--json`, the view
options of the table (`Analysis.view`), and a renderer from `journeymap.cli.render`. While `journeymap serve`
holds the workspace, the server computes the result (cli/forward.py) and the command prints it the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from journeymap.analyses import REGISTRY, Analysis
from journeymap.analyses.base import Option, options, validate
from journeymap.cli.common import (JsonOpt, WorkspaceOpt, fail_with, print_json, print_warnings, progress_for,
                                    workspace_for)
from journeymap.cli.forward import analysis_via, server_for
from journeymap.errors import JourneymapError

__all__ = ["add_analysis_commands"]


def _help(o: Option) -> str:
    """The option's help as Typer shows it: Rich markup escaped (`journeymap[embeddings]` stays whole)."""
    return escape(_plain_help(o))


def _plain_help(o: Option) -> str:
    text = o.help
    if o.choices and o.kind != "bool":
        text += f" One of: {', '.join(map(str, o.choices))}."
    if o.required:
        return text + " [required]"
    if o.default is not None and o.default is not False and o.default != []:  # 0 is a default worth saying
        shown = ",".join(map(str, o.default)) if isinstance(o.default, list) else o.default
        text += f" [default: {shown}]"
    return text


def _parameter(o: Option) -> inspect.Parameter:
    if o.positional:  # `journeymap experiment NAME`: required, so click says when it is missing
        annotation: Any = Annotated[str, typer.Argument(metavar=o.name.upper(), help=escape(o.help), show_default=False)]
        return inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=..., annotation=annotation)
    if o.kind == "bool":
        decl = o.flag if not o.default else f"{o.flag}/--no-{o.flag[2:]}"
        annotation = Annotated[bool, typer.Option(decl, help=escape(o.help))]
        default = bool(o.default)
    elif o.kind == "list":
        text = _help(o) if "Repeatable" in o.help else escape(_plain_help(o) + " Repeatable.")
        annotation = Annotated[list[str] | None, typer.Option(o.flag, help=text, metavar="TEXT", show_default=False)]
        default = None
    else:
        metavar = {"int": "N", "float": "X", "choice": "[" + "|".join(map(str, o.choices or ())) + "]"}.get(o.kind, "TEXT")
        annotation = Annotated[str | None, typer.Option(o.flag, help=_help(o), metavar=metavar, show_default=False)]
        default = None
    return inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _cli_options(model) -> list[Option]:
    return list(options(model, "cli"))


def _given(model, opts: list[Option], kwargs: dict) -> dict:
    """What the user typed: options left out take the model's default."""
    raw = {}
    for o in opts:
        value = kwargs.get(o.name)
        if o.kind == "bool":
            if value != bool(o.default):
                raw[o.name] = value
        elif value not in (None, []):
            raw[o.name] = value
    return raw


def command_for(analysis: Analysis, render: Callable[..., None], extra: list[inspect.Parameter] = (),
                after: Callable[..., None] | None = None) -> Callable[..., None]:
    """A Typer command for `analysis`; `render(result, params, view)` prints the table, or
    `after(result, params, as_json=, workspace=, **extra options)` prints what the command prints instead."""
    opts = _cli_options(analysis.params)
    view_opts = _cli_options(analysis.view) if analysis.view else []

    def command(**kwargs) -> None:
        workspace, as_json = kwargs.pop("workspace"), kwargs.pop("as_json")
        extras = {p.name: kwargs.pop(p.name) for p in extra}
        try:  # options are checked before the workspace is opened
            params = validate(analysis.params, _given(analysis.params, opts, kwargs))
            view = validate(analysis.view, _given(analysis.view, view_opts, kwargs)) if analysis.view else None
        except JourneymapError as exc:
            fail_with(exc)
        with workspace_for(workspace) as ws:
            server = server_for(ws)  # while `journeymap serve` holds the workspace, it answers (cli/forward.py)
            if server is not None:
                result = analysis_via(server, analysis, params)
            else:
                with progress_for(analysis.name, quiet=as_json or not analysis.slow) as progress:
                    result = analysis(ws, params, progress)
        if not as_json:  # with --json they are in the output's `warnings`
            print_warnings(result.get("warnings") or [])
        if after is not None:  # the command prints its own output (the map: HTML and/or JSON)
            after(result, params, as_json=as_json, workspace=workspace, **extras)
        elif as_json:
            print_json(result)
        elif render is not None:
            render(result, params, view)

    parameters = [_parameter(o) for o in opts] + [_parameter(o) for o in view_opts] + list(extra) + [
        inspect.Parameter("workspace", inspect.Parameter.KEYWORD_ONLY, default=Path("."), annotation=WorkspaceOpt),
        inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOpt),
    ]
    command.__signature__ = inspect.Signature(parameters)
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = analysis.summary + f"\n\nDefinitions: {analysis.doc}."
    command.__name__ = analysis.name
    return command


def add_analysis_commands(app: typer.Typer) -> None:
    """Add every analysis of the registry to `app`, each with its renderer (cli/render.py)."""
    from journeymap.cli import render

    for analysis in REGISTRY:
        special = render.SPECIAL.get(analysis.name, {})
        app.command(analysis.name)(command_for(analysis, render.RENDERERS[analysis.name], **special))
