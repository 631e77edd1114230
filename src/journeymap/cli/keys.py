"""`journeymap keys`: create, list and revoke the API keys of a workspace.

Keys live in the store. While `journeymap serve` holds it, these commands ask the server (its `/-/keys`,
authenticated by the local token of its server file: cli/forward.py, server/admin.py), which writes the same
table and uses a created key, or refuses a revoked one, from the next request on.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, err, print_json, workspace_for
from journeymap.cli.forward import request, server_for
from journeymap.server.keys import ApiKey, create_key, list_keys, revoke_key


def _key(d: dict) -> ApiKey:
    return ApiKey(d["key_id"], d["kind"], d["name"], d["created_at"], d["revoked_at"])


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="API keys: write keys for the tracking API, read keys for the JSON API.", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("create")
    def create(
        kind: Annotated[str, typer.Option("--kind", help="write (tracking API), read (JSON API), admin (erase: docs/privacy.md) or operator (close and assign tasks, re-send deliveries: docs/delivery.md).")],
        name: Annotated[str, typer.Option("--name", help="What the key is for, e.g. website or ios-app.")],
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ):
        """Create a key and print its token: the only time it is shown (the store keeps a hash)."""
        with workspace_for(workspace) as ws:
            server = server_for(ws)
            if server is None:
                key, token = create_key(ws.con, kind, name)
            else:
                answer = request(server, "POST", "/-/keys", body={"kind": kind, "name": name})
                key, token = _key(answer), answer["token"]
        if as_json:
            print_json({**key.as_dict(), "token": token})
            return
        err.print(f"created {key.kind} key {key.key_id} ({key.name}); the token is shown once, keep it now:", highlight=False)
        typer.echo(token)

    @keys.command("list")
    def list_(workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False):
        """List keys (never their tokens)."""
        with workspace_for(workspace) as ws:
            server = server_for(ws)
            rows = list_keys(ws.con) if server is None else [_key(k) for k in request(server, "GET", "/-/keys")["keys"]]
        if as_json:
            print_json({"keys": [k.as_dict() for k in rows]})
            return
        table = Table("key_id", "kind", "name", "created_at", "revoked_at")
        for k in rows:
            table.add_row(k.key_id, k.kind, k.name, str(k.created_at)[:19], "" if k.revoked_at is None else str(k.revoked_at)[:19])
        Console().print(table)

    @keys.command("revoke")
    def revoke(key_id: Annotated[str, typer.Argument(help="The key_id from `journeymap keys list`.")],
               workspace: WorkspaceOpt = Path("."), as_json: JsonOpt = False):
        """Revoke a key: requests with it get 401 (at once when the server runs: it is asked to revoke it)."""
        with workspace_for(workspace) as ws:
            server = server_for(ws)
            if server is None:
                key = revoke_key(ws.con, key_id)
            else:
                key = _key(request(server, "POST", f"/-/keys/{urllib.parse.quote(key_id, safe='')}/revoke"))
        if as_json:
            print_json(key.as_dict())
            return
        err.print(f"revoked {key.key_id} ({key.kind}, {key.name}) at {str(key.revoked_at)[:19]}", highlight=False)
