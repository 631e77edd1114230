"""The JSON API: every analysis of the registry over HTTP, at `/api/v1/NAME`, for holders of a read key.

The endpoints are generated from journeymap.analyses: each takes its analysis's options as query
parameters (the option's name or alias: `--window-from` is `window_from`, `--from` is `from`; repeatable
options repeat, `exclude=a:0:1&exclude=b:1:2`, or are comma-separated) and answers exactly what
`journeymap NAME --json` prints. Options are checked by the same parameter model as the CLI, so a bad one
gets the same message. Errors are answered by type (journeymap.errors):
`{"error": kind, "detail": message, ...}` with 422 for a bad option, 409 when the analysis cannot run on
this workspace (no events yet, an invalid journeymap.yml, a section it needs is missing).

Endpoints are plain `def`s, so FastAPI runs them in its threadpool; each reads through its own DuckDB
cursor on the server's store (`ReadWorkspace`). Results are kept in the server's one cache
(server/cache.py) until identity is stitched again or journeymap.yml changes.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response, Security
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from journeymap.analyses import REGISTRY, Analysis
from journeymap.analyses.base import MAX_INT, Field, Params, options, validate
from journeymap.analyses.catalog import catalog
from journeymap.errors import InternalError, JourneymapError, OptionError, problem, raised_by_journeymap
from journeymap.journey.load import problems
from journeymap.server.cache import LIVE
from journeymap.server.context import ReadKey, ReadWorkspace, require_journeys
from journeymap.server.encoding import JSONAnswer
from journeymap.server.local import LOCAL_KEY_ID
from journeymap.workspace import Workspace

__all__ = ["answer_error", "router", "run_cached"]

MAX_DEFINITION_BYTES = 1_000_000


# -- errors by type --------------------------------------------------------------------------------


def answer_error(exc: BaseException) -> JSONAnswer:
    """An error as every /api/v1 answer words it: its type decides the status."""
    if not isinstance(exc, JourneymapError):
        legacy = isinstance(exc, OSError) or isinstance(exc, ValueError) and raised_by_journeymap(exc)
        if legacy:  # a message for the user from a module not yet on journeymap.errors
            return JSONAnswer({"error": "workspace", "detail": str(exc)}, status_code=409)
        exc = InternalError(f"internal error ({type(exc).__name__}: {exc}); this is a bug, please report it")
    return JSONAnswer(problem(exc), status_code=exc.http_status)


class Problem(BaseModel):
    """Every error answer: its kind and one line saying what is wrong."""

    error: str = Field(description="option, definition, input, workspace, not_enough_data or internal.")
    detail: str = Field(description="What is wrong, worded as the CLI words it.")
    option: str | None = Field(None, description="The option at fault (422).")
    add: str | None = Field(None, description="What to add to the data or journeymap.yml (not_enough_data).")
    problems: list[dict] | None = Field(None, description="Each problem of journeymap.yml with its key (definition).")


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid read key (`Authorization: Bearer jm_r_...`)."},
    409: {"model": Problem, "description": "The analysis cannot run on this workspace (no events yet, an invalid "
                                           "journeymap.yml, a section it needs is missing)."},
    422: {"model": Problem, "description": "A bad parameter; `detail` is the CLI's message for it."},
}

bearer = HTTPBearer(auto_error=False, scheme_name="readKey",
                    description="A read key: `journeymap keys create --kind read --name NAME` (tokens start jm_r_).")
router = APIRouter(prefix="/api/v1", tags=["JSON API"], default_response_class=JSONAnswer,
                   dependencies=[Security(bearer)], responses=ERRORS)


# -- options from the query string -----------------------------------------------------------------


def raw_options(model: type[Params], query, *, strict: bool = True, surface: str = "api") -> dict[str, Any]:
    """Raw option values from a query string (a Starlette QueryParams): a repeated key or a list option is a
    list. `strict`: unknown keys are kept, so validation names them; else (a web form, whose page has controls
    of its own) they and empty fields are left out."""
    fields = {(info.alias or name): name for name, info in model.model_fields.items()}
    offered = {o.name for o in options(model, surface)}
    raw: dict[str, Any] = {}
    for key in dict.fromkeys(query.keys()):
        name = fields.get(key)
        values = query.getlist(key) if strict else [v for v in query.getlist(key) if v.strip()]
        if name is None and not strict or not values:
            continue
        if name is not None and name not in offered:
            raise OptionError(f"--{key.replace('_', '-')} is an option of the CLI and the Python API only", option=name)
        listed = name is not None and typing.get_origin(model.model_fields[name].annotation) is list
        raw[key] = values if listed or len(values) > 1 else values[0]
    return raw


def query_options(model: type[Params], request: Request, surface: str = "api") -> Params:
    """The model's parameters from the request's query string; OptionError when one is bad or unknown.
    `surface` "cli": the CLI's options too (a file on this machine), for the local admin (cli/forward.py)."""
    return validate(model, raw_options(model, request.query_params, surface=surface))


