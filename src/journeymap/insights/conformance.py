"""Conformance: each unit's journey held to the designed journey (`future_state:`), docs/metrics/conformance.md.

The engine labels every journey event with its design step (the first step in design order whose matcher
holds) and aggregates per unit and step: the first occurrence's (ts, order) and the count. Only those
per-unit step summaries come into Python (units x steps rows, never the events); `unit_deviations` walks
them against the design. Impact metrics (conversion, churn, time to value, MRR) are per-unit columns
computed in the engine and joined on the unit id.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir

from journeymap.engine.annotate import journey_tables
from journeymap.engine.backends import Engine
from journeymap.engine.intervals import index_to_start, label, python_index
from journeymap.engine.metrics import churn_stage_ids
from journeymap.engine.rules import rule_expr
from journeymap.engine.survey_stats import Z95, mean_interval, wilson_interval
from journeymap.errors import NotEnoughData
from journeymap.insights.moments import newcombe_interval
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.future_state import DEVIATIONS, END_TO_END, AnyOrder, Design, DesignStep, OneOf

__all__ = ["Occurrence", "conformance", "unit_deviations"]


@dataclass(frozen=True)
class Occurrence:
    """A step's occurrences in one unit: the first one's time and order (rank among the unit's labelled
    events by (ts, seq)), and how many there were."""

    ts: dt.datetime
    order: int
    count: int


@dataclass
class UnitResult:
    unit_id: str
    persona: str
    start: dt.datetime
    ended: bool
    deviations: list[dict] = field(default_factory=list)
    design: str = "default"
    occ: dict[str, Occurrence] = field(default_factory=dict)

    @property
    def conforms(self) -> bool:
        return all(d["allowed"] for d in self.deviations)


def _seconds(a: dt.datetime, b: dt.datetime) -> float:
    return (a - b).total_seconds()


def _allowed(design: Design, kind: str, step: str) -> bool:
    return any(a.deviation == kind and (a.step is None or a.step == step) for a in design.allow)


class _Plan:
    """What `unit_deviations` reads of a design, worked out once for all the units held to it: the step list,
    positions, budgets in seconds and which deviations are allowed (worked out again for each of the 18,600 units
    of the 25,000-account demo, the allowed deviations alone took 0.3 s under the profiler)."""

    def __init__(self, design: Design) -> None:
        self.design = design
        self.steps = design.step_list()
        self.position = {s.id: pos for pos, s, _ in self.steps}
        self.budget = {s.id: s.budget_seconds for _, s, _ in self.steps}
        self.end_to_end = None if design.within is None else _budget(design.within)
        self._allowed: dict[tuple[str, str], bool] = {}

    def allowed(self, kind: str, step: str) -> bool:
        if (kind, step) not in self._allowed:
            self._allowed[(kind, step)] = _allowed(self.design, kind, step)
        return self._allowed[(kind, step)]


def unit_deviations(design: Design, occ: dict[str, Occurrence], ended: bool, as_of: dt.datetime,
                    plan: _Plan | None = None) -> list[dict]:
    """The deviations of one unit (docs/metrics/conformance.md), in design order: `occ` maps step id to its
    occurrences (steps not done are absent); `ended`: the unit entered a terminal stage; `as_of`: the end
    of the data. Each deviation: type, step, position, allowed, and its detail. `plan`: the design's `_Plan`,
    when the caller holds many units to it."""
    plan = plan or _Plan(design)
    steps, position = plan.steps, plan.position
    if not occ:
        return []
    start = min(o.ts for o in occ.values())
    last_done = max(position[s] for s in occ)
    out: list[dict] = []

    def add(kind: str, step: str, pos: int, **detail) -> None:
        out.append({"type": kind, "step": step, "position": pos, "allowed": plan.allowed(kind, step), **detail})

    def budget_ran_out(s: DesignStep) -> bool:
        if s.within is None:
            return False
        ref = occ[s.since].ts if s.since is not None and s.since in occ else (start if s.since is None else None)
        return ref is not None and _seconds(as_of, ref) > plan.budget[s.id]

    e2e_out = plan.end_to_end is not None and _seconds(as_of, start) > plan.end_to_end

    def due(pos: int, own: list[DesignStep]) -> str | None:
        if last_done > pos:
            return "later"
        if ended:
            return "ended"
        if any(budget_ran_out(s) for s in own):
            return "budget"
        if e2e_out:
            return "end_to_end"
        return None

    for pos, item in enumerate(design.steps):
        members = [item] if isinstance(item, DesignStep) else (item.any_order if isinstance(item, AnyOrder) else item.one_of)
        if isinstance(item, OneOf):
            taken = sorted((s for s in members if s.id in occ), key=lambda s: occ[s.id].order)
            if len(taken) > 1:
                add("exclusive_choice", item.id, pos, taken=[s.id for s in taken])
            if not taken and not item.optional:
                why = due(pos, members)
                if why:
                    add("missing", item.id, pos, due=why)
        for s in members:
            o = occ.get(s.id)
            if o is None:
                if not isinstance(item, OneOf) and not s.optional:
                    why = due(pos, [s])
                    if why:
                        add("missing", s.id, pos, due=why)
                continue
            earlier_later = [(occ[t].order, t) for t in occ if position[t] > pos and occ[t].order < o.order]
            if earlier_later:
                add("out_of_order", s.id, pos, after=min(earlier_later)[1])
            if o.count > 1 and not s.repeats:
                add("repeated", s.id, pos, count=o.count)
            if s.within is not None:
                ref = start if s.since is None else (occ[s.since].ts if s.since in occ else None)
                if ref is not None:
                    elapsed = _seconds(o.ts, ref)
                    if elapsed > plan.budget[s.id]:
                        add("over_budget", s.id, pos, by_seconds=elapsed - plan.budget[s.id],
                            budget_seconds=plan.budget[s.id])
    if plan.end_to_end is not None:
        last = len(design.steps) - 1
        ends = [occ[s.id].ts for p, s, _ in steps if p == last and s.id in occ]
        if ends:
            elapsed = _seconds(min(ends), start)
            if elapsed > plan.end_to_end:
                add("over_budget", END_TO_END, last, by_seconds=elapsed - plan.end_to_end,
                    budget_seconds=plan.end_to_end)
    return out


def _budget(text: str) -> float:
    from journeymap.journey.durations import parse_duration

    return parse_duration(text)


# -- the engine's part: per unit and step, the first occurrence and the count ----------------------------------


def _label(engine: Engine, a: ir.Table, design: Design) -> ir.StringValue:
    """The design step of each event: the first step in design order whose matcher holds (NULL: none)."""
    branches = []
    for _, s, _ in design.step_list():
        if s.touchpoint is not None:
            cond = a.touchpoint.notnull() & (a.touchpoint == s.touchpoint)
        elif s.stage is not None:
            cond = a.stage_hit.notnull() & (a.stage_hit == s.stage)
        else:
            cond = rule_expr(engine, a, s.rule)
        branches.append((cond.fill_null(False), s.id))
    expr = ibis.cases(*branches, else_=ibis.null("string"))
    return expr


def _occurrences(engine: Engine, ac: ir.Table, design: Design, personas: list[str] | None) -> list[dict]:
    """Rows (unit_id, persona, step, first_ts, first_order, n, stage) for the units of `personas` (None: all);
    `stage`: the stage the unit was in once the step first happened (for the map)."""
    t = ac if personas is None else ac.filter(ac.persona.isin(personas))
    t = t.mutate(_step=_label(engine, t, design))
    t = t.filter(t._step.notnull())
    t = t.mutate(_order=ibis.row_number().over(ibis.window(group_by=t.unit_id, order_by=[t.ts, t.seq])))
    g = t.group_by(["unit_id", "persona", "_step"]).aggregate(first_ts=t.ts.min(), first_order=t._order.min(),
                                                              n=t.count(), stage=t.current_stage.argmin(t._order))
    return engine.execute(g).to_pylist()


def _unit_facts(engine: Engine, a: ir.Table, v: ir.Table, definition: JourneyDefinition, level: str) -> dict:
    """Per unit: ended (a terminal stage), converted (the customer stage), customer and churned (churn
    among customers), ttv seconds, MRR at the end of the data (account level with revenue)."""
    terminal = [s.id for s in definition.stages if s.terminal]
    churn_ids = churn_stage_ids(definition)
    customer_stage = definition.milestones.customer_stage
    none = ["__none__"]  # no such stage: the flag is false
    flags = v.group_by("unit_id").aggregate(
        ended=v.stage.isin(terminal or none).max(),
        converted=v.stage.isin([customer_stage] if customer_stage else none).max(),
        churned=v.stage.isin(churn_ids or none).max(),
    )
    facts: dict[str, dict] = defaultdict(dict)
    for r in engine.execute(flags).to_pylist():
        facts[r["unit_id"]].update(ended=bool(r["ended"]), converted=bool(r["converted"]), churned=bool(r["churned"]))
    m = definition.milestones
    if m.value_moment is not None:
        starts = a.filter(rule_expr(engine, a, m.start)) if m.start else a
        start = starts.group_by("unit_id").aggregate(_s=starts.ts.min())
        vals = a.filter(rule_expr(engine, a, m.value_moment)).select(_u="unit_id", _ts="ts")
        j = start.left_join(vals, [start.unit_id == vals._u, vals._ts >= start._s])
        first = j.group_by(["unit_id", "_s"]).aggregate(_v=j._ts.min())
        first = first.select("unit_id", ttv=first._v.delta(first._s, unit="microsecond").cast("float64") / 1e6)
        for r in engine.execute(first).to_pylist():
            facts[r["unit_id"]]["ttv"] = r["ttv"]
    if level == "account" and definition.revenue is not None:
        from journeymap.engine.revenue import revenue_events

        rev = revenue_events(engine, definition)
        last = rev.mutate(_r=ibis.row_number().over(ibis.window(group_by=rev.unit_id,
                                                                order_by=[ibis.desc(rev.ts), ibis.desc(rev.seq)])))
        last = last.filter(last._r == 0).select("unit_id", "mrr")
        for r in engine.execute(last).to_pylist():
            facts[r["unit_id"]]["mrr"] = float(r["mrr"] or 0.0)
        for f in facts.values():
            f.setdefault("mrr", 0.0)
    return facts


# -- statistics ---------------------------------------------------------------------------------------------


def median_interval(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """The median and a distribution-free 95% interval (order statistics: ranks n/2 -+ 1.96 sqrt(n)/2).

    >>> median_interval([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    (5.5, 2, 9)
    """
    n = len(values)
    if n == 0:
        return None, None, None
    xs = sorted(values)
    med = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    if n < 2:
        return med, None, None
    half = Z95 * math.sqrt(n) / 2
    lo, hi = max(0, math.floor(n / 2 - half)), min(n - 1, math.ceil(n / 2 + half) - 1)
    return med, xs[lo], xs[hi]


def _rate(k: int, n: int) -> dict:
    lo, hi = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": k / n if n else None, "ci_low": lo, "ci_high": hi}


def _compare_rates(with_: tuple[int, int], without: tuple[int, int]) -> dict:
    lo, hi = newcombe_interval(with_[0], with_[1], without[0], without[1])
    w, o = _rate(*with_), _rate(*without)
    diff = w["rate"] - o["rate"] if w["rate"] is not None and o["rate"] is not None else None
    return {"with": w, "without": o, "difference": diff, "difference_ci": [lo, hi]}


def _mean(xs: list[float]) -> dict:
    n = len(xs)
    lo, hi = mean_interval(n, sum(xs), sum(x * x for x in xs))
    return {"n": n, "mean": sum(xs) / n if n else None, "ci_low": lo, "ci_high": hi}


def _compare_means(a: list[float], b: list[float]) -> dict:
    w, o = _mean(a), _mean(b)
    diff = ci = None
    if w["mean"] is not None and o["mean"] is not None:
        diff = w["mean"] - o["mean"]
        if len(a) > 1 and len(b) > 1:
            va = sum((x - w["mean"]) ** 2 for x in a) / (len(a) - 1)
            vb = sum((x - o["mean"]) ** 2 for x in b) / (len(b) - 1)
            se = math.sqrt(va / len(a) + vb / len(b))
            ci = [diff - Z95 * se, diff + Z95 * se]
    return {"with": w, "without": o, "difference": diff, "difference_ci": ci or [None, None]}


def _compare_medians(a: list[float], b: list[float]) -> dict:
    out = {}
    for key, xs in (("with", a), ("without", b)):
        med, lo, hi = median_interval(xs)
        out[key] = {"n": len(xs), "median_seconds": med, "ci_low": lo, "ci_high": hi}
    ma, mb = out["with"]["median_seconds"], out["without"]["median_seconds"]
    out["difference"] = ma - mb if ma is not None and mb is not None else None
    return out


def _impact(results: list[UnitResult], facts: dict, has_conversion: bool, has_churn: bool, has_ttv: bool,
            has_mrr: bool) -> dict:
    out = {}
    for kind in DEVIATIONS:
        has = [r for r in results if any(d["type"] == kind for d in r.deviations)]
        if not has:
            continue
        hit = {r.unit_id for r in has}
        rest = [r for r in results if r.unit_id not in hit]
        row: dict = {"units_with": len(has), "units_without": len(rest)}

        def f(rs, key):
            return [facts.get(r.unit_id, {}).get(key) for r in rs]

        if has_conversion:
            row["conversion"] = _compare_rates((sum(bool(x) for x in f(has, "converted")), len(has)),
                                               (sum(bool(x) for x in f(rest, "converted")), len(rest)))
        if has_churn:
            cust_h = [r for r in has if facts.get(r.unit_id, {}).get("converted") or facts.get(r.unit_id, {}).get("churned")]
            cust_r = [r for r in rest if facts.get(r.unit_id, {}).get("converted") or facts.get(r.unit_id, {}).get("churned")]
            row["churn"] = _compare_rates((sum(bool(x) for x in f(cust_h, "churned")), len(cust_h)),
                                          (sum(bool(x) for x in f(cust_r, "churned")), len(cust_r)))
        if has_ttv:
            row["time_to_value"] = _compare_medians([x for x in f(has, "ttv") if x is not None],
                                                    [x for x in f(rest, "ttv") if x is not None])
        if has_mrr:
            row["mrr"] = _compare_means([x or 0.0 for x in f(has, "mrr")], [x or 0.0 for x in f(rest, "mrr")])
        out[kind] = row
    return out


# -- the analysis ------------------------------------------------------------------------------------------


def _variant(occ: dict[str, Occurrence]) -> list[str]:
    """The unit's steps in the order first done, a repeated step marked `step x N`."""
    return [f"{s} x{o.count}" if o.count > 1 else s for s, o in sorted(occ.items(), key=lambda kv: kv[1].order)]


def _design_items(design: Design) -> list[dict]:
    out = []
    for pos, item in enumerate(design.steps):
        def one(s: DesignStep) -> dict:
            what = ("touchpoint", s.touchpoint) if s.touchpoint else ("stage", s.stage) if s.stage else \
                ("event", ",".join(s.event)) if s.event else ("match", "rule")
            return {"id": s.id, "name": s.name or s.id, what[0]: what[1], "optional": s.optional,
                    "repeats": s.repeats, "within": s.within, "since": s.since}
        if isinstance(item, DesignStep):
            out.append({"position": pos, "kind": "step", "steps": [one(item)]})
        elif isinstance(item, AnyOrder):
            out.append({"position": pos, "kind": "any_order", "steps": [one(s) for s in item.any_order]})
        else:
            out.append({"position": pos, "kind": "one_of", "id": item.id, "optional": item.optional,
                        "steps": [one(s) for s in item.one_of]})
    return out


def _design_of(design: Design) -> dict:
    return {"items": _design_items(design), "within": design.within,
            "allow": [a.model_dump(exclude_none=True) for a in design.allow]}


def _check_design(definition: JourneyDefinition):
    fs = definition.future_state
    if fs is None or not (fs.steps or any(d.steps for d in fs.personas.values())):
        raise NotEnoughData("journeymap.yml has no `future_state:` design to hold journeys to",
                            add="a `future_state:` section with the designed steps (docs/metrics/conformance.md)")
    return fs


def evaluate(engine: Engine, definition: JourneyDefinition, level: str, tables: tuple, *, persona: str | None = None,
             date_from: dt.date | None = None, date_to: dt.date | None = None) -> dict:
    """Every evaluated unit held to its design: {results, facts, as_of, groups (design key -> personas),
    step_stages (design key -> step -> Counter of the stage it happened in)}. `tables`: journey_tables()."""
    fs = _check_design(definition)
    a, v, ac = tables
    as_of = engine.execute(a.aggregate(m=a.ts.max())).to_pylist()[0]["m"]
    if as_of is None:
        raise NotEnoughData("no events yet", add="events (journeymap ingest FILE)")
    persona_ids = [p.id for p in definition.personas]
    known = engine.execute(a.select("persona").distinct()).column("persona").to_pylist()
    # group the personas by the design they are held to
    groups: dict[str, list[str]] = defaultdict(list)
    for p in dict.fromkeys([*persona_ids, *known]):
        if persona is not None and p != persona:
            continue
        key = p if p in fs.personas else "default"
        if fs.design_for(p if key != "default" else None) is not None:
            groups[key].append(p)
    facts = _unit_facts(engine, a, v, definition, level)
    results: list[UnitResult] = []
    step_stages: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for key, members in groups.items():
        design = fs.design_for(None if key == "default" else key)
        plan = _Plan(design)
        by_unit: dict[str, dict[str, Occurrence]] = defaultdict(dict)
        unit_persona: dict[str, str] = {}
        for r in _occurrences(engine, ac, design, members):
            by_unit[r["unit_id"]][r["_step"]] = Occurrence(r["first_ts"], int(r["first_order"]), int(r["n"]))
            unit_persona[r["unit_id"]] = r["persona"]
            step_stages[key][r["_step"]][r["stage"]] += 1
        for uid, occ in by_unit.items():
            start = min(o.ts for o in occ.values())
            if date_from is not None and start.date() < date_from:
                continue
            if date_to is not None and start.date() > date_to:
                continue
            ended = bool(facts.get(uid, {}).get("ended"))
            results.append(UnitResult(uid, unit_persona[uid], start, ended,
                                      unit_deviations(design, occ, ended, as_of, plan), key, occ))
    return {"results": results, "facts": facts, "as_of": as_of, "groups": groups, "step_stages": step_stages}


def conformance(engine: Engine, definition: JourneyDefinition, level: str, *, persona: str | None = None,
                date_from: dt.date | None = None, date_to: dt.date | None = None, interval: str = "month",
                unit: str | None = None, limit: int = 50, offset: int = 0, top: int = 10) -> dict:
    """The conformance report (docs/metrics/conformance.md)."""
    fs = _check_design(definition)
    ev = evaluate(engine, definition, level, journey_tables(engine, definition, level), persona=persona,
                  date_from=date_from, date_to=date_to)
    results, facts, as_of, groups = ev["results"], ev["facts"], ev["as_of"], ev["groups"]
    variants = {r.unit_id: [r.design, _variant(r.occ)] for r in results}
    if not results:
        raise NotEnoughData("no unit has a step of the design" + (f" (persona {persona!r})" if persona else "")
                            + (" in the period" if date_from or date_to else ""),
                            add="events that match the design's steps, or another --persona/--from/--to")
    results.sort(key=lambda r: (r.start, r.unit_id))

    def summary(rs: list[UnitResult]) -> dict:
        k = sum(r.conforms for r in rs)
        lo, hi = wilson_interval(k, len(rs))
        return {"units": len(rs), "conforming": k, "rate": k / len(rs) if rs else None, "ci_low": lo, "ci_high": hi,
                "finished": sum(r.ended for r in rs)}

    by_persona: dict[str, list[UnitResult]] = defaultdict(list)
    by_period: dict[int, list[UnitResult]] = defaultdict(list)
    for r in results:
        by_persona[r.persona].append(r)
        by_period[python_index(r.start, interval)].append(r)
    dev_rows = {}
    for kind in DEVIATIONS:
        ds = [(r, d) for r in results for d in r.deviations if d["type"] == kind]
        if not ds:
            continue
        steps = Counter(d["step"] for _, d in ds)
        row = {"type": kind, "deviations": len(ds), "units": len({r.unit_id for r, _ in ds}),
               "share": len({r.unit_id for r, _ in ds}) / len(results), "allowed": sum(d["allowed"] for _, d in ds),
               "by_step": [{"step": s, "deviations": n} for s, n in steps.most_common()]}
        if kind == "over_budget":
            row["median_by_seconds"] = median_interval([d["by_seconds"] for _, d in ds])[0]
        dev_rows[kind] = row
    nonconf = [r for r in results if not r.conforms]
    vc: Counter = Counter()
    leaves: dict[tuple, dict] = {}
    for r in nonconf:
        key, path = variants[r.unit_id]
        first = min((d for d in r.deviations if not d["allowed"]), key=lambda d: (d["position"], DEVIATIONS.index(d["type"])))
        k = (key, tuple(path), first["step"], first["type"])
        vc[k] += 1
        leaves[k] = {"step": first["step"], "position": first["position"], "deviation": first["type"]}
    shown = [r for r in results if r.deviations]
    warnings = []
    if unit is not None:
        shown = [r for r in results if r.unit_id == unit]
        if not shown:
            from journeymap.engine.checks import did_you_mean

            warnings.append({"key": "unit", "message": f"no evaluated unit {unit!r} (a unit with a step of its design"
                                                       + (", in the period" if date_from or date_to else "") + ")",
                             "suggestion": did_you_mean(unit, [r.unit_id for r in results], "units")})
    m = definition.milestones
    return {
        "level": level,
        "as_of": as_of,
        "interval": interval,
        **summary(results),
        "personas": [{"persona": p, "design": p if p in fs.personas else "default", **summary(rs)}
                     for p, rs in sorted(by_persona.items(), key=lambda kv: -len(kv[1]))],
        "over_time": [{"period": label(index_to_start(i, interval)), **summary(rs)} for i, rs in sorted(by_period.items())],
        "deviations": list(dev_rows.values()),
        "impact": _impact(results, facts, m.customer_stage is not None, bool(churn_stage_ids(definition)),
                          m.value_moment is not None, level == "account" and definition.revenue is not None),
        "variants": [{"design": k[0], "path": list(k[1]), "units": n, "share": n / len(nonconf), "leaves_at": leaves[k]}
                     for k, n in vc.most_common(top or None)],
        "units_total": len(shown),
        "units_list": [{"unit_id": r.unit_id, "persona": r.persona, "start": r.start, "finished": r.ended,
                        "conforms": r.conforms, "deviations": r.deviations}
                       for r in shown[offset:offset + limit if limit else None]],
        "design": {key: _design_of(fs.design_for(None if key == "default" else key)) for key in groups},
        "warnings": warnings,
    }


# -- the map's current-vs-future view ------------------------------------------------------------------------


def _step_stage(definition: JourneyDefinition, step: DesignStep, seen: Counter | None) -> str | None:
    """The stage column a designed step sits in: its touchpoint's stage, its own stage, else the stage units
    were most often in when they first did it."""
    if step.stage is not None:
        return step.stage
    if step.touchpoint is not None:
        tp = next((t for t in definition.touchpoints if t.id == step.touchpoint), None)
        if tp is not None and tp.stage:
            return tp.stage
    if seen:
        known = [(n, s) for s, n in seen.items() if s is not None]
        if known:
            return max(known)[1]
    return None


def map_view(engine: Engine, definition: JourneyDefinition, level: str, tables: tuple,
             views: list[str], all_id: str) -> dict[str, dict | None]:
    """Per map view (persona id, or `all_id`): the designed steps per stage with their time budget next to
    what units did (done, median time against budget, over budget, missing, conformance at the stage), and
    the deviations with the largest impact as pain points (docs/map-json.md). None without a design."""
    if definition.future_state is None:
        return {v: None for v in views}
    try:
        ev = evaluate(engine, definition, level, tables)
    except NotEnoughData:
        return {v: None for v in views}
    fs = definition.future_state
    facts = ev["facts"]
    out: dict[str, dict | None] = {}
    order = {s.id: i for i, s in enumerate(definition.stages)}
    for vid in views:
        key = "default" if vid == all_id or vid not in fs.personas else vid
        design = fs.design_for(None if key == "default" else key)
        rs = [r for r in ev["results"] if r.design == key and (vid == all_id or r.persona == vid)]
        if design is None or not rs:
            out[vid] = None
            continue
        # each unit's steps with a deviation not allowed, and those deviations counted by (type, step): once,
        # not again for every step and stage
        bad = [{d["step"] for d in r.deviations if not d["allowed"]} for r in rs]
        counted = Counter((d["type"], d["step"]) for r in rs for d in r.deviations if not d["allowed"])
        steps = []
        for pos, s, choice in design.step_list():
            done = [r for r in rs if s.id in r.occ]
            elapsed = []
            for r in done:
                ref = r.start if s.since is None else (r.occ[s.since].ts if s.since in r.occ else None)
                if ref is not None:
                    elapsed.append(_seconds(r.occ[s.id].ts, ref))
            own = {s.id, choice} - {None}
            steps.append({"id": s.id, "name": s.name or s.id, "position": pos, "choice": choice,
                          "optional": s.optional, "stage": _step_stage(definition, s, ev["step_stages"][key].get(s.id)),
                          "budget_seconds": s.budget_seconds, "since": s.since, "units_done": len(done),
                          "done_share": len(done) / len(rs), "median_seconds": median_interval(elapsed)[0],
                          "over_budget": sum(counted[("over_budget", x)] for x in own),
                          "missing": sum(counted[("missing", x)] for x in own),
                          "deviating_units": sum(bool(b & own) for b in bad)})
        stages = []
        for stage in sorted({x["stage"] for x in steps if x["stage"]}, key=lambda st: order.get(st, 99)):
            ids = {x["id"] for x in steps if x["stage"] == stage} | {x["choice"] for x in steps
                                                                      if x["stage"] == stage and x["choice"]}
            ok = sum(not (b & ids) for b in bad)
            stages.append({"stage": stage, "steps": [x["id"] for x in steps if x["stage"] == stage],
                           "units": len(rs), "conforming": ok, "conformance": ok / len(rs)})
        conv = definition.milestones.customer_stage is not None
        pains: dict[tuple, list] = defaultdict(list)
        for r in rs:
            for d in {(d["type"], d["step"]) for d in r.deviations if not d["allowed"]}:
                pains[d].append(r)
        pain_points = []
        customer = definition.milestones.customer_stage
        # a unit is held to one design once, so the units without a deviation are the others
        converted = sum(bool(facts.get(r.unit_id, {}).get("converted")) for r in rs)
        for (kind, step), with_ in pains.items():
            stage = next((x["stage"] for x in steps if step in (x["id"], x["choice"])), None)
            if kind == "missing" and conv and stage == customer:
                continue  # missing the customer stage is not converting: no news about conversion
            k1 = sum(bool(facts.get(r.unit_id, {}).get("converted")) for r in with_)
            rest = len(rs) - len(with_)
            c1 = k1 / len(with_)
            c0 = (converted - k1) / rest if rest else None
            lost = len(with_) * (c0 - c1) if conv and c0 is not None else None
            pain_points.append({
                "deviation": kind, "step": step, "stage": stage, "units": len(with_), "share": len(with_) / len(rs),
                "conversion_with": c1 if conv else None, "conversion_without": c0 if conv else None,
                "lost_conversions": lost,
                "title": f"{kind.replace('_', ' ')}: {step}",
                "evidence": (f"{len(with_):,} of {len(rs):,} units; conversion {c1:.0%} with it against "
                             f"{c0:.0%} without" if conv and c0 is not None else f"{len(with_):,} of {len(rs):,} units")})
        pain_points.sort(key=lambda p: (-(p["lost_conversions"] if p["lost_conversions"] is not None else p["units"]),
                                        p["step"], p["deviation"]))
        ok = sum(r.conforms for r in rs)
        lo, hi = wilson_interval(ok, len(rs))
        out[vid] = {"design": key, "units": len(rs), "conforming": ok, "rate": ok / len(rs), "ci_low": lo,
                    "ci_high": hi, "within_seconds": _budget(design.within) if design.within else None,
                    "steps": steps, "stages": stages, "pain_points": pain_points[:5]}
    return out
