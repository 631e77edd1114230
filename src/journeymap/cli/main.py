"""The `journeymap` command. Every analysis prints a table for people and `--json` for scripts."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, err, fail, fail_with, print_json, print_warnings, workspace_for
from journeymap.cli.forward import read_report
from journeymap.errors import JourneymapError, OptionError
from journeymap.ingest.store import StoreLocked
from journeymap.journey.load import DefinitionError
from journeymap.workspace import DEFAULT_MAX_REJECT_RATE, Workspace

app = typer.Typer(
    help="journeymap: a living, data-driven customer journey map from your product, CRM, billing, support and survey data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _spark_state_line(refreshed) -> str:
    """One line on the Spark fold of a refresh: what each level did, or why it did not run."""
    report = refreshed.spark_state
    if report is None:
        return refreshed.spark_state_note
    levels = "; ".join(f"{lv.level} {lv.mode} ({lv.changed_units:,} of {lv.units:,} units changed)" for lv in report.levels)
    return f"journey state folded on Spark in {report.seconds:.1f} s: {levels}"


def _out() -> Console:
    # made per command, so the terminal's width (COLUMNS) is read when the command runs, not at import
    return Console()


def _print_version(value: bool) -> None:
    """The installed package's version (the package root, which says the same, is above this layer)."""
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"journeymap {version('journeymap')}")
        except PackageNotFoundError:
            fail("journeymap is not installed as a package, so it has no version: `pip install -e .` installs it")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_print_version, is_eager=True,
                                          help="Print journeymap's version and exit.")] = False,
) -> None:
    pass


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="The workspace folder; created when missing.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing journeymap.yml (data/ and the store are kept).")] = False,
    from_data: Annotated[list[str] | None, typer.Option(
        "--from-data", help="Files or globs to load and propose journeymap.yml from (stages, touchpoints, personas, "
                            "surveys, revenue), marked as a draft to edit. Repeatable.")] = None,
    as_json: JsonOpt = False,
):
    """Create a workspace: journeymap.yml with a commented example journey (or, with --from-data, a draft proposed
    from your events), and a data folder."""
    try:
        ws = Workspace.init(directory, force=force)
    except FileExistsError:
        fail(f"{directory / 'journeymap.yml'} exists: pass --force to overwrite it with the template "
             f"(`journeymap init {directory} --force`; data/ and the store are kept)")
    if from_data:
        try:
            reports, draft = ws.draft_from_data(from_data)
        except JourneymapError as exc:
            fail_with(exc)
        finally:
            ws.close()
        if as_json:
            print_json({"workspace": str(directory), "definition": str(directory / "journeymap.yml"),
                        "files": [r.as_dict() for r in reports], "draft": draft.as_dict()})
            return
        loaded = sum(r.accepted for r in reports)
        _out().print(f"Loaded {loaded:,} events from {len(reports)} file{'s' if len(reports) != 1 else ''} into "
                  f"[bold]{directory}[/] and proposed a draft journeymap.yml ({draft.units:,} {draft.level}s):",
                  highlight=False)
        for s in draft.stages:
            _out().print(f"  stage {s['id']}: {', '.join(s['evidence'])}", highlight=False, soft_wrap=True)
        _out().print(f"  {len(draft.touchpoints)} touchpoints from sources and channels", highlight=False)
        if draft.personas:
            _out().print(f"  personas from the trait {draft.personas['trait']!r} (customer rate "
                      f"{', '.join(f'{k} {v:.0%}' for k, v in draft.personas['customer_rate'].items())})",
                      highlight=False)
        for s in draft.surveys:
            _out().print(f"  survey {s}", highlight=False)
        for n in draft.notes:
            _out().print(f"  [yellow]check[/] {escape(n)}", highlight=False, soft_wrap=True)
        _out().print(f"Edit {directory / 'journeymap.yml'} (its comments give each choice's evidence), then run "
                  f"`journeymap validate --workspace {directory}` and `journeymap map --workspace {directory}`",
                  highlight=False, soft_wrap=True)
        return
    ws.close()
    if as_json:
        print_json({"workspace": str(directory), "definition": str(directory / "journeymap.yml")})
        return
    _out().print(f"Created workspace [bold]{directory}[/]: edit {directory / 'journeymap.yml'}, put exports in {directory / 'data'}, then run")
    _out().print(f"  journeymap ingest '{directory}/data/*.csv' --workspace {directory}")


