"""Settings: the API keys and the journey definition, and checking a definition's YAML text (the form's
POST lists each problem with its key; the JSON POST answers `{"valid", "problems"}`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from journeymap.journey.load import problems as definition_problems
from journeymap.server.context import ReadKey, ReadWorkspace
from journeymap.server.views.auth import _signed_in, _to_login
from journeymap.server.views.base import Ctx, Page, _form, _render, plain

router = APIRouter()


def settings_data(ctx: Ctx, text: str | None = None) -> dict:
    from journeymap.server.keys import list_keys

    keys = [{"key_id": k.key_id, "kind": k.kind, "name": k.name, "created_at": k.created_at, "revoked_at": k.revoked_at}
            for k in _list(list_keys, ctx.ws.con)]
    current = ctx.ws.definition_path.read_text(encoding="utf-8") if ctx.ws.definition_path.exists() else ""
    checked = text if text is not None else current
    return {"keys": plain(keys), "definition_path": str(ctx.ws.definition_path), "definition": checked,
            "submitted": text is not None, "problems": definition_problems(checked)}


def _list(fn, con) -> list:
    try:
        return fn(con)
    except Exception:  # noqa: BLE001 - a store without the api_keys table has no keys
        return []


SETTINGS = Page("settings", "/settings", "settings.html", settings_data, lambda d: "Settings", needs_events=False)
PAGES = (SETTINGS,)


@router.post("/settings")
async def settings_check(request: Request, ws: ReadWorkspace) -> Response:
    """Validate a journey definition's YAML text: the page lists each problem with its key."""
    if not _signed_in(request):
        return _to_login(request)
    form = await _form(request)
    data = plain(settings_data(Ctx(request, ws), str(form.get("definition") or "")))
    return HTMLResponse(_render(SETTINGS, request, data, None, False), status_code=200)


@router.post("/settings.json")
async def settings_check_json(request: Request, _key: ReadKey) -> dict:
    """Validate YAML text (the raw body, or the `definition` form field): `{"valid", "problems": [{"key", "message"}]}`."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        text = (await _form(request)).get("definition") or ""
    else:
        text = (await request.body()).decode("utf-8", errors="replace")
    found = definition_problems(text)
    return {"valid": not found, "problems": found}
