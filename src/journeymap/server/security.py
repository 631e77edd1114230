"""Security headers on every response, and the API docs page (`/-/docs`) served from the package.

Every response carries a Content-Security-Policy that allows only this server's own scripts, styles,
images and connections: no CDN, no other origin, no framing (`frame-ancestors 'none'`, and
`X-Frame-Options: DENY` for older browsers), plus `X-Content-Type-Options: nosniff`. Scripts run only
from the server's files or, inline, with the request's nonce (`request.state.csp_nonce`, which the
web app's templates put on their inline scripts: the map's persona switcher and the self-contained
HTML export). Styles also allow 'unsafe-inline': Plotly and Swagger UI set style attributes as they
draw, and the map's HTML export inlines its stylesheets; CSS cannot run script, so scripts stay
nonce-only.

Swagger UI (`swagger-ui-dist` 5.35.0, Apache-2.0: `static/swagger-ui/LICENSE`) is vendored under
`static/swagger-ui/`: FastAPI's default page loads it from a CDN, which fails offline and would need
the CDN in the policy. The pip package `swagger-ui-bundle` ships Swagger UI 4.15 (2022), so the two
files the page needs, `swagger-ui-bundle.js` and `swagger-ui.css`, are copied from npm's
`swagger-ui-dist` instead. The page's start-up is a file too (`/-/static/swagger-ui/init.js`), so
the page has no inline script at all.
"""

from __future__ import annotations

import secrets
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response


def policy(nonce: str) -> str:
    return "; ".join((
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))


class SecurityHeaders:
    """ASGI middleware (not BaseHTTPMiddleware: it adds no per-request task, which the tracking API's
    throughput would pay for): a fresh nonce per request in `scope["state"]["csp_nonce"]`, and the headers."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        extra = [
            (b"content-security-policy", policy(nonce).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
        ]

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


docs_router = APIRouter(include_in_schema=False)
SWAGGER = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "init.js": "text/javascript"}
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>journeymap API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/-/static/swagger-ui/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="/-/openapi.json"></div>
<script src="/-/static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/-/static/swagger-ui/init.js"></script>
</body>
</html>
"""


@docs_router.get("/-/docs")
def docs() -> HTMLResponse:
    """Swagger UI for /-/openapi.json, from the package's own files."""
    return HTMLResponse(DOCS_PAGE)


@docs_router.get("/-/static/swagger-ui/{name}")
def swagger_file(name: str) -> Response:
    if name not in SWAGGER:
        raise HTTPException(404, f"no static file {name!r}")
    body = resources.files("journeymap.server").joinpath("static", "swagger-ui", name).read_bytes()
    return Response(body, media_type=SWAGGER[name], headers={"Cache-Control": "public, max-age=3600"})
