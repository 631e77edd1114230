"""The JSON API: every analysis of the CLI over HTTP, at `/api/v1/...`, for holders of a read key.

Each endpoint takes the CLI command's options as query parameters (snake_case: `--window-from` is
`window_from`, `--from` is `from`; repeatable options repeat: `exclude=a:0:1&exclude=b:1:2`) and answers
exactly what the command prints with `--json`. Options are checked as the CLI checks them and a bad one is
`422 {"detail": "<the CLI's message>"}`; an analysis that cannot run on this workspace (no events yet, an
invalid journeymap.yml, a section the analysis needs is missing) is `409 {"detail": message}`.

Endpoints are plain `def`s, so FastAPI runs them in its threadpool; each reads through its own DuckDB
cursor on the server's store (`ReadWorkspace`). Results are cached per (endpoint, parameters) until the
data (events loaded, identity re-stitched) or journeymap.yml changes: the model-based analyses (risk,
health, voice, map) take seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import threading
import types
import typing
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from journeymap.engine.funnel_options import FunnelOptionError, funnel_options
from journeymap.ingest.store import StoreLocked
from journeymap.journey.durations import parse_duration
from journeymap.journey.load import DefinitionError, parse_definition
from journeymap.server.context import ReadKey, ReadWorkspace
from journeymap.workspace import Workspace

__all__ = ["router"]

CACHE_ENTRIES = 64
MAX_DEFINITION_BYTES = 1_000_000
MAX_INT = 1_000_000_000  # bound on counts and offsets: larger values mean nothing and overflow SQL integers
MAX_DAYS = 36_500  # durations (windows, horizons) and bracket days: a century
MIN_YEAR, MAX_YEAR = 1900, 2200  # dates the engines' date arithmetic stays within


class OptionError(ValueError):
    """A parameter the analysis cannot run with: 422 with the CLI's message."""


# -- responses -------------------------------------------------------------------------------------


