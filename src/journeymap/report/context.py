"""From the map model (docs/map-json.md) to what the template lays out: columns, lanes, KPIs.

The model is read defensively: a key the engine leaves out reads as `null`, and `null` stays `None`
all the way to the page, where the formatters turn it into a dash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from journeymap.report.format import DASH, count, duration, humanize, percent, signed
from journeymap.report.svg import EmotionPoint, emotion_curve, target_curves

__all__ = ["Column", "Kpi", "MapContext", "StageCell", "ViewContext", "build_context", "impact_level", "money",
           "severity_level"]

TOP_TOUCHPOINTS = 4
TOP_CHANNELS = 3
TOP_ACTIONS = 3
SURVEY_KINDS = (("nps", "NPS"), ("csat", "CSAT"), ("ces", "CES"))
FRICTION_PER_STAGE = 3  # friction items drawn in a stage's pain-points cell; the rest are counted
DELIGHT_PER_STAGE = 2


@dataclass(frozen=True)
class Column:
    """A stage as a column of the map."""

    id: str
    name: str
    owner: str | None
    description: str | None
    terminal: bool
    kind: str | None
    step: int | None  # 1-based position among the journey's stages; None for outcomes
    opportunities: tuple[str, ...] = ()  # written by the team in the journey definition
    first_outcome: bool = False

    @property
    def css(self) -> str:
        if not self.terminal:
            return "stage"
        first = " outcome-first" if self.first_outcome else ""
        return f"stage outcome outcome--{self.kind or 'other'}{first}"


@dataclass
class StageCell:
    """One stage of one persona's view, ready to lay out."""

    column: Column
    data: dict[str, Any]
    time: dict[str, Any]
    touchpoints: list[dict[str, Any]]
    more_touchpoints: int
    channels: list[dict[str, Any]]
    channel_shares: list[float]
    actions: list[dict[str, Any]]
    surveys: list[dict[str, Any]]
    pain_points: list[dict[str, Any]] = field(default_factory=list)
    opportunities: list[dict[str, Any]] = field(default_factory=list)
    other_owners: list[str] = field(default_factory=list)
    more_pain_points: int = 0
    delight: list[dict[str, Any]] = field(default_factory=list)
    more_delight: int = 0
    moments: list[dict[str, Any]] = field(default_factory=list)
    themes: list[dict[str, Any]] = field(default_factory=list)
    at_risk: dict[str, Any] | None = None
    experiments: list[dict[str, Any]] = field(default_factory=list)  # experiments exposed in this stage
    playbooks: list[dict[str, Any]] = field(default_factory=list)  # the actions lane (docs/map-json.md)

    def get(self, key: str) -> Any:
        return self.data.get(key)


@dataclass(frozen=True)
class Kpi:
    label: str
    value: Any
    kind: str  # how to format value: duration | percent | score_nps | text
    note: str | None = None
    target: dict[str, Any] | None = None


@dataclass
class ViewContext:
    persona_id: str
    persona_name: str
    persona_description: str | None
    units: int | None
    cells: list[StageCell]
    emotion_svg: Markup
    kpis: list[Kpi]
    targets: list[dict[str, Any]]
    targets_met: int
    targets_missed: int
    targets_unknown: int
    adoption: list[dict[str, Any]]
    ttv: dict[str, Any]
    churn: dict[str, Any]
    loose_pain_points: list[dict[str, Any]]
    loose_opportunities: list[dict[str, Any]]
    pains_from_friction: bool = False
    moments: dict[str, Any] | None = None
    at_risk: dict[str, Any] | None = None
    notes: dict[str, str] = field(default_factory=dict)
    emotion_notes: list[dict[str, Any]] = field(default_factory=list)  # stages whose emotion needs more answers
    emotion_min: int | None = None
    future_state: dict[str, Any] | None = None  # current vs future: _future_state()


@dataclass
class MapContext:
    title: str
    generated_at: str | None
    level: str | None
    data_window: dict[str, Any]
    events: int | None
    columns: list[Column]
    journey_columns: int
    views: list[ViewContext]
    model: dict[str, Any]
    experiments: list[dict[str, Any]] = field(default_factory=list)  # the experiments panel: _experiments()
    experiments_note: str | None = None
    period: dict[str, Any] = field(default_factory=dict)  # --from/--to of a map of a period
    warnings: list[dict[str, Any]] = field(default_factory=list)  # what `journeymap validate` and the period say


