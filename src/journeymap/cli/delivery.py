"""Delivering what the playbooks fired (journeymap.act.deliver; docs/delivery.md):

  journeymap act send [--once]        deliver the outbox's due rows (or keep delivering until stopped)
  journeymap act retry [KEY ...] [--dead]   queue rows to be sent again
  journeymap act outbox [--status]    what is pending, failed, retried or dead, with the last errors
  journeymap tasks [--owner] [--status]; tasks close ID; tasks assign ID OWNER

`add_delivery_commands(act_app)` adds the first three to the `act` group; `tasks_app` is its own group.

While `journeymap serve` holds the workspace, `act outbox`, `act retry` and the `tasks` commands ask it (the
Tasks and Outbox routes, with the local token of its server file: cli/forward.py), and `act send` says that
the server's own sender delivers.
"""

from __future__ import annotations

import contextlib
import getpass
import threading
import urllib.parse
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from journeymap.act import deliver
from journeymap.act import tasks as act_tasks
from journeymap.cli.common import JsonOpt, WorkspaceOpt, err, print_json, shown_time, workspace_for
from journeymap.cli.forward import request, server_for
from journeymap.errors import WorkspaceError


def _out() -> Console:
    # made per command, so the terminal's width (COLUMNS) is read when the command runs, not at import
    return Console()


def add_delivery_commands(act_app: typer.Typer) -> None:
    @act_app.command()
    def send(
        workspace: WorkspaceOpt = Path("."),
        once: Annotated[bool, typer.Option("--once", help="Deliver what is due now, then exit (rows retried later "
                                                          "stay pending); without it, keep delivering until stopped.")] = False,
        max_attempts: Annotated[int | None, typer.Option(help="Attempts before a row is dead "
                                                              "[env JOURNEYMAP_ACT_MAX_ATTEMPTS; default 10].")] = None,
        backoff: Annotated[float | None, typer.Option(help="Seconds before the second attempt, doubled after each "
                                                           "[env JOURNEYMAP_ACT_BACKOFF; default 30].")] = None,
        backoff_max: Annotated[float | None, typer.Option(help="The longest wait between attempts, seconds "
                                                               "[env JOURNEYMAP_ACT_BACKOFF_MAX; default 3600].")] = None,
        timeout: Annotated[float | None, typer.Option(help="Seconds a receiver has to answer "
                                                           "[env JOURNEYMAP_ACT_TIMEOUT; default 10].")] = None,
        concurrency: Annotated[int | None, typer.Option(help="Rows sent at once "
                                                             "[env JOURNEYMAP_ACT_CONCURRENCY; default 4].")] = None,
        poll: Annotated[float, typer.Option(help="Without --once: seconds between looks at the outbox.")] = 1.0,
        as_json: JsonOpt = False,
    ):
        """Deliver the outbox: signed webhooks, Slack messages, emails and tasks, each at least once with its key
        as the idempotency key; failures are retried with backoff, then dead (`journeymap act outbox`).
        `journeymap serve` delivers by itself: run this on a workspace no server holds."""
        stop = threading.Event()
        with workspace_for(workspace) as ws:
            server = server_for(ws)
            if server is not None:
                raise WorkspaceError(f"{workspace} is served by pid {server.pid} at {server.url}, whose sender thread "
                                     "delivers the outbox: nothing to run here (its /-/health shows how it does)")
            policy = deliver.Policy.from_env(max_attempts=max_attempts, backoff=backoff, backoff_max=backoff_max,
                                             timeout=timeout, concurrency=concurrency)
            live = not as_json and err.is_terminal
            status = err.status("delivering…") if live else None

            def shown(_key, _outcome, _status) -> None:
                if status is not None:
                    s = sender.summary
                    status.update(f"delivered {s.delivered:,}, retrying {s.retried:,}, dead {s.dead + s.refused:,}")

            with status if status is not None else contextlib.nullcontext(), deliver.Sender(ws.con, policy, on_outcome=shown) as sender:
                try:
                    summary = sender.drain() if once else sender.run(stop, poll=poll)
                except KeyboardInterrupt:
                    stop.set()
                    summary = sender.summary
                left = deliver.outbox_rows(ws.con, "pending", limit=0)["counts"]
                nxt = sender.next_due()
        result = {**summary.to_dict(), "pending": left["pending"], "dead_total": left["dead"], "next_due": nxt}
        if as_json:
            print_json(result)
            return
        _out().print(f"delivered {summary.delivered:,}, retried {summary.retried:,} (will try again), "
                  f"dead {summary.dead:,}, refused {summary.refused:,}; {left['pending']:,} pending"
                  + (f" (next due {shown_time(nxt)} UTC)" if nxt else "") + f", {left['dead']:,} dead in all",
                  highlight=False, soft_wrap=True)
        for e in summary.errors[-5:]:
            _out().print(f"  [yellow]{e['status']}[/] {escape(e['key'])}: {escape(e['error'])}", highlight=False,
                      soft_wrap=True)

    @act_app.command()
    def retry(
        keys: Annotated[list[str] | None, typer.Argument(help="Outbox keys to send again (any status).")] = None,
        workspace: WorkspaceOpt = Path("."),
        dead: Annotated[bool, typer.Option("--dead", help="Every dead row.")] = False,
        as_json: JsonOpt = False,
    ):
        """Queue rows to be sent again now, with a fresh count of attempts: the KEYs given, and every dead one with
        --dead. They keep their key, so a receiver that de-duplicates handles each once."""
        with workspace_for(workspace) as ws:
            server = server_for(ws)
            queued = (deliver.retry(ws.con, keys or [], dead=dead) if server is None else
                      request(server, "POST", "/app/outbox/retry.json", body={"keys": keys or [], "dead": dead})["queued"])
        if as_json:
            print_json({"queued": queued})
            return
        _out().print(f"{len(queued):,} row{'s' if len(queued) != 1 else ''} queued to be sent again"
                  + (f"; `journeymap act send --workspace {workspace}` sends them" if queued else ""),
                  highlight=False, soft_wrap=True)

    @act_app.command()
    def outbox(
        workspace: WorkspaceOpt = Path("."),
        status: Annotated[str, typer.Option("--status", help="open (pending and dead), pending, failed, retried, "
                                                              "dead, delivered or all.")] = "open",
        limit: Annotated[int, typer.Option(help="Rows to show.")] = 200,
        as_json: JsonOpt = False,
    ):
        """The outbox: rows pending (failed ones with their next try), dead ones with the receiver's answer."""
        with workspace_for(workspace) as ws:
            server = server_for(ws)
            data = (deliver.outbox_rows(ws.con, status, limit=limit) if server is None else
                    request(server, "GET", "/app/outbox.json", query=[("status", status)]))
            data["rows"] = data["rows"][:limit]
        if as_json:
            print_json(data)
            return
        table = Table()
        # a key is what `act retry` takes: it is never wrapped or cut, whatever the terminal's width
        table.add_column("key", no_wrap=True, min_width=max((len(r["key"]) for r in data["rows"]), default=3))
        for name in ("kind", "status", "attempts", "next try", "last error"):
            table.add_column(name)
        for r in data["rows"]:
            table.add_row(r["key"], r["kind"], r["status"], str(r["attempts"]), shown_time(r["next_attempt_at"]),
                          escape(r["last_error"] or ""))
        _out().print(table)
        c = data["counts"]
        _out().print(f"{c['pending']:,} pending ({c['failed']:,} failed, to be retried), {c['dead']:,} dead, "
                  f"{c['delivered']:,} delivered ({c['retried']:,} after a retry); showing {len(data['rows']):,} "
                  f"of {data['total']:,} {status}", highlight=False, soft_wrap=True)


