"""`journeymap serve`: the web app, the JSON API and the tracking API in one process."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated

import typer

from journeymap.cli.common import WorkspaceOpt, err, fail, fail_with
from journeymap.errors import JourneymapError, WorkspaceError
from journeymap.ingest.journal import Journal, JournalUnavailable
from journeymap.ingest.store import StoreLocked, open_store, store_path
from journeymap.journey.load import store_settings_for
from journeymap.server.local import LocalServer, new_token, server_holding

HOST_HELP = (
    "Interface to listen on. The default, 127.0.0.1, is reachable from this machine only: the server has no TLS "
    "and no authentication beyond API keys, so exposing it (0.0.0.0, ideally behind a TLS proxy) is a deliberate choice."
)


def is_loopback(host: str) -> bool:
    """Whether `--host` is reachable from this machine only: `localhost`, 127.0.0.0/8 or ::1.

    >>> [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::", "192.168.1.5", "example.com")]
    [True, True, True, False, False, False, False]
    """
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def exposure_warning(host: str) -> str | None:
    """What `serve` says when it listens beyond this machine: the traffic (write and read keys included)
    is plain HTTP."""
    if is_loopback(host):
        return None
    where = "every interface" if host in ("", "0.0.0.0", "::") else host
    return (f"warning: listening on {where}: traffic is not encrypted (plain HTTP; API keys and events cross the network "
            "readable). Put a TLS-terminating proxy (nginx, Caddy, a load balancer) in front and let only it reach this port.")


def addresses(workspace: Path, host: str, port: int) -> list[str]:
    """What `serve` prints on start: where the web app, the JSON API and the tracking API are. A server on every
    interface (0.0.0.0, ::) is shown at this machine's loopback address, which a browser here can open."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    base = f"http://{shown}:{port}"
    everywhere = f" (listening on {host or 'every interface'})" if shown != host else ""
    return [
        f"journeymap: serving {workspace} on {base}{everywhere}; Ctrl+C stops",
        f"  web app       {base}/app/  (sign in with a read key: `journeymap keys create --kind read --name NAME "
        f"--workspace {workspace}`)",
        f"  JSON API      {base}/api/v1/",
        f"  tracking API  {base}/v1/",
    ]


def locked_message(workspace: Path, exc: StoreLocked) -> str:
    """Why `serve` cannot start on a locked workspace: another server serves it, or a command is using it.
    The server does not wait for a command: it would accept nothing meanwhile, and a command may run long."""
    holder = server_holding(workspace, exc.pid)
    if holder is not None:
        return (f"{workspace} is already served by pid {holder.pid} at {holder.url}; stop that server first, "
                "or use it (CLI commands on this machine are answered by it)")
    who = f"pid {exc.pid}" if exc.pid else "another process"
    return (f"cannot serve {workspace}: the workspace is locked by {who}, a journeymap command (or another program) "
            f"that has {store_path(workspace)} open. Start the server once it has finished; nothing was started")


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        workspace: WorkspaceOpt = Path("."),
        host: Annotated[str, typer.Option(help=HOST_HELP)] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
        rate_limit: Annotated[float, typer.Option(help="Events per second per write key; 0 turns the limit off.")] = 50_000.0,
        burst: Annotated[float | None, typer.Option(help="Events a key may send at once (default: twice --rate-limit).")] = None,
        stitch_seconds: Annotated[float, typer.Option(help="Re-stitch identity at most this often while events arrive.")] = 30.0,
        keep_segments: Annotated[int, typer.Option(help="Loaded journal segments to keep in journal/loaded/ for debugging.")] = 0,
        duckdb_threads: Annotated[int, typer.Option(
            help="DuckDB threads (loads, stitching, and the API's queries: one database); 0 = one per core. "
                 "1 keeps a load or stitch from taking every core from the requests.")] = 0,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    ):
        """Serve a workspace: the web app (/app), the JSON API (/api/v1/) and the tracking API (Segment's HTTP API:
        /v1/track, /v1/batch, ...). The addresses are printed on start."""
        import uvicorn

        from journeymap.server.app import create_app

        if not store_path(workspace).parent.is_dir():
            fail(f"{workspace}: no such workspace folder; create one with `journeymap init {workspace}`")
        try:
            # a clean "locked by pid N" (or bad store or server setting in journeymap.yml) now, rather than a
            # failed startup later
            open_store(workspace, settings=store_settings_for(workspace)).close()
            # The journal for real (recovered, a segment created and closed): a read-only or full folder is one
            # line now, rather than a traceback from the server's startup.
            probe = Journal(workspace / "journal")
            probe.open()
            probe.close()
            local = LocalServer(os.getpid(), host, port, new_token())  # CLI commands here ask this server (docs/server.md)
            app_ = create_app(workspace, rate_limit=rate_limit, burst=burst, stitch_seconds=stitch_seconds,
                              keep_segments=keep_segments, duckdb_threads=duckdb_threads or None, local=local)
        except StoreLocked as exc:
            fail(locked_message(workspace, exc))
        except JournalUnavailable as exc:
            fail_with(WorkspaceError(str(exc)))
        except JourneymapError as exc:
            fail_with(exc)
        for line in addresses(workspace, host, port):
            err.print(line, highlight=False, soft_wrap=True)
        warning = exposure_warning(host)
        if warning:
            err.print(f"[yellow]{warning}[/]", highlight=False, soft_wrap=True)
        config = uvicorn.Config(app_, host=host, port=port, log_level=log_level, lifespan="on", access_log=False)
        server = uvicorn.Server(config)
        server.run()
        if not server.started:
            raise typer.Exit(1)