def _openapi_parameters(model: type[Params]) -> list[dict]:
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", []))
    out = []
    for o in options(model, "api"):
        key = o.key
        prop = dict(schema["properties"][key])
        description = prop.pop("description", "")
        prop.pop("title", None)
        param = {"name": key, "in": "query", "required": key in required, "description": description, "schema": prop}
        if prop.get("type") == "array":
            param.update(style="form", explode=True)
        out.append(param)
    return out


# -- running an analysis ---------------------------------------------------------------------------


def cache_key(analysis: Analysis, params: Params) -> tuple:
    """An analysis result's key in the server's one cache: its name and options."""
    return analysis.name, json.dumps(params.model_dump(mode="json"), sort_keys=True)


def run_cached(request: Request, ws: Workspace, analysis: Analysis, params: Params) -> Any:
    """The analysis's result from the server's one cache, computed on a miss."""
    return request.app.state.cache.get(cache_key(analysis, params), lambda: analysis(ws, params),
                                       reads=getattr(ws, "reads", LIVE))


def _endpoint(analysis: Analysis) -> Callable[..., Response]:
    def endpoint(request: Request, key: ReadKey, ws: ReadWorkspace) -> Response:
        try:
            params = query_options(analysis.params, request, "cli" if key.key_id == LOCAL_KEY_ID else "api")
            return JSONAnswer(run_cached(request, ws, analysis, params))
        except Exception as exc:  # noqa: BLE001 - every error is answered by its type
            return answer_error(exc)

    endpoint.__name__ = analysis.name
    return endpoint


def _add_analyses() -> None:
    for analysis in REGISTRY:
        router.add_api_route(
            f"/{analysis.name}", _endpoint(analysis), methods=["GET"], summary=analysis.summary.split(":")[0],
            description=f"{analysis.summary} What `journeymap {analysis.name} --json` prints ({analysis.doc}).",
            responses={200: {"model": analysis.output, "description": "The result."}},
            openapi_extra={"parameters": _openapi_parameters(analysis.params)}, operation_id=f"analysis_{analysis.name}")


@router.get("/analyses", summary="The analyses",
            description="Every analysis with its options (name, flag, kind, default, bounds, help): the registry the CLI, "
                        "this API and the web app are generated from.")
def analyses(key: ReadKey) -> Response:
    return JSONAnswer({"analyses": catalog("api")})


_add_analyses()


# -- the journey definition ------------------------------------------------------------------------


@router.get("/definition", summary="The journey definition",
            description="journeymap.yml as JSON, defaults filled in (`journeymap schema` gives its JSON Schema).")
def definition(key: ReadKey, ws: ReadWorkspace) -> Response:
    try:
        return JSONAnswer(ws.definition.model_dump(mode="json"))
    except Exception as exc:  # noqa: BLE001
        return answer_error(exc)


@router.post("/definition/validate", summary="Check a journey definition",
             description="Checks the YAML text of a journeymap.yml (the body) as `journeymap validate` does. Answers "
                         '`{"valid": bool, "problems": [{"key", "message"}]}`; the workspace\'s own file is unchanged.')
