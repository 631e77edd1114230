"""`journeymap erase`: remove every trace of a person or an account (docs/privacy.md).

While `journeymap serve` holds the workspace, the command asks the server (its `/-/erase`, authenticated by the
local token of its server file, as `journeymap keys` does: cli/forward.py, server/admin.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from journeymap.cli.common import JsonOpt, WorkspaceOpt, fail_with, print_json, workspace_for
from journeymap.cli.forward import request, server_for
from journeymap.errors import OptionError


def register(app: typer.Typer) -> None:
    @app.command()
    def erase(
        person: Annotated[str | None, typer.Option("--person", help="A person_id (u:ann, as analyses show it) or any "
                                                                   "identifier of theirs: user id, anonymous id, email.")] = None,
        email: Annotated[str | None, typer.Option("--email", help="The person's email (any case).")] = None,
        account: Annotated[str | None, typer.Option("--account", help="An account id: its events and every person whose "
                                                                     "account it is.")] = None,
        compact_only: Annotated[bool, typer.Option("--compact-only", help="Only rewrite the store so that deleted rows "
                                                                          "leave no bytes (after a failed compaction).")] = False,
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ):
        """Erase a person (GDPR/CCPA): their events and survey texts, profile, identity links, dead letters, journal
        records and journey state; then rewrite the store so their bytes are gone. A salted hash of each identifier
        is kept, so a later ingest of an old export refuses their rows (reason `erased`)."""
        given = [f for f, v in (("--person", person), ("--email", email), ("--account", account)) if v is not None]
        if compact_only and given:
            fail_with(OptionError("--compact-only takes no --person, --email or --account", option="compact_only"))
        if not compact_only and len(given) != 1:
            fail_with(OptionError("say who to erase with exactly one of --person ID, --email EMAIL or --account ACCOUNT"
                                  + (f" (got {' and '.join(given)})" if given else ""), option="person"))
        with workspace_for(workspace) as ws:
            server = server_for(ws)
            if compact_only:
                result = {"compacted": ws.compact() if server is None else
                          request(server, "POST", "/-/erase", body={"compact_only": True})["compacted"]}
            elif server is None:
                result = ws.erase(person=person, email=email, account=account)
            else:
                result = request(server, "POST", "/-/erase", body={"person": person, "email": email, "account": account})
        if as_json:
            print_json(result)
            return
        out = Console()
        if "removed" in result:
            who = f"{len(result['persons']):,} person{'s' if len(result['persons']) != 1 else ''}"
            if result["accounts"]:
                who += f" and account {result['accounts'][0]}"
            out.print(f"erased {who} ({result['erase_id']}):", highlight=False)
            for table, n in result["removed"].items():
                if n:
                    out.print(f"  {table}: {n:,} rows", highlight=False)
            for file, n in result["files"].items():
                out.print(f"  {file}: {n:,} records", highlight=False, soft_wrap=True)
            for file in result.get("still_named_in", []):
                out.print(f"  [yellow]still named in[/] {file}: journeymap does not change files it did not write; "
                          "remove or edit it", highlight=False, soft_wrap=True)
            if result.get("note"):
                out.print(f"  [yellow]note[/] {result['note']}", highlight=False, soft_wrap=True)
        c = result["compacted"]
        out.print(f"store rewritten: {c['bytes_before']:,} -> {c['bytes_after']:,} bytes", highlight=False)