def severity_level(severity: float | None) -> str:
    """How loud a pain point is drawn; severity is 0..1 (for a drop-off, the drop rate).

    >>> severity_level(0.38), severity_level(0.2), severity_level(0.05), severity_level(None)
    ('high', 'medium', 'low', 'low')
    """
    if severity is None:
        return "low"
    if severity >= 0.3:
        return "high"
    if severity >= 0.15:
        return "medium"
    return "low"


def impact_level(impact: float | None) -> str:
    """How loud a friction item is drawn; impact is insights.friction's 0..1 score (1: the top item).

    >>> impact_level(0.78), impact_level(0.3), impact_level(0.1), impact_level(None)
    ('high', 'medium', 'low', 'low')
    """
    if impact is None:
        return "low"
    if impact >= 0.5:
        return "high"
    if impact >= 0.25:
        return "medium"
    return "low"


def money(value: float | None) -> str:
    """An MRR amount, short: thousands as k, millions as M; no currency (the data's own).

    >>> money(248301.0), money(4129.0), money(585.4), money(0), money(None), money(1250000)
    ('248k', '4.1k', '585', '0', '–', '1.25M')
    """
    if value is None:
        return DASH
    v = abs(value)
    sign = "-" if value < 0 else ""
    if v >= 1e6:
        return f"{sign}{v / 1e6:.3g}M"
    if v >= 9950:
        return f"{sign}{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{sign}{v / 1e3:.1f}k"
    return f"{sign}{v:.0f}"


def _columns(stages: list[dict[str, Any]]) -> list[Column]:
    journey = [s for s in stages if not s.get("terminal")]
    outcomes = [s for s in stages if s.get("terminal")]
    columns = []
    for step, stage in enumerate(journey, start=1):
        columns.append(_column(stage, step))
    columns.extend(_column(stage, None, first_outcome=i == 0) for i, stage in enumerate(outcomes))
    return columns


def _column(stage: dict[str, Any], step: int | None, first_outcome: bool = False) -> Column:
    return Column(
        id=stage["id"],
        name=stage.get("name") or humanize(stage["id"]),
        owner=stage.get("owner"),
        description=stage.get("description"),
        terminal=bool(stage.get("terminal")),
        kind=stage.get("kind"),
        step=step,
        opportunities=tuple(stage.get("opportunities") or ()),
        first_outcome=first_outcome,
    )


def _by_units(items: list[dict[str, Any]], key: str = "units") -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: -(item.get(key) or 0))


def _cell(column: Column, data: dict[str, Any]) -> StageCell:
    touchpoints = _by_units(data.get("touchpoints") or [])
    channels = _by_units(data.get("channels") or [])
    channel_units = sum(c.get("units") or 0 for c in channels)
    shown_channels = [
        {**c, "label": humanize(c.get("channel")),
         "share": (c.get("units") or 0) / channel_units if channel_units else None}
        for c in channels[:TOP_CHANNELS]
    ]
    actions = sorted(data.get("actions") or [], key=lambda a: -(a.get("share") or 0))[:TOP_ACTIONS]
    surveys_in = data.get("surveys") or {}
    surveys = [
        {"kind": kind, "label": label, "score": (surveys_in.get(kind) or {}).get("score"),
         "n": (surveys_in.get(kind) or {}).get("n")}
        for kind, label in SURVEY_KINDS
    ]
    return StageCell(
        column=column,
        data=data,
        time=data.get("time_in_stage") or {},
        touchpoints=touchpoints[:TOP_TOUCHPOINTS],
        more_touchpoints=max(0, len(touchpoints) - TOP_TOUCHPOINTS),
        channels=shown_channels,
        channel_shares=[c["share"] or 0 for c in shown_channels] if channel_units else [],
        actions=[{**a, "label": humanize(a.get("event"))} for a in actions],
        surveys=surveys,
    )


