"""Improvements: the list with its add form, and one improvement with its measured effect and its change form
(docs/improvements.md). Reading needs the read key the app is signed in with; the forms write, so they need a
write key (the form's `key` field, or `Authorization: Bearer`): a read key alone is refused with 401."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRouter

from journeymap.errors import JourneymapError
from journeymap.insights.improvements import store
from journeymap.server.context import ReadWorkspace, local_admin, read_token
from journeymap.server.views.auth import _signed_in, _to_login
from journeymap.server.views.base import Ctx, Page, _form, _render, idq, plain

router = APIRouter()


def _choices(ctx: Ctx) -> dict:
    d = ctx.ws.definition
    return {"stages": [{"id": s.id, "name": s.name, "opportunities": list(s.opportunities)} for s in d.stages],
            "metrics": list(store.METRICS), "statuses": list(store.STATUSES),
            "personas": [p.id for p in d.personas], "features": [f.id for f in d.milestones.key_features]}


def list_data(ctx: Ctx, form: dict | None = None, message: str | None = None) -> dict:
    status, stage = ctx.arg("status"), ctx.arg("stage")
    items = store.list_improvements(ctx.ws.con, status=status, stage=stage)
    return {"improvements": [i.as_dict() for i in items], "status": status, "stage": stage, **_choices(ctx),
            "form": form or {}, "message": message}


def detail_data(ctx: Ctx, improvement_id: str, message: str | None = None) -> dict:
    item = store.get(ctx.ws.con, improvement_id)
    if item is None:  # pragma: no cover - store.get raises
        raise HTTPException(status_code=404)
    return {"improvement": item.as_dict(), "effect": ctx.ws.improvement_effect(item, ctx.arg("by")),
            **_choices(ctx), "message": message}


LIST = Page("improvements", "/improvements", "improvements.html", list_data, lambda d: "Improvements",
            needs_events=False)
DETAIL = Page("improvement", "/improvements/{improvement_id}", "improvement.html", detail_data,
              lambda d: d["improvement"]["title"], needs_events=False)
PAGES = (LIST, DETAIL)


def _can_write(request: Request, form: dict) -> bool:
    token = (form.get("key") or "").strip() or read_token(request)
    return bool(local_admin(request, token) or request.app.state.keys.verify(token, "write"))


def _refused(page: Page, request: Request, data: dict) -> HTMLResponse:
    error = ("a write key is required to change improvements: paste one in the form's Write key field "
             "(create one with `journeymap keys create --kind write --name NAME`)")
    return HTMLResponse(_render(page, request, plain(data), error, False), status_code=401)


@router.post("/improvements")
async def add_form(request: Request, ws: ReadWorkspace) -> Response:
    """The add form: a new improvement, or a promoted opportunity; back to the list with the error, or to it."""
    if not _signed_in(request):
        return _to_login(request)
    from journeymap.server.improvements import Fields, add_improvement, changed

    form = await _form(request)
    ctx = Ctx(request, ws)
    if not _can_write(request, form):
        return _refused(LIST, request, list_data(ctx, form))
    fields = {k: (form.get(k) or "").strip() or None for k in Fields.model_fields}
    try:
        made = add_improvement(ws, Fields(**fields))
        changed(request)
    except JourneymapError as exc:
        return HTMLResponse(_render(LIST, request, plain(list_data(ctx, form)), str(exc), False),
                            status_code=exc.http_status)
    return RedirectResponse(f"/app/improvements/{idq(made['id'])}", status_code=303)


@router.post("/improvements/{improvement_id}")
async def set_form(improvement_id: str, request: Request, ws: ReadWorkspace) -> Response:
    """The change form of one improvement."""
    if not _signed_in(request):
        return _to_login(request)
    from journeymap.server.improvements import Fields, changed, set_improvement

    form = await _form(request)
    ctx = Ctx(request, ws)
    request.scope["path_params"] = {"improvement_id": improvement_id}
    try:
        if not _can_write(request, form):
            return _refused(DETAIL, request, detail_data(ctx, improvement_id))
        fields = {k: (form.get(k) or "").strip() or None for k in Fields.model_fields if k not in ("opportunity", "id")}
        set_improvement(ws, improvement_id, Fields(**fields))
        changed(request)
    except JourneymapError as exc:
        try:
            data = plain(detail_data(ctx, improvement_id))
        except JourneymapError:
            data = {}
        return HTMLResponse(_render(DETAIL, request, data, str(exc), False), status_code=exc.http_status)
    return RedirectResponse(f"/app/improvements/{idq(improvement_id)}", status_code=303)