def _rate(value: str | None) -> float | None:
    """`50%`, `0.5` or `none` as a fraction (None: no limit)."""
    if value is None or value.strip().lower() in ("none", "off"):
        return None
    text = value.strip()
    try:
        rate = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        fail_with(OptionError(f"--max-reject-rate takes a share such as 50% or 0.5 (or none), not {value!r}",
                              option="max_reject_rate"))
    return rate


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files or globs: CSV, JSON Lines or Parquet, optionally .gz.")],
    workspace: WorkspaceOpt = Path("."),
    source: Annotated[str | None, typer.Option(help="A mapping under sources: in journeymap.yml, or a canonical source name.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv, jsonl or parquet when the name does not say.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail a file on its first rejected row and keep nothing of it.")] = False,
    max_reject_rate: Annotated[str, typer.Option(
        help="A file with a larger share of rejected rows fails the command (its accepted rows stay loaded): "
             "50%, 0.2 or none.")] = f"{DEFAULT_MAX_REJECT_RATE:.0%}",
    delimiter: Annotated[str | None, typer.Option(
        help="CSV delimiter (, ; | or tab); default: the mapping's, else sniffed from the first lines.")] = None,
    encoding: Annotated[str | None, typer.Option(
        help="Text encoding (utf-8, cp1252, latin-1, utf-16...); default: the mapping's, else UTF-8, or "
             "cp1252/latin-1 when the first bytes are not UTF-8.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace the earlier loads of the same file and source (after fixing a "
                                               "mapping): they are removed only once the new load has committed.")] = False,
    as_json: JsonOpt = False,
):
    """Load event files. Bad rows go to dead letters; re-ingesting a file adds nothing. Each file is loaded or
    fails on its own; the command exits 1 when a file failed or had too many rows rejected."""
    rate = _rate(max_reject_rate)
    ws = Workspace(workspace)
    reports = []
    try:
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=err, transient=True, disable=as_json or not err.is_terminal,
        ) as bar:
            tasks: dict[Path, int] = {}

            def on_progress(p):
                if p.path not in tasks:
                    tasks[p.path] = bar.add_task(p.path.name, total=p.total)
                bar.update(tasks[p.path], completed=p.done)

            t0 = time.perf_counter()
            reports = ws.ingest(paths, source=source, strict=strict, fmt=fmt, progress=on_progress,
                                max_reject_rate=rate, delimiter=delimiter, encoding=encoding, raise_on_failure=False,
                                replace=replace)
            elapsed = time.perf_counter() - t0
            spark_tables = ws.spark_tables
            spark_refresh = ws.last_refresh if spark_tables and ws.last_refresh is not None else None
            risk = ws.last_refresh.risk if ws.last_refresh is not None else None
    except JourneymapError as exc:
        fail_with(exc)
    except (FileNotFoundError, IsADirectoryError, ValueError, DefinitionError, StoreLocked) as exc:
        fail(str(exc))
    finally:
        ws.close()
    totals = {k: sum(getattr(r, k) for r in reports) for k in ("rows_read", "accepted", "duplicate", "rejected")}
    failed = [r for r in reports if not r.ok]
    if as_json:
        print_json({"files": [r.as_dict() for r in reports], **totals, "seconds": round(elapsed, 3),
                    "failed": len(failed), **({"spark_tables": spark_tables} if spark_tables else {}),
                    **({"spark_state": spark_refresh.spark_state.to_dict() if spark_refresh.spark_state else
                        {"note": spark_refresh.spark_state_note}} if spark_refresh else {}),
                    **({"risk": risk.to_dict()} if risk is not None else {})})
    else:
        table = Table("file", "status", "rows", "accepted", "duplicate", "rejected", "seconds")
        for r in reports:
            status = {"loaded": "[green]loaded[/]", "failed": "[red]failed[/]"}.get(r.status, f"[yellow]{r.status}[/]")
            table.add_row(r.file, status, f"{r.rows_read:,}", f"{r.accepted:,}", f"{r.duplicate:,}", f"{r.rejected:,}",
                          f"{r.seconds:.2f}")
        _out().print(table)
        _out().print(f"{totals['accepted']:,} accepted, {totals['duplicate']:,} duplicate, {totals['rejected']:,} rejected "
                  f"in {elapsed:.1f} s" + (f"; {len(failed)} of {len(reports)} files failed" if failed else ""))
        if spark_tables:
            _out().print("journey tables for Spark: " + "; ".join(
                f"{t} {paths[0]}" if len(paths) == 1 else f"{t} in {len(paths):,} folders under {Path(paths[0]).parent.parent}"
                for t, paths in spark_tables.items()), highlight=False)
        if spark_refresh is not None:
            _out().print(escape(_spark_state_line(spark_refresh)), highlight=False, soft_wrap=True)
        if risk is not None:
            _out().print(escape(risk.describe()), highlight=False, soft_wrap=True)
        for r in reports:
            d = r.dialect
            sniffed = d is not None and d.delimiter_sniffed and d.delimiter != ","
            if d is not None and (sniffed or d.encoding_detected):
                said = [f"delimiter {d.describe()['delimiter']!r}" if sniffed else "",
                        f"encoding {d.encoding}" if d.encoding_detected else ""]
                _out().print(f"  [cyan]read[/] {r.file} with {' and '.join(x for x in said if x)} (from its first lines; "
                          "--delimiter and --encoding override)", highlight=False, soft_wrap=True)
            for old in r.replaced:
                _out().print(f"  [cyan]replaced[/] load {old['load_id']} of {r.file}: {old['events']:,} events and "
                          f"{old['dead_letters']:,} dead letters removed", highlight=False, soft_wrap=True)
            for w in r.warnings:
                _out().print(f"  [yellow]warning[/] {w}", highlight=False, soft_wrap=True)
            for s in r.samples[:5]:
                _out().print(f"  [yellow]rejected[/] {s.describe(r.file)}", highlight=False)
            if r.rejected > 5:
                _out().print(f"  … {r.rejected - 5:,} more in {r.file}; see `journeymap rejects --workspace {workspace}`")
    for r in failed:
        err.print(f"[bold red]error:[/] {escape(r.error or r.status)}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def rejects(workspace: WorkspaceOpt = Path("."), limit: int = 50, as_json: JsonOpt = False):
    """List dead letters: rejected rows with file, line, field and reason; and the server's journal records set
    aside as damaged (journal/quarantine.jsonl: segment, line, byte offset, reason)."""
    from journeymap.ingest.journal import QUARANTINE, read_quarantine

    with workspace_for(workspace) as ws:
        report = read_report(ws, "rejects", limit)  # the server's answer while it holds the store (cli/forward.py)
    total = report["total"]
    quarantine_file = workspace / "journal" / QUARANTINE
    quarantined = read_quarantine(workspace / "journal")
    shown = [{k: q.get(k) for k in ("segment", "line", "offset", "reason", "detail")} for q in quarantined[:limit]]
    cols = ("file", "row", "field", "reason", "detail")
    if as_json:
        print_json({**report, "quarantined": {"total": len(quarantined), "file": str(quarantine_file), "records": shown}})
        return
    table = Table(*cols)
    for r in report["rejects"]:
        table.add_row(*[("" if r[c] is None else str(r[c])) for c in cols])
    _out().print(table)
    _out().print(f"{total:,} dead letters")
    if quarantined:
        table = Table("segment", "line", "byte", "reason", "detail", title="damaged journal records, set aside")
        for q in shown:
            table.add_row(*[("" if q[k] is None else str(q[k])) for k in ("segment", "line", "offset", "reason", "detail")])
        _out().print(table)
        _out().print(f"{len(quarantined):,} damaged journal records quarantined in {quarantine_file} (their bytes are there, "
                  "in base64); the other records of their segments were loaded", highlight=False, soft_wrap=True)


@app.command()
def validate(workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False):
    """Check journeymap.yml, then (with events) against the data: errors name the key and the problem;
    warnings name the key of a rule, persona or stage the data does not bear out, with "did you mean"."""
    ws = Workspace(workspace)
    try:
        d = ws.definition
    except DefinitionError as exc:
        if as_json:
            print_json({"ok": False, "errors": [{"key": k, "message": m} for k, m in exc.problems], "warnings": []})
            raise typer.Exit(exc.exit_code) from None
        fail(str(exc))
    try:
        warnings = read_report(ws, "check")["warnings"]  # the server's answer while it holds the store (cli/forward.py)
    except Exception as exc:  # noqa: BLE001 - a store another command holds, a bad workspace: said as any command says it
        fail_with(exc)
    finally:
        ws.close()
    if as_json:
        print_json({"ok": True, "errors": [], "warnings": warnings})
        return
    print_warnings(warnings)
    said = f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''} (above)" if warnings else ""
    _out().print(f"[green]ok[/] {ws.definition_path}: {len(d.stages)} stages, {len(d.touchpoints)} touchpoints, "
              f"{len(d.personas)} personas, {len(d.surveys)} surveys, {len(d.targets)} targets, "
              f"{len(d.sources)} source mappings, {len(d.playbooks)} playbooks"
              + (f", {len(d.experiments)} experiment{'s' if len(d.experiments) != 1 else ''}" if d.experiments else "")
              + said, highlight=False, soft_wrap=True)