def _finite(x: Any) -> Any:
    """NaN and infinities as null (JSON has neither); what the CLI prints is otherwise unchanged."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


class CliJSONResponse(JSONResponse):
    """JSON encoded as the CLI's `--json` encodes it (`json.dumps(default=str)`), compact."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, default=str, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        except ValueError:
            text = json.dumps(_finite(content), default=str, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")


# -- validation errors as the CLI words them --------------------------------------------------------


def _choices(annotation: Any) -> tuple | None:
    """The allowed values of a Literal (possibly inside `| None` or a list)."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            found = _choices(arg)
            if found:
                return found
    return None


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _message(route: APIRoute, errors: list[dict]) -> str:
    fields = {f.alias: f for f in route.dependant.query_params + route.dependant.path_params}
    messages = []
    for e in errors:
        loc = e.get("loc", ())
        if loc and loc[0] == "body":
            messages.append("the body must be the text of a journey definition (YAML), at most 1 MB")
            continue
        name = str(loc[1]) if len(loc) > 1 else "?"
        option, kind, value = _option(name), e.get("type", ""), e.get("input")
        field = fields.get(name)
        choices = _choices(field.field_info.annotation) if field is not None else None
        if kind == "missing":
            messages.append(f"{option} is required")
        elif choices:
            if set(choices) == {"person", "account"}:
                messages.append(f"{option} must be person or account")
            else:
                messages.append(f"{option} must be one of {', '.join(choices)}, not {value!r}")
        elif kind.startswith("int"):
            messages.append(f"{option} must be a whole number, not {value!r}")
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            ctx = e.get("ctx", {})
            bound = next(iter(ctx.values())) if ctx else "?"
            relation = {"greater_than_equal": "at least", "greater_than": "more than", "less_than_equal": "at most",
                        "less_than": "less than"}[kind]
            messages.append(f"{option} must be {relation} {bound}, not {value!r}")
        elif kind.startswith("bool"):
            messages.append(f"{option} must be true or false, not {value!r}")
        else:
            messages.append(f"{option}: {e.get('msg', 'invalid value')}")
    return "; ".join(messages) or "invalid parameters"


class CliRoute(APIRoute):
    """A route whose parameter errors are `422 {"detail": "<one line, as the CLI says it>"}`."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return JSONResponse({"detail": _message(self, list(exc.errors()))}, status_code=422)

        return route_handler


# -- running an analysis ----------------------------------------------------------------------------


def _is_option_message(message: str) -> bool:
    return message.startswith(("--", "exclusion ", "model must"))


def _analysis(request: Request, ws: Workspace, name: str, params: dict, compute: Callable[[], Any]) -> Response:
    """Compute (or reuse) an analysis; user errors become 422 (bad option) or 409 (cannot run here)."""
    key = (name, json.dumps(params, sort_keys=True, default=str), _version(request, ws))
    cache = _cache(request)
    with cache.lock:
        if key in cache.data:
            cache.data.move_to_end(key)
            return CliJSONResponse(cache.data[key])
    try:
        result = compute()
    except HTTPException:
        raise
    except (FunnelOptionError, OptionError) as exc:
        raise HTTPException(422, str(exc)) from None
    except (DefinitionError, FileNotFoundError, IsADirectoryError, StoreLocked) as exc:
        raise HTTPException(409, str(exc)) from None
    except ValueError as exc:
        message = str(exc)
        raise HTTPException(422 if _is_option_message(message) else 409, message) from None
    with cache.lock:
        cache.data[key] = result
        while len(cache.data) > CACHE_ENTRIES:
            cache.data.popitem(last=False)
    return CliJSONResponse(result)


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: OrderedDict = OrderedDict()


_CACHE_LOCK = threading.Lock()


def _cache(request: Request) -> _Cache:
    with _CACHE_LOCK:
        cache = getattr(request.app.state, "api_cache", None)
        if cache is None:
            cache = request.app.state.api_cache = _Cache()
        return cache


def _version(request: Request, ws: Workspace) -> tuple:
    """What a result depends on besides its parameters: the data loaded and stitched, and journeymap.yml."""
    stats = getattr(request.app.state.runner, "stats", {})
    try:
        st = ws.definition_path.stat()
        definition = (st.st_mtime_ns, st.st_size)
    except OSError:
        definition = None
    return stats.get("accepted"), stats.get("stitches"), definition


def _default_level(ws: Workspace, by: str | None) -> str:
    return by or (ws.definition.analysis.level if ws.definition_path.exists() else "person")


def _at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise OptionError(f"--at {text!r} is not a date: write YYYY-MM-DD") from None


def _horizon(text: str) -> int:
    try:
        days = parse_duration(text) / 86400
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    if days < 1:
        raise OptionError("--horizon must be at least 1d")
    return int(round(days))


def _days(text: str, option: str) -> float:
    try:
        days = parse_duration(text) / 86400
    except ValueError as exc:
        raise OptionError(f"{option}: {exc}") from None
    if days <= 0:
        raise OptionError(f"{option} must be positive")
    return days


def _bounded(params: dict, durations: tuple[str, ...] = (), dates: tuple[str, ...] = (), brackets: str | None = None) -> None:
    """Refuse magnitudes the engines overflow on (the CLI fails on them with a traceback): durations over
    MAX_DAYS, dates outside MIN_YEAR..MAX_YEAR, bracket days over MAX_DAYS. Malformed values are left to the
    analysis, which words the CLI's message."""
    for name in durations:
        text = params.get(name)
        try:
            seconds = parse_duration(text) if isinstance(text, str) else None
        except ValueError:
            continue
        if seconds is not None and seconds > MAX_DAYS * 86400:
            raise OptionError(f"{_option(name)} must be at most {MAX_DAYS}d")
    for name in dates:
        text = params.get(name)
        if not isinstance(text, str):
            continue
        try:
            year = dt.datetime.fromisoformat(text).year
        except ValueError:
            continue
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise OptionError(f"{_option(name.removeprefix('date_'))} {text!r} is out of range: years {MIN_YEAR} to {MAX_YEAR}")
    if brackets and any(int(n) > MAX_DAYS for n in re.findall(r"\d+", brackets)):
        raise OptionError(f"--brackets: days must be at most {MAX_DAYS}")


def _has_events(ws: Workspace) -> None:
    tables = {r[0] for r in ws.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if not {"journey_events", "accounts"} <= tables:
        raise HTTPException(409, f"{ws.path}: no events yet; send events to /v1/ or run "
                                 f"`journeymap ingest FILE --workspace {ws.path}` while the server is stopped")


def _json_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- parameters ------------------------------------------------------------------------------------

Unit = Literal["person", "account"]
ByQ = Annotated[Unit | None, Query(description="Unit of analysis: person or account (default: the definition's).")]
LevelQ = Annotated[Literal["event", "stage", "touchpoint"], Query(description="event, stage or touchpoint.")]
CollapseQ = Annotated[bool, Query(description="Treat A,A,B as A,B.")]
TopQ = Annotated[int | None, Query(ge=0, le=MAX_INT, description="Keep the N most common; the rest is one 'other' bucket.")]
IntervalQ = Annotated[Literal["day", "week", "month", "quarter"], Query(description="day, week (Monday, UTC), month or quarter.")]
FromQ = Annotated[str | None, Query(alias="from", description="First interval to report (a date, YYYY-MM-DD).")]
ToQ = Annotated[str | None, Query(alias="to", description="Last interval to report (a date, YYYY-MM-DD).")]
EventQ = Annotated[str | None, Query(description="Only this event makes a unit active (default: any).")]
CohortByQ = Annotated[Unit, Query(description="Unit of analysis: person or account (active when any of its persons is).")]
AtQ = Annotated[str | None, Query(description="Scoring date (YYYY-MM-DD); default: the day after the last event.")]
HorizonQ = Annotated[str, Query(description="Churn within this long after the scoring date, e.g. 90d.")]
PersonAccountQ = Annotated[Unit | None, Query(description="person or account (default: the definition's).")]
LimitQ = Annotated[int, Query(ge=1, le=10_000, description="Rows per page.")]
OffsetQ = Annotated[int, Query(ge=0, le=MAX_INT, description="Rows to skip.")]

class Problem(BaseModel):
    """Every error answer: one line saying what is wrong."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No valid read key (`Authorization: Bearer jm_r_...`)."},
    409: {"model": Problem, "description": "The analysis cannot run on this workspace (no events yet, an invalid "
                                           "journeymap.yml, a section it needs is missing)."},
    422: {"model": Problem, "description": "A bad parameter; `detail` is the CLI's message for it."},
}

bearer = HTTPBearer(auto_error=False, scheme_name="readKey",
                    description="A read key: `journeymap keys create --kind read --name NAME` (tokens start jm_r_).")
router = APIRouter(prefix="/api/v1", tags=["JSON API"], route_class=CliRoute, default_response_class=CliJSONResponse,
                   dependencies=[Security(bearer)], responses=ERRORS)


# -- the journey map and its definition ------------------------------------------------------------


@router.get("/map", summary="The journey map", response_class=CliJSONResponse,
            description="The journey map as JSON (docs/map-json.md): what `journeymap map --json` prints.")
def journey_map(key: ReadKey, ws: ReadWorkspace, request: Request, by: ByQ = None,
                date_from: Annotated[str | None, Query(alias="from", description="Map a period: first day (YYYY-MM-DD) whose events count.")] = None,
                date_to: Annotated[str | None, Query(alias="to", description="Last day (inclusive) whose events count.")] = None) -> Response:
    params = {"by": by, "date_from": date_from, "date_to": date_to}
    _bounded(params, dates=("date_from", "date_to"))
    return _analysis(request, ws, "map", params, lambda: ws.journey_map(level=by, date_from=date_from, date_to=date_to))


@router.get("/definition", summary="The journey definition",
            description="journeymap.yml as JSON, defaults filled in (`journeymap schema` gives its JSON Schema).")
def definition(key: ReadKey, ws: ReadWorkspace, request: Request) -> Response:
    return _analysis(request, ws, "definition", {}, lambda: ws.definition.model_dump(mode="json"))


@router.post("/definition/validate", summary="Check a journey definition",
             description="Checks the YAML text of a journeymap.yml (the body) as `journeymap validate` does. Answers "
                         '`{"valid": bool, "problems": [{"key", "message"}]}`; the workspace\'s own file is unchanged.')
def validate_definition(
    key: ReadKey,
    text: Annotated[str, Body(media_type="application/yaml", max_length=MAX_DEFINITION_BYTES,
                              description="The YAML text of a journeymap.yml.")] = "",
) -> Response:
    problems: list[tuple[str, str]] = []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problems = [(where, str(getattr(exc, "problem", None) or exc))]
    except RecursionError:
        problems = [("(file)", "nested too deeply")]
    else:
        try:
            parse_definition(data, "journeymap.yml")
        except DefinitionError as exc:
            problems = list(exc.problems)
        except RecursionError:
            problems = [("(file)", "nested too deeply")]
    return CliJSONResponse({"valid": not problems, "problems": [{"key": k, "message": m} for k, m in problems]})


# -- funnels, paths, transitions --------------------------------------------------------------------


@router.get("/funnel", summary="Exact funnel",
            description="Units (or attempts) completing the steps in order within the window: `journeymap funnel --json`.")
def funnel(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    steps: Annotated[str, Query(description="Comma-separated event names, e.g. 'signup,invite,pay'.")],
    by: ByQ = None,
    window: Annotated[str, Query(description="Conversion window: a number and s, m, h, d or w.")] = "14d",
    window_from: Annotated[Literal["entry", "previous"], Query(
        description="entry: from the step-1 event; previous: between consecutive steps.")] = "entry",
    order: Annotated[Literal["ordered", "strict", "unordered"], Query(
        description="ordered: other events may come between steps; strict: none may; unordered: any k steps.")] = "ordered",
    optional: Annotated[list[int], Query(description="Step number (from 0, never 0) a unit may skip. Repeatable.")] = [],  # noqa: B006
    exclude: Annotated[list[str], Query(
        description="EVENT:FROM:TO (steps from 0): drop attempts with EVENT between those steps. Repeatable.")] = [],  # noqa: B006
    count: Annotated[Literal["uniques", "totals"], Query(
        description="uniques: units, by their furthest attempt; totals: attempts.")] = "uniques",
    breakdown: Annotated[str | None, Query(description="A property to split the funnel by.")] = None,
    attribution: Annotated[str, Query(description="Which step's event gives the breakdown value: first, last or step:N.")] = "first",
    date_from: Annotated[str | None, Query(alias="from", description="First day (YYYY-MM-DD) an attempt may start.")] = None,
    date_to: Annotated[str | None, Query(alias="to", description="Last day (inclusive) an attempt may start.")] = None,
    tolerance: Annotated[str, Query(description="How far a step may precede the previous one and still count as in order.")] = "0s",
) -> Response:
    from journeymap.engine.funnels import funnel as run_funnel

    params = dict(steps=steps, window=window, window_from=window_from, order=order, count=count, exclude=exclude,
                  tolerance=tolerance, date_from=date_from, date_to=date_to, breakdown=breakdown, attribution=attribution,
                  optional=optional)

    def compute() -> dict:
        if breakdown and any(not k or '"' in k for k in breakdown.split(".")):
            # funnel_options lets these through and DuckDB cannot read them as a JSON path (the CLI fails the same way)
            raise OptionError(f"--breakdown {breakdown!r}: write a property name or a dotted path of them, "
                              "with no empty key and no double quote")
        _bounded(params, durations=("window", "tolerance"), dates=("date_from", "date_to"))
        options = funnel_options(**params)
        result = run_funnel(ws.engine, options, _default_level(ws, by))
        result.pop("histograms", None)  # the Python API's; the CLI contract is steps (and groups)
        return result

    return _analysis(request, ws, "funnel", {**params, "by": by}, compute)


def _labelled(ws: Workspace, level: str, by: str | None):
    from journeymap.engine.paths import labelled_events

    definition = ws.definition if level != "event" or ws.definition_path.exists() else None
    unit_level = by or (definition.analysis.level if definition else "person")
    return labelled_events(ws.engine, definition, level, unit_level)


@router.get("/paths", summary="Paths from an anchor",
            description="Paths step by step from an anchor: Sankey-ready nodes (depth, label) and links: `journeymap paths --json`.")
def paths(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    level: LevelQ = "event", by: ByQ = None,
    start: Annotated[str | None, Query(description="Paths begin at each unit's first occurrence of this label.")] = None,
    end: Annotated[str | None, Query(description="Paths stop at the first occurrence of this label (after start).")] = None,
    before: Annotated[str | None, Query(description="The steps leading up to each unit's first occurrence of this label.")] = None,
    depth: Annotated[int | None, Query(ge=0, le=MAX_INT, description="Steps to show from the anchor (before it with before).")] = None,
    top: TopQ = None, collapse_repeats: CollapseQ = False,
) -> Response:
    from journeymap.engine.paths import paths_result

    params = dict(level=level, by=by, start=start, end=end, before=before, depth=depth, top=top, collapse_repeats=collapse_repeats)
    return _analysis(request, ws, "paths", params, lambda: paths_result(
        _labelled(ws, level, by), start=start, end=end, before=before, depth=depth, top=top, collapse_repeats=collapse_repeats))


@router.get("/variants", summary="Whole sequences (variants)",
            description="Whole sequences with counts, share, median duration and, with converted, converted vs dropped: "
                        "`journeymap variants --json`.")
def variants(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    level: LevelQ = "event", by: ByQ = None,
    converted: Annotated[str | None, Query(description="A unit converted when its sequence contains this label.")] = None,
    top: TopQ = None, collapse_repeats: CollapseQ = False,
) -> Response:
    from journeymap.engine.variants import variants_result

    params = dict(level=level, by=by, converted=converted, top=top, collapse_repeats=collapse_repeats)
    return _analysis(request, ws, "variants", params, lambda: variants_result(
        _labelled(ws, level, by), converted=converted, top=top, collapse_repeats=collapse_repeats))


@router.get("/transitions", summary="Transitions (directly-follows edges)",
            description="Consecutive steps per unit with starts, ends and the number of variants: `journeymap transitions --json`.")
def transitions(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    level: LevelQ = "event", by: ByQ = None, collapse_repeats: CollapseQ = False,
) -> Response:
    params = dict(level=level, by=by, collapse_repeats=collapse_repeats)
    return _analysis(request, ws, "transitions", params,
                     lambda: ws.transitions(level=level, by=by, collapse_repeats=collapse_repeats))


# -- cohorts ---------------------------------------------------------------------------------------


@router.get("/retention", summary="Cohort retention",
            description="Of the units that did `start`, how many did `return` in each later period: `journeymap retention --json`.")
def retention(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    start: Annotated[str, Query(description="The event that puts a unit in a cohort.")],
    return_event: Annotated[str, Query(alias="return", description="The event that counts as coming back (may equal start).")],
    interval: IntervalQ = "week",
    mode: Annotated[Literal["first_time", "recurring"], Query(
        description="first_time: cohort of the first start event; recurring: every interval with one.")] = "first_time",
    period: Annotated[Literal["on", "on_or_after"], Query(
        description="on: returned in exactly period k; on_or_after: in k or later.")] = "on",
    rolling: Annotated[bool, Query(description="Periods of 1/7/30/90 days from each unit's own start event.")] = False,
    brackets: Annotated[str | None, Query(description="Day ranges after the start event, e.g. 1-3,4-7,8-14.")] = None,
    date_from: FromQ = None, date_to: ToQ = None, by: CohortByQ = "person",
) -> Response:
    from journeymap.engine.retention import retention as run

    params = dict(start=start, return_event=return_event, interval=interval, mode=mode, period=period, rolling=rolling,
                  brackets=brackets, level=by, date_from=date_from, date_to=date_to)
    def compute() -> dict:
        _bounded(params, dates=("date_from", "date_to"), brackets=brackets)
        return run(ws.engine, **params)

    return _analysis(request, ws, "retention", params, compute)


@router.get("/lifecycle", summary="Lifecycle",
            description="New, returning, resurrecting and dormant units per interval, with the quick ratio: "
                        "`journeymap lifecycle --json`.")
def lifecycle(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    interval: IntervalQ = "week", event: EventQ = None,
    new_by: Annotated[Literal["first_event", "created_at"], Query(
        description="first_event, or created_at (the profile's createdAt trait, else its first event).")] = "first_event",
    date_from: FromQ = None, date_to: ToQ = None, by: CohortByQ = "person",
) -> Response:
    from journeymap.engine.lifecycle import lifecycle as run

    params = dict(interval=interval, event=event, new_by=new_by, level=by, date_from=date_from, date_to=date_to)
    def compute() -> dict:
        _bounded(params, dates=("date_from", "date_to"))
        return run(ws.engine, **params)

    return _analysis(request, ws, "lifecycle", params, compute)


@router.get("/stickiness", summary="Stickiness and DAU/MAU",
            description="How many days units are active per interval, and DAU/MAU per month: `journeymap stickiness --json`.")
def stickiness(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    interval: Annotated[Literal["week", "month", "quarter"], Query(
        description="week, month or quarter: count active days in each.")] = "week",
    event: EventQ = None, date_from: FromQ = None, date_to: ToQ = None, by: CohortByQ = "person",
) -> Response:
    from journeymap.engine.lifecycle import stickiness as run

    params = dict(interval=interval, event=event, level=by, date_from=date_from, date_to=date_to)
    def compute() -> dict:
        _bounded(params, dates=("date_from", "date_to"))
        return run(ws.engine, **params)

    return _analysis(request, ws, "stickiness", params, compute)


# -- surveys, revenue, risk, health -----------------------------------------------------------------


@router.get("/surveys", summary="NPS, CSAT and CES",
            description="NPS, CSAT and CES with 95% confidence intervals per stage, touchpoint, persona or period: "
                        "`journeymap surveys --json`.")
def surveys(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    group: Annotated[Literal["stage", "touchpoint", "persona", "period"], Query(
        description="stage, touchpoint, persona or period.")] = "stage",
    interval: Annotated[Literal["day", "week", "month", "quarter", "year"], Query(
        description="For group=period: day, week, month, quarter, year.")] = "month",
    by: ByQ = None,
) -> Response:
    return _analysis(request, ws, "surveys", dict(group=group, interval=interval, by=by),
                     lambda: ws.surveys(group, interval, by))


@router.get("/revenue", summary="MRR bridge, revenue retention and churn",
            description="MRR bridge per month, GRR/NRR, logo churn, and churn by kind, reason, plan, persona and stage: "
                        "`journeymap revenue --json`.")
def revenue(key: ReadKey, ws: ReadWorkspace, request: Request) -> Response:
    return _analysis(request, ws, "revenue", {}, ws.revenue)


@router.get("/risk", summary="Churn risk per account",
            description="Churn risk per paying account, riskiest first, with the top 3 reasons, and the model's held-out "
                        "evaluation: `journeymap risk --json` (docs/metrics/health-and-risk.md). Takes seconds when not cached.")
def risk(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    at: AtQ = None,
    top: Annotated[int, Query(ge=0, le=MAX_INT, description="Accounts to list, riskiest first (0: all).")] = 20,
    horizon: HorizonQ = "90d",
    model: Annotated[Literal["gbm", "logistic"], Query(description="gbm or logistic.")] = "gbm",
) -> Response:
    def compute() -> dict:
        _bounded({"at": at, "horizon": horizon}, durations=("horizon",), dates=("at",))
        when, days = _at(at), _horizon(horizon)
        return ws.risk(at=when, horizon_days=days, model=model, top=top or None)

    return _analysis(request, ws, "risk", dict(at=at, top=top, horizon=horizon, model=model), compute)


@router.get("/health", summary="Health score per account",
            description="Health score 0-100 per paying account with its band, the backtest against churn, and expansion "
                        "signals: `journeymap health --json`. Takes seconds when not cached.")
def health(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    at: AtQ = None, horizon: HorizonQ = "90d",
    weights: Annotated[Literal["auto", "config", "learned"], Query(description="auto, config or learned.")] = "auto",
) -> Response:
    def compute() -> dict:
        _bounded({"at": at, "horizon": horizon}, durations=("horizon",), dates=("at",))
        when, days = _at(at), _horizon(horizon)
        return ws.health(at=when, horizon_days=days, weights=weights)

    return _analysis(request, ws, "health", dict(at=at, horizon=horizon, weights=weights), compute)


# -- moments, voice, friction ----------------------------------------------------------------------


@router.get("/moments", summary="Moments of truth",
            description="Early behaviours ranked by the retention that goes with them, and a suggested activation "
                        "definition: `journeymap moments --json` (docs/metrics/moments-of-truth.md).")
def moments(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    by: ByQ = None,
    within: Annotated[str, Query(description="Behaviour window after the start, e.g. 14d.")] = "14d",
    horizon: Annotated[str, Query(description="Retained = not churned this long after the start.")] = "90d",
    min_units: Annotated[int, Query(ge=1, le=MAX_INT, description="Doers and non-doers needed to be ranked.")] = 30,
    population: Annotated[Literal["customers", "started"] | None, Query(
        description="customers (reached the customer stage; default when defined) or started.")] = None,
    exclude: Annotated[list[str], Query(
        description="Behaviour id (event:x, touchpoint:y) or event name to leave out. Repeatable.")] = [],  # noqa: B006
    include: Annotated[list[str], Query(description="Keep a behaviour the leakage rules leave out. Repeatable.")] = [],  # noqa: B006
) -> Response:
    def compute() -> dict:
        _bounded({"within": within, "horizon": horizon}, durations=("within", "horizon"))
        within_days, horizon_days = _days(within, "--within"), _days(horizon, "--horizon")
        return ws.moments(level=by, within_days=within_days, horizon_days=horizon_days, min_units=min_units,
                          population=population, exclude=exclude or None, include=include or None)

    params = dict(by=by, within=within, horizon=horizon, min_units=min_units, population=population, exclude=exclude,
                  include=include)
    return _analysis(request, ws, "moments", params, compute)


@router.get("/voice", summary="Voice of the customer",
            description="Sentiment and themes of survey comments, tickets, reviews and interviews per stage, touchpoint, "
                        "persona, period and kind: `journeymap voice --json` (every grouping).")
def voice(
    key: ReadKey, ws: ReadWorkspace, request: Request,
    themes: Annotated[int | None, Query(ge=1, le=100, description="Number of themes (default: chosen by coherence).")] = None,
    seed: Annotated[int, Query(ge=0, le=2**32 - 1, description="Seed of the theme model: same texts + seed, same themes.")] = 0,
    level: PersonAccountQ = None,
) -> Response:
    return _analysis(request, ws, "voice", dict(themes=themes, seed=seed, level=level),
                     lambda: ws.voice(level=level, n_themes=themes, seed=seed))


@router.get("/friction", summary="Friction and delight",
            description="Friction and delight ranked by impact (units touched, MRR at stake) with evidence: "
                        "`journeymap friction --json`.")
def friction(key: ReadKey, ws: ReadWorkspace, request: Request, level: PersonAccountQ = None) -> Response:
    return _analysis(request, ws, "friction", dict(level=level), lambda: ws.friction(level=level))


# -- accounts --------------------------------------------------------------------------------------


@router.get("/accounts", summary="Accounts",
            description="Every account an event counts for, by account_id, with persons, events, first and last seen and "
                        "its latest traits (from group calls). Paginated with limit and offset.")
def accounts(key: ReadKey, ws: ReadWorkspace, limit: LimitQ = 100, offset: OffsetQ = 0) -> Response:
    _has_events(ws)
    total = ws.con.execute("SELECT count(*) FROM accounts").fetchone()[0]
    rows = ws.con.execute(
        "SELECT account_id, persons, events, first_seen, last_seen, created_at, traits FROM accounts "
        "ORDER BY account_id LIMIT ? OFFSET ?", [limit, offset]).fetchall()
    cols = ("account_id", "persons", "events", "first_seen", "last_seen", "created_at", "traits")
    items = [dict(zip(cols, r, strict=True)) for r in rows]
    for item in items:
        item["traits"] = _json_text(item["traits"])
    return CliJSONResponse({"total": total, "limit": limit, "offset": offset, "accounts": items})


@router.get("/accounts/{account_id}/timeline", summary="An account's timeline",
            description="Every event counted for the account, from every source, in time order (then input order): ts, "
                        "person_id, source, channel, event, type, properties, traits, message_id. Paginated.")
def account_timeline(
    key: ReadKey, ws: ReadWorkspace,
    account_id: Annotated[str, Path(description="The account's id (see /api/v1/accounts).")],
    limit: LimitQ = 1000, offset: OffsetQ = 0,
) -> Response:
    _has_events(ws)
    if not ws.con.execute("SELECT 1 FROM accounts WHERE account_id = ?", [account_id]).fetchall():
        raise HTTPException(404, f"no account {account_id!r}; /api/v1/accounts lists them")
    total = ws.con.execute("SELECT count(*) FROM journey_events WHERE account_id = ?", [account_id]).fetchone()[0]
    rows = ws.con.execute(
        "SELECT ts, person_id, source, channel, event, type, properties, traits, message_id FROM journey_events "
        "WHERE account_id = ? ORDER BY ts, seq LIMIT ? OFFSET ?", [account_id, limit, offset]).fetchall()
    cols = ("ts", "person_id", "source", "channel", "event", "type", "properties", "traits", "message_id")
    events = [dict(zip(cols, r, strict=True)) for r in rows]
    for e in events:
        e["properties"], e["traits"] = _json_text(e["properties"]), _json_text(e["traits"])
    return CliJSONResponse({"account_id": account_id, "total": total, "limit": limit, "offset": offset, "events": events})


# -- keys ------------------------------------------------------------------------------------------


@router.get("/keys", summary="API keys",
            description="The workspace's API keys as `journeymap keys list --json` prints them: never tokens or hashes.")
def keys(key: ReadKey, ws: ReadWorkspace) -> Response:
    from journeymap.server.keys import ApiKey

    rows = ws.con.execute("SELECT key_id, kind, name, created_at, revoked_at FROM api_keys ORDER BY created_at, key_id").fetchall()
    return CliJSONResponse({"keys": [ApiKey(*r).as_dict() for r in rows]})
