"""`map`: the journey map (docs/map-json.md). Its panels run with the registry's defaults of the analyses
they place (moments of truth, accounts at risk), so the map and `journeymap moments` / `risk` agree."""

from __future__ import annotations

from typing import Literal

from journeymap.analyses.accounts import RiskParams
from journeymap.analyses.base import MAX_INT, Analysis, Day, Field, Output, Params, UnitField, days, unit_of
from journeymap.analyses.insights import MomentsParams
from journeymap.insights.map.minimums import MIN_EMOTION_ANSWERS


class MapParams(Params):
    by: Literal["person", "account"] | None = UnitField()
    date_from: Day = Field(None, alias="from", description="Map a period: first day (YYYY-MM-DD) whose events count.")
    date_to: Day = Field(None, alias="to", description="Last day (inclusive) whose events count.")
    insights: bool = Field(True, description="Place friction, moments of truth, themes, accounts at risk and "
                                             "experiments on the map (the slow part).")
    min_answers: int = Field(MIN_EMOTION_ANSWERS, ge=1, le=MAX_INT,
                             description="Survey answers a stage needs before the map shows its emotion.")


class MapOutput(Output):
    title: str = Field(description="The journey's name.")
    generated_at: str = Field(description="When the map was computed (UTC).")
    level: str = Field(description="The unit of analysis used.")
    data_window: dict = Field(description="First and last event in view.")
    period: dict = Field(description="--from and --to.")
    events: int = Field(description="Events in view.")
    emotion_min_answers: int = Field(description="--min-answers: survey answers a stage needs for its emotion.")
    stages: list[dict] = Field(description="The stages in journey order.")
    personas: list[dict] = Field(description="The views: all customers, then each persona present.")
    views: dict = Field(description="Per view: the stage lanes, metrics, targets and placed insights (docs/map-json.md).")
    experiments: list[dict] = Field([], description="Per declared experiment: the stage where exposure happens, units "
                                                    "per variant, the primary metric with its lift and 95% CIs, a "
                                                    "verdict and the SRM flag (docs/map-json.md).")
    experiments_note: str | None = Field(None, description="Why `experiments` is empty: what to add, or skipped.")
    improvements: list[dict] = Field([], description="The workspace's improvements: owner, status, and for shipped ones "
                                                     "their measured effect (docs/improvements.md).")
    playbooks: dict = Field({}, description="The actions lane: per stage id, the playbooks whose entry, goal or owner "
                                            "is on it, with owner, volume and measured effect (docs/playbooks.md).")
    warnings: list[dict] = Field([], description="journeymap.yml checked against the data, as `journeymap validate` "
                                                 "does, and a --from/--to in which no event occurs: each {key, message, "
                                                 "suggestion} (docs/journey-definition.md).")


def panels() -> dict:
    """The options of the analyses the map places: the registry's defaults."""
    risk = RiskParams()
    return {"moments": MomentsParams().engine_options(),
            "risk": {"horizon_days": round(days(risk.horizon)), "model": risk.model}}


def _map(ws, p: MapParams, progress=None) -> dict:
    from journeymap.insights.map import build_map

    say = (lambda message: progress(message, None)) if progress else None
    level = unit_of(ws, p.by)
    if say:
        say("checking journeymap.yml against the data")
    warnings = ws.check(level)  # what `journeymap validate` says, at the map's unit
    result = build_map(ws.engine, ws.definition, level, say, insights=p.insights, date_from=p.date_from,
                       date_to=p.date_to, panels=panels(), min_answers=p.min_answers)
    return {**result, "improvements": map_improvements(ws, level, say), "playbooks": map_playbooks(ws),
            "warnings": warnings}


def map_playbooks(ws) -> dict:
    """The actions lane: what the last refresh stored about each playbook, placed on its stages (act.summary)."""
    from journeymap.act.summary import by_stage

    return by_stage(ws.con, ws.definition) if ws.definition.playbooks else {}


EFFECT_KEYS = ("method", "effect", "ci_low", "ci_high", "unit", "verdict", "verdict_text", "weeks_before",
               "weeks_after")


def map_improvements(ws, level: str, say=None) -> list[dict]:
    """The improvements the map shows in its opportunities lane: each with its owner and status, and once
    shipped its measured effect (without the weekly series: `improvements show ID --json` has them)."""
    from journeymap.insights.improvements.store import stored

    out = []
    for item in stored(ws.con):
        effect = None
        if item.status == "shipped":
            if say:
                say(f"measuring the effect of {item.id}")
            full = ws.improvement_effect(item, level)
            effect = {k: full.get(k) for k in EFFECT_KEYS}
        d = item.as_dict()
        out.append({k: d[k] for k in ("id", "title", "stage", "persona", "owner", "status", "metric", "target",
                                      "ship_date", "source")} | {"effect": effect})
    return out


MAP = Analysis("map", "The journey map: stages, touchpoints, metrics against targets, and the insights placed on "
               "it.", MapParams, _map, MapOutput, "docs/map-json.md", slow=True)
