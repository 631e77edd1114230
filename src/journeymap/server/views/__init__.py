"""The web app under `/app`: server-rendered pages over the Python API, each with a JSON twin.

Every page `/app/X` has `/app/X.json` (exactly the data the page renders) and exports of the same
view: `/app/X.html` (one self-contained file, CSS, JS and the Plotly bundle inline), `/app/X.png` and
`/app/X.pdf` (rendered from that file by headless chromium; 501 when chromium is not installed).
Pages need a read key: `/app/login` takes one and keeps it in the READ_COOKIE cookie; a page
request without one is redirected there, a JSON or export request is answered 401.

Plotly is served from the plotly package (`/app/static/plotly.min.js`), never from a CDN, so the app
works offline. Analyses are cached per workspace until new data is loaded or the definition changes.
See docs/web-app.md.

This package holds one module per page group (map, funnel, paths, retention, revenue, accounts, voice,
conformance, playbooks, delivery: tasks and the outbox, analyses, improvements, experiments, settings), each with its data and charts functions and its `Page` entries; base.py what they share,
auth.py sign-in, exports.py the exports and static files. Here: the page table and the routes.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from journeymap.errors import problem
from journeymap.server.context import NoJourneysYet, ReadKey, ReadWorkspace, require_read
from journeymap.server.encoding import JSONAnswer
from journeymap.server.views import (accounts, analyses, auth, conformance, delivery, experiments, exports, funnel,
                                     improvements, paths, playbooks, retention, revenue, settings, voice)
from journeymap.server.views import map as journey_map
from journeymap.server.views.auth import _signed_in, _to_login
from journeymap.server.views.base import NAV, Page, _build, _render

__all__ = ["router", "PAGES", "NAV"]

router = APIRouter()
pages = APIRouter(prefix="/app", include_in_schema=False)
pages.include_router(exports.router)  # the static files
pages.include_router(auth.router)  # sign-in and out
pages.include_router(settings.router)  # the settings form's POSTs
pages.include_router(delivery.router)  # closing and assigning tasks, re-sending deliveries: an operator key
pages.include_router(improvements.router)  # the improvement forms' POSTs (a write key)

PAGES = (*journey_map.PAGES, *funnel.PAGES, *paths.PAGES, *retention.PAGES, *revenue.PAGES, *accounts.PAGES, *voice.PAGES,
         *conformance.PAGES, *playbooks.PAGES, *delivery.PAGES, *improvements.PAGES, *experiments.PAGES, *analyses.PAGES,
         *settings.PAGES)
"""Every page in the order of NAV, a page's deep-dive after it: path, template, data function, title, charts."""


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


def _page_response(page: Page, request: Request, ws) -> Response:
    if not _signed_in(request):
        return _to_login(request)
    data, error = _build(page, request, ws)
    if isinstance(error, NoJourneysYet):  # a new workspace: the page says how to get data, it has no error
        return HTMLResponse(_render(page, request, data, None, False, empty=str(error)))
    return HTMLResponse(_render(page, request, data, error and str(error), False),
                        status_code=error.http_status if error else 200)


def _json_response(page: Page, request: Request, ws) -> Response:
    data, error = _build(page, request, ws)
    if error:
        return JSONAnswer(problem(error), status_code=error.http_status)
    return JSONAnswer(data)


def _page_route(page: Page):
    def endpoint(request: Request, ws: ReadWorkspace) -> Response:
        return _page_response(page, request, ws)

    return endpoint


def _json_route(page: Page):
    def endpoint(request: Request, ws: ReadWorkspace, _key: ReadKey) -> Response:
        return _json_response(page, request, ws)

    return endpoint


FORMATS = ("json", "html", "png", "pdf")


def _split(page: Page, request: Request) -> list[tuple[str, str | None]]:
    """What the raw path after a page's prefix (`/app/accounts/`) names: [(id, format)], the reading to try first
    first. The id is read from the path as sent, so an id may hold `/`, `?` or `#` (sent as %2F, %3F, %23), end
    in `.json` (its dot sent as %2E: only a literal dot starts a format), or be any Unicode (UTF-8 escapes).
    A hand-typed `/app/accounts/a.json` is the JSON of `a`, or, when there is no `a`, the page of `a.json`."""
    prefix = "/app" + page.path.split("{", 1)[0]
    raw = request.scope.get("raw_path")
    raw = raw.decode("latin-1") if isinstance(raw, bytes | bytearray) else quote(request.url.path)
    tail = raw[raw.index(prefix) + len(prefix):] if prefix in raw else quote(request.url.path.split(prefix, 1)[-1])
    readings = []
    for fmt in FORMATS:
        if tail.endswith(f".{fmt}") and len(tail) > len(fmt) + 1:
            readings.append((unquote(tail[: -len(fmt) - 1]), fmt))
    return [*readings, (unquote(tail), None)]


def _with_id_route(page: Page):
    """One route for a page with an id (`/accounts/{account_id}`) and its twins and exports: the id may be any text."""
    name = page.path.split("{", 1)[1].split("}", 1)[0]

    def endpoint(request: Request, ws: ReadWorkspace) -> Response:
        readings = _split(page, request)
        for n, (ident, fmt) in enumerate(readings):
            request.scope["path_params"] = {name: ident}
            try:
                if fmt is None:
                    return _page_response(page, request, ws)
                require_read(request)
                if fmt == "json":
                    return _json_response(page, request, ws)
                return exports.export_response(page, fmt, request, ws)
            except HTTPException as exc:
                if exc.status_code != 404 or n == len(readings) - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    return endpoint


def _register() -> None:
    for page in PAGES:
        if "{" in page.path:
            pages.add_api_route(page.path.replace("}", ":path}"), _with_id_route(page), methods=["GET"])
            continue
        for fmt in ("html", "png", "pdf"):
            pages.add_api_route(f"{page.path}.{fmt}", exports._export_route(page, fmt), methods=["GET"])
        pages.add_api_route(f"{page.path}.json", _json_route(page), methods=["GET"])
        pages.add_api_route(page.path, _page_route(page), methods=["GET"])
        if page.name == "map":
            pages.add_api_route("/", _page_route(page), methods=["GET"])


_register()
router.include_router(pages)
