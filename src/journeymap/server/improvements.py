"""The improvements over HTTP: `/api/v1/improvements`, the twin of `journeymap improvements` (docs/improvements.md).

    GET   /api/v1/improvements            {"improvements": [...]}                 a read key; ?status=&stage=
    GET   /api/v1/improvements/{id}       the improvement and its `effect`        a read key; ?by=person|account
    POST  /api/v1/improvements            add (or promote: "opportunity")         a write key
    PATCH /api/v1/improvements/{id}       change fields; status changes kept      a write key

Bodies are JSON with the CLI's option names (`ship_date`, `compare`, ...). Errors are answered by type, as every
/api/v1 answer (`answer_error`): 422 for a bad field, with "did you mean"; 400 for an unknown id. The store is the
server's: writes go through the request's own cursor on it (the improvement tables are the server's alone to
write, the loader never touches them).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from journeymap.errors import InputError
from journeymap.insights.improvements import store
from journeymap.server.context import ReadKey, ReadWorkspace, require_key
from journeymap.server.encoding import JSONAnswer

read_bearer = HTTPBearer(auto_error=False, scheme_name="readKey",
                         description="A read key: `journeymap keys create --kind read --name NAME` (tokens start jm_r_).")
write_bearer = HTTPBearer(auto_error=False, scheme_name="writeKey",
                          description="A write key: `journeymap keys create --kind write --name NAME` (jm_w_).")
READS = [Security(read_bearer)]
WRITES = [Security(write_bearer)]
router = APIRouter(prefix="/api/v1/improvements", tags=["Improvements"], default_response_class=JSONAnswer)


class Fields(BaseModel):
    """The fields of an improvement to add or change (names as the CLI's options)."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = None
    opportunity: str | None = Field(None, description="Promote the stage's opportunity: its text or 1-based number.")
    stage: str | None = None
    metric: str | None = None
    owner: str | None = None
    status: str | None = None
    target: str | None = None
    ship_date: str | None = None
    persona: str | None = None
    feature: str | None = None
    compare: str | None = None
    id: str | None = None


def changed(request: Request) -> None:
    """An improvement changed: the cached map (it shows them) is computed again on its next request."""
    request.app.state.improvement_changes += 1


def add_improvement(ws, f: Fields) -> dict:
    """Add (or promote) from `f`: the improvement as JSON with `note`."""
    if not f.stage or not f.metric:
        raise InputError("an improvement needs stage and metric")
    if (f.title is None) == (f.opportunity is None):
        raise InputError("give title, or opportunity to promote one of the stage's opportunities")
    fields = dict(owner=f.owner or None, status=f.status or "idea", persona=f.persona or None,
                  feature=f.feature or None, target=f.target or None, comparison=f.compare or None,
                  ship_date=f.ship_date or None, improvement_id=f.id or None)
    if f.opportunity is not None:
        item, note = store.promote(ws.con, ws.definition, f.stage, f.opportunity, metric=f.metric, **fields)
    else:
        item, note = store.add(ws.con, ws.definition, title=f.title, stage=f.stage, metric=f.metric, **fields)
    return {**item.as_dict(), "note": note}


def set_improvement(ws, improvement_id: str, f: Fields) -> dict:
    if f.opportunity is not None or f.id is not None:
        raise InputError("opportunity and id are set when an improvement is added, not changed")
    item, note = store.update(ws.con, ws.definition, improvement_id, status=f.status or None, owner=f.owner or None,
                              ship_date=f.ship_date or None, target=f.target or None, title=f.title or None,
                              stage=f.stage or None, metric=f.metric or None, persona=f.persona or None,
                              feature=f.feature or None, comparison=f.compare or None)
    return {**item.as_dict(), "note": note}


def _answer(compute, status: int = 200) -> Response:
    from journeymap.server.api import answer_error

    try:
        return JSONAnswer(compute(), status_code=status)
    except Exception as exc:  # noqa: BLE001 - answered by its type
        return answer_error(exc)


@router.get("", summary="Improvements", dependencies=READS)
def list_improvements(ws: ReadWorkspace, _key: ReadKey, status: str | None = None, stage: str | None = None):
    """Every improvement, oldest first (`journeymap improvements list --json`)."""
    def compute():
        if stage is not None:
            store.check_stage(ws.definition, stage)
        return {"improvements": [i.as_dict() for i in store.list_improvements(ws.con, status=status, stage=stage)]}

    return _answer(compute)


@router.get("/{improvement_id}", summary="An improvement and its measured effect", dependencies=READS)
def show_improvement(improvement_id: str, ws: ReadWorkspace, _key: ReadKey, by: str | None = None):
    """`journeymap improvements show ID --json`: the improvement, its history and its `effect`."""
    def compute():
        item = store.get(ws.con, improvement_id)
        return {**item.as_dict(), "effect": ws.improvement_effect(item, by)}

    return _answer(compute)


@router.post("", summary="Add an improvement", status_code=201, dependencies=WRITES)
def add(request: Request, ws: ReadWorkspace, body: Annotated[Fields, Body()]):
    """Add an improvement, or promote an opportunity (`journeymap improvements add`). A write key."""
    require_key(request, "write")
    answer = _answer(lambda: add_improvement(ws, body), status=201)
    changed(request)
    return answer


@router.patch("/{improvement_id}", summary="Change an improvement", dependencies=WRITES)
def change(improvement_id: str, request: Request, ws: ReadWorkspace, body: Annotated[Fields, Body()]):
    """Change fields (`journeymap improvements set`); a status change is kept in its history. A write key."""
    require_key(request, "write")
    answer = _answer(lambda: set_improvement(ws, improvement_id, body))
    changed(request)
    return answer