@app.command()
def schema():
    """Print the JSON Schema of journeymap.yml."""
    from journeymap.journey.load import json_schema

    sys.stdout.write(json_schema() + "\n")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the demo workspace.")] = Path("journeymap-demo"),
    accounts: Annotated[int, typer.Option(help="Accounts to simulate.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same business.")] = 42,
):
    """Simulate a B2B SaaS business, ingest it, and write its journey map to OUT/journey-map.html."""
    from journeymap.cli.demo import run_demo

    try:
        summary = run_demo(out_dir, accounts=accounts, seed=seed, console=err)
    except StoreLocked as exc:
        fail(str(exc))
    for line in summary:
        _out().print(line, highlight=False, soft_wrap=True)


@app.command()
def analyses(as_json: JsonOpt = False):
    """List the analyses: each with what it answers, its unit of analysis, options and definition."""
    from journeymap.analyses.catalog import catalog

    if as_json:
        print_json({"analyses": catalog("cli")})
        return
    table = Table("analysis", "what it answers", "options")
    for a in catalog("cli"):
        table.add_row(a["name"], a["summary"], " ".join(o["flag"] for o in a["options"]))
    _out().print(table)


# Every analysis of the registry is a command generated from its description (cli/commands.py); the
# commands that are not analyses (serve, keys, interviews) register themselves.
from journeymap.cli import act as _act  # noqa: E402
from journeymap.cli import backup as _backup  # noqa: E402
from journeymap.cli import improvements as _improvements  # noqa: E402
from journeymap.cli import keys as _keys  # noqa: E402
from journeymap.cli import loads as _loads  # noqa: E402
from journeymap.cli import privacy as _privacy  # noqa: E402
from journeymap.cli import serve as _serve  # noqa: E402
from journeymap.cli import state as _state  # noqa: E402
from journeymap.cli import voice as _voice  # noqa: E402
from journeymap.cli.commands import add_analysis_commands  # noqa: E402

add_analysis_commands(app)
for _module in (_loads, _state, _voice, _serve, _keys, _backup, _privacy, _improvements, _act):
    _module.register(app)

# Acting on the journey: `journeymap act ...` (delivery: cli/delivery.py) and `journeymap tasks`.
from journeymap.cli.delivery import add_delivery_commands, tasks_app  # noqa: E402

add_delivery_commands(_act.act)  # send, retry, outbox beside --dry-run and backtest in the one `act` group
app.add_typer(tasks_app, name="tasks")


if __name__ == "__main__":
    app()
