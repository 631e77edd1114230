"""Journey metrics written once in Ibis: time-to-value, adoption, churn, survey scores, stage contents.

Each function takes the annotated events `a` (optionally already filtered to one persona) and returns
plain Python values. With `per=(column, values)` it returns {value: result} instead (engine.split): the
map's persona views, from one query each.
Definitions with worked examples: docs/metrics/.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from journeymap.engine.backends import Engine
from journeymap.engine.rules import rule_expr
from journeymap.engine.split import Per, aggregate, group_keys, split
from journeymap.engine.survey_stats import interval_from_parts
from journeymap.journey.definition import JourneyDefinition, Survey

KINDS = ("nps", "csat", "ces")


def _seconds(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    return later.delta(earlier, unit="microsecond").cast("float64") / 1e6


def time_to_value(engine: Engine, a: ir.Table, definition: JourneyDefinition, per: Per = None) -> dict:
    """Seconds from the start milestone (default: first event) to the first value moment at or after it.

    `n` counts units with a start; p50/p90 are exact quantiles (linear interpolation) over the
    `reached` units that then reached value; `share` is reached / n. One query."""
    m = definition.milestones
    keys = group_keys(per)
    starts = a.filter(rule_expr(engine, a, m.start)) if m.start else a
    start = starts.group_by(["unit_id", *keys]).aggregate(start_at=starts.ts.min())
    if m.value_moment is None:
        rows = engine.execute(aggregate(start, per, n=start.count())).to_pylist()
        return split(rows, per, lambda r: {"p50_seconds": None, "p90_seconds": None, "reached": 0, "n": int(r["n"] or 0),
                                            "share": None}, {"n": 0})
    values = a.filter(rule_expr(engine, a, m.value_moment)).select(_u="unit_id", _ts="ts")
    j = start.left_join(values, [start.unit_id == values._u, values._ts >= start.start_at])
    first_value = j.group_by(["unit_id", "start_at", *keys]).aggregate(value_at=j._ts.min())
    seconds = _seconds(first_value.value_at, first_value.start_at)  # NULL for units without value
    rows = engine.execute(aggregate(first_value, per,
        n=first_value.count(), reached=first_value.value_at.count(),
        p50=seconds.quantile(0.5), p90=seconds.quantile(0.9),
    )).to_pylist()

    def result(row: dict) -> dict:
        n, reached = int(row["n"] or 0), int(row["reached"] or 0)
        return {
            "p50_seconds": row["p50"] if reached else None,
            "p90_seconds": row["p90"] if reached else None,
            "reached": reached,
            "n": n,
            "share": reached / n if n else None,
        }

    return split(rows, per, result, {"n": 0, "reached": 0, "p50": None, "p90": None})


def churn_stage_ids(definition: JourneyDefinition) -> list[str]:
    """The terminal stages of kind `churn`: entering one is churn (docs/metrics/churn.md)."""
    return [s.id for s in definition.stages if s.kind == "churn"]


def units(engine: Engine, a: ir.Table, per: Per = None) -> int | dict:
    """The number of distinct units in `a`."""
    return split(engine.execute(aggregate(a, per, n=a.unit_id.nunique())).to_pylist(), per,
                  lambda r: int(r["n"] or 0), {"n": 0})


def customers(engine: Engine, a: ir.Table, v: ir.Table, definition: JourneyDefinition, per: Per = None) -> ir.Table:
    """Units that ever reached the customer stage or a churn stage (all units when the definition names no
    customer stage). A unit that churned was a customer, even one that cancelled before its first payment:
    so the churn card's `churned` and the churn stage's `reached` count the same units. `per`: the split's
    column is kept, for `adoption` and `churn` to split by."""
    stage = definition.milestones.customer_stage
    if stage is None:
        return a.select("unit_id", *group_keys(per)).distinct()
    return v.filter(v.stage.isin([stage, *churn_stage_ids(definition)])).select("unit_id", *group_keys(per)).distinct()


def adoption(engine: Engine, a: ir.Table, cust: ir.Table, definition: JourneyDefinition,
             per: Per = None) -> list[dict] | dict:
    """Share of customers that used each key feature at least once (at any time in the data). One query."""
    features = definition.milestones.key_features
    if not features:
        return {value: [] for value in per[1]} if per else []
    used = a.group_by(_u=a.unit_id).aggregate(
        **{f"_f{i}": rule_expr(engine, a, f.match).ifelse(1, 0).max() for i, f in enumerate(features)}
    )
    j = cust.left_join(used, cust.unit_id == used._u)
    rows = engine.execute(
        aggregate(j, per, _n=j.count(), **{f"_f{i}": j[f"_f{i}"].fill_null(0).sum() for i in range(len(features))})
    ).to_pylist()

    def result(row: dict) -> list[dict]:
        n = int(row["_n"] or 0)
        return [
            {"feature": f.id, "name": f.name, "adopters": int(row[f"_f{i}"] or 0), "customers": n,
             "rate": int(row[f"_f{i}"] or 0) / n if n else None}
            for i, f in enumerate(features)
        ]

    return split(rows, per, result, {"_n": 0, **{f"_f{i}": 0 for i in range(len(features))}})


def churn(engine: Engine, v: ir.Table, cust: ir.Table, definition: JourneyDefinition, per: Per = None) -> dict:
    """Customers that entered a churn stage (at any time in the data), over customers. Logo churn. One query.

    Every unit that entered a churn stage is a customer (`customers`), so `churned` is the churn stages' `reached`."""
    churn_stages = churn_stage_ids(definition)
    if not churn_stages:
        rows = engine.execute(aggregate(cust, per, n=cust.count())).to_pylist()
        return split(rows, per, lambda r: {"churned": None, "customers": int(r["n"] or 0), "rate": None}, {"n": 0})
    churned = v.filter(v.stage.isin(churn_stages)).select(_u="unit_id").distinct()
    j = cust.left_join(churned, cust.unit_id == churned._u)
    rows = engine.execute(aggregate(j, per, n=j.count(), k=j._u.count())).to_pylist()

    def result(row: dict) -> dict:
        n, k = int(row["n"] or 0), int(row["k"] or 0)
        return {"churned": k, "customers": n, "rate": k / n if n else None}

    return split(rows, per, result, {"n": 0, "k": 0})


