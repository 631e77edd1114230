"""Assemble the journey map model (docs/map-json.md) from the engine's metrics, one view per persona."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import ibis

from journeymap.engine import metrics as M
from journeymap.engine.annotate import annotated_events
from journeymap.engine.backends import Engine
from journeymap.engine.personas import UNASSIGNED
from journeymap.engine.stages import funnel, stage_durations, visits, with_current_stage
from journeymap.engine.survival import time_in_stage, time_in_stage_summary
from journeymap.insights.pain_points import opportunities, pain_points
from journeymap.insights.targets import evaluate
from journeymap.insights.voice import blend_emotion, stage_sentiment
from journeymap.journey.definition import JourneyDefinition

ALL = "all"


def emotion(surveys: dict[str, dict]) -> float | None:
    """-1..1: NPS/100, CSAT share mapped to 2*s-1, CES mapped to (4-CES)/3; weighted by answers."""
    parts = []
    for kind, s in surveys.items():
        if s["score"] is None or not s["n"]:
            continue
        value = {"nps": s["score"] / 100.0, "csat": 2 * s["score"] - 1, "ces": (4 - s["score"]) / 3}[kind]
        parts.append((max(-1.0, min(1.0, value)), s["n"]))
    if not parts:
        return None
    return sum(v * n for v, n in parts) / sum(n for _, n in parts)


def build_map(
    engine: Engine, definition: JourneyDefinition, level: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The journey map model of docs/map-json.md; the engine's cached tables are freed on return."""
    level = level or definition.analysis.level
    with engine.scope():
        return _build_map(engine, definition, level, progress or (lambda _msg: None))


def _build_map(engine: Engine, definition: JourneyDefinition, level: str, say: Callable[[str], None]) -> dict:
    say("annotating events")
    a = annotated_events(engine, definition, level)
    v = engine.materialize(visits(a))
    ac = engine.materialize(with_current_stage(a, v))
    window = engine.execute(a.aggregate(lo=a.ts.min(), hi=a.ts.max(), n=a.count())).to_pylist()[0]
    present = {r["persona"] for r in engine.execute(a.select("persona").distinct()).to_pylist()}
    personas = [{"id": ALL, "name": "All customers", "description": None}]
    personas += [{"id": p.id, "name": p.name, "description": p.description} for p in definition.personas if p.id in present]
    if UNASSIGNED in present and definition.personas:
        personas.append({"id": UNASSIGNED, "name": "No persona", "description": "Units matching no persona rule"})
    durations = _time_in_stage(engine, v, definition, window["hi"])
    say("scoring what customers wrote")
    texts = stage_sentiment(engine, definition, level, ac=ac)
    views = {}
    for p in personas:
        say(f"computing view: {p['name']}")
        pick = (lambda t: t) if p["id"] == ALL else (lambda t, pid=p["id"]: t.filter(t.persona == pid))
        views[p["id"]] = _view(engine, definition, pick(a), pick(v), pick(ac), durations, p["id"], window["hi"],
                               texts.get(p["id"], {}))
    return {
        "title": definition.name,
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "level": level,
        "data_window": {"from": _iso(window["lo"]), "to": _iso(window["hi"])},
        "events": int(window["n"]),
        "stages": [
            {"id": s.id, "name": s.name, "owner": s.owner, "terminal": s.terminal, "kind": s.kind,
             "description": s.description, "opportunities": list(s.opportunities)}
            for s in [*definition.progression, *[s for s in definition.stages if s.terminal]]
        ],
        "personas": personas,
        "views": views,
    }


def _iso(ts) -> str | None:
    return ts.isoformat() if ts else None


def _time_in_stage(engine: Engine, v, definition: JourneyDefinition, until) -> dict:
    """Kaplan-Meier summaries keyed by (stage, persona id), "all" included, from one fetch of the visits."""
    if until is None:
        return {}
    d = stage_durations(engine, v, definition, until).to_pydict()
    stages, personas = d["stage"], d["persona"]
    everyone = time_in_stage(stages, d["seconds"], d["observed"])
    by_persona = time_in_stage(list(zip(stages, personas, strict=True)), d["seconds"], d["observed"])
    return {(stage, ALL): s for stage, s in everyone.items()} | by_persona


def _view(engine: Engine, definition: JourneyDefinition, a, v, ac, durations, persona: str, until,
          sentiment: dict[str, dict]) -> dict:
    n_units = engine.execute(a.select("unit_id").distinct().count().name("n").as_table()).column("n")[0].as_py()
    counts = funnel(engine, v, definition)
    stage_surveys = M.surveys_by(engine, ac, definition, "stage_before")
    contents = M.stage_contents(engine, ac, definition)
    stages = {}
    for s in definition.stages:
        c = counts[s.id]
        tis = durations.get((s.id, persona)) or time_in_stage_summary([], [])
        surveys = stage_surveys.get(s.id, {})
        stages[s.id] = {
            "reached": c["reached"], "converted": c["converted"], "dropped": c["dropped"], "in_stage": c["in_stage"],
            "conversion_rate": c["converted"] / c["reached"] if c["reached"] and not s.terminal else None,
            "drop_rate": c["dropped"] / c["reached"] if c["reached"] and not s.terminal else None,
            "share_of_units": c["reached"] / n_units if n_units else None,
            "time_in_stage": tis,
            **contents[s.id],
            "surveys": surveys,
            "sentiment": sentiment.get(s.id),
            # The emotion lane: survey scores and the sentiment of what customers wrote, weighted by counts.
            "emotion": blend_emotion(emotion(surveys), sum(x["n"] or 0 for x in surveys.values()), sentiment.get(s.id)),
        }
    cust = M.customers(engine, a, v, definition)
    view = {
        "units": n_units,
        "stages": stages,
        "ttv": M.time_to_value(engine, a, definition),
        "adoption": M.adoption(engine, a, cust, definition),
        "churn": M.churn(engine, v, cust, definition),
        "surveys": M.surveys_by(engine, ac.mutate(_all=ibis.literal(ALL)), definition, "_all").get(ALL, {}),
        "touchpoint_surveys": M.surveys_by(engine, ac, definition, "touchpoint"),
    }
    view["pain_points"] = pain_points(view, definition)
    view["opportunities"] = opportunities(view, definition, view["pain_points"])
    view["targets"] = evaluate(definition.targets, view, _yoy(engine, ac, definition, until), persona)
    return view


def _yoy(engine: Engine, ac, definition: JourneyDefinition, until) -> dict[str, float | None]:
    """Relative change of each survey score: the last 365 days against the 365 before."""
    if until is None or not any(t.change for t in definition.targets):
        return {}
    year = dt.timedelta(days=365)
    cut, start = until - year, until - 2 * year
    period = ibis.cases(
        (ac.ts > ibis.literal(cut, type="timestamp"), "current"),
        (ac.ts > ibis.literal(start, type="timestamp"), "previous"),
        else_=ibis.null("string"),
    )
    scores = M.surveys_by(engine, ac.mutate(_period=period), definition, "_period")
    out: dict[str, float | None] = {}
    for kind in ("nps", "csat", "ces"):
        cur = scores.get("current", {}).get(kind)
        prev = scores.get("previous", {}).get(kind)
        out[kind] = (cur["score"] - prev["score"]) / abs(prev["score"]) if cur and prev and prev["score"] else None
    return out
