"""What the app serves as files: a page's exports (`.html` self-contained, `.png` and `.pdf` rendered from it
by headless chromium; 501 without chromium) and the static files (the app's CSS and JS, the map's stylesheet,
Plotly's bundle)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from journeymap.errors import problem
from journeymap.server.context import ReadKey, ReadWorkspace
from journeymap.server.encoding import JSONAnswer
from journeymap.server.views.base import Page, _build, _render, _static

router = APIRouter()

STATIC = {"app.css": "text/css", "app.js": "text/javascript"}
EXPORT_WINDOW = (1600, 1000)
SLIDE_WINDOW = (2400, 1500)  # the map as a 16:10 slide: header, summary and the whole grid
CHROMIUM_TIMEOUT = 90


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The app's CSS and JS, the journey map's stylesheet and Plotly's bundle (no key needed)."""
    if name not in STATIC and name not in ("plotly.min.js", "map.css"):
        raise HTTPException(404, f"no static file {name!r}")
    media = STATIC.get(name, "text/css" if name.endswith(".css") else "text/javascript")
    return Response(_static(name), media_type=media, headers={"Cache-Control": "public, max-age=3600"})


def _export_route(page: Page, fmt: str):
    def endpoint(request: Request, ws: ReadWorkspace, _key: ReadKey) -> Response:
        return export_response(page, fmt, request, ws)

    return endpoint


def disposition(kind: str, filename: str) -> str:
    """A Content-Disposition header for any file name: an ASCII stand-in (`filename`, letters, digits, `.-_` kept,
    the rest `_`) and the real name as UTF-8 (`filename*`, RFC 6266). A header is Latin-1, so a name outside it
    (an account id in Greek) could not be sent as is; a `/` or `"` in it would break the header or the file name."""
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def export_response(page: Page, fmt: str, request: Request, ws) -> Response:
    """The page as a self-contained `.html`, or a `.png`/`.pdf` rendered from it."""
    data, error = _build(page, request, ws)
    if error:
        return JSONAnswer(problem(error), status_code=error.http_status)
    html = _render(page, request, data, None, True, slide=fmt == "png" and page.name == "map")
    stem = page.name if not request.path_params else f"{page.name}-{next(iter(request.path_params.values()))}"
    if fmt == "html":
        return HTMLResponse(html, headers={"Content-Disposition": disposition("inline", f"{stem}.html")})
    body = render_with_chromium(html, fmt, SLIDE_WINDOW if page.name == "map" else EXPORT_WINDOW)
    media = "image/png" if fmt == "png" else "application/pdf"
    return Response(body, media_type=media, headers={"Content-Disposition": disposition("attachment", f"{stem}.{fmt}")})


def render_with_chromium(html: str, fmt: str, window: tuple[int, int] = EXPORT_WINDOW) -> bytes:
    """PNG (a screenshot of `window`) or PDF of a self-contained page, by headless chromium; 501 without it."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        raise HTTPException(501, "PNG and PDF exports need chromium on the server's PATH (apt-get install chromium); "
                                 "the .html export works without it")
    with tempfile.TemporaryDirectory(prefix="jm-export-") as tmp:
        src, out = Path(tmp) / "view.html", Path(tmp) / f"view.{fmt}"
        src.write_text(html, encoding="utf-8")
        flags = [f"--screenshot={out}", "--window-size={},{}".format(*window), "--hide-scrollbars"] if fmt == "png" else \
                [f"--print-to-pdf={out}", "--no-pdf-header-footer"]
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={Path(tmp) / 'profile'}", "--virtual-time-budget=8000", *flags, src.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise HTTPException(504, f"chromium did not finish the {fmt.upper()} in {CHROMIUM_TIMEOUT} s") from None
        if not out.exists() or out.stat().st_size == 0:
            raise HTTPException(500, f"chromium wrote no {fmt.upper()} (exit {proc.returncode}): {proc.stderr[-500:]}")
        return out.read_bytes()