def survey_answers(engine: Engine, a: ir.Table, survey: Survey) -> ir.Table:
    """Answers of one survey with a valid score on its scale: unit_id, ts, score, comment, + labels."""
    lo, hi = survey.bounds
    s = a.filter(rule_expr(engine, a, survey.match))
    s = s.mutate(
        score=engine.json_get(s.properties, survey.score).try_cast("float64"),
        comment=engine.json_get(s.properties, survey.comment) if survey.comment else ibis.null("string"),
    )
    s = s.filter(s.score.between(lo, hi))
    # Each survey's own thresholds classify its answers, so surveys can be pooled into one score.
    return s.mutate(
        promoter=(s.score >= survey.promoter_min).ifelse(1, 0),
        detractor=(s.score <= survey.detractor_max).ifelse(1, 0),
        satisfied=(s.score >= survey.satisfied_min).ifelse(1, 0),
    )


def score_parts(answers: ir.Table, by: list[str]) -> ir.Table:
    """Per group and survey kind, the counts and sum every score is computed from (`score_from_parts`)."""
    s = answers.score
    return answers.group_by([*by, "kind"]).aggregate(
        n=answers.count(),
        total=s.sum(),
        total_sq=(s * s).sum(),
        promoters=answers.promoter.sum(),
        detractors=answers.detractor.sum(),
        satisfied=answers.satisfied.sum(),
    )


def score_from_parts(kind: str, row: dict) -> float:
    """NPS in points (-100..100), CSAT as a share (0..1), CES as the mean score.

    >>> score_from_parts("nps", {"n": 4, "promoters": 2, "detractors": 1, "satisfied": 0, "total": 0.0})
    25.0
    """
    n = row["n"]
    if kind == "nps":
        return (row["promoters"] - row["detractors"]) * 100.0 / n
    if kind == "csat":
        return row["satisfied"] / n
    return row["total"] / n