tasks_app = typer.Typer(help="journeymap's task list: tasks opened by playbooks' task actions.",
                        no_args_is_help=False, invoke_without_command=True)


def _task_line(t: dict) -> str:
    return (f"task {t['id']} ({t['status']}, owner {t['owner'] or '–'}): {t['title']}"
            + (f"; closed {shown_time(t['closed_at'])} by {t['closed_by']}" if t["status"] == "done" else ""))


@tasks_app.callback(invoke_without_command=True)
def tasks_list(
    ctx: typer.Context,
    workspace: WorkspaceOpt = Path("."),
    owner: Annotated[str | None, typer.Option(help="Only this owner's tasks.")] = None,
    status: Annotated[str, typer.Option(help="open, done or all.")] = "open",
    as_json: JsonOpt = False,
):
    """List tasks (open ones by default), by due date."""
    if ctx.invoked_subcommand is not None:
        return
    with workspace_for(workspace) as ws:
        server = server_for(ws)
        rows = (act_tasks.list_tasks(ws.con, owner=owner, status=status) if server is None else
                request(server, "GET", "/app/tasks.json", query=[("status", status)] + ([("owner", owner)] if owner else
                                                                                         []))["tasks"])
    if as_json:
        print_json({"tasks": rows})
        return
    table = Table("id", "owner", "status", "due", "title", "unit", "playbook")
    for t in rows:
        table.add_row(str(t["id"]), t["owner"] or "", t["status"], shown_time(t["due_at"]), escape(t["title"]),
                      t["unit_id"], t["playbook"])
    _out().print(table)
    _out().print(f"{len(rows):,} {status} task{'s' if len(rows) != 1 else ''}", highlight=False)


def _me() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


@tasks_app.command("close")
def tasks_close(
    task_id: Annotated[str, typer.Argument(metavar="ID", help="The task's id (`journeymap tasks`).")],
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
):
    """Mark a task done (closing a done task changes nothing)."""
    with workspace_for(workspace) as ws:
        server = server_for(ws)
        task = (act_tasks.close_task(ws.con, task_id, by=_me(), now=deliver.utcnow()) if server is None else
                request(server, "POST", f"/app/tasks/{urllib.parse.quote(task_id, safe='')}/close.json")["task"])
    if as_json:
        print_json(task)
        return
    _out().print(_task_line(task), highlight=False, soft_wrap=True)


@tasks_app.command("assign")
def tasks_assign(
    task_id: Annotated[str, typer.Argument(metavar="ID", help="The task's id (`journeymap tasks`).")],
    owner: Annotated[str, typer.Argument(metavar="OWNER", help="Who owns it now.")],
    workspace: WorkspaceOpt = Path("."),
    as_json: JsonOpt = False,
):
    """Give a task to another owner (the task keeps the history of its owners)."""
    with workspace_for(workspace) as ws:
        server = server_for(ws)
        task = (act_tasks.assign_task(ws.con, task_id, owner, by=_me(), now=deliver.utcnow()) if server is None else
                request(server, "POST", f"/app/tasks/{urllib.parse.quote(task_id, safe='')}/assign.json",
                        body={"owner": owner})["task"])
    if as_json:
        print_json(task)
        return
    _out().print(_task_line(task), highlight=False, soft_wrap=True)
