"""What a read request needs: a verified read key, and the workspace read through the server's store.

The server process holds the store's only writer connection (the loader thread uses it). Readers get
their own DuckDB cursor on that same database, so they see committed data and never take a lock.

    @router.get("/api/v1/revenue")
    def revenue(ws: ReadWorkspace, key: ReadKey) -> dict:
        return ws.revenue()
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from journeymap.errors import NotEnoughData
from journeymap.ingest.store import cursor, table_names
from journeymap.server.cache import LIVE
from journeymap.server.keys import ApiKey
from journeymap.server.local import LOCAL_KEY_ID
from journeymap.workspace import Workspace

READ_COOKIE = "jm_read"
"""The web app keeps the read key the user signed in with in this cookie (HttpOnly, SameSite=Strict)."""


def read_token(request: Request) -> str | None:
    """A read key from `Authorization: Bearer KEY`, Basic auth (the user name), or the web app's cookie."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            user = base64.b64decode(value.strip(), validate=True).decode("utf-8").split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            return None
        return user or None
    return request.cookies.get(READ_COOKIE) or None


_STARTED = datetime.now()


def local_admin(request: Request, token: str | None) -> ApiKey | None:
    """The local admin's key when `token` is the server's local token (server/local.py), else None."""
    local = getattr(request.app.state, "local", None)
    if local is None or not token or not secrets.compare_digest(token.encode(), local.token.encode()):
        return None
    return ApiKey(LOCAL_KEY_ID, "read", "journeymap CLI on this machine", _STARTED)


def require_key(request: Request, kind: str) -> ApiKey:
    """401 unless the request carries a live key of `kind` or the local token."""
    token = read_token(request)
    key = local_admin(request, token) or request.app.state.keys.verify(token, kind)
    if key is None:
        raise HTTPException(status_code=401, detail=f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} key is required: "
                                                    f"Authorization: Bearer KEY (create one with `journeymap keys "
                                                    f"create --kind {kind} --name NAME`)",
                            headers={"WWW-Authenticate": 'Bearer realm="journeymap"'})
    return key


def require_read(request: Request) -> ApiKey:
    """401 unless the request carries a live read key (write keys do not read) or the local token."""
    return require_key(request, "read")


class NoJourneysYet(NotEnoughData):
    """The workspace has no journey tables yet: a new workspace (the web app shows its empty state)."""


def require_journeys(ws: Workspace) -> None:
    """NotEnoughData (409, the web app's empty state) until the journey tables exist: no events yet, or events
    loaded that identity has not been stitched over yet (the loader stitches the first load at once)."""
    tables = table_names(ws.con)
    if {"journey_events", "accounts"} <= tables:
        return
    loaded = ws.con.execute("SELECT count(*) FROM events").fetchone()[0] if "events" in tables else 0
    if loaded:
        raise NoJourneysYet(f"{ws.path}: {loaded:,} {'event is' if loaded == 1 else 'events are'} loaded but not yet "
                            "stitched into journeys; "
                            "the server stitches them within seconds, retry shortly")
    raise NoJourneysYet(f"{ws.path}: no events yet", add="events: send them to /v1/ or run "
                        f"`journeymap ingest FILE --workspace {ws.path}` while the server is stopped")


class ServerWorkspace(Workspace):
    """A Workspace whose connection is a cursor on the server's open store."""

    def __init__(self, path, cursor):
        super().__init__(path)
        self._con = cursor
        self.reads = LIVE
        """The data version this workspace's queries read (server/cache.py): LIVE, or after `snapshot` the
        version of its snapshot (None when a refresh was under way as it began)."""
        self._snapshot = False

    def snapshot(self, state: Callable[[], tuple[tuple, bool]]) -> None:
        """Read everything from one snapshot of the store (a read transaction, rolled back at `close`): the
        analyses of one request see the same data even when the loader commits meanwhile. `state`: (the cache's
        data version, whether no refresh is under way); taken before and after the snapshot begins, so that a
        refresh starting or publishing in between is seen."""
        before = state()
        self._con.begin()
        self._snapshot = True
        after = state()
        self.reads = before[0] if before == after and before[1] else None

    @property
    def engine(self):
        require_journeys(self)  # the server's words for a workspace without journeys yet
        return super().engine

    def close(self) -> None:
        if self._con is not None:
            if self._snapshot:
                self._con.rollback()  # a snapshot only reads (temp tables of its analyses go with it)
            self._con.close()
            self._con = None


def begin_snapshot(request: Request, ws: ServerWorkspace) -> None:
    """`ws.snapshot` against this server's data version and loader (a read transaction, rolled back at close)."""
    runner, cache = request.app.state.runner, request.app.state.cache
    ws.snapshot(lambda: (cache.version(), runner.settled()))


def read_workspace(request: Request) -> Iterator[Workspace]:
    """The workspace for one request; 503 while the store is not open (starting up or shutting down)."""
    con = request.app.state.runner.con
    if con is None:
        raise HTTPException(status_code=503, detail="the store is not open yet", headers={"Retry-After": "1"})
    ws = ServerWorkspace(request.app.state.workspace, cursor(con))
    if request.method in ("GET", "HEAD"):  # reads: one snapshot per request (writes go through their own cursor)
        begin_snapshot(request, ws)
    try:
        yield ws
    finally:
        ws.close()


ReadKey = Annotated[ApiKey, Depends(require_read)]
ReadWorkspace = Annotated[Workspace, Depends(read_workspace)]
