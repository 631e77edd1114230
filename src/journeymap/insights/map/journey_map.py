"""Assemble the journey map model (docs/map-json.md) from the engine's metrics, one view per persona."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import ibis
import numpy as np

from journeymap.errors import OptionError
from journeymap.engine import metrics as M
from journeymap.engine.annotate import journey_tables
from journeymap.engine.backends import Engine
from journeymap.engine.personas import UNASSIGNED
from journeymap.engine.stages import advancing_ids, funnel, time_in_stage_summaries
from journeymap.engine.survival import time_in_stage_summary
from journeymap.insights.map.curves import curves
from journeymap.insights.map.emotion_scale import emotion
from journeymap.insights.map.jsonsafe import finite
from journeymap.insights.map.minimums import MIN_EMOTION_ANSWERS
from journeymap.insights.map.pain_points import opportunities, pain_points
from journeymap.insights.map.targets import evaluate
from journeymap.insights.voice.texts import blend_emotion, stage_sentiment, text_rows
from journeymap.journey.definition import JourneyDefinition

ALL = "all"
OUTCOME_KINDS = ("churn", "lost")
"""Terminal stages whose units left or never came: their voice is never a positive quote."""
NEEDS_CHURN_STAGE = ("no churn stage in journeymap.yml: add a terminal stage with kind: churn (its entry: the "
                     "cancellation event, e.g. subscription_cancelled)")


def build_map(
    engine: Engine, definition: JourneyDefinition, level: str | None = None,
    progress: Callable[[str], None] | None = None, insights: bool = True,
    date_from: dt.date | str | None = None, date_to: dt.date | str | None = None, panels: dict | None = None,
    min_answers: int = MIN_EMOTION_ANSWERS,
) -> dict:
    """The journey map model of docs/map-json.md; the engine's cached tables are freed on return.

    `insights=False` skips the placed insights (friction and delight, moments of truth, themes, accounts
    at risk): their sections are null with a note. They roughly triple the build time.
    `date_from`/`date_to` (inclusive days, UTC) draw the map of a period: only events inside it count.
    `panels` holds the options of the analyses the map places ({"moments": {...}, "risk": {...}}, keyword
    arguments of moments_of_truth and risk_report): the registry passes its defaults, so the map's panels
    and `journeymap moments` / `risk` give one number per fact.
    `min_answers`: survey answers a stage needs for its emotion (null below, with `emotion_note`)."""
    level = level or definition.analysis.level
    period = _period(date_from, date_to)
    with engine.scope():
        return _build_map(engine, definition, level, progress or (lambda _msg: None), insights, period, panels or {},
                          min_answers)


def _period(date_from, date_to) -> tuple[dt.date | None, dt.date | None]:
    from journeymap.engine.intervals import parse_day

    lo, hi = parse_day(date_from, "--from"), parse_day(date_to, "--to")
    if lo and hi and lo > hi:
        raise OptionError(f"--from ({lo}) is after --to ({hi})")
    return lo, hi


def _build_map(engine: Engine, definition: JourneyDefinition, level: str, say: Callable[[str], None],
               insights: bool = True, period: tuple = (None, None), panels: dict | None = None,
               min_answers: int = MIN_EMOTION_ANSWERS) -> dict:
    say("annotating events")
    a, v, ac = journey_tables(engine, definition, level, period)
    window = engine.execute(a.aggregate(lo=a.ts.min(), hi=a.ts.max(), n=a.count())).to_pylist()[0]
    present = {r["persona"] for r in engine.execute(a.select("persona").distinct()).to_pylist()}
    personas = [{"id": ALL, "name": "All customers", "description": None}]
    personas += [{"id": p.id, "name": p.name, "description": p.description} for p in definition.personas if p.id in present]
    if UNASSIGNED in present and definition.personas:
        personas.append({"id": UNASSIGNED, "name": "No persona", "description": "Units matching no persona rule"})
    durations = _time_in_stage(engine, v, definition, window["hi"])
    say("scoring what customers wrote")
    rows = text_rows(engine, definition, level, ac=ac)  # read once: the emotion lane, friction and themes use them
    texts = stage_sentiment(engine, definition, level, ac=ac, rows=rows)
    placed = (placed_insights(engine, definition, level, a, ac, [p["id"] for p in personas], say, panels, period,
                              texts=rows, durations=durations) if insights
              else {p["id"]: _skipped() for p in personas})
    say("holding journeys to the design")
    from journeymap.insights.conformance import map_view

    designed = map_view(engine, definition, level, (a, v, ac), [p["id"] for p in personas], ALL)
    experiments, experiments_note = _experiments(engine, definition, say) if insights else ([], SKIPPED)
    say("computing the views")
    parts = _view_parts(engine, definition, a, v, ac, window["hi"], [p["id"] for p in personas if p["id"] != ALL])
    views = {}
    for p in personas:
        views[p["id"]] = _view(definition, parts[p["id"]], durations, p["id"], texts.get(p["id"], {}), min_answers)
        views[p["id"]].update(placed[p["id"]])
        views[p["id"]]["future_state"] = designed.get(p["id"])
        if views[p["id"]]["future_state"] is not None:
            views[p["id"]]["future_state"]["curves"] = curves(views[p["id"]], definition, p["id"])
        if period != (None, None) and insights:
            at = placed_at(period)
            views[p["id"]]["insights_notes"]["period"] = (
                "friction, delight, moments of truth and themes read the period's events only"
                + (f"; accounts at risk are scored as of {at:%Y-%m-%d} (journeymap risk --at {at:%Y-%m-%d})" if at else ""))
    return {
        "title": definition.name,
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "level": level,
        "data_window": {"from": _iso(window["lo"]), "to": _iso(window["hi"])},
        "period": {"from": _iso(period[0]), "to": _iso(period[1])},
        "events": int(window["n"]),
        "emotion_min_answers": min_answers,
        "stages": [
            {"id": s.id, "name": s.name, "owner": s.owner, "terminal": s.terminal, "kind": s.kind,
             "description": s.description, "opportunities": list(s.opportunities)}
            for s in [*definition.progression, *[s for s in definition.stages if s.terminal]]
        ],
        "personas": personas,
        "views": views,
        "experiments": experiments,
        "experiments_note": experiments_note,
    }


def _iso(ts) -> str | None:
    return ts.isoformat() if ts else None


def _time_in_stage(engine: Engine, v, definition: JourneyDefinition, until) -> dict:
    """Kaplan-Meier summaries keyed by (stage, persona id), "all" included (engine.stages.time_in_stage_summaries)."""
    if until is None:
        return {}
    return time_in_stage_summaries(engine, v, definition, until, ALL)


def _view_parts(engine: Engine, definition: JourneyDefinition, a, v, ac, until, persona_ids: list[str]) -> dict:
    """The engine's numbers of every view, {view id: {part: value}}: "all" from one query per metric, and the
    personas from one more per metric, split by persona (engine.split) rather than one per persona: each
    query reads every event whatever the filter, so a map of four personas read them five times for each metric."""

    def parts(per) -> dict:
        cust = M.customers(engine, a, v, definition, per)
        return {
            "units": M.units(engine, a, per),
            "funnel": funnel(engine, v, definition, per),
            "stage_surveys": M.surveys_by(engine, ac, definition, "stage_before", per),
            "contents": M.stage_contents(engine, ac, definition, per=per),
            "ttv": M.time_to_value(engine, a, definition, per),
            "adoption": M.adoption(engine, a, cust, definition, per),
            "churn": M.churn(engine, v, cust, definition, per),
            "surveys": M.surveys_by(engine, ac.mutate(_all=ibis.literal(ALL)), definition, "_all", per),
            "touchpoint_surveys": M.surveys_by(engine, ac, definition, "touchpoint", per),
            "yoy": _yoy(engine, ac, definition, until, per),
        }

    out = {ALL: parts(None)}
    if persona_ids:
        split = parts(("persona", persona_ids))
        out |= {pid: {part: value[pid] for part, value in split.items()} for pid in persona_ids}
    return out


def _view(definition: JourneyDefinition, parts: dict, durations, persona: str, sentiment: dict[str, dict],
          min_answers: int = MIN_EMOTION_ANSWERS) -> dict:
    """One view of the map from its `_view_parts`."""
    n_units, counts, stage_surveys, contents = parts["units"], parts["funnel"], parts["stage_surveys"], parts["contents"]
    stages = {}
    # The last stage that counts as progress ends the journey: nobody can move on from it, so its
    # "conversion" and "drop" are not rates (units there have arrived; a 100% drop would read as a loss).
    journey_end = (advancing_ids(definition) or [None])[-1]
    for s in definition.stages:
        c = counts[s.id]
        rated = bool(c["reached"]) and not s.terminal and s.id != journey_end
        tis = durations.get((s.id, persona)) or time_in_stage_summary([], [])
        surveys = stage_surveys.get(s.id, {})
        answers = sum(x["n"] or 0 for x in surveys.values())
        stages[s.id] = {
            "reached": c["reached"], "converted": c["converted"], "dropped": c["dropped"], "in_stage": c["in_stage"],
            "conversion_rate": c["converted"] / c["reached"] if rated else None,
            "drop_rate": c["dropped"] / c["reached"] if rated else None,
            "share_of_units": c["reached"] / n_units if n_units else None,
            "time_in_stage": tis,
            **contents[s.id],
            "surveys": surveys,
            "sentiment": sentiment.get(s.id),
            # The emotion lane: survey scores and the sentiment of what customers wrote, weighted by counts;
            # only where the stage has min_answers survey answers (a handful is who answered, not the stage).
            "emotion": (blend_emotion(emotion(surveys), answers, sentiment.get(s.id)) if answers >= min_answers
                        else None),
            "emotion_note": None if answers >= min_answers else (
                f"{answers:,} survey answers; the emotion needs at least {min_answers:,}: add an NPS, CSAT or CES "
                f"survey customers answer in {s.name}"),
        }
    view = {
        "units": n_units,
        "stages": stages,
        "ttv": parts["ttv"],
        "adoption": parts["adoption"],
        # with a note saying what to add when the definition has no churn stage (the panel shows it)
        "churn": {**parts["churn"], "note": None if M.churn_stage_ids(definition) else NEEDS_CHURN_STAGE},
        "surveys": parts["surveys"].get(ALL, {}),
        "touchpoint_surveys": parts["touchpoint_surveys"],
    }
    view["pain_points"] = pain_points(view, definition)
    view["opportunities"] = opportunities(view, definition, view["pain_points"])
    view["targets"] = evaluate(definition.targets, view, parts["yoy"], persona)
    return view


def _yoy(engine: Engine, ac, definition: JourneyDefinition, until, per=None) -> dict:
    """Relative change of each survey score: the last 365 days against the 365 before (`per`: engine.metrics)."""
    if until is None or not any(t.change for t in definition.targets):
        return {value: {} for value in per[1]} if per else {}
    year = dt.timedelta(days=365)
    cut, start = until - year, until - 2 * year
    period = ibis.cases(
        (ac.ts > ibis.literal(cut, type="timestamp"), "current"),
        (ac.ts > ibis.literal(start, type="timestamp"), "previous"),
        else_=ibis.null("string"),
    )
    by_period = M.surveys_by(engine, ac.mutate(_period=period), definition, "_period", per)

    def change(scores: dict) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for kind in ("nps", "csat", "ces"):
            cur = scores.get("current", {}).get(kind)
            prev = scores.get("previous", {}).get(kind)
            out[kind] = (cur["score"] - prev["score"]) / abs(prev["score"]) if cur and prev and prev["score"] else None
        return out

    return {value: change(scores) for value, scores in by_period.items()} if per else change(by_period)


# -- insights placed on the map (docs/map-json.md, "Insights on the map") ---------------------------------

MOMENTS_SHOWN = 5  # ranked behaviours from insights.moments on the map
THEMES_PER_STAGE = 3  # voice themes per stage, most texts first
QUOTE_MAX_CHARS = 140  # the one quote shown per theme
AT_RISK_SHARE = 0.10  # "high risk": a churn risk in the top decile of paying accounts
AT_RISK_LISTED = 5  # accounts listed with reasons
SECTIONS = ("friction", "delight", "moments_of_truth", "themes", "at_risk")


SKIPPED = "skipped: the map was built without insights (--no-insights)"


def _skipped() -> dict:
    note = SKIPPED
    return {**{k: None for k in SECTIONS}, "insights_notes": {k: note for k in SECTIONS}}


def _failed(what: str, e: Exception) -> str:
    return f"{what} could not be computed: {type(e).__name__}: {e}"


def placed_at(period: tuple) -> dt.datetime | None:
    """The day accounts at risk are scored at on the map of a period: the day after its last day."""
    return dt.datetime.combine(period[1] + dt.timedelta(days=1), dt.time()) if period[1] is not None else None


def placed_insights(engine: Engine, definition: JourneyDefinition, level: str, a, ac, persona_ids: list[str],
                    say: Callable[[str], None], panels: dict | None = None,
                    period: tuple = (None, None), texts=None, durations: dict | None = None) -> dict[str, dict]:
    """Per view id: friction, delight, moments_of_truth, themes, at_risk and insights_notes.

    Friction, delight and moments of truth are computed for "all" only (each reruns its own analysis; per
    persona they would multiply the cost); persona views carry them as null with a note. Themes and accounts
    at risk are cut per persona from the same scored texts and the same churn model. A section that cannot be
    computed on this workspace is empty or null with a note; it never fails the map. `period`: friction and
    moments of truth read only its events (as `a` and `ac` hold only them), accounts at risk are scored at its end.
    `texts`: the customer texts of `ac` (voice.texts.text_rows), when the caller has read them. `durations`: the
    map's time in stage (`_time_in_stage`), which friction's stuck and fast visits are measured against."""
    out = {pid: {**{k: None for k in SECTIONS}, "insights_notes": {}} for pid in persona_ids}
    everyone = out[ALL]
    for pid in persona_ids:
        if pid != ALL:
            for k in ("friction", "delight", "moments_of_truth"):
                out[pid]["insights_notes"][k] = "computed for all customers only: see the All customers view"
    say("ranking friction and delight")
    try:
        from journeymap.insights.friction import friction

        tis = None if durations is None else {s: t for (s, pid), t in durations.items() if pid == ALL}
        f = friction(engine, definition, level, period=period, texts=texts, time_in_stage=tis)
        everyone["friction"], everyone["delight"] = finite(f["friction"]), finite(f["delight"])
        if not f["has_revenue"]:
            everyone["insights_notes"]["friction"] = everyone["insights_notes"]["delight"] = (
                "no revenue section in journeymap.yml: units only, no MRR at stake")
    except Exception as e:  # noqa: BLE001 - an insight that cannot be computed must not fail the map
        everyone["friction"], everyone["delight"] = [], []
        everyone["insights_notes"]["friction"] = everyone["insights_notes"]["delight"] = _failed("friction", e)
    say("finding moments of truth")
    try:
        if not M.churn_stage_ids(definition):  # retention needs a churn to measure: the panel says what to add
            everyone["insights_notes"]["moments_of_truth"] = NEEDS_CHURN_STAGE
        else:
            everyone["moments_of_truth"] = _moments(engine, definition, level, ac,
                                                    {**(panels or {}).get("moments", {}), "period": period})
            if not everyone["moments_of_truth"]["items"]:
                everyone["insights_notes"]["moments_of_truth"] = "no behaviour had enough units with and without it to rank"
    except Exception as e:  # noqa: BLE001
        everyone["insights_notes"]["moments_of_truth"] = _failed("moments of truth", e)
    say("finding themes in what customers wrote")
    try:
        themes = _themes(engine, definition, level, ac, persona_ids, texts)
        for pid in persona_ids:
            out[pid]["themes"] = themes.get(pid, {})
            if not out[pid]["themes"]:
                out[pid]["insights_notes"]["themes"] = ("no customer texts (survey comments, tickets, reviews)"
                                                        + (" in the period" if period != (None, None) else ""))
    except Exception as e:  # noqa: BLE001
        for pid in persona_ids:
            out[pid]["themes"] = {}
            out[pid]["insights_notes"]["themes"] = _failed("themes", e)
    say("scoring churn risk")
    try:
        risk = _at_risk(engine, definition, level, a, persona_ids, {**(panels or {}).get("risk", {}), "at": placed_at(period)})
        for pid in persona_ids:
            out[pid]["at_risk"] = risk.get(pid)
            if risk.get(pid) is None:
                out[pid]["insights_notes"]["at_risk"] = "accounts at risk per persona need the account level"
    except Exception as e:  # noqa: BLE001 - most often: too little history or no revenue to fit the churn model
        for pid in persona_ids:
            out[pid]["insights_notes"]["at_risk"] = _failed("the churn model", e)
    return out


def _experiments(engine: Engine, definition: JourneyDefinition, say: Callable[[str], None]) -> tuple[list, str | None]:
    """The experiments on the map (insights.experiments.map_experiments): each at its unit and over all the data,
    whatever the map's level and period (an experiment's window is its own start and end)."""
    from journeymap.insights.experiments import map_experiments

    try:
        entries, note = map_experiments(engine, definition, say)
    except Exception as e:  # noqa: BLE001 - an insight that cannot be computed must not fail the map
        return [], _failed("experiments", e)
    return finite(entries), note


def behaviour_stage(engine: Engine, definition: JourneyDefinition, ac, behaviour: str) -> tuple[str | None, str | None]:
    """Where a moments-of-truth behaviour sits on the map, and by which rule:

    - "touchpoint": a touchpoint with a configured stage sits in that stage;
    - "enters": an event that enters a stage (named by the stage's entry rule) sits in that stage;
    - "most_units": otherwise the stage most units are in (current_stage) when they do it, counting each unit
      once per stage over all the data; ties go to the earlier stage. (None, None) when nobody did it in a stage.
    """
    from journeymap.engine.rules import rule_expr
    from journeymap.insights.moments import rule_events

    kind, _, ident = behaviour.partition(":")
    rule = None
    if kind == "touchpoint":
        tp = next((t for t in definition.touchpoints if t.id == ident), None)
        if tp is None:
            return None, None
        if tp.stage:
            return tp.stage, "touchpoint"
        rule = tp.match
    elif kind == "feature":
        ft = next((f for f in definition.milestones.key_features if f.id == ident), None)
        rule = ft.match if ft else None
    elif kind == "milestone":
        rule = definition.milestones.value_moment
    elif kind == "event":
        for s in definition.stages:
            if ident in (rule_events(s.entry) or ()):
                return s.id, "enters"
    if kind != "event" and rule is None:
        return None, None
    hit = ac.filter(ac.event == ident) if kind == "event" else ac.filter(rule_expr(engine, ac, rule))
    hit = hit.filter(hit.current_stage.notnull())
    rows = engine.execute(hit.group_by(stage=hit.current_stage).aggregate(n=hit.unit_id.nunique())).to_pylist()
    order = {s.id: i for i, s in enumerate(definition.stages)}
    rows.sort(key=lambda r: (-r["n"], order.get(r["stage"], len(order))))
    return (rows[0]["stage"], "most_units") if rows else (None, None)


def _moments(engine: Engine, definition: JourneyDefinition, level: str, ac, options: dict | None = None) -> dict:
    from journeymap.insights.moments import moments_of_truth

    m = moments_of_truth(engine, definition, level, **(options or {}))
    items = []
    for r in [r for r in m["moments"] if r["ranked"]][:MOMENTS_SHOWN]:
        stage, rule = behaviour_stage(engine, definition, ac, r["behaviour"])
        items.append({
            "rank": r.get("rank"), "behaviour": r["behaviour"], "kind": r["kind"], "name": r["name"],
            "same_as": r["same_as"], "stage": stage, "placed_by": rule,
            "reach": r["reach"], "units_with": r["units_with"], "units_without": r["units_without"],
            "retention_with": r["retention_with"], "retention_without": r["retention_without"],
            "lift": r["lift"], "lift_ci": r["lift_ci"], "difference": r["difference"], "difference_ci": r["difference_ci"],
            "p_value": r["p_value"], "q_value": r["q_value"], "impact": r["impact"], "flags": r["flags"],
        })
    act = m["activation"]
    return finite({
        "items": items,
        "activation": {k: act[k] for k in ("behaviour", "name", "within_days", "definition", "undecided", "candidates")}
        if act else None,
        "population": m["population"], "within_days": m["within_days"], "horizon_days": m["horizon_days"],
        "outcome": m["outcome"], "units_analysed": m["units"]["analysed"], "retention": m["units"]["retention"],
        "caveat": m["caveat"],
    })


def _short_quote(quotes: list[str]) -> str | None:
    q = min(quotes, key=len) if quotes and len(quotes[0]) > QUOTE_MAX_CHARS else (quotes[0] if quotes else None)
    return q if q is None or len(q) <= QUOTE_MAX_CHARS else q[: QUOTE_MAX_CHARS - 1].rstrip() + "…"


def _themes(engine: Engine, definition: JourneyDefinition, level: str, ac, persona_ids: list[str],
            rows=None) -> dict[str, dict]:
    """Per view id, per stage id: the top THEMES_PER_STAGE themes (insights.voice.texts: the same themes and seed as
    `journeymap voice`) by texts in the stage, with their mean sentiment and one short quote: the most
    representative text of the theme in that stage whose own sentiment matches the theme's (any text if none); in an
    outcome stage (churned, lost) never a positive text, and no quote when the theme has none other."""
    from journeymap.insights.voice.sentiment import label
    from journeymap.insights.voice.texts import representative_quotes, scored, text_rows

    rows = text_rows(engine, definition, level, ac=ac) if rows is None else rows
    if rows.num_rows == 0:
        return {}
    rows, _ = scored(rows)
    cols = {c: rows.column(c).to_pylist() for c in ("stage", "persona", "theme", "compound", "text", "theme_weight")}
    order = {s.id: i for i, s in enumerate(definition.stages)}
    outcome = {s.id for s in definition.stages if s.terminal and s.kind in OUTCOME_KINDS}
    out = {}
    for pid in persona_ids:
        groups: dict[tuple[str, str], list[int]] = {}
        totals: dict[str, int] = {}
        for i, (stage, persona, theme) in enumerate(zip(cols["stage"], cols["persona"], cols["theme"], strict=True)):
            if stage in order and (pid == ALL or persona == pid):
                totals[stage] = totals.get(stage, 0) + 1
                if theme is not None:
                    groups.setdefault((stage, theme), []).append(i)
        stages: dict[str, list[dict]] = {}
        for (stage, theme), idx in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], -len(kv[1]), kv[0][1])):
            if len(stages.setdefault(stage, [])) >= THEMES_PER_STAGE:
                continue
            c = [cols["compound"][i] for i in idx if cols["compound"][i] is not None and math.isfinite(cols["compound"][i])]
            mean = round(sum(c) / len(c), 4) if c else None
            mood = label(mean) if mean is not None else None
            same = [i for i in idx if mood is not None and cols["compound"][i] is not None and label(cols["compound"][i]) == mood]
            pick = same or idx
            if stage in outcome:  # the voice of those who left is never a delighted quote
                pick = [i for i in idx if cols["compound"][i] is not None and label(cols["compound"][i]) != "positive"]
                pick = [i for i in pick if mood is None or label(cols["compound"][i]) == mood] or pick
            quotes = (representative_quotes([cols["text"][i] for i in pick], [cols["theme_weight"][i] for i in pick], 3)
                      if pick else [])
            stages[stage].append({"theme": theme, "n": len(idx), "share": round(len(idx) / totals[stage], 4),
                                  "mean_compound": mean, "sentiment": mood, "quote": _short_quote(quotes)})
        out[pid] = finite({k: v for k, v in stages.items() if v})
    return out


def _at_risk(engine: Engine, definition: JourneyDefinition, level: str, a, persona_ids: list[str],
             options: dict | None = None) -> dict:
    """Per view id: paying accounts at high churn risk (insights.risk.churn_model.risk_report, the default 90-day
    gbm model) per stage with their MRR, and the AT_RISK_LISTED riskiest with reasons. "High risk" is a risk
    at or above the top-decile cutoff over all paying accounts; persona views use the same cutoff. Persona
    views need the account level (the unit is then the account); at the person level they are null.

    With the default options the scores the last refresh wrote are read (insights.risk.stored): the map
    fits no model. A period's map scores at its end, which fits a model now unless that is the stored day."""
    from journeymap.insights.risk.churn_model import risk_report

    persona_of = {}
    if level == "account":
        persona_of = {x["unit_id"]: x["persona"] for x in engine.execute(a.select("unit_id", "persona").distinct()).to_pylist()}
    # Reasons only for the accounts each view lists: explaining every paying account cost more than the fit.
    r = risk_report(engine, definition, explain_top=AT_RISK_LISTED, explain_by=persona_of, **(options or {}))
    accounts = r["accounts"]
    risks = np.array([x["risk"] for x in accounts], dtype=float)
    cutoff = float(np.quantile(risks, 1 - AT_RISK_SHARE)) if len(risks) else None
    ev = r["evaluation"]["model"]
    out = {}
    for pid in persona_ids:
        if pid != ALL and level != "account":
            out[pid] = None
            continue
        mine = [x for x in accounts if pid == ALL or persona_of.get(x["unit_id"]) == pid]
        high = [x for x in mine if cutoff is not None and x["risk"] >= cutoff]
        by_stage: dict[str, dict] = {}
        for x in mine:  # an account with no stage counts in the totals only
            if x["stage"] is None:
                continue
            s = by_stage.setdefault(x["stage"], {"paying": 0, "accounts": 0, "mrr": 0.0})
            s["paying"] += 1
            if cutoff is not None and x["risk"] >= cutoff:
                s["accounts"] += 1
                s["mrr"] = round(s["mrr"] + (x["mrr"] or 0.0), 2)
        out[pid] = finite({
            "as_of": r["at"], "horizon_days": r["horizon_days"], "model": r["model"],
            "scores": r["scores"], "model_version": r["model_version"], "fitted_at": r["fitted_at"],
            "trained_through": r["trained_through"], "notes": r["notes"],
            "rule": f"churn risk within {r['horizon_days']} days at or above the top-decile cutoff of all paying accounts",
            "threshold": cutoff, "paying_accounts": len(mine), "accounts": len(high),
            "mrr": round(sum(x["mrr"] or 0.0 for x in high), 2),
            "mean_risk": float(np.mean([x["risk"] for x in mine])) if mine else None,
            "roc_auc": ev.get("roc_auc"),
            "by_stage": by_stage,
            "top": [{"unit_id": x["unit_id"], "risk": x["risk"], "mrr": x["mrr"], "stage": x["stage"],
                     "reasons": [{"feature": c["feature"], "text": c["text"]} for c in x["reasons"]]}
                    for x in mine[:AT_RISK_LISTED]],
        })
    return out
