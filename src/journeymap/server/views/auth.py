"""Sign-in: the login form takes a read key and keeps it in the READ_COOKIE cookie; a page request without
a live read key is sent there (`_to_login`), back to a path of this app only (`_safe_next`)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from journeymap.server.context import READ_COOKIE, read_token
from journeymap.server.views.base import NAV, _env, _form

router = APIRouter()


def _signed_in(request: Request) -> bool:
    return request.app.state.keys.verify(read_token(request), "read") is not None


def _safe_next(target: str | None) -> str:
    """Only a path of this app: never an absolute URL (no open redirect)."""
    if not target or not target.startswith("/app") or target.startswith("//") or "\\" in target:
        return "/app/"
    return target


def _login_page(request: Request, error: str | None, next_url: str, status: int = 200) -> HTMLResponse:
    html = _env().get_template("login.html").render(error=error, next_url=next_url, standalone=False, nav=NAV, active=None,
                                                    title="Sign in", signed_in=False, exports=None, charts=[])
    return HTMLResponse(html, status_code=status)


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    """The sign-in form: paste a read key (`journeymap keys create --kind read --name NAME`)."""
    return _login_page(request, None, _safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    token = str(form.get("key") or "").strip()
    next_url = _safe_next(str(form.get("next") or ""))
    if request.app.state.keys.verify(token, "read") is None:
        return _login_page(request, "That is not a live read key. Create one with "
                                    "`journeymap keys create --kind read --name NAME` (write keys cannot read).", next_url, 401)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(READ_COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/app/login", status_code=303)
    response.delete_cookie(READ_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _to_login(request: Request) -> RedirectResponse:
    raw = request.scope.get("raw_path")  # as sent: an escaped `/` or `.` in an account id stays escaped
    path = raw.decode("latin-1") if isinstance(raw, bytes | bytearray) else request.url.path
    target = path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/app/login?{urlencode({'next': target})}", status_code=303)
