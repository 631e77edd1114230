"""Read-only commands while `journeymap serve` holds the workspace: asked of the server instead of failing.

A command that only reads (every analysis of the registry, `journeymap keys`, and through `read_report` `state`,
`loads`, `rejects`, `validate`'s data checks, `act playbooks|show|backtest`, `act --dry-run` and `explain`) first
opens the store itself, as always. When that fails because the store is locked, and the lock's holder is the server
named in the workspace's server file (server/local.py: same pid), the command sends the same call to the server over
loopback, authenticated by the file's local token: an analysis to `/api/v1/NAME` with the same options, keys to
`/-/keys`, a report to `/-/reads/NAME`. The answer is the dict the analysis returns, so `--json` prints the same
bytes and the table is rendered from the same dict. An error is answered by its type, and shown with the same message and exit code.
When the holder is not a server (another command), the lock error stays what it was.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from journeymap.analyses import Analysis
from journeymap.analyses.base import Params, options, to_json
from journeymap.errors import (DefinitionError, InputError, InternalError, JourneymapError, MissingExtra, NotEnoughData,
                               OptionError, UserError, WorkspaceError)
from journeymap.ingest.store import STORE_FILE, StoreLocked
from journeymap.server.local import LocalServer, server_holding
from journeymap.workspace import Workspace

__all__ = ["ServerAnswered", "analysis_via", "read_report", "request", "server_for"]

TIMEOUT = 3600.0
"""An analysis may fit a model for minutes; the server answers when done."""
CONNECT_SECONDS = 10.0
"""How long to retry a server that holds the store but does not answer yet (starting, or stopping)."""

_EXIT = {cls.kind: cls.exit_code for cls in (OptionError, DefinitionError, InputError, WorkspaceError, NotEnoughData,
                                              MissingExtra, InternalError, UserError)}


class ServerAnswered(JourneymapError):
    """An error the server answered: its message, and the exit code of its kind (as if it had happened here)."""

    def __init__(self, body: dict, status: int):
        super().__init__(str(body.get("detail") or f"the server answered HTTP {status}"))
        self.exit_code = _EXIT.get(body.get("error"), 1)
        self.kind = body.get("error", "error")
        self.http_status = status


def server_for(ws: Workspace) -> LocalServer | None:
    """None when the store opens here (use `ws.con`); the server holding it when there is one; else the lock
    error (another command holds the workspace) is raised as before."""
    try:
        ws.con  # noqa: B018 - opens the store, or says who holds it
    except StoreLocked as exc:
        server = server_holding(ws.path, exc.pid)
        if server is None:
            raise
        return server
    return None


def request(server: LocalServer, method: str, path: str, query: list[tuple[str, str]] | None = None,
            body: dict | None = None) -> Any:
    """The server's JSON answer to one call; ServerAnswered for an error it answered, WorkspaceError when it
    does not answer at all."""
    url = server.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {server.token}", "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    deadline = time.monotonic() + CONNECT_SECONDS
    while True:
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as answer:  # noqa: S310 - http on loopback, ours
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                problem = json.loads(text)
            except ValueError:
                problem = {}
            if exc.code == 503 and time.monotonic() < deadline:  # starting up: the store is not open yet
                time.sleep(0.2)
                continue
            if not isinstance(problem, dict) or "detail" not in problem:
                problem = {"error": "workspace", "detail": f"the server answered HTTP {exc.code}: {text[:200]!r}"}
            elif not isinstance(problem["detail"], str):  # FastAPI's own 422 lists its errors
                problem = {"error": "input", "detail": json.dumps(problem["detail"])}
            raise ServerAnswered(problem, exc.code) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            reason = getattr(exc, "reason", exc)
            raise WorkspaceError(f"the workspace is held by the server pid {server.pid}, which does not answer at "
                                 f"{server.url} ({reason}); if it is stopping, try again when it has stopped") from None


def _query(analysis: Analysis, params: Params) -> list[tuple[str, str]]:
    """The options as the server's query string reads them: each given option by its key, a list repeated, a
    CLI-only option (a file on this machine) as its absolute path."""
    values = params.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    out: list[tuple[str, str]] = []
    for o in options(analysis.params, "cli"):
        if o.key not in values or values[o.key] is None:
            continue
        value = values[o.key]
        if "api" not in o.surfaces and isinstance(value, str):
            value = str(Path(value).absolute())
        for item in value if isinstance(value, list) else [value]:
            out.append((o.key, ("true" if item else "false") if isinstance(item, bool) else str(item)))
    return out


def analysis_via(server: LocalServer, analysis: Analysis, params: Params) -> dict:
    """What `analysis(ws, params)` returns, computed by the server that holds the workspace."""
    return request(server, "GET", f"/api/v1/{analysis.name}", _query(analysis, params))


def read_report(ws: Workspace, name: str, limit: int = 50, **given: Any) -> dict:
    """`ws.read_report(name, ...)` as its JSON reads back: from the store here, or while `journeymap serve` holds it,
    from the server (/-/reads/NAME, server/admin.py): the same dict either way, dates as ISO text. `given`: the
    report's options (playbook, unit, and times at, start, end); None ones are left out."""
    # no store yet: nothing holds it, and `validate` must not create one to find out
    server = server_for(ws) if (ws.path / STORE_FILE).exists() else None
    if server is None:
        return json.loads(to_json(ws.read_report(name, limit=limit, **given)))
    query = [("limit", str(limit))] + [(k, v.isoformat() if hasattr(v, "isoformat") else str(v))
                                       for k, v in given.items() if v is not None]
    return request(server, "GET", f"/-/reads/{name}", query)
