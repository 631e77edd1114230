"""What the pages of the web app share: the context a page's data function gets (`Ctx`), the page entry
(`Page`), the Jinja environment and its filters, the static files read from the packages, the forms generated
from the analyses registry, and `_build`/`_render` (a page's data, then its HTML)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from jinja2 import ChoiceLoader, Environment, PackageLoader

from journeymap.analyses import Params, get
from journeymap.analyses.base import options as option_list
from journeymap.analyses.base import unit_of
from journeymap.errors import JourneymapError, raised_by_journeymap
from journeymap.report.context import build_context
from journeymap.report.html import template_environment
from journeymap.server.cache import LIVE
from journeymap.server.context import require_journeys
from journeymap.server.encoding import plain
from journeymap.workspace import Workspace

NAV = (("map", "Journey map", "/app/map"), ("funnel", "Funnel", "/app/funnel"), ("paths", "Paths", "/app/paths"),
       ("retention", "Retention", "/app/retention"), ("lifecycle", "Lifecycle", "/app/lifecycle"),
       ("revenue", "Churn & revenue", "/app/revenue"), ("accounts", "Accounts", "/app/accounts"),
       ("voice", "Voice", "/app/voice"), ("conformance", "Conformance", "/app/conformance"),
       ("playbooks", "Playbooks", "/app/playbooks"), ("tasks", "Tasks", "/app/tasks"), ("outbox", "Outbox", "/app/outbox"),
       ("improvements", "Improvements", "/app/improvements"), ("experiments", "Experiments", "/app/experiments"),
       ("analyses", "All analyses", "/app/analyses"), ("settings", "Settings", "/app/settings"))
COLORS = {"positive": "#2d7a57", "negative": "#b0463d", "accent": "#1f3a68", "accent2": "#3e68ad", "warning": "#a86f12",
          "muted": "#9aa4b2", "teal": "#3a8a8c"}


# -- static files, templates -------------------------------------------------------------------


@cache
def _static(name: str) -> bytes:
    if name == "plotly.min.js":
        return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
    if name == "map.css":
        return resources.files("journeymap.report").joinpath("templates", "map.css").read_bytes()
    return resources.files("journeymap.server").joinpath("static", name).read_bytes()


def _money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _num(x: float | None, digits: int = 2, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:,.{digits}f}"


def idq(ident: object) -> str:
    """An id as one path segment of the app's URLs: every character but letters, digits and `_-~` escaped, the
    dot too, so that an id ending in `.json` is not read as the JSON twin (views/__init__.py `_split`)."""
    return quote(str(ident), safe="").replace(".", "%2E")


def _runs(timeline: list[dict], min_run: int = 3) -> list[dict]:
    """Consecutive events from one source, 3 or more, as one collapsible run; the rest one by one, so a
    burst of product usage does not bury the sales call or the ticket next to it."""
    out: list[dict] = []
    for e in timeline:
        if out and out[-1]["source"] == e["source"]:
            out[-1]["events"].append(e)
        else:
            out.append({"source": e["source"], "events": [e]})
    runs = []
    for run in out:
        if len(run["events"]) < min_run:
            runs += [{"source": run["source"], "events": [e], "single": True} for e in run["events"]]
            continue
        counts: dict[str, int] = {}
        for e in run["events"]:
            counts[e["event"]] = counts.get(e["event"], 0) + 1
        run.update(single=False, counts=sorted(counts.items(), key=lambda kv: -kv[1]))
        runs.append(run)
    return runs


@cache
def _env() -> Environment:
    env = template_environment().overlay(loader=ChoiceLoader([PackageLoader("journeymap.server", "templates"),
                                                              PackageLoader("journeymap.report", "templates")]))
    # An overlay shares its parent's filters dict: updating it in place would change the map's own
    # formatting (its HTML export) in every process that ever served a page. The web app gets a copy.
    env.filters = {**env.filters, "money": _money, "num": _num, "urlq": lambda s: quote(str(s), safe=""), "idq": idq,
                   "runs": _runs}
    return env


def _inline(name: str) -> str:
    return _static(name).decode("utf-8").replace("</script", "<\\/script")


# -- forms -------------------------------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the app's forms), read without python-multipart."""
    from urllib.parse import parse_qsl

    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


# -- what a page's data function gets ----------------------------------------------------------------------


class Ctx:
    """What a page's data function gets: the workspace, the query, and the server's one cache (server/cache.py)."""

    def __init__(self, request: Request, ws: Workspace):
        self.request, self.ws, self.query = request, ws, request.query_params
        self.cache = request.app.state.cache

    def arg(self, name: str, default: str | None = None) -> str | None:
        value = self.query.get(name)
        return value.strip() if value is not None and value.strip() else default

    def args(self, name: str) -> list[str]:
        return [p.strip() for v in self.query.getlist(name) for p in v.split(",") if p.strip()]

    def cached(self, *key, compute: Callable[[], Any]) -> Any:
        return self.cache.get(("web", *key), compute, reads=getattr(self.ws, "reads", LIVE))

    def options(self, name: str, prefill: dict | None = None) -> Params:
        """The analysis's options from the page's query string (empty fields left out), checked by its
        parameter model: the defaults, bounds and messages of the CLI and the API. `prefill` suggests values
        for options the form left empty."""
        from journeymap.server.api import raw_options

        analysis = get(name)
        raw = raw_options(analysis.params, self.query, strict=False, surface="web")
        return analysis.validate({**{k: v for k, v in (prefill or {}).items() if v}, **raw})

    def run(self, name: str, /, **options) -> dict:
        """An analysis of the registry through the cache the JSON API uses: one computation for both. `name` is
        positional only: the experiment analysis has an option called name."""
        from journeymap.server.api import run_cached

        analysis = get(name)
        return run_cached(self.request, self.ws, analysis, analysis.validate(options))

    def journey_map(self, by: str | None = None, date_from: dt.date | None = None, date_to: dt.date | None = None) -> dict:
        return self.run("map", by=by, date_from=date_from, date_to=date_to)


