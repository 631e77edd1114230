"""Tasks and the outbox: the task list playbooks fill (owner, status, due; assign and close) and the deliveries
(pending, failed, retried, dead with their last errors; re-send). Reading needs a read key, as every page;
writing (closing or assigning a task, re-sending a delivery) needs an **operator** key (server/keys.py), sent
as `Authorization: Bearer KEY` or, from the page's forms, in the form's `key` field. A read, write or admin key
is answered 403, no key or an unknown one 401. Writes go to the store under the loader's lock (the sender
thread writes the outbox under it too). docs/web-app.md, docs/delivery.md."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from journeymap.act import deliver
from journeymap.act import tasks as act_tasks
from journeymap.errors import InputError, JourneymapError, OptionError, problem
from journeymap.server.context import ReadWorkspace, local_admin, read_token
from journeymap.server.encoding import JSONAnswer
from journeymap.server.keys import KINDS, ApiKey
from journeymap.server.views.auth import _signed_in, _to_login
from journeymap.server.views.base import Ctx, Page, _form, _render, plain

router = APIRouter()


def outbox_data(ctx: Ctx) -> dict:
    data = deliver.outbox_rows(ctx.ws.con, ctx.arg("status", "open"), limit=500)
    return {**data, "views": list(deliver.VIEWS), "message": ctx.arg("message")}


def tasks_data(ctx: Ctx) -> dict:
    status, owner = ctx.arg("status", "open"), ctx.arg("owner")
    rows = act_tasks.list_tasks(ctx.ws.con, owner=owner, status=status)
    owners = sorted({t["owner"] for t in act_tasks.list_tasks(ctx.ws.con, status="all") if t["owner"]})
    return {"status": status, "owner": owner, "tasks": rows, "owners": owners, "message": ctx.arg("message")}


OUTBOX = Page("outbox", "/outbox", "outbox.html", outbox_data, lambda d: "Outbox", needs_events=False)
TASKS = Page("tasks", "/tasks", "tasks.html", tasks_data, lambda d: "Tasks", needs_events=False)
PAGES = (TASKS, OUTBOX)


# -- writes: an operator key ---------------------------------------------------------------------------


def require_operator(request: Request, token: str | None) -> ApiKey:
    """The operator key `token` belongs to (or the local token of `journeymap serve`'s CLI): 401 without a live
    key, 403 for a live key of another kind (it may not act)."""
    key = local_admin(request, token)
    if key is not None:
        return key
    ring = request.app.state.keys
    key = ring.verify(token, "operator") if token else None
    if key is not None:
        return key
    other = next((k for kind in KINDS if kind != "operator" and (k := ring.verify(token, kind)) is not None), None) \
        if token else None
    if other is not None:
        raise HTTPException(status_code=403, detail=f"this {other.kind} key ({other.key_id}) may not close or assign "
                                                    "tasks or re-send deliveries: an operator key is required "
                                                    "(`journeymap keys create --kind operator --name NAME`)")
    raise HTTPException(status_code=401, detail="an operator key is required: Authorization: Bearer KEY (create one "
                                                "with `journeymap keys create --kind operator --name NAME`)",
                        headers={"WWW-Authenticate": 'Bearer realm="journeymap"'})


async def _body(request: Request) -> dict:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise InputError("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise InputError("the request body must be a JSON object")
        return body
    return await _form(request)


def _write(request: Request, fn):
    with request.app.state.runner.lock:  # the loader and the sender thread write the store under it too
        return fn()


def _who(key: ApiKey) -> str:
    return f"{key.name} ({key.key_id})"


async def _act(request: Request, ws, html: bool, back: str, action) -> Response:
    """Run `action(body, key)` for a JSON or form request: the JSON answer, or (a form) back to the page with a
    message; errors by type (problem), 401/403 for the key."""
    try:
        body = await _body(request)
    except JourneymapError as exc:
        return JSONAnswer(problem(exc), status_code=exc.http_status)
    token = str(body.get("key") or "").strip() or read_token(request) if html else read_token(request)
    if html and not _signed_in(request):
        return _to_login(request)
    try:
        key = require_operator(request, token)
        message = action(body, key)
    except HTTPException as exc:
        if not html:
            raise
        page = TASKS if back == "/tasks" else OUTBOX
        data = plain((tasks_data if page is TASKS else outbox_data)(Ctx(request, ws)))
        return HTMLResponse(_render(page, request, data, exc.detail, False), status_code=exc.status_code)
    except JourneymapError as exc:
        if not html:
            status = 404 if isinstance(exc, InputError) and str(exc).startswith("no task ") else exc.http_status
            return JSONAnswer(problem(exc), status_code=status)
        page = TASKS if back == "/tasks" else OUTBOX
        data = plain((tasks_data if page is TASKS else outbox_data)(Ctx(request, ws)))
        return HTMLResponse(_render(page, request, data, str(exc), False), status_code=exc.http_status)
    if html:
        return RedirectResponse(f"/app{back}?{urlencode({'message': message['message']})}", status_code=303)
    return JSONAnswer(message)


def _close(request: Request, task_id: str):
    def action(body, key):
        task = _write(request, lambda: act_tasks.close_task(request.state.ws.con, task_id, by=_who(key),
                                                               now=deliver.utcnow()))
        return {"message": f"task {task['id']} closed", "task": plain(task)}
    return action


def _assign(request: Request, task_id: str):
    def action(body, key):
        owner = str(body.get("owner") or "")
        task = _write(request, lambda: act_tasks.assign_task(request.state.ws.con, task_id, owner, by=_who(key),
                                                                now=deliver.utcnow()))
        return {"message": f"task {task['id']} assigned to {task['owner']}", "task": plain(task)}
    return action


def _retry(request: Request):
    def action(body, key):
        keys = body.get("keys") or []
        if isinstance(keys, str):
            keys = [k.strip() for k in keys.replace("\n", ",").split(",") if k.strip()]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise OptionError("keys must be a list of outbox keys", option="keys")
        dead = str(body.get("dead", "")).lower() in ("true", "1", "on", "yes")
        queued = _write(request, lambda: deliver.retry(request.state.ws.con, keys, dead=dead))
        request.app.state.runner.wake_sender()  # sent now, not at the sender's next poll
        return {"message": f"{len(queued)} deliver{'y' if len(queued) == 1 else 'ies'} queued to be sent again",
                "queued": queued}
    return action


for suffix, html in (("", True), (".json", False)):
    def _routes(suffix=suffix, html=html):
        @router.post(f"/tasks/{{task_id}}/close{suffix}")
        async def close(task_id: str, request: Request, ws: ReadWorkspace) -> Response:
            request.state.ws = ws
            return await _act(request, ws, html, "/tasks", _close(request, task_id))

        @router.post(f"/tasks/{{task_id}}/assign{suffix}")
        async def assign(task_id: str, request: Request, ws: ReadWorkspace) -> Response:
            request.state.ws = ws
            return await _act(request, ws, html, "/tasks", _assign(request, task_id))

        @router.post(f"/outbox/retry{suffix}")
        async def retry(request: Request, ws: ReadWorkspace) -> Response:
            request.state.ws = ws
            return await _act(request, ws, html, "/outbox", _retry(request))

    _routes()
