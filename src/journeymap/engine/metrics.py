"""Journey metrics written once in Ibis: time-to-value, adoption, churn, survey scores, stage contents.

Each function takes the annotated events `a` (optionally already filtered to one persona) and returns
plain Python values. Definitions with worked examples: docs/metrics/.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from journeymap.engine.backends import Engine
from journeymap.engine.rules import rule_expr
from journeymap.journey.definition import JourneyDefinition, Survey

SURVEY_SCALES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
NPS_PROMOTER, NPS_DETRACTOR = 9, 6
CSAT_SATISFIED = 4


def _seconds(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    return later.delta(earlier, unit="microsecond").cast("float64") / 1e6


def time_to_value(engine: Engine, a: ir.Table, definition: JourneyDefinition) -> dict:
    """Seconds from the start milestone (default: first event) to the first value moment at or after it.

    p50/p90 are exact quantiles over the units that reached value; `share` says how many did."""
    m = definition.milestones
    starts = a.filter(rule_expr(engine, a, m.start)) if m.start else a
    start = starts.group_by("unit_id").aggregate(start_at=starts.ts.min())
    n = engine.execute(start.count().name("n").as_table()).column("n")[0].as_py()
    if m.value_moment is None or n == 0:
        return {"p50_seconds": None, "p90_seconds": None, "reached": 0, "n": n, "share": None}
    values = a.filter(rule_expr(engine, a, m.value_moment)).select(_u="unit_id", _ts="ts")
    j = start.join(values, [start.unit_id == values._u, values._ts >= start.start_at])
    first_value = j.group_by(["unit_id", "start_at"]).aggregate(value_at=j._ts.min())
    d = first_value.select(seconds=_seconds(first_value.value_at, first_value.start_at))
    row = engine.execute(
        d.aggregate(reached=d.count(), p50=d.seconds.quantile(0.5), p90=d.seconds.quantile(0.9))
    ).to_pylist()[0]
    reached = int(row["reached"])
    return {
        "p50_seconds": row["p50"] if reached else None,
        "p90_seconds": row["p90"] if reached else None,
        "reached": reached,
        "n": n,
        "share": reached / n if n else None,
    }


def customers(engine: Engine, a: ir.Table, v: ir.Table, definition: JourneyDefinition) -> ir.Table:
    """Units that ever reached the customer stage (all units when the definition names none)."""
    stage = definition.milestones.customer_stage
    if stage is None:
        return a.select("unit_id").distinct()
    return v.filter(v.stage == stage).select("unit_id").distinct()


def adoption(engine: Engine, a: ir.Table, cust: ir.Table, definition: JourneyDefinition) -> list[dict]:
    """Share of customers that used each key feature at least once."""
    denominator = engine.execute(cust.count().name("n").as_table()).column("n")[0].as_py()
    out = []
    for f in definition.milestones.key_features:
        users = a.filter(rule_expr(engine, a, f.match)).select(_u="unit_id").distinct()
        adopters = cust.join(users, cust.unit_id == users._u).count()
        k = engine.execute(adopters.name("k").as_table()).column("k")[0].as_py()
        out.append({"feature": f.id, "name": f.name, "adopters": k, "customers": denominator,
                    "rate": k / denominator if denominator else None})
    return out


def churn(engine: Engine, v: ir.Table, cust: ir.Table, definition: JourneyDefinition) -> dict:
    """Customers that entered a churn stage, over customers. Logo churn over the whole window."""
    churn_stages = [s.id for s in definition.stages if s.kind == "churn"]
    n = engine.execute(cust.count().name("n").as_table()).column("n")[0].as_py()
    if not churn_stages:
        return {"churned": None, "customers": n, "rate": None}
    churned = v.filter(v.stage.isin(churn_stages)).select(_u="unit_id").distinct()
    k = engine.execute(cust.join(churned, cust.unit_id == churned._u).count().name("k").as_table()).column("k")[0].as_py()
    return {"churned": k, "customers": n, "rate": k / n if n else None}


def survey_answers(engine: Engine, a: ir.Table, survey: Survey) -> ir.Table:
    """Answers of one survey with a valid score on its scale: unit_id, ts, score, comment, + labels."""
    lo, hi = SURVEY_SCALES[survey.kind]
    s = a.filter(rule_expr(engine, a, survey.match))
    s = s.mutate(
        score=engine.json_get(s.properties, survey.score).try_cast("float64"),
        comment=engine.json_get(s.properties, survey.comment) if survey.comment else ibis.null("string"),
    )
    return s.filter(s.score.between(lo, hi))


def score_aggregates(answers: ir.Table, kind: str, by: list[str]) -> ir.Table:
    """n and the score per group: NPS in points (-100..100), CSAT as a share (0..1), CES as a mean."""
    if kind == "nps":
        promoters = (answers.score >= NPS_PROMOTER).ifelse(1, 0).sum()
        detractors = (answers.score <= NPS_DETRACTOR).ifelse(1, 0).sum()
        n = answers.count()
        return answers.group_by(by).aggregate(n=n, score=(promoters - detractors).cast("float64") * 100.0 / n)
    if kind == "csat":
        return answers.group_by(by).aggregate(
            n=answers.count(), score=(answers.score >= CSAT_SATISFIED).ifelse(1.0, 0.0).mean()
        )
    return answers.group_by(by).aggregate(n=answers.count(), score=answers.score.mean())


def surveys_by(engine: Engine, a: ir.Table, definition: JourneyDefinition, by: str) -> dict[str, dict[str, dict]]:
    """{group value: {kind: {"score", "n"}}}; surveys of one kind are pooled into one score."""
    out: dict[str, dict[str, dict]] = {}
    for kind in ("nps", "csat", "ces"):
        surveys = [s for s in definition.surveys if s.kind == kind]
        if not surveys:
            continue
        answers = [survey_answers(engine, a, s).select(by, "score") for s in surveys]
        pooled = answers[0] if len(answers) == 1 else ibis.union(*answers, distinct=False)
        pooled = pooled.filter(pooled[by].notnull())
        for row in engine.execute(score_aggregates(pooled, kind, [by])).to_pylist():
            out.setdefault(row[by], {})[kind] = {"score": row["score"], "n": int(row["n"])}
    return out


def stage_contents(engine: Engine, ac: ir.Table, definition: JourneyDefinition, top: int = 5) -> dict[str, dict]:
    """Per stage (the stage a unit was in at the time): touchpoints, channels and top actions."""
    out: dict[str, dict] = {s.id: {"touchpoints": [], "channels": [], "actions": []} for s in definition.stages}
    staged = ac.filter(ac.current_stage.notnull())
    tp_meta = {t.id: t for t in definition.touchpoints}
    placed = [t.id for t in definition.touchpoints if t.stage]
    # A touchpoint with a configured stage shows there, counting every use; one without shows in the
    # stage the unit was in when it happened.
    rows = []
    if placed:
        tp = ac.filter(ac.touchpoint.isin(placed))
        rows += [dict(r, current_stage=tp_meta[r["touchpoint"]].stage) for r in engine.execute(
            tp.group_by("touchpoint").aggregate(units=tp.unit_id.nunique(), events=tp.count())
        ).to_pylist()]
    unplaced = staged.filter(staged.touchpoint.notnull(), ~staged.touchpoint.isin(placed) if placed else ibis.literal(True))
    rows += engine.execute(
        unplaced.group_by(["touchpoint", "current_stage"])
        .aggregate(units=unplaced.unit_id.nunique(), events=unplaced.count())
    ).to_pylist()
    for row in rows:
        t = tp_meta[row["touchpoint"]]
        out[row["current_stage"]]["touchpoints"].append(
            {"id": t.id, "name": t.name, "channel": t.channel, "owner": t.owner,
             "units": int(row["units"]), "events": int(row["events"])})
    for stage in out.values():
        stage["touchpoints"].sort(key=lambda r: (-r["units"], r["id"]))
    stage_units = {r["current_stage"]: int(r["n"]) for r in engine.execute(
        staged.group_by("current_stage").aggregate(n=staged.unit_id.nunique())).to_pylist()}
    ch = staged.filter(staged.channel.notnull())
    for row in engine.execute(
        ch.group_by(["current_stage", "channel"]).aggregate(units=ch.unit_id.nunique(), events=ch.count())
    ).to_pylist():
        out[row["current_stage"]]["channels"].append({"channel": row["channel"], "units": int(row["units"]), "events": int(row["events"])})
    for stage in out.values():
        stage["channels"].sort(key=lambda r: (-r["events"], r["channel"]))
        stage["channels"] = stage["channels"][:top]
    by_event = staged.group_by(["current_stage", "event"]).aggregate(units=staged.unit_id.nunique())
    w = ibis.window(group_by=by_event.current_stage, order_by=[ibis.desc(by_event.units), by_event.event])
    ranked = by_event.mutate(_rank=ibis.row_number().over(w)).filter(lambda t: t._rank < top)
    for row in engine.execute(ranked).to_pylist():
        n = stage_units.get(row["current_stage"], 0)
        out[row["current_stage"]]["actions"].append(
            {"event": row["event"], "units": int(row["units"]), "share": row["units"] / n if n else None})
    for stage in out.values():
        stage["actions"].sort(key=lambda r: (-r["units"], r["event"]))
    return out