def surveys_by(engine: Engine, a: ir.Table, definition: JourneyDefinition, by: str, per: Per = None) -> dict:
    """{group value: {kind: {"score", "n", "ci_low", "ci_high"}}}; surveys of one kind are pooled into
    one score, with its 95% confidence interval (survey_stats). One query."""
    if not definition.surveys:
        return {value: {} for value in per[1]} if per else {}
    keys = group_keys(per)
    answers = [
        survey_answers(engine, a, s).select(*keys, by, "score", "promoter", "detractor", "satisfied",
                                            kind=ibis.literal(s.kind))
        for s in definition.surveys
    ]
    pooled = answers[0] if len(answers) == 1 else ibis.union(*answers, distinct=False)
    pooled = pooled.filter(pooled[by].notnull())
    out: dict = {value: {} for value in per[1]} if per else {}
    rows = sorted(engine.execute(score_parts(pooled, [*keys, by])).to_pylist(), key=lambda r: (r[by], KINDS.index(r["kind"])))
    for row in rows:
        if per and row[per[0]] not in out:
            continue
        low, high = interval_from_parts(row["kind"], row)
        (out[row[per[0]]] if per else out).setdefault(row[by], {})[row["kind"]] = {
            "score": score_from_parts(row["kind"], row), "n": int(row["n"]), "ci_low": low, "ci_high": high,
        }
    return out


def stage_contents(engine: Engine, ac: ir.Table, definition: JourneyDefinition, top: int = 5,
                   per: Per = None) -> dict:
    """Per stage (the stage a unit was in at the time): touchpoints, channels and top actions."""
    keys = group_keys(per)

    def empty() -> dict[str, dict]:
        return {s.id: {"touchpoints": [], "channels": [], "actions": []} for s in definition.stages}

    views = {value: empty() for value in per[1]} if per else {None: empty()}

    def view(row: dict) -> dict | None:
        return views.get(row[per[0]]) if per else views[None]

    staged = ac.filter(ac.current_stage.notnull())
    tp_meta = {t.id: t for t in definition.touchpoints}
    placed = [t.id for t in definition.touchpoints if t.stage]
    # A touchpoint with a configured stage shows there, counting every use; one without shows in the
    # stage the unit was in when it happened.
    rows = []
    if placed:
        tp = ac.filter(ac.touchpoint.isin(placed))
        rows += [dict(r, current_stage=tp_meta[r["touchpoint"]].stage) for r in engine.execute(
            tp.group_by([*keys, "touchpoint"]).aggregate(units=tp.unit_id.nunique(), events=tp.count())
        ).to_pylist()]
    unplaced = staged.filter(staged.touchpoint.notnull(), ~staged.touchpoint.isin(placed) if placed else ibis.literal(True))
    rows += engine.execute(
        unplaced.group_by([*keys, "touchpoint", "current_stage"])
        .aggregate(units=unplaced.unit_id.nunique(), events=unplaced.count())
    ).to_pylist()
    for row in rows:
        if (out := view(row)) is None:
            continue
        t = tp_meta[row["touchpoint"]]
        out[row["current_stage"]]["touchpoints"].append(
            {"id": t.id, "name": t.name, "channel": t.channel, "owner": t.owner,
             "units": int(row["units"]), "events": int(row["events"])})
    stage_units = {(row[per[0]] if per else None, row["current_stage"]): int(row["n"]) for row in engine.execute(
        staged.group_by([*keys, "current_stage"]).aggregate(n=staged.unit_id.nunique())).to_pylist()}
    ch = staged.filter(staged.channel.notnull())
    for row in engine.execute(
        ch.group_by([*keys, "current_stage", "channel"]).aggregate(units=ch.unit_id.nunique(), events=ch.count())
    ).to_pylist():
        if (out := view(row)) is not None:
            out[row["current_stage"]]["channels"].append(
                {"channel": row["channel"], "units": int(row["units"]), "events": int(row["events"])})
    by_event = staged.group_by([*keys, "current_stage", "event"]).aggregate(units=staged.unit_id.nunique())
    w = ibis.window(group_by=[*[by_event[k] for k in keys], by_event.current_stage],
                    order_by=[ibis.desc(by_event.units), by_event.event])
    ranked = by_event.mutate(_rank=ibis.row_number().over(w)).filter(lambda t: t._rank < top)
    for row in engine.execute(ranked).to_pylist():
        if (out := view(row)) is None:
            continue
        n = stage_units.get((row[per[0]] if per else None, row["current_stage"]), 0)
        out[row["current_stage"]]["actions"].append(
            {"event": row["event"], "units": int(row["units"]), "share": row["units"] / n if n else None})
    for out in views.values():
        for stage in out.values():
            stage["touchpoints"].sort(key=lambda r: (-r["units"], r["id"]))
            stage["channels"].sort(key=lambda r: (-r["events"], r["channel"]))
            stage["channels"] = stage["channels"][:top]
            stage["actions"].sort(key=lambda r: (-r["units"], r["event"]))
    return views if per else views[None]