def _event_names(ctx: Ctx) -> list[str]:
    def compute() -> list[str]:
        rows = ctx.ws.con.execute("SELECT event FROM journey_events WHERE type NOT IN ('identify', 'group', 'alias') "
                                  "GROUP BY event ORDER BY count(*) DESC, event").fetchall()
        return [r[0] for r in rows]

    return ctx.cached("event_names", compute=compute)


def _entry_events(ctx: Ctx) -> list[str]:
    out = []
    for stage in ctx.ws.definition.progression:
        events = getattr(stage.entry, "event", None) or []
        if events and events[0] not in out:
            out.append(events[0])
    return out


EVENT_FIELDS = frozenset({"steps", "start", "end", "before", "return", "event", "converted"})
"""Form fields that take event (or stage) names: the page offers the known names."""


def form_fields(ctx: Ctx, name: str, params: Params) -> list[dict]:
    """The page's form, one field per option of the analysis as the registry describes it (kind, choices, help),
    valued as the analysis ran; the unit shows the one it resolved to."""
    analysis = get(name)
    values = params.model_dump(by_alias=True, mode="json")
    fields = []
    for o in option_list(analysis.params, "web"):
        value = values[o.key]
        if o.name == "by":
            value = unit_of(ctx.ws, value)
        elif o.kind == "list":
            value = ", ".join(map(str, value))
        fields.append({**o.as_dict(), "value": value, "label": o.key.replace("_", " ").capitalize(),
                       "events": o.key in EVENT_FIELDS})
    return fields


def analysis_page(ctx: Ctx, name: str, prefill: dict | None = None) -> dict:
    """Run an analysis from the page's form: the registry's options and defaults; `prefill` suggests values for
    required options the form left empty (names from the data). Data: options, form, events, result."""
    from journeymap.server.api import run_cached

    params = ctx.options(name, prefill)
    result = run_cached(ctx.request, ctx.ws, get(name), params)
    options = params.model_dump(by_alias=True, mode="json")
    if "by" in options:
        options["by"] = unit_of(ctx.ws, params.by)
    return {"options": options, "form": form_fields(ctx, name, params), "events": _event_names(ctx), "result": result}


# -- a page: its entry, its data and its HTML ------------------------------------------------------


class Page:
    def __init__(self, name: str, path: str, template: str, build: Callable[..., dict], title: Callable[[dict], str],
                 charts: Callable[[dict], list[dict]] | None = None, needs_events: bool = True):
        self.name, self.path, self.template, self.build, self.title, self.charts = name, path, template, build, title, charts
        self.needs_events = needs_events  # False: the page works on a workspace without journeys (settings)


ACTIVE = {"stage": "map", "playbook": "playbooks", "account": "accounts", "analysis": "analyses",
          "improvement": "improvements", "experiment": "experiments"}


def _build(page: Page, request: Request, ws: Workspace) -> tuple[dict, JourneymapError | None]:
    """The page's data, or the error that stopped it (typed: its status and message come from journeymap.errors)."""
    ctx = Ctx(request, ws)
    try:
        if page.needs_events:
            require_journeys(ws)  # a new workspace: NoJourneysYet, the page's empty state (not a query on no table)
        data = page.build(ctx, **request.path_params)
    except HTTPException:
        raise
    except JourneymapError as exc:
        return {}, exc
    except (ValueError, OSError) as exc:
        if isinstance(exc, OSError) or raised_by_journeymap(exc):  # a module not yet on journeymap.errors
            return {}, UserFacing(str(exc))
        raise  # a library's error is a bug: 500, never shown as an answer
    return plain(data), None


class UserFacing(JourneymapError):
    """An error raised as a plain ValueError by a module not yet on journeymap.errors."""

    http_status = 400
    kind = "user"


def _render(page: Page, request: Request, data: dict, error: str | None, standalone: bool, slide: bool = False,
            empty: str | None = None) -> str:
    """The page's HTML: its data, or `error` (shown as one), or `empty` (a workspace with no journeys yet)."""
    path = request.url.path
    base = path.rsplit(".", 1)[0] if path.endswith((".html", ".png", ".pdf")) else path
    if request.path_params:  # the id escaped as in the app's links: the decoded path may hold `/` or end in `.json`
        base = "/app" + page.path.split("{", 1)[0] + idq(next(iter(request.path_params.values())))
    if base.rstrip("/") == "/app":
        base = "/app/map"
    query = f"?{request.url.query}" if request.url.query else ""
    exports = {fmt: f"{base}.{fmt}{query}" for fmt in ("json", "html", "png", "pdf")}
    charts = page.charts(data) if page.charts and not error and data else []
    context = {"data": data, "error": error, "empty": empty, "charts": charts, "standalone": standalone, "nav": NAV, "query": request.query_params,
               "active": ACTIVE.get(page.name, page.name), "title": page.title(data) if data else page.name.capitalize(),
               "exports": exports, "signed_in": True, "page": page.name, "slide": slide,
               "csp_nonce": getattr(request.state, "csp_nonce", "")}  # for inline scripts (server/security.py)
    if standalone:
        context["inline"] = {"map_css": _inline("map.css"), "app_css": _inline("app.css"), "app_js": _inline("app.js"),
                             "plotly": _inline("plotly.min.js") if charts else ""}
    if page.name == "map" and data:
        context["map"] = build_context(data)
    return _env().get_template(page.template).render(**context)
