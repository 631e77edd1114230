"""The journey map page (one column per stage, over a period) and a stage's deep-dive: where its units
come from and go to, its touchpoints, surveys and themes, and the units stuck in it longest."""

from __future__ import annotations

import datetime as dt

from fastapi import HTTPException

from journeymap.analyses.base import unit_of
from journeymap.errors import OptionError
from journeymap.server.views.base import Ctx, Page

STUCK_SHOWN = 25
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
    return ctx.run("map", **map_options(p, date_from, date_to))


def map_options(p, date_from, date_to) -> dict:
    """The map analysis's options as the map page runs it (server/warm.py computes the page's default after each
    refresh, under the same cache key)."""
    return {"by": p.by, "date_from": date_from, "date_to": date_to, "insights": p.insights, "min_answers": p.min_answers}


def _visits(ctx: Ctx, level: str | None):
    from journeymap.engine.annotate import journey_visits

    engine = ctx.ws.engine
    return engine, journey_visits(engine, ctx.ws.definition, unit_of(ctx.ws, level))


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


def _flows(ctx: Ctx, stage_id: str) -> dict:
    """Where the stage's visits come from and go to, counted in units (a unit that enters twice from the
    same stage is one unit), with the mean time from entering the previous stage (entries) or this one
    (exits). A NULL neighbour is the journey's start, or no later stage yet."""
    import ibis

    def compute() -> dict:
        engine, v = _visits(ctx, None)
        w = ibis.window(group_by=v.unit_id, order_by=[v.entered_at, v.entry_seq])
        t = v.mutate(prev=v.stage.lag().over(w), prev_at=v.entered_at.lag().over(w),
                     next=v.stage.lead().over(w), next_at=v.entered_at.lead().over(w))
        here = t.filter(t.stage == stage_id)
        seconds = lambda a, b: b.delta(a, unit="microsecond").cast("float64").mean() / 1e6  # noqa: E731
        entries = engine.execute(here.group_by(here.prev.name("neighbour")).aggregate(
            units=here.unit_id.nunique(), mean_seconds=seconds(here.prev_at, here.entered_at))).to_pylist()
        exits = engine.execute(here.group_by(here.next.name("neighbour")).aggregate(
            units=here.unit_id.nunique(), mean_seconds=seconds(here.entered_at, here.next_at))).to_pylist()
        return {"entries": entries, "exits": exits}

    return ctx.cached("flows", stage_id, compute=compute)


def stage_data(ctx: Ctx, stage_id: str) -> dict:
    model = ctx.journey_map()
    meta = next((s for s in model["stages"] if s["id"] == stage_id), None)
    if meta is None:
        raise HTTPException(404, f"no stage {stage_id!r}; stages: {', '.join(s['id'] for s in model['stages'])}")
    names = {s["id"]: s["name"] for s in model["stages"]}
    view = model["views"]["all"]["stages"].get(stage_id, {})
    flows = _flows(ctx, stage_id)

    def side(rows: list[dict], key: str, none: str) -> list[dict]:
        named = [{key: r["neighbour"], "name": names.get(r["neighbour"], r["neighbour"]) if r["neighbour"] else none,
                  "units": int(r["units"]), "mean_seconds": r["mean_seconds"] if r["neighbour"] else None} for r in rows]
        return sorted(named, key=lambda r: (r[key] is None, -r["units"], r["name"]))

    entries = side(flows["entries"], "from", "(journey starts here)")
    exits = side(flows["exits"], "to", "(no later stage yet)")
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


PAGES = (
    Page("map", "/map", "map.html", map_data, lambda d: d.get("title") or "Journey map"),
    Page("stage", "/stages/{stage_id}", "stage.html", stage_data, lambda d: f"Stage: {d['stage']['name']}"),
)
