"""The web app under `/app`: server-rendered pages over the Python API, each with a JSON twin.

Every page `/app/X` has `/app/X.json` (exactly the data the page renders) and exports of the same
view: `/app/X.html` (one self-contained file, CSS, JS and the Plotly bundle inline), `/app/X.png` and
`/app/X.pdf` (rendered from that file by headless chromium; 501 when chromium is not installed).
Pages need a read key: `/app/login` takes one and keeps it in the READ_COOKIE cookie; a page
request without one is redirected there, a JSON or export request is answered 401.

Plotly is served from the plotly package (`/app/static/plotly.min.js`), never from a CDN, so the app
works offline. Analyses are cached per workspace until new data is loaded or the definition changes.
See docs/web-app.md.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, PackageLoader

from journeymap.analyses import Params, get
from journeymap.analyses.base import options as option_list
from journeymap.analyses.base import unit_of
from journeymap.errors import JourneymapError, NotEnoughData, OptionError, problem
from journeymap.journey.load import problems as definition_problems
from journeymap.report.context import build_context
from journeymap.report.html import template_environment
from journeymap.server.context import READ_COOKIE, ReadKey, ReadWorkspace, read_token
from journeymap.server.encoding import JSONAnswer, plain
from journeymap.workspace import Workspace

__all__ = ["router", "PAGES"]

router = APIRouter()
pages = APIRouter(prefix="/app", include_in_schema=False)

NAV = (("map", "Journey map", "/app/map"), ("funnel", "Funnel", "/app/funnel"), ("paths", "Paths", "/app/paths"),
       ("retention", "Retention", "/app/retention"), ("lifecycle", "Lifecycle", "/app/lifecycle"),
       ("revenue", "Churn & revenue", "/app/revenue"), ("accounts", "Accounts", "/app/accounts"),
       ("voice", "Voice", "/app/voice"), ("settings", "Settings", "/app/settings"))
STATIC = {"app.css": "text/css", "app.js": "text/javascript"}
EXPORT_WINDOW = (1600, 1000)
SLIDE_WINDOW = (2400, 1500)  # the map as a 16:10 slide: header, summary and the whole grid
CHROMIUM_TIMEOUT = 90
TIMELINE_LIMIT = 1500
STUCK_SHOWN = 25
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


@pages.get("/static/{name}")
def static(name: str) -> Response:
    """The app's CSS and JS, the journey map's stylesheet and Plotly's bundle (no key needed)."""
    if name not in STATIC and name not in ("plotly.min.js", "map.css"):
        raise HTTPException(404, f"no static file {name!r}")
    media = STATIC.get(name, "text/css" if name.endswith(".css") else "text/javascript")
    return Response(_static(name), media_type=media, headers={"Cache-Control": "public, max-age=3600"})


def _money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _num(x: float | None, digits: int = 2, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:,.{digits}f}"


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
    env.filters.update(money=_money, num=_num, urlq=lambda s: quote(str(s), safe=""), runs=_runs)
    return env


def _inline(name: str) -> str:
    return _static(name).decode("utf-8").replace("</script", "<\\/script")


# -- sign-in -------------------------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the app's forms), read without python-multipart."""
    from urllib.parse import parse_qsl

    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


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