def _place(view: dict[str, Any], columns: list[Column], cells: dict[str, StageCell],
           improvements: list[dict[str, Any]] | None = None) -> tuple[list, list]:
    """Put pain points and opportunities into their stage's column; the rest are journey-wide.

    A stage's own `opportunities` (written by the team) join the view's opportunities for that stage,
    once each: the engine may already list them with `source: "team"`. An improvement (docs/improvements.md)
    marks the opportunity of its stage with the same text with its owner, status and effect; one that is not
    an opportunity of the map joins the stage's list, as source "improvement".
    """
    loose_pains, loose_opps = [], []
    friction = view.get("friction") or []
    if friction:  # ranked friction (insights.friction) replaces the simple pain points
        for item in sorted(friction, key=lambda i: (i.get("rank") or 0)):
            pain = _friction_item(item, "pain")
            target = cells.get(item.get("stage") or "")
            if target is None:
                loose_pains.append(pain)
            elif len(target.pain_points) < FRICTION_PER_STAGE:
                target.pain_points.append(pain)
            else:
                target.more_pain_points += 1
    else:
        for pain in sorted(view.get("pain_points") or [], key=lambda p: -(p.get("severity") or 0)):
            item = {**pain, "level": severity_level(pain.get("severity")), "kind_label": humanize(pain.get("kind"))}
            target = cells.get(pain.get("stage") or "")
            (target.pain_points if target else loose_pains).append(item)
    for item in sorted(view.get("delight") or [], key=lambda i: (i.get("rank") or 0)):
        target = cells.get(item.get("stage") or "")
        if target is None:
            continue
        if len(target.delight) < DELIGHT_PER_STAGE:
            target.delight.append(_friction_item(item, "delight"))
        else:
            target.more_delight += 1
    for column in columns:
        cell = cells[column.id]
        seen = set()
        for opp in view.get("opportunities") or []:
            if opp.get("stage") == column.id and opp.get("title") and opp["title"].casefold() not in seen:
                seen.add(opp["title"].casefold())
                cell.opportunities.append({"title": opp["title"], "source": opp.get("source") or "data"})
        for text in column.opportunities:
            if text.casefold() not in seen:
                seen.add(text.casefold())
                cell.opportunities.append({"title": text, "source": "team"})
        for imp in improvements or []:
            if imp.get("stage") != column.id:
                continue
            mark = _improvement_mark(imp)
            match = [o for o in cell.opportunities if o["title"].casefold() == imp["title"].casefold()]
            if match:
                match[0]["improvement"] = mark
            elif imp.get("status") != "dropped":  # a dropped idea that was never on the map stays off it
                seen.add(imp["title"].casefold())
                cell.opportunities.append({"title": imp["title"], "source": "improvement", "improvement": mark})
    for opp in view.get("opportunities") or []:
        if opp.get("stage") not in cells and opp.get("title"):
            loose_opps.append({"title": opp["title"], "source": opp.get("source") or "data",
                               "stage": opp.get("stage")})
    return loose_pains, loose_opps


def _improvement_mark(imp: dict[str, Any]) -> dict[str, Any]:
    """What the opportunities lane shows of an improvement: owner and status, and the verdict once shipped."""
    effect = imp.get("effect") or {}
    shown = None
    if effect.get("effect") is not None:
        shown = (f"{effect['effect']:+.1f} {effect.get('unit') or ''} (95% CI {effect['ci_low']:+.1f} to "
                 f"{effect['ci_high']:+.1f}, {str(effect.get('method') or '').upper()})")
    return {"id": imp.get("id"), "owner": imp.get("owner"), "status": imp.get("status"),
            "ship_date": imp.get("ship_date"), "metric": imp.get("metric"), "verdict": effect.get("verdict"),
            "verdict_text": effect.get("verdict_text"), "effect_text": shown}


def _friction_item(item: dict[str, Any], side: str) -> dict[str, Any]:
    """A friction or delight item as a card: title, kind, rank, units and MRR at stake, the evidence sentence."""
    evidence = item.get("evidence") or {}
    quotes = evidence.get("quotes") or []
    return {
        **item, "level": impact_level(item.get("impact")) if side == "pain" else "delight",
        "kind_label": humanize(item.get("kind")), "detail": evidence.get("sentence"),
        "quote": quotes[0] if quotes else None, "from_friction": True,
        "stakes": f"{count(item.get('units'))} units" + _mrr_at_stake(item.get("mrr_at_stake")),
    }


def _mrr_at_stake(mrr: float | None) -> str:
    if mrr is None:  # no revenue data
        return ""
    return f" · MRR {money(mrr)} at stake" if mrr else " · no MRR at stake"


def _moments(view: dict[str, Any], cells: dict[str, StageCell], columns: dict[str, Column]) -> dict[str, Any] | None:
    """The moments-of-truth panel; each behaviour also becomes a marker in its stage's column."""
    mot = view.get("moments_of_truth")
    if not mot:
        return None
    items = []
    for n, m in enumerate(mot.get("items") or [], start=1):
        lo, hi = (m.get("lift_ci") or [None, None])[:2]
        stage = m.get("stage")
        item = {**m, "number": m.get("rank") or n, "label": humanize(m.get("name") or m.get("behaviour")),
                "stage_name": columns[stage].name if stage in columns else humanize(stage) if stage else DASH,
                "lift_text": DASH if m.get("lift") is None else f"×{m['lift']:.2f}",
                "ci_text": "" if lo is None or hi is None else f"{lo:.2f}–{hi:.2f}"}
        items.append(item)
        if stage in cells:
            cells[stage].moments.append(item)
    return {**mot, "items": items}


