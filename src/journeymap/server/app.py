"""The web app: `create_app(workspace)` builds the FastAPI app that `journeymap serve` runs.

The lifespan opens the store (taking its writer lock), loads the API keys, recovers and replays the
journal, and starts the journal writer and the loader thread; on shutdown it stops accepting, fsyncs
what is pending, loads every remaining segment and closes the store. Other routers (the JSON API, the
web app) are added with `app.include_router`; they find the workspace's parts on `app.state`:
`workspace`, `keys` (a KeyRing: `verify(token, "read")`), `journal`, `runner` and `limiter`.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError

from journeymap.ingest.journal import SEGMENT_BYTES, SEGMENT_SECONDS, Journal
from journeymap.journey.load import server_config_for
from journeymap.server.admin import backup_router
from journeymap.server.admin import erase_router, reads_router
from journeymap.server.admin import router as admin_router
from journeymap.server.api import router as api_router
from journeymap.insights.improvements.store import ensure as improvement_tables
from journeymap.server.improvements import router as improvements_router
from journeymap.server.cache import AnalysisCache, definition_stamp
from journeymap.server.encoding import JSONAnswer
from journeymap.server.keys import KeyRing
from journeymap.server.local import LocalServer
from journeymap.server.ratelimit import RateLimiter
from journeymap.server.runner import StoreRunner
from journeymap.server.security import SecurityHeaders, docs_router
from journeymap.server.tracking import router as tracking_router
from journeymap.server.views import router as web_router
from journeymap.server.warm import Warmer, default_map

RATE_LIMIT = 50_000.0
"""Events per second per write key (0 turns the limit off); the burst defaults to twice this."""


def _import_models() -> None:
    """Import the modelling libraries before requests run analyses in the threadpool: threads importing
    scikit-learn for the first time at once can find it half-initialised (ImportError: cannot import name
    'BaseLibSVM' from partially initialized module)."""
    import journeymap.insights.risk.churn_model  # noqa: F401
    import journeymap.insights.voice.embedding_themes  # noqa: F401
    import journeymap.insights.voice.sentiment  # noqa: F401
    import journeymap.insights.voice.themes  # noqa: F401


def create_app(
    workspace: str | Path,
    *,
    rate_limit: float = RATE_LIMIT,
    burst: float | None = None,
    segment_bytes: int = SEGMENT_BYTES,
    segment_seconds: float = SEGMENT_SECONDS,
    stitch_seconds: float = 30.0,
    keep_segments: int = 0,
    duckdb_threads: int | None = None,
    routers: Iterable[APIRouter] = (),
    local: LocalServer | None = None,
    deliver: bool = True,
) -> FastAPI:
    """`local`: the server file to write once the store is held (`journeymap serve` passes one; server/local.py),
    so that CLI commands on this machine are answered by this server instead of failing on its lock. `deliver`:
run the sender thread, which delivers the outbox (act.deliver; docs/delivery.md)."""
    workspace = Path(workspace)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runner = app.state.runner
        journal = app.state.journal
        con = runner.open()  # StoreLocked when another process writes the workspace
        _import_models()
        app.state.keys = KeyRing.load(con)
        # The improvement tables exist before the loader starts: a request's first write never creates a table
        # while the loader's transaction is open (insights/improvements/store.py).
        improvement_tables(con)
        journal.open()  # truncates torn tails; every existing segment is closed and will be replayed
        runner.start()
        if local is not None:
            local.write(workspace)
        try:
            yield
        finally:
            journal.close()
            try:
                runner.stop()
            finally:
                if local is not None:
                    local.remove(workspace)  # after the store is closed: a CLI then opens it itself

    app = FastAPI(title="journeymap", lifespan=lifespan, docs_url=None, openapi_url="/-/openapi.json", redoc_url=None)
    runner_box: list[StoreRunner] = []
    journal = Journal(workspace / "journal", segment_bytes, segment_seconds, on_rotate=lambda p: runner_box[0].wake(p))
    runner = StoreRunner(workspace, journal, stitch_seconds=stitch_seconds, keep_segments=keep_segments,
                         duckdb_threads=duckdb_threads, deliver=deliver)
    runner_box.append(runner)
    app.state.workspace = workspace
    app.state.journal = journal
    app.state.runner = runner
    app.state.keys = KeyRing({})
    # Origins whose pages may call /v1/* from a browser (journeymap.yml `server.cors_origins`), lower-cased.
    app.state.cors_origins = frozenset(server_config_for(workspace).cors_origins)
    app.state.local = local
    app.state.limiter = RateLimiter(rate_limit, burst if burst is not None else 2 * rate_limit)
    # The one cache of analysis results (API and web app): valid until the next stitch, a new journeymap.yml, or a
    # change of an improvement (the map shows them: server/improvements.py counts the changes).
    app.state.improvement_changes = 0

    def data_version(stitches_ahead: int = 0) -> tuple:
        return (runner.stats["stitches"] + stitches_ahead, definition_stamp(workspace / "journeymap.yml"),
                app.state.improvement_changes)

    app.state.cache = AnalysisCache(data_version)
    # the map page computed by the loader after each refresh, published with the new version (server/warm.py): the
    # version once the refresh under way is published, one stitch ahead
    runner.warm = Warmer(pages=lambda: default_map(workspace, runner.con), version=lambda: data_version(1),
                         cache=app.state.cache)
    runner.stats["warm"] = runner.warm.stats  # shown by /-/health with the loader's

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONAnswer:
        """A request FastAPI itself cannot read (a body over its limit): one line, as every error."""
        if not request.url.path.startswith(("/api/", "/app")):
            return await request_validation_exception_handler(request, exc)
        lines = [f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        return JSONAnswer({"error": "input", "detail": "; ".join(lines) or "invalid request"}, status_code=422)

    @app.get("/-/health", responses={503: {"description": "Not healthy: the journal cannot be written, or the "
                                                         "loader's or the sender's last attempt failed; the body "
                                                         "says which."}})
    def health() -> JSONAnswer:
        """Liveness and the state of the journal and the loader. `journal.error` says why events cannot be
        written now (a full disk, a read-only folder; the journal retries every second); `loader.quarantined`
        counts the damaged journal records set aside in journal/quarantine.jsonl; `loader.risk` what the last
        refresh did with the churn model (refitted or reused, and why: insights.risk.stored.RiskRefresh); `sender.error` why the outbox is not being
        delivered (a bad setting, a store error; the sender retries every 5 seconds)."""
        ok = journal.accepting and runner.error is None and runner.sender_error is None
        # 503 when not ok, so a load balancer or `curl -f` sees it without reading the body.
        return JSONAnswer({
            "ok": ok,
            "journal": dict(journal.stats, accepting=journal.accepting, error=journal.error),
            "loader": dict(runner.stats, error=None if runner.error is None else str(runner.error)),
            "sender": runner.sender_stats(),
        }, status_code=200 if ok else 503)

    app.include_router(docs_router)  # /-/docs: Swagger UI from the package, no CDN
    app.add_middleware(SecurityHeaders)  # CSP, nosniff, no framing: on every response
    app.include_router(tracking_router)
    app.include_router(admin_router)
    app.include_router(backup_router)
    app.include_router(reads_router)  # /-/reads: `journeymap state`, `validate`, `act show`... while serving
    app.include_router(erase_router)  # POST /api/v1/erase: an admin key (docs/privacy.md)
    app.include_router(improvements_router)  # /api/v1/improvements: read key to read, write key to write
    app.include_router(api_router)
    app.include_router(web_router)
    for router in routers:
        app.include_router(router)
    return app