@pages.get("/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    """The sign-in form: paste a read key (`journeymap keys create --kind read`)."""
    return _login_page(request, None, _safe_next(next))


@pages.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    token = str(form.get("key") or "").strip()
    next_url = _safe_next(str(form.get("next") or ""))
    if request.app.state.keys.verify(token, "read") is None:
        return _login_page(request, "That is not a live read key. Create one with "
                                    "`journeymap keys create --kind read` (write keys cannot read).", next_url, 401)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(READ_COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


@pages.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/app/login", status_code=303)
    response.delete_cookie(READ_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


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

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true", "on", "yes")

    def cached(self, *key, compute: Callable[[], Any]) -> Any:
        return self.cache.get(("web", *key), compute)

    def options(self, name: str) -> Params:
        """The analysis's options from the page's query string (empty fields left out), checked by its
        parameter model: the defaults, bounds and messages of the CLI and the API."""
        from journeymap.server.api import raw_options

        analysis = get(name)
        return analysis.validate(raw_options(analysis.params, self.query, strict=False, surface="web"))

    def run(self, name: str, **options) -> dict:
        """An analysis of the registry through the cache the JSON API uses: one computation for both."""
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


# -- pages: the journey map and a stage ----------------------------------------------------------


PERIODS = {"all": None, "30d": 30, "90d": 90, "365d": 365}
"""The map page's period selector: the last N days of data, ending on the day of the latest event."""


def map_data(ctx: Ctx) -> dict:
    p = ctx.options("map")
    period = ctx.arg("period") or "all"
    if period not in PERIODS:
        raise OptionError(f"--period must be one of {', '.join(PERIODS)}, not {period!r}", option="period")
    date_from, date_to = p.date_from, p.date_to
    if PERIODS[period] is not None and not (date_from or date_to):
        (last,) = ctx.ws.con.execute("SELECT max(ts) FROM journey_events").fetchall()[0]
        if last is not None:
            date_from, date_to = (last.date() - dt.timedelta(days=PERIODS[period] - 1)).isoformat(), last.date().isoformat()
    return ctx.run("map", by=p.by, date_from=date_from, date_to=date_to, insights=p.insights)


def _visits(ctx: Ctx, level: str | None):
    from journeymap.engine.annotate import annotated_events
    from journeymap.engine.stages import visits

    engine = ctx.ws.engine
    return engine, visits(annotated_events(engine, ctx.ws.definition, unit_of(ctx.ws, level)))


def _stuck(ctx: Ctx, stage_id: str, as_of: str | None) -> dict:
    """Units whose latest visit is to this stage, longest there first (their time so far is censored)."""
    def compute() -> dict:
        engine, v = _visits(ctx, None)
        here = v.filter(v.left_at.isnull() & (v.stage == stage_id))
        total = engine.execute(here.count().name("n").as_table()).to_pylist()[0]["n"]
        rows = engine.execute(here.order_by([here.entered_at, here.unit_id]).limit(STUCK_SHOWN)
                              .select("unit_id", "entered_at")).to_pylist()
        end = dt.datetime.fromisoformat(as_of) if as_of else None
        units = [{"unit_id": r["unit_id"], "entered_at": r["entered_at"].isoformat(),
                  "days_in_stage": None if end is None else round((end - r["entered_at"]).total_seconds() / 86400, 1)}
                 for r in rows]
        return {"in_stage": int(total), "longest": units}

    return ctx.cached("stuck", stage_id, compute=compute)


def stage_data(ctx: Ctx, stage_id: str) -> dict:
    model = ctx.journey_map()
    meta = next((s for s in model["stages"] if s["id"] == stage_id), None)
    if meta is None:
        raise HTTPException(404, f"no stage {stage_id!r}; stages: {', '.join(s['id'] for s in model['stages'])}")
    names = {s["id"]: s["name"] for s in model["stages"]}
    view = model["views"]["all"]["stages"].get(stage_id, {})
    flows = ctx.run("transitions", level="stage")
    entries = sorted(({"from": e["from"], "name": names.get(e["from"], e["from"]), "units": e["count"],
                       "mean_seconds": e.get("mean_seconds")} for e in flows["edges"] if e["to"] == stage_id),
                     key=lambda r: -r["units"])
    if flows["starts"].get(stage_id):
        entries.append({"from": None, "name": "(journey starts here)", "units": flows["starts"][stage_id], "mean_seconds": None})
    exits = sorted(({"to": e["to"], "name": names.get(e["to"], e["to"]), "units": e["count"],
                     "mean_seconds": e.get("mean_seconds")} for e in flows["edges"] if e["from"] == stage_id),
                   key=lambda r: -r["units"])
    if flows["ends"].get(stage_id):
        exits.append({"to": None, "name": "(no later stage yet)", "units": flows["ends"][stage_id], "mean_seconds": None})
    defined = [{"id": t.id, "name": t.name, "channel": t.channel, "owner": t.owner}
               for t in ctx.ws.definition.touchpoints if t.stage == stage_id]
    seen = {t["id"]: t for t in view.get("touchpoints") or []}
    touchpoints = [{**d, "units": seen.get(d["id"], {}).get("units"), "events": seen.get(d["id"], {}).get("events")}
                   for d in defined]
    touchpoints += [t for t in view.get("touchpoints") or [] if t["id"] not in {d["id"] for d in defined}]
    voice = ctx.run("voice")
    themes = next((g for g in voice["groups"].get("stage", []) if g["value"] == stage_id), None)
    return {"stage": meta, "level": model["level"], "as_of": model["data_window"].get("to"), "metrics": view,
            "entries": entries, "exits": exits, "touchpoints": touchpoints, "surveys": view.get("surveys") or {},
            "voice": themes, "stuck": _stuck(ctx, stage_id, model["data_window"].get("to")),
            "stages": [{"id": s["id"], "name": s["name"]} for s in model["stages"]]}


# -- funnel, paths, retention, lifecycle ---------------------------------------------------------


EVENT_FIELDS = frozenset({"steps", "start", "end", "before", "return", "event", "converted"})
"""Form fields that take event (or stage) names: the page offers the known names."""


def form_fields(ctx: Ctx, name: str, params: Params) -> list[dict]:
    """The page's form, one field per option of the analysis as the registry describes it (kind, choices, help),
    valued as the analysis ran; the unit shows the one it resolved to."""
    analysis = get(name)
    values = params.model_dump(by_alias=True, mode="json")
    fields = []
    for o in option_list(analysis.params):
        extra = analysis.params.model_fields[o.name].json_schema_extra or {}
        if "web" not in extra.get("surfaces", ("web",)):
            continue
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
    from journeymap.server.api import raw_options, run_cached

    analysis = get(name)
    raw = raw_options(analysis.params, ctx.query, strict=False, surface="web")
    params = analysis.validate({**{k: v for k, v in (prefill or {}).items() if v}, **raw})
    result = run_cached(ctx.request, ctx.ws, analysis, params)
    options = params.model_dump(by_alias=True, mode="json")
    if "by" in options:
        options["by"] = unit_of(ctx.ws, params.by)
    return {"options": options, "form": form_fields(ctx, name, params), "events": _event_names(ctx), "result": result}


def funnel_data(ctx: Ctx) -> dict:
    entry = _entry_events(ctx)
    return analysis_page(ctx, "funnel", {"steps": ",".join(entry) if len(entry) > 1 else None})


def funnel_charts(data: dict) -> list[dict]:
    result = data.get("result")
    if not result:
        return []
    names = [s["name"] for s in result["steps"]]
    series = [(None, result["steps"])] if not result.get("groups") else [(str(g["value"]), g["steps"]) for g in result["groups"][:8]]
    traces = [{"type": "bar", "name": label or "all", "x": names, "y": [s["count"] for s in steps],
               "hovertemplate": "%{x}: %{y:,}<extra>" + (label or "all") + "</extra>"} for label, steps in series]
    top = max((s["count"] for _, steps in series for s in steps), default=0) or 1
    layout = {"barmode": "group", "yaxis": {"title": "units" if data["options"]["count"] == "uniques" else "attempts",
                                            "range": [0, top * 1.18]},
              "margin": {"t": 30, "l": 60, "r": 20, "b": 60}, "showlegend": len(traces) > 1, "height": 420}
    if len(traces) == 1:
        traces[0]["marker"] = {"color": COLORS["accent2"]}
        layout["annotations"] = [{"x": s["name"], "y": s["count"], "yanchor": "bottom", "showarrow": False, "yshift": 4,
                                  "text": f"<b>{s['count']:,}</b> · {_pct(s['conversion_from_first'])}", "font": {"size": 13}}
                                 for s in result["steps"]]
    return [{"id": "funnel-chart", "data": traces, "layout": layout}]


def paths_data(ctx: Ctx) -> dict:
    return analysis_page(ctx, "paths")


def paths_charts(data: dict) -> list[dict]:
    """A Sankey with each node placed by its depth (x) and in its column by count, "other" and "end" last, so a
    path that ends early ends in its own column instead of being pushed to the right edge."""
    r = data["result"]
    depths = sorted({n["depth"] for n in r["nodes"]})
    last = max(depths, default=0) or 1
    order = sorted(range(len(r["nodes"])), key=lambda i: (r["nodes"][i]["depth"], r["nodes"][i]["label"] in ("other", "end"),
                                                         r["nodes"][i]["label"] == "end", -r["nodes"][i]["count"]))
    index = {(r["nodes"][i]["depth"], r["nodes"][i]["label"]): k for k, i in enumerate(order)}
    totals: dict[int, float] = {}
    for n in r["nodes"]:
        totals[n["depth"]] = totals.get(n["depth"], 0) + n["count"]
    labels, colors, xs, ys, seen = [], [], [], [], {}
    for i in order:
        n = r["nodes"][i]
        before = seen.get(n["depth"], 0)
        seen[n["depth"]] = before + n["count"]
        labels.append(f"{n['label']} ({n['count']:,})")
        colors.append(COLORS["muted"] if n["label"] == "other" else "#d0d6df" if n["label"] == "end" else COLORS["accent2"])
        xs.append(round(0.001 + 0.998 * n["depth"] / last, 4))
        ys.append(round(0.02 + 0.96 * (before + n["count"] / 2) / (totals[n["depth"]] or 1), 4))
    src, dst, val, link_colors = [], [], [], []
    for link in r["links"]:
        a, b = index.get((link["depth"], link["from"])), index.get((link["depth"] + 1, link["to"]))
        if a is None or b is None:
            continue
        src.append(a)
        dst.append(b)
        val.append(link["count"])
        link_colors.append("rgba(154,164,178,0.35)" if "other" in (link["from"], link["to"]) else "rgba(62,104,173,0.25)")
    trace = {"type": "sankey", "arrangement": "snap",
             "node": {"label": labels, "color": colors, "x": xs, "y": ys, "pad": 14, "thickness": 16, "line": {"width": 0}},
             "link": {"source": src, "target": dst, "value": val, "color": link_colors}}
    return [{"id": "sankey", "data": [trace], "layout": {"height": 600, "margin": {"t": 20, "l": 10, "r": 10, "b": 20},
                                                          "font": {"size": 12}}}]


def retention_data(ctx: Ctx) -> dict:
    names = _event_names(ctx)
    if not names:
        raise NotEnoughData("no events yet: retention needs a start and a return event", add="events")
    entry = _entry_events(ctx)
    data = analysis_page(ctx, "retention", {"start": entry[min(2, len(entry) - 1)] if entry else names[0],
                                            "return": names[0]})
    result, rolling = data["result"], data["options"]["rolling"]
    width = max((len(c["values"]) for c in result["cohorts"]), default=0)
    heads = [f"{a}-{b}d" if isinstance(a, int) else f"{a}d" for a, b in ((x if isinstance(x, list | tuple) and len(x) == 2
                                                                          else (x, None)) for x in result["brackets"])]
    return {**data, "periods": heads or [f"{'R' if rolling else 'P'}{k}" for k in range(width)]}


def retention_charts(data: dict) -> list[dict]:
    cohorts = data["result"]["cohorts"]
    if not cohorts:
        return []
    heads = data["periods"]
    z = [[r for r in c["rates"]] + [None] * (len(heads) - len(c["rates"])) for c in cohorts]
    text = [[f"{100 * r:.0f}%<br>{v:,}" for v, r in zip(c["values"], c["rates"], strict=True)] + [""] * (len(heads) - len(c["rates"]))
            for c in cohorts]
    y = [f"{c['start']} (n={c['size']:,})" for c in cohorts]
    trace = {"type": "heatmap", "x": heads, "y": y, "z": z, "text": text, "texttemplate": "%{text}", "zmin": 0, "zmax": 1,
             "colorscale": [[0, "#f4f6f9"], [0.25, "#c7d5ec"], [1, "#1f3a68"]], "hoverongaps": False,
             "colorbar": {"title": "retained", "tickformat": ".0%"},
             "hovertemplate": "%{y}, %{x}: %{z:.1%}<extra></extra>", "textfont": {"size": 10}}
    height = max(320, 34 * len(cohorts) + 120)
    layout = {"height": height, "margin": {"t": 30, "l": 170, "r": 20, "b": 40}, "xaxis": {"side": "top"},
              "yaxis": {"autorange": "reversed", "type": "category"}}
    return [{"id": "retention-heatmap", "data": [trace], "layout": layout}]


def lifecycle_data(ctx: Ctx) -> dict:
    return analysis_page(ctx, "lifecycle")


def lifecycle_charts(data: dict) -> list[dict]:
    rows = data["result"]["intervals"]
    x = [r["start"] for r in rows]
    kinds = (("new", COLORS["accent2"]), ("returning", COLORS["positive"]), ("resurrecting", COLORS["teal"]),
             ("dormant", COLORS["negative"]))
    traces = [{"type": "bar", "name": k, "x": x, "y": [r[k] for r in rows], "marker": {"color": c}} for k, c in kinds]
    traces.append({"type": "scatter", "mode": "lines+markers", "name": "quick ratio", "x": x, "yaxis": "y2",
                   "y": [r["quick_ratio"] for r in rows], "line": {"color": COLORS["warning"], "width": 2}})
    layout = {"barmode": "relative", "height": 460, "margin": {"t": 30, "l": 60, "r": 60, "b": 50},
              "yaxis": {"title": "units"}, "legend": {"orientation": "h", "y": 1.1},
              "yaxis2": {"title": "quick ratio", "overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False,
                         "tickformat": ".1f"}}
    return [{"id": "lifecycle-chart", "data": traces, "layout": layout}]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


# -- revenue, accounts, voice, settings ----------------------------------------------------------


def revenue_data(ctx: Ctx) -> dict:
    result = ctx.run("revenue")
    last = next((m for m in reversed(result["months"]) if m.get("grr") is not None), None)
    return {**result, "latest": last}


def revenue_charts(data: dict) -> list[dict]:
    months = data["months"]
    if not months:
        return []
    x = [m["month"][:7] for m in months]
    parts = (("new", 1, COLORS["accent2"]), ("reactivation", 1, COLORS["teal"]), ("expansion", 1, COLORS["positive"]),
             ("contraction", -1, COLORS["warning"]), ("churned", -1, COLORS["negative"]))
    bridge = [{"type": "bar", "name": k, "x": x, "y": [sign * (m[k] or 0) for m in months], "marker": {"color": c}}
              for k, sign, c in parts]
    bridge.append({"type": "scatter", "mode": "lines+markers", "name": "MRR at month end", "x": x, "yaxis": "y2",
                   "y": [m["end"] for m in months], "line": {"color": COLORS["accent"], "width": 2}})
    ratios = [{"type": "scatter", "mode": "lines+markers", "name": k.upper(), "x": x, "y": [m[k] for m in months],
               "line": {"color": c}} for k, c in (("grr", COLORS["warning"]), ("nrr", COLORS["positive"]))]
    reasons = [r for r in data["churn"].get("by_reason", [])]
    return [
        {"id": "mrr-bridge", "data": bridge, "layout": {
            "barmode": "relative", "height": 440, "margin": {"t": 30, "l": 70, "r": 70, "b": 50},
            "legend": {"orientation": "h", "y": 1.12}, "yaxis": {"title": "MRR movement"},
            "yaxis2": {"title": "MRR", "overlaying": "y", "side": "right", "rangemode": "tozero", "showgrid": False}}},
        {"id": "retention-ratios", "data": ratios, "layout": {
            "height": 300, "margin": {"t": 20, "l": 60, "r": 20, "b": 40}, "yaxis": {"tickformat": ".0%"},
            "legend": {"orientation": "h", "y": 1.15}}},
        {"id": "churn-reasons", "data": [{"type": "bar", "orientation": "h", "y": [str(r["value"] or "(none given)") for r in reasons],
                                          "x": [r["mrr_lost"] for r in reasons], "marker": {"color": COLORS["negative"]},
                                          "hovertemplate": "%{y}: %{x:,.0f} MRR lost<extra></extra>"}],
         "layout": {"height": max(220, 34 * len(reasons) + 80), "margin": {"t": 20, "l": 140, "r": 20, "b": 40},
                    "xaxis": {"title": "MRR lost"}, "yaxis": {"autorange": "reversed"}}},
    ]


def _account_names(ctx: Ctx) -> dict[str, dict]:
    def compute() -> dict[str, dict]:
        rows = ctx.ws.con.execute(
            "SELECT account_id, json_extract_string(traits, '$.name'), json_extract_string(traits, '$.plan'), persons, "
            "first_seen, last_seen FROM accounts").fetchall()
        return {r[0]: {"name": r[1], "plan": r[2], "persons": r[3], "first_seen": r[4], "last_seen": r[5]} for r in rows}

    return ctx.cached("account_names", compute=compute)


def accounts_data(ctx: Ctx) -> dict:
    notes: list[str] = []
    risk = health = None
    try:
        risk = ctx.run("risk", top=0)
    except Exception as exc:  # noqa: BLE001 - the page degrades to what can be computed, and says why
        notes.append(f"Churn risk is not available: the model could not be fitted on this data ({type(exc).__name__}: {exc}).")
    try:
        health = ctx.run("health")
    except Exception as exc:  # noqa: BLE001
        notes.append(f"Health scores are not available ({type(exc).__name__}: {exc}).")
    names = _account_names(ctx)
    rows: dict[str, dict] = {}
    for a in (health or {}).get("accounts", []):
        rows[a["unit_id"]] = {"account_id": a["unit_id"], "health": a["health"], "band": a["band"], "mrr": a["mrr"],
                              "expansion": a.get("expansion") or []}
    for a in (risk or {}).get("accounts", []):
        row = rows.setdefault(a["unit_id"], {"account_id": a["unit_id"], "mrr": a["mrr"]})
        row.update(risk=a["risk"], stage=a.get("stage"), reasons=[r["text"] for r in a.get("reasons") or []])
    if not rows:
        notes.append("No paying accounts: health and risk score paying accounts only.")
    out = []
    for row in rows.values():
        meta = names.get(row["account_id"], {})
        out.append({"account_id": row["account_id"], "name": meta.get("name"), "plan": meta.get("plan"), "mrr": row.get("mrr"),
                    "health": row.get("health"), "band": row.get("band"), "risk": row.get("risk"), "stage": row.get("stage"),
                    "reasons": row.get("reasons", []), "expansion": row.get("expansion", [])})
    out.sort(key=lambda r: (-(r["risk"] if r["risk"] is not None else -1), r["account_id"]))
    return {"at": (risk or health or {}).get("at"), "horizon_days": (risk or health or {}).get("horizon_days"),
            "mean_risk": (risk or {}).get("mean_risk"), "evaluation": _evaluation(risk), "notes": notes, "accounts": out}


def _evaluation(risk: dict | None) -> list[dict]:
    """The risk model's held-out scores beside its two baselines."""
    ev = (risk or {}).get("evaluation") or {}
    return [{"model": name if name != "model" else (risk or {}).get("model", "model"), "roc_auc": ev[name].get("roc_auc"),
             "pr_auc": ev[name].get("pr_auc"), "brier": ev[name].get("brier"), "rows": ev[name].get("rows")}
            for name in ("model", "logistic", "recency_only") if isinstance(ev.get(name), dict)]


def account_data(ctx: Ctx, account_id: str) -> dict:
    meta = ctx.ws.con.execute("SELECT account_id, traits, persons, first_seen, last_seen, events FROM accounts WHERE account_id = ?",
                              [account_id]).fetchone()
    if meta is None:
        raise HTTPException(404, f"no account {account_id!r}")
    people = ctx.ws.con.execute("SELECT person_id, emails, user_ids, first_seen, last_seen, events FROM persons "
                                "WHERE account_id = ? ORDER BY first_seen", [account_id]).fetchall()
    sources = ctx.args("source")
    where, params = "account_id = ? AND type NOT IN ('identify', 'group', 'alias')", [account_id]
    if sources:
        where += f" AND source IN ({', '.join('?' for _ in sources)})"
        params += sources
    counts = ctx.ws.con.execute("SELECT source, count(*) FROM journey_events WHERE account_id = ? "
                                "AND type NOT IN ('identify', 'group', 'alias') GROUP BY source ORDER BY 2 DESC",
                                [account_id]).fetchall()
    rows = ctx.ws.con.execute(
        f"SELECT ts, source, event, channel, email, person_id, properties FROM journey_events WHERE {where} "
        f"ORDER BY ts DESC, seq DESC LIMIT {TIMELINE_LIMIT}", params).fetchall()
    emails = {p[0]: (p[1] or [None])[0] for p in people}
    timeline = [{"ts": r[0].isoformat(), "source": r[1], "event": r[2], "channel": r[3], "person": r[4] or emails.get(r[5]),
                 "details": _details(r[6])} for r in rows]
    scores = None
    listing = ctx.cache.peek(("web", "accounts_rows"))
    if listing:
        scores = next((a for a in listing if a["account_id"] == account_id), None)
    return {"account_id": account_id, "traits": json.loads(meta[1]) if meta[1] else {}, "persons_count": meta[2],
            "first_seen": meta[3].isoformat() if meta[3] else None, "last_seen": meta[4].isoformat() if meta[4] else None,
            "events": meta[5], "sources": [{"source": s, "events": n} for s, n in counts], "filter": sources,
            "people": [{"person_id": p[0], "emails": p[1] or [], "first_seen": p[3].isoformat() if p[3] else None,
                        "events": p[5]} for p in people],
            "scores": scores, "timeline": timeline, "truncated": len(rows) == TIMELINE_LIMIT}


def _details(properties: str | None) -> list[list[str]]:
    """A short list of (key, value) from an event's properties, long texts kept whole (what sales promised)."""
    if not properties:
        return []
    try:
        props = json.loads(properties)
    except ValueError:
        return [["properties", properties[:300]]]
    if not isinstance(props, dict):
        return [["properties", str(props)[:300]]]
    out = []
    for k, v in props.items():
        if v is None or v == "" or isinstance(v, dict | list):
            continue
        out.append([str(k), str(v)[:600]])
    return out[:8]


def voice_data(ctx: Ctx) -> dict:
    result = ctx.run("voice")
    names = {s.id: s.name for s in ctx.ws.definition.stages}
    order = {s.id: i for i, s in enumerate(ctx.ws.definition.stages)}
    stages = sorted(result["groups"].get("stage", []), key=lambda g: order.get(g["value"], 99))
    return {"level": result.get("level"), "n_texts": result["n_texts"], "units": result.get("units"),
            "sentiment": result["sentiment"], "themes": result["themes"], "n_unthemed": result.get("n_unthemed"),
            "by_stage": [{**g, "name": names.get(g["value"], g["value"])} for g in stages],
            "by_kind": result["groups"].get("kind", [])}


def voice_charts(data: dict) -> list[dict]:
    themes = data["themes"]
    if not themes:
        return []
    trace = {"type": "bar", "orientation": "h", "y": [t["label"] for t in themes], "x": [t["share"] for t in themes],
             "marker": {"color": [t["mean_compound"] for t in themes], "colorscale": [[0, COLORS["negative"]], [0.5, "#d9dde3"],
                                                                                      [1, COLORS["positive"]]],
                        "cmin": -0.6, "cmax": 0.6, "colorbar": {"title": "sentiment"}},
             "hovertemplate": "%{y}: %{x:.0%} of texts<extra></extra>"}
    return [{"id": "themes-chart", "data": [trace], "layout": {
        "height": max(260, 30 * len(themes) + 80), "margin": {"t": 20, "l": 180, "r": 20, "b": 40},
        "xaxis": {"tickformat": ".0%", "title": "share of texts"}, "yaxis": {"autorange": "reversed"}}}]


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


# -- the page table, routes and exports ----------------------------------------------------------


class Page:
    def __init__(self, name: str, path: str, template: str, build: Callable[..., dict], title: Callable[[dict], str],
                 charts: Callable[[dict], list[dict]] | None = None):
        self.name, self.path, self.template, self.build, self.title, self.charts = name, path, template, build, title, charts


PAGES = (
    Page("map", "/map", "map.html", map_data, lambda d: d.get("title") or "Journey map"),
    Page("stage", "/stages/{stage_id}", "stage.html", stage_data, lambda d: f"Stage: {d['stage']['name']}"),
    Page("funnel", "/funnel", "funnel.html", funnel_data, lambda d: "Funnel builder", funnel_charts),
    Page("paths", "/paths", "paths.html", paths_data, lambda d: "Paths", paths_charts),
    Page("retention", "/retention", "retention.html", retention_data, lambda d: "Retention", retention_charts),
    Page("lifecycle", "/lifecycle", "lifecycle.html", lifecycle_data, lambda d: "Lifecycle", lifecycle_charts),
    Page("revenue", "/revenue", "revenue.html", revenue_data, lambda d: "Churn and revenue", revenue_charts),
    Page("accounts", "/accounts", "accounts.html", accounts_data, lambda d: "Accounts"),
    Page("account", "/accounts/{account_id}", "account.html", account_data,
         lambda d: f"Account {d['traits'].get('name') or d['account_id']}"),
    Page("voice", "/voice", "voice.html", voice_data, lambda d: "Voice of the customer", voice_charts),
    Page("settings", "/settings", "settings.html", settings_data, lambda d: "Settings"),
)
ACTIVE = {"stage": "map", "account": "accounts"}


def _build(page: Page, request: Request, ws: Workspace) -> tuple[dict, JourneymapError | None]:
    """The page's data, or the error that stopped it (typed: its status and message come from journeymap.errors)."""
    ctx = Ctx(request, ws)
    try:
        data = page.build(ctx, **request.path_params)
    except HTTPException:
        raise
    except JourneymapError as exc:
        return {}, exc
    except (ValueError, FileNotFoundError) as exc:  # modules not yet on journeymap.errors: a user's to fix
        return {}, UserFacing(str(exc))
    if page.name == "accounts":
        ctx.cache.get(("web", "accounts_rows"), lambda: data["accounts"])
    return plain(data), None


class UserFacing(JourneymapError):
    """An error raised as a plain ValueError by a module not yet on journeymap.errors."""

    http_status = 400
    kind = "user"


def _render(page: Page, request: Request, data: dict, error: str | None, standalone: bool, slide: bool = False) -> str:
    path = request.url.path
    base = path.rsplit(".", 1)[0] if path.endswith((".html", ".png", ".pdf")) else path
    if base.rstrip("/") == "/app":
        base = "/app/map"
    query = f"?{request.url.query}" if request.url.query else ""
    exports = {fmt: f"{base}.{fmt}{query}" for fmt in ("json", "html", "png", "pdf")}
    charts = page.charts(data) if page.charts and not error and data else []
    context = {"data": data, "error": error, "charts": charts, "standalone": standalone, "nav": NAV, "query": request.query_params,
               "active": ACTIVE.get(page.name, page.name), "title": page.title(data) if data else page.name.capitalize(),
               "exports": exports, "signed_in": True, "page": page.name, "slide": slide}
    if standalone:
        context["inline"] = {"map_css": _inline("map.css"), "app_css": _inline("app.css"), "app_js": _inline("app.js"),
                             "plotly": _inline("plotly.min.js") if charts else ""}
    if page.name == "map" and data:
        context["map"] = build_context(data)
    return _env().get_template(page.template).render(**context)


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/app/login?{urlencode({'next': target})}", status_code=303)


def _page_route(page: Page):
    def endpoint(request: Request, ws: ReadWorkspace) -> Response:
        if not _signed_in(request):
            return _to_login(request)
        data, error = _build(page, request, ws)
        return HTMLResponse(_render(page, request, data, error and str(error), False),
                            status_code=error.http_status if error else 200)

    return endpoint


def _json_route(page: Page):
    def endpoint(request: Request, ws: ReadWorkspace, _key: ReadKey) -> Response:
        data, error = _build(page, request, ws)
        if error:
            return JSONAnswer(problem(error), status_code=error.http_status)
        return JSONAnswer(data)

    return endpoint


def _export_route(page: Page, fmt: str):
    def endpoint(request: Request, ws: ReadWorkspace, _key: ReadKey) -> Response:
        data, error = _build(page, request, ws)
        if error:
            return JSONAnswer(problem(error), status_code=error.http_status)
        html = _render(page, request, data, None, True, slide=fmt == "png" and page.name == "map")
        stem = page.name if not request.path_params else f"{page.name}-{next(iter(request.path_params.values()))}"
        if fmt == "html":
            return HTMLResponse(html, headers={"Content-Disposition": f'inline; filename="{stem}.html"'})
        body = render_with_chromium(html, fmt, SLIDE_WINDOW if page.name == "map" else EXPORT_WINDOW)
        media = "image/png" if fmt == "png" else "application/pdf"
        return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'})

    return endpoint


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


@pages.post("/settings")
async def settings_check(request: Request, ws: ReadWorkspace) -> Response:
    """Validate a journey definition's YAML text: the page lists each problem with its key."""
    if not _signed_in(request):
        return _to_login(request)
    form = await _form(request)
    data = plain(settings_data(Ctx(request, ws), str(form.get("definition") or "")))
    page = next(p for p in PAGES if p.name == "settings")
    return HTMLResponse(_render(page, request, data, None, False), status_code=200)


@pages.post("/settings.json")
async def settings_check_json(request: Request, _key: ReadKey) -> dict:
    """Validate YAML text (the raw body, or the `definition` form field): `{"valid", "problems": [{"key", "message"}]}`."""
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        text = (await _form(request)).get("definition") or ""
    else:
        text = (await request.body()).decode("utf-8", errors="replace")
    found = definition_problems(text)
    return {"valid": not found, "problems": found}


def _register() -> None:
    for page in PAGES:
        for fmt in ("html", "png", "pdf"):
            pages.add_api_route(f"{page.path}.{fmt}", _export_route(page, fmt), methods=["GET"])
        pages.add_api_route(f"{page.path}.json", _json_route(page), methods=["GET"])
        pages.add_api_route(page.path, _page_route(page), methods=["GET"])
        if page.name == "map":
            pages.add_api_route("/", _page_route(page), methods=["GET"])


_register()
router.include_router(pages)