def _stage_insights(view: dict[str, Any], cells: dict[str, StageCell]) -> dict[str, Any] | None:
    """Themes into their stage's voice cell, at-risk counts into its metrics cell; the at-risk panel."""
    for stage, themes in (view.get("themes") or {}).items():
        if stage in cells:
            cells[stage].themes = [{**t, "label": t.get("theme") or DASH, "tone": t.get("sentiment") or "neutral"}
                                   for t in themes]
    risk = view.get("at_risk")
    if not risk:
        return None
    for stage, numbers in (risk.get("by_stage") or {}).items():
        if stage in cells:
            cells[stage].at_risk = numbers
    top = [{**a, "reason": "; ".join(r.get("text") or "" for r in (a.get("reasons") or [])[:2]) or DASH}
           for a in risk.get("top") or []]
    return {**risk, "top": top}


def _owners(cell: StageCell) -> list[str]:
    owners = []
    for touchpoint in cell.data.get("touchpoints") or []:
        owner = touchpoint.get("owner")
        if owner and owner != cell.column.owner and owner not in owners:
            owners.append(owner)
    return owners


def _whole_journey_target(targets: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    for target in targets:
        if target.get("metric") == metric and not (target.get("stage") or target.get("touchpoint")):
            return target
    return None


def _pooled_nps(cells: list[StageCell]) -> tuple[float | None, int]:
    """NPS over every stage's answers: the answer-weighted mean of the stage scores."""
    total, weight = 0.0, 0
    for cell in cells:
        nps = next(s for s in cell.surveys if s["kind"] == "nps")
        if nps["score"] is not None and nps["n"]:
            total += nps["score"] * nps["n"]
            weight += nps["n"]
    return (total / weight if weight else None), weight


def _kpis(view: dict[str, Any], cells: list[StageCell], targets: list[dict[str, Any]]) -> list[Kpi]:
    ttv = view.get("ttv") or {}
    churn = view.get("churn") or {}
    journey = [c for c in cells if not c.column.terminal]
    first, last = (journey[0], journey[-1]) if journey else (None, None)
    conversion = None
    if first and last and first.get("reached") and last.get("reached") is not None:
        conversion = last.get("reached") / first.get("reached")
    nps_target = _whole_journey_target(targets, "nps")
    if nps_target and nps_target.get("actual") is not None:
        nps, nps_note = nps_target["actual"], "whole journey"
    else:
        nps, answers = _pooled_nps(cells)
        nps_note = f"{count(answers)} answers, all stages" if answers else "no answers yet"
    return [
        Kpi("Time to value (p50)", ttv.get("p50_seconds"), "duration",
            f"p90 {duration(ttv.get('p90_seconds'))} · {percent(ttv.get('share'))} reached value",
            _whole_journey_target(targets, "ttv_p50")),
        Kpi("End-to-end conversion", conversion, "percent",
            f"{first.column.name} → {last.column.name}" if first and last else None,
            None),
        Kpi("Churn rate", churn.get("rate"), "percent",
            churn.get("note") or f"{count(churn.get('churned'))} of {count(churn.get('customers'))} customers",
            _whole_journey_target(targets, "churn_rate")),
        Kpi("Net Promoter Score", nps, "score_nps", nps_note, nps_target),
    ]


def _targets(view: dict[str, Any], columns: dict[str, Column], personas: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for target in view.get("targets") or []:
        scope = []
        if target.get("stage"):
            scope.append(columns[target["stage"]].name if target["stage"] in columns else humanize(target["stage"]))
        if target.get("persona"):
            scope.append(personas.get(target["persona"], humanize(target["persona"])))
        met = target.get("met")
        rows.append({
            **target,
            "label": target.get("label") or humanize(target.get("metric")),
            "scope": " · ".join(scope) or "Whole journey",
            "actual_text": target.get("display_actual") or DASH,
            "target_text": target.get("display_target") or DASH,
            "status": "met" if met is True else "missed" if met is False else "unknown",
        })
    return rows


def _future_state(view: dict[str, Any], columns: list[Column]) -> dict[str, Any] | None:
    """The current-vs-future panel: per stage (map order) its designed steps with their budget, the units
    that did each and their median time against the budget, and the stage's conformance; the pain points."""
    fs = view.get("future_state")
    if not fs:
        return None
    names = {c.id: c.name for c in columns}
    by_stage = {s["stage"]: s for s in fs.get("stages") or []}
    rows = []
    for stage in [c.id for c in columns if c.id in by_stage] + [s for s in by_stage if s not in names]:
        steps = [x for x in fs.get("steps") or [] if x.get("stage") == stage]
        rows.append({"stage": names.get(stage, humanize(stage)), "conformance": by_stage[stage]["conformance"],
                     "steps": steps})
    unplaced = [x for x in fs.get("steps") or [] if not x.get("stage")]
    if unplaced:
        rows.append({"stage": "(no stage yet)", "conformance": None, "steps": unplaced})
    pains = [{**p, "stage_name": names.get(p.get("stage"), humanize(p.get("stage")) if p.get("stage") else None)}
             for p in fs.get("pain_points") or []]
    return {**fs, "rows": rows, "pains": pains, "charts": _future_curves(fs.get("curves"), names)}


def _future_curves(curves: dict[str, Any] | None, names: dict[str, str]) -> dict[str, Any] | None:
    """The two curves as inline SVG (actual solid, target dashed), and the notes saying what to add where a
    stage has no target."""
    if not curves:
        return None
    emo, time = curves.get("emotion") or [], curves.get("time") or []
    labels = [names.get(p["stage"], humanize(p["stage"])) for p in emo]
    emotion_svg = target_curves("Emotion by stage", labels, [p["actual"] for p in emo], [p["target"] for p in emo], -1.0, 1.0,
                                signed)
    seconds = [v for p in time for v in (p["actual_seconds"], p["target_seconds"]) if v is not None]
    time_svg = target_curves("Median time in stage, by stage", [names.get(p["stage"], humanize(p["stage"])) for p in time],
                             [p["actual_seconds"] for p in time], [p["target_seconds"] for p in time], 0.0,
                             (max(seconds) * 1.1) if seconds else 1.0, duration)
    notes = curves.get("notes") or {}
    missing = [f"{names.get(p['stage'], humanize(p['stage']))}: {p['note']}" for p in emo if p.get("note")]
    missing_time = [f"{names.get(p['stage'], humanize(p['stage']))}: {p['note']}" for p in time if p.get("note")]
    return {"emotion_svg": emotion_svg, "time_svg": time_svg, "emotion_note": notes.get("emotion"),
            "time_note": notes.get("time"), "emotion_missing": missing, "time_missing": missing_time}


RATE_KINDS = ("conversion", "retention", "funnel")  # metrics whose per-unit value is 0 or 1: a mean is a rate


def _metric_text(value: float | None, kind: str | None) -> str:
    """A primary metric's mean: a rate as a percent, a count, MRR or days with three significant digits."""
    if value is None:
        return DASH
    return percent(value) if kind in RATE_KINDS else f"{value:.3g}"


def _experiments(model: dict[str, Any], columns: list[Column]) -> list[dict[str, Any]]:
    """The experiments panel (docs/map-json.md, "Experiments on the map"): per experiment its stage, and per
    variant its units, share, the primary metric with its CI and, against the control, the lift with its CI."""
    names = {c.id: c.name for c in columns}
    out = []
    for e in model.get("experiments") or []:
        primary = e.get("primary") or {}
        means = {v["variant"]: v for v in primary.get("variants") or []}
        comps = {c["variant"]: c for c in primary.get("comparisons") or []}
        rows = []
        for v in e.get("variants") or []:
            m, c = means.get(v["variant"]) or {}, comps.get(v["variant"])
            lo, hi = (m.get("ci") or [None, None])[:2]
            llo, lhi = ((c or {}).get("lift_ci") or [None, None])[:2]
            rows.append({**v, "control": v["variant"] == e.get("control"),
                         "mean_text": _metric_text(m.get("mean"), primary.get("kind")),
                         "ci_text": "" if lo is None or hi is None else
                         f"{_metric_text(lo, primary.get('kind'))} to {_metric_text(hi, primary.get('kind'))}",
                         "lift_text": DASH if not c or c.get("lift") is None else f"{c['lift'] * 100:+.1f}%",
                         "lift_ci_text": "" if llo is None or lhi is None else f"{llo * 100:+.1f}% to {lhi * 100:+.1f}%",
                         "verdict": (c or {}).get("verdict")})
        stage = e.get("stage")
        out.append({**e, "stage_name": names.get(stage, humanize(stage)) if stage else None, "rows": rows,
                    "metric_label": primary.get("label") or humanize(primary.get("id")) if primary else None,
                    "verdict_css": (e.get("verdict") or "none").replace(" ", "-")})
    return out


def _view(persona: dict[str, Any], view: dict[str, Any], columns: list[Column],
          personas: dict[str, str], min_answers: int | None = None,
          improvements: list[dict[str, Any]] | None = None,
          experiments: list[dict[str, Any]] | None = None,
          playbooks: dict[str, list[dict[str, Any]]] | None = None) -> ViewContext:
    stage_data = view.get("stages") or {}
    cells = [_cell(column, stage_data.get(column.id) or {}) for column in columns]
    by_id = {cell.column.id: cell for cell in cells}
    for e in experiments or []:  # every view: an experiment is measured over all its units, not per persona
        if e.get("stage") in by_id:
            by_id[e["stage"]].experiments.append(e)
    mine = [i for i in improvements or [] if not i.get("persona") or i.get("persona") == persona["id"]]
    loose_pains, loose_opps = _place(view, columns, by_id, mine)
    moments = _moments(view, by_id, {c.id: c for c in columns})
    at_risk = _stage_insights(view, by_id)
    for cell in cells:
        cell.other_owners = _owners(cell)
        cell.playbooks = list((playbooks or {}).get(cell.column.id) or [])
    targets = _targets(view, {c.id: c for c in columns}, personas)
    emotion = emotion_curve([EmotionPoint(c.column.name, c.get("emotion"), c.column.terminal) for c in cells])
    emotion_notes = [{"stage": c.column.name, "answers": sum((s.get("n") or 0) for s in c.surveys), "note": c.get("emotion_note")}
                     for c in cells if c.get("emotion_note")]
    adoption = [{**a, "label": a.get("name") or humanize(a.get("feature"))}
                for a in sorted(view.get("adoption") or [], key=lambda a: -(a.get("rate") or 0))]
    return ViewContext(
        persona_id=persona["id"],
        persona_name=persona.get("name") or humanize(persona["id"]),
        persona_description=persona.get("description"),
        units=view.get("units"),
        cells=cells,
        emotion_svg=emotion,
        kpis=_kpis(view, cells, targets),
        targets=targets,
        targets_met=sum(t["status"] == "met" for t in targets),
        targets_missed=sum(t["status"] == "missed" for t in targets),
        targets_unknown=sum(t["status"] == "unknown" for t in targets),
        adoption=adoption,
        ttv=view.get("ttv") or {},
        churn=view.get("churn") or {},
        loose_pain_points=loose_pains,
        loose_opportunities=loose_opps,
        pains_from_friction=bool(view.get("friction")),
        moments=moments,
        at_risk=at_risk,
        notes=dict(view.get("insights_notes") or {}),
        emotion_notes=emotion_notes,
        emotion_min=min_answers,
        future_state=_future_state(view, columns),
    )



def build_context(model: dict[str, Any]) -> MapContext:
    """Everything the template needs, one `ViewContext` per persona that has a view, "all" first."""
    columns = _columns(model.get("stages") or [])
    views = model.get("views") or {}
    personas = list(model.get("personas") or [])
    known = {p["id"] for p in personas}
    personas += [{"id": view_id, "name": None, "description": None} for view_id in views if view_id not in known]
    personas = [p for p in personas if p["id"] in views]
    personas.sort(key=lambda p: p["id"] != "all")
    names = {p["id"]: p.get("name") or humanize(p["id"]) for p in personas}
    experiments = _experiments(model, columns)
    view_contexts = [
        _view(p, views[p["id"]], columns, names, model.get("emotion_min_answers"), model.get("improvements"),
              experiments, model.get("playbooks"))
        for p in personas
    ]
    return MapContext(
        title=model.get("title") or "Customer journey",
        generated_at=model.get("generated_at"),
        level=model.get("level"),
        data_window=model.get("data_window") or {},
        events=model.get("events"),
        columns=columns,
        journey_columns=sum(not c.terminal for c in columns),
        views=view_contexts,
        model=model,
        experiments=experiments,
        experiments_note=model.get("experiments_note"),
        period={k: v for k, v in (model.get("period") or {}).items() if v},
        warnings=list(model.get("warnings") or []),
    )
