"""Key management, backups and the store's read-only reports while the server runs: `/-/keys`, `/-/backup` and
`/-/reads` (with `act --dry-run`), for the local admin only (the token of the server file).

The store is the server's while it runs, so `journeymap keys create|list|revoke` on this machine ask the
server (cli/forward.py): the key is written through a cursor on the server's store, in the same table as
when the server is stopped, and the server's KeyRing is reloaded at once, so a created key works on the
next request and a revoked one is refused on the next request. Read keys never manage keys; these routes
are left out of the OpenAPI document (they are the CLI's, not the public API).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response

from journeymap.analyses.base import MAX_INT
from journeymap.ingest.backup import write_backup
from journeymap.ingest.store import cursor
from journeymap.server.api import answer_error
from journeymap.server.context import (ReadWorkspace, ServerWorkspace, begin_snapshot, local_admin, read_token,
                                      require_key)
from journeymap.server.encoding import JSONAnswer
from journeymap.server.keys import ApiKey, KeyRing, create_key, list_keys, revoke_key
from journeymap.workspace import Workspace


def require_local(request: Request) -> ApiKey:
    key = local_admin(request, read_token(request))
    if key is None:
        raise HTTPException(status_code=401, detail="the server's local token is required (journeymap.server.json)")
    return key


router = APIRouter(prefix="/-/keys", include_in_schema=False, dependencies=[Depends(require_local)])


def _store(request: Request):
    con = request.app.state.runner.con
    if con is None:
        raise HTTPException(status_code=503, detail="the store is not open yet", headers={"Retry-After": "1"})
    return cursor(con)


def _reload(request: Request, cursor) -> None:
    request.app.state.keys = KeyRing.load(cursor)  # one assignment: a request sees the old ring or the new one


@router.get("")
def keys(request: Request) -> Response:
    cursor = _store(request)
    try:
        return JSONAnswer({"keys": [k.as_dict() for k in list_keys(cursor)]})
    except Exception as exc:  # noqa: BLE001 - answered by its type, as the JSON API does
        return answer_error(exc)
    finally:
        cursor.close()


@router.post("")
def create(request: Request, kind: Annotated[str, Body()], name: Annotated[str, Body()]) -> Response:
    cursor = _store(request)
    try:
        key, token = create_key(cursor, kind, name)
        _reload(request, cursor)
        return JSONAnswer({**key.as_dict(), "token": token})
    except Exception as exc:  # noqa: BLE001
        return answer_error(exc)
    finally:
        cursor.close()


@router.post("/{key_id}/revoke")
def revoke(request: Request, key_id: str) -> Response:
    cursor = _store(request)
    try:
        key = revoke_key(cursor, key_id)
        _reload(request, cursor)
        return JSONAnswer(key.as_dict())
    except Exception as exc:  # noqa: BLE001
        return answer_error(exc)
    finally:
        cursor.close()


backup_router = APIRouter(prefix="/-/backup", include_in_schema=False, dependencies=[Depends(require_local)])


@backup_router.post("")
def backup(request: Request, out: Annotated[str, Body(embed=True)]) -> Response:
    """`journeymap backup OUT` while serving: the store copied on the server's own connection, with the loader
    paused (its lock held), and the journal's segments not yet loaded: ingest/backup.py. OUT is a path on this
    machine (only the local token reaches this)."""
    runner = request.app.state.runner
    with runner.lock:
        cursor = _store(request)
        try:
            return JSONAnswer(write_backup(cursor, runner.workspace, out))
        except Exception as exc:  # noqa: BLE001
            return answer_error(exc)
        finally:
            cursor.close()


reads_router = APIRouter(prefix="/-/reads", include_in_schema=False, dependencies=[Depends(require_local)])


@reads_router.get("/dry-run")
def dry_run(request: Request, playbook: str | None = None) -> Response:
    """`journeymap act --dry-run` while serving. A dry run folds the comment playbooks' texts (act.explain.dry_run), a
    write: so it runs with the loader paused (its lock held, as a backup does), on a snapshot begun inside the lock and
    rolled back after, so that nothing it folded is kept and no refresh commits under its writes."""
    runner = request.app.state.runner
    with runner.lock:
        ws = ServerWorkspace(request.app.state.workspace, _store(request))
        try:
            begin_snapshot(request, ws)
            return JSONAnswer(ws.read_report("dry-run", playbook=playbook))
        except Exception as exc:  # noqa: BLE001 - answered by its type
            return answer_error(exc)
        finally:
            ws.close()


@reads_router.get("/{name}")
def read_report(name: str, ws: ReadWorkspace, limit: Annotated[int, Query(ge=0, le=MAX_INT)] = 50,
                playbook: str | None = None, unit: str | None = None, at: dt.datetime | None = None,
                start: dt.datetime | None = None, end: dt.datetime | None = None) -> Response:
    """`journeymap state`, `loads`, `rejects`, `validate`'s data checks and the playbooks' reads (`act playbooks`,
    `act show`, `act backtest`, `explain`) while serving: `Workspace.read_report` on a snapshot of the server's
    store, the dict the command prints from (cli/forward.py)."""
    try:
        return JSONAnswer(ws.read_report(name, limit=limit, playbook=playbook, unit=unit, at=at, start=start, end=end))
    except Exception as exc:  # noqa: BLE001 - answered by its type
        return answer_error(exc)


# -- erasing a person: POST /api/v1/erase -------------------------------------------------------------------------

_ERASING = threading.Lock()


def require_admin(request: Request) -> ApiKey:
    """401 unless the request carries a live admin key (`journeymap keys create --kind admin --name NAME`) or the local token."""
    return require_key(request, "admin")


erase_router = APIRouter(include_in_schema=False)


@erase_router.post("/api/v1/erase")
@erase_router.post("/-/erase")
def erase(request: Request, key: Annotated[ApiKey, Depends(require_admin)],
          person: Annotated[str | None, Body()] = None, email: Annotated[str | None, Body()] = None,
          account: Annotated[str | None, Body()] = None, compact_only: Annotated[bool, Body()] = False) -> Response:
    """`journeymap erase` on the running server (docs/privacy.md). The loader loads what the journal holds and
    closes the store; the erase runs with the store to itself (it rewrites the file), the journal kept from
    rotating while its closed segments are rewritten; then the loader reopens the store. Tracking requests are
    journaled meanwhile; reads answer 503 (Retry-After) for those seconds."""
    runner = request.app.state.runner
    if runner.con is None:
        raise HTTPException(status_code=503, detail="the store is not open yet", headers={"Retry-After": "1"})
    with _ERASING:
        runner.pause()
        try:
            ws = Workspace(request.app.state.workspace)
            try:
                if compact_only:
                    result = {"compacted": ws.compact()}
                else:
                    result = ws.erase(person=person, email=email, account=account,
                                      journal_held=request.app.state.journal.holding_rotation)
            finally:
                ws.close()
        except Exception as exc:  # noqa: BLE001 - answered by its type
            return answer_error(exc)
        finally:
            runner.resume()
            runner.stats["stitches"] += 1  # the analysis cache's version: results computed with the person go
    return JSONAnswer({**result, "by": key.key_id})