def validate_definition(
    key: ReadKey,
    text: Annotated[str, Body(media_type="application/yaml", max_length=MAX_DEFINITION_BYTES,
                              description="The YAML text of a journeymap.yml.")] = "",
) -> Response:
    found = problems(text)
    return JSONAnswer({"valid": not found, "problems": found})


# -- accounts --------------------------------------------------------------------------------------


class Page(Params):
    limit: int = Field(100, ge=1, le=10_000, description="Rows per page.")
    offset: int = Field(0, ge=0, le=MAX_INT, description="Rows to skip.")


class TimelinePage(Page):
    limit: int = Field(1000, ge=1, le=10_000, description="Rows per page.")


def _has_events(ws: Workspace) -> None:
    require_journeys(ws)


def _json_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@router.get("/accounts", summary="Accounts", openapi_extra={"parameters": _openapi_parameters(Page)},
            description="Every account an event counts for, by account_id, with persons, events, first and last seen and "
                        "its latest traits (from group calls). Paginated with limit and offset.")
def accounts(key: ReadKey, ws: ReadWorkspace, request: Request) -> Response:
    try:
        page = query_options(Page, request)
        _has_events(ws)
    except Exception as exc:  # noqa: BLE001
        return answer_error(exc)
    total = ws.con.execute("SELECT count(*) FROM accounts").fetchone()[0]
    rows = ws.con.execute(
        "SELECT account_id, persons, events, first_seen, last_seen, created_at, traits FROM accounts "
        "ORDER BY account_id LIMIT ? OFFSET ?", [page.limit, page.offset]).fetchall()
    cols = ("account_id", "persons", "events", "first_seen", "last_seen", "created_at", "traits")
    items = [dict(zip(cols, r, strict=True)) for r in rows]
    for item in items:
        item["traits"] = _json_text(item["traits"])
    return JSONAnswer({"total": total, "limit": page.limit, "offset": page.offset, "accounts": items})


@router.get("/accounts/{account_id}/timeline", summary="An account's timeline",
            openapi_extra={"parameters": _openapi_parameters(TimelinePage)},
            description="Every event counted for the account, from every source, in time order (then input order): ts, "
                        "person_id, source, channel, event, type, properties, traits, message_id. Paginated.")
def account_timeline(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    account_id: Annotated[str, Path(description="The account's id (see /api/v1/accounts).")],
) -> Response:
    try:
        page = query_options(TimelinePage, request)
        _has_events(ws)
    except Exception as exc:  # noqa: BLE001
        return answer_error(exc)
    if not ws.con.execute("SELECT 1 FROM accounts WHERE account_id = ?", [account_id]).fetchall():
        return JSONAnswer({"error": "input", "detail": f"no account {account_id!r}; /api/v1/accounts lists them"},
                          status_code=404)
    total = ws.con.execute("SELECT count(*) FROM journey_events WHERE account_id = ?", [account_id]).fetchone()[0]
    rows = ws.con.execute(
        "SELECT ts, person_id, source, channel, event, type, properties, traits, message_id FROM journey_events "
        "WHERE account_id = ? ORDER BY ts, seq LIMIT ? OFFSET ?", [account_id, page.limit, page.offset]).fetchall()
    cols = ("ts", "person_id", "source", "channel", "event", "type", "properties", "traits", "message_id")
    events = [dict(zip(cols, r, strict=True)) for r in rows]
    for e in events:
        e["properties"], e["traits"] = _json_text(e["properties"]), _json_text(e["traits"])
    return JSONAnswer({"account_id": account_id, "total": total, "limit": page.limit, "offset": page.offset,
                       "events": events})


# -- keys ------------------------------------------------------------------------------------------


@router.get("/keys", summary="API keys",
            description="The workspace's API keys as `journeymap keys list --json` prints them: never tokens or hashes.")
def keys(key: ReadKey, ws: ReadWorkspace) -> Response:
    from journeymap.server.keys import ApiKey

    rows = ws.con.execute("SELECT key_id, kind, name, created_at, revoked_at FROM api_keys ORDER BY created_at, key_id").fetchall()
    return JSONAnswer({"keys": [ApiKey(*r).as_dict() for r in rows]})
