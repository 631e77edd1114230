r"""Moments of truth: which early behaviours go with retention.

For every candidate behaviour (each event name, each touchpoint, the value moment and each key
feature), units that did it within the first ``within_days`` of their start are compared with units
that did not, on whether they were retained ``horizon_days`` after their start. Definition, options
and a worked example: ``docs/metrics/moments-of-truth.md``.

- **Start**: a unit's first ``milestones.start`` event (its first event when the definition has none).
- **Population**: units that entered ``milestones.customer_stage`` by ``start + H`` (``customers``, the
  default when the definition names one), or every unit with a start (``started``).
- **Retained at H**: no exit (an event entering a terminal stage of kind ``churn``, or matching
  ``revenue.churn``) in ``[start, start + H]``. Units whose start is less than H days before the
  latest event in the data are right-censored and left out; so are units that exited before the
  end of the behaviour window (a landmark: they had no full window to act in).
- **Leakage**: behaviours that define the outcome are not candidates (``leaky_events``).

Statistics per behaviour, with :math:`k_1/n_1` retained of the doers and :math:`k_0/n_0` of the others:

.. math::

    \text{lift} = \frac{k_1/n_1}{k_0/n_0}, \qquad
    \operatorname{se}(\log \text{lift}) = \sqrt{\tfrac{1}{k_1} - \tfrac{1}{n_1} + \tfrac{1}{k_0} - \tfrac{1}{n_0}}

(Katz et al. 1978, Biometrics 34:469-474); the difference's interval is Newcombe's hybrid score
interval from two Wilson intervals (Newcombe 1998, Stat Med 17:873-890, method 10); the test is the
pooled two-proportion z-test, or Fisher's exact test when an expected cell count is below 5;
q-values are Benjamini-Hochberg (1995), adjusted p-values also Holm (1979). Ranking is by impact
within persona, :math:`\sum_p n_{0,p} (p_{1,p} - p_{0,p})`: retained units gained if each persona's
non-doers retained like its doers.

The flags are computed in the engine (Ibis on DuckDB or Spark); only counts per behaviour and persona
come back to Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
from scipy import stats

from journeymap.errors import OptionError
from journeymap.engine.annotate import annotation_key
from journeymap.engine.backends import Engine
from journeymap.engine.intervals import Period, in_period
from journeymap.engine.personas import units
from journeymap.engine.rules import first_match, rule_expr
from journeymap.engine.survey_stats import Z95, wilson_interval
from journeymap.engine.unit_events import LEVELS, unit_events
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.rules import Rule

ACTIVATION_WINDOWS = (1, 3, 7, 14, 30)
POPULATIONS = ("customers", "started")
MIN_PERSONA_UNITS = 10
"""A persona's lift is compared with the overall lift only when it has this many doers and non-doers."""
PERSONA_REACH_GAP = 0.20
"""Reach that differs by this much (20 points) between personas is flagged."""
PERSONA_LIFT_GAP = 0.50
"""A persona lift more than 50% above or below the overall lift is flagged."""
CAVEAT = ("Lift is correlation, not causation: units that do a behaviour early may differ in other ways "
          "(persona, plan, intent). Compare within persona, and test a change with an experiment before "
          "crediting it with retention.")
_MICROS_PER_DAY = 86_400 * 1_000_000


@dataclass(frozen=True)
class Behaviour:
    """A candidate: `id` is `event:<name>`, `touchpoint:<id>`, `milestone:value_moment` or `feature:<id>`."""

    id: str
    kind: str
    name: str
    rule: Rule | None  # None: the event name itself
    stage: str | None = None  # a touchpoint's configured stage


def rule_events(rule: Rule | None) -> set[str] | None:
    """Event names a rule can match; None when it names none (it may match any event)."""
    if rule is None:
        return None
    names = set(rule.event or [])
    if rule.any:
        subs = [rule_events(r) for r in rule.any]
        if any(s is None for s in subs) and not names:
            return None
        union = set().union(*[s for s in subs if s is not None])
        names = names & union if names else union
    return names or None


def leaky_events(definition: JourneyDefinition, revenue_events: set[str] = frozenset()) -> dict[str, str]:
    """Event names that define the outcome, with the reason each is left out.

    - events entering a terminal stage (churn, lost, won): they are outcomes;
    - events entering `milestones.customer_stage` (paying: `invoice_paid` in the demo): being a
      customer is what retention is measured on;
    - `revenue.churn` and the events that state MRR (`revenue.match`, found in the data and passed in
      as `revenue_events`): they describe the subscription the outcome is about.
    """
    out: dict[str, str] = {}
    for s in definition.stages:
        if s.terminal or s.id == definition.milestones.customer_stage:
            why = f"enters terminal stage {s.id!r}" if s.terminal else f"enters the customer stage {s.id!r}"
            for name in sorted(rule_events(s.entry) or ()):
                out.setdefault(name, why)
    if definition.revenue is not None:
        for name in sorted(rule_events(definition.revenue.churn) or ()):
            out.setdefault(name, "is the revenue churn event")
    for name in sorted(revenue_events):
        out.setdefault(name, "states MRR (revenue.match): it describes the subscription")
    return out


def single_event(rule: Rule) -> str | None:
    """The event name when the rule is just one event name (then it is the same behaviour as that event)."""
    if rule.event and len(rule.event) == 1 and not (rule.source or rule.channel or rule.where or rule.any):
        return rule.event[0]
    return None


def candidates(definition: JourneyDefinition, event_names: list[str]) -> tuple[list[Behaviour], dict[str, list[str]]]:
    """Every event name seen, every touchpoint, the value moment and every key feature.

    A touchpoint, milestone or feature that is exactly one event name is not a candidate of its own (it would
    count twice in the multiple-comparison correction): it is listed in `aliases` under `event:<name>`."""
    out = [Behaviour(f"event:{e}", "event", e, None) for e in sorted(event_names)]
    ms = definition.milestones
    named = [Behaviour(f"touchpoint:{t.id}", "touchpoint", t.name, t.match, t.stage) for t in definition.touchpoints]
    if ms.value_moment is not None:
        named.append(Behaviour("milestone:value_moment", "milestone", "Value moment", ms.value_moment))
    named += [Behaviour(f"feature:{f.id}", "feature", f.name, f.match) for f in ms.key_features]
    aliases: dict[str, list[str]] = {}
    for b in named:
        one = single_event(b.rule)
        if one is not None:
            aliases.setdefault(f"event:{one}", []).append(b.id)
        else:
            out.append(b)
    return out, aliases


def split_leaky(definition: JourneyDefinition, behaviours: list[Behaviour], leaky: dict[str, str],
                exclude: list[str] | None = None, include: list[str] | None = None) -> tuple[list[Behaviour], list[dict]]:
    """Keep the behaviours that do not define the outcome. A rule-based behaviour is leaky when every event it
    names is leaky, or when it is a touchpoint placed in a terminal or the customer stage. `exclude` and
    `include` name behaviour ids (or bare event names) to drop or to keep whatever the rules say."""
    exclude_set, include_set = set(exclude or ()), set(include or ())
    bad_stages = {s.id for s in definition.stages if s.terminal or s.id == definition.milestones.customer_stage}
    kept, dropped = [], []
    for b in behaviours:
        names = {b.name} if b.rule is None else rule_events(b.rule)
        reason = None
        if b.id in exclude_set or (b.kind == "event" and b.name in exclude_set):
            reason = "excluded by option"
        elif b.stage in bad_stages:
            reason = f"touchpoint placed in stage {b.stage!r}"
        elif names and all(n in leaky for n in names):
            reason = "; ".join(sorted({f"{n} {leaky[n]}" for n in names}))
        if reason and not (b.id in include_set or (b.kind == "event" and b.name in include_set)):
            dropped.append({"behaviour": b.id, "name": b.name, "reason": reason})
        else:
            kept.append(b)
    return kept, dropped


# -- engine ------------------------------------------------------------------------------------------------


def _days(later: ir.TimestampValue, earlier: ir.TimestampValue) -> ir.FloatingValue:
    return later.delta(earlier, unit="microsecond").cast("float64") / _MICROS_PER_DAY


def _exit_expr(engine: Engine, ev: ir.Table, definition: JourneyDefinition) -> ir.BooleanValue:
    churn_stages = [s.id for s in definition.stages if s.kind == "churn"]
    parts = [ev.stage_hit.isin(churn_stages).fill_null(False)] if churn_stages else []
    if definition.revenue is not None:
        parts.append(rule_expr(engine, ev, definition.revenue.churn))
    return ibis.or_(*parts) if parts else ibis.literal(False)


EVENT_COLUMNS = ("unit_id", "ts", "seq", "event", "source", "channel", "properties")
"""What `prepare`'s events keep: a rule reads the event's name, source, channel and properties."""


def prepare(engine: Engine, definition: JourneyDefinition, level: str, horizon_days: float, population: str,
            period: Period = (None, None)) -> dict:
    """The unit table every window reuses: unit_id, persona, start_at, days_to_exit (NULL: never),
    days_observed (start to the latest event in the data), in_population.

    Materialised; call inside `engine.scope()`. `period`: only the events inside it count (the data ends there).
    The events are the journey state's when it is current (the same rows, already a table, with the stage each
    event enters), else a copy of the columns the rules and windows read (not every event's traits, which nothing
    here reads) with that stage computed once: the exits and the customer stage read it, and matching every
    stage's rule against 10M events twice took most of this function."""
    state = engine.journey.get((level, annotation_key(definition)))
    if state is not None:
        ev = in_period(engine.table(state["events"]).select(*EVENT_COLUMNS, "stage_hit"), period)
    else:
        ev = in_period(unit_events(engine, level), period).select(*EVENT_COLUMNS)
        ev = engine.materialize(ev.mutate(stage_hit=first_match(engine, ev, [(s.id, s.entry) for s in definition.stages])))
    start_rule = definition.milestones.start
    starts = ev.filter(rule_expr(engine, ev, start_rule)) if start_rule else ev
    start = starts.group_by("unit_id").aggregate(start_at=starts.ts.min())
    exits = ev.filter(_exit_expr(engine, ev, definition)).select(_u="unit_id", _ts="ts")
    j = start.left_join(exits, [start.unit_id == exits._u, exits._ts >= start.start_at])
    first_exit = j.group_by(["unit_id", "start_at"]).aggregate(exit_at=j._ts.min())
    if population == "customers":
        stage = definition.milestones.customer_stage
        paid = ev.filter((ev.stage_hit == stage).fill_null(False)).group_by(_cu="unit_id").aggregate(customer_at=ev.ts.min())
        first_exit = first_exit.left_join(paid, first_exit.unit_id == paid._cu)
    p = units(engine, definition, level)
    p = p.select(_pu=p.unit_id, persona=p.persona)
    u = first_exit.left_join(p, first_exit.unit_id == p._pu)
    end = ev.ts.max().as_scalar()
    member = ibis.literal(True)
    if population == "customers":  # a customer by the end of the horizon (the stage entered at any time before)
        member = _days(u.customer_at, u.start_at).notnull() & (_days(u.customer_at, u.start_at) <= horizon_days)
    u = u.select("unit_id", persona=u.persona.fill_null("unassigned"), start_at=u.start_at,
                 days_to_exit=_days(u.exit_at, u.start_at), days_observed=_days(end, u.start_at),
                 in_population=member)
    u = engine.materialize(u)
    censored = u.days_observed < horizon_days
    info = engine.execute(u.aggregate(
        started=u.count(), censored=censored.ifelse(1, 0).sum(),
        not_customers=(~censored & ~u.in_population).ifelse(1, 0).sum())).to_pylist()[0]
    revenue_names: set[str] = set()
    if definition.revenue is not None:
        r = ev.filter(rule_expr(engine, ev, definition.revenue.match)).select("event").distinct()
        revenue_names = {x for x in engine.execute(r).column("event").to_pylist() if x is not None}
    return {"events": ev, "units": u, "started": int(info["started"]), "censored": int(info["censored"] or 0),
            "not_customers": int(info["not_customers"] or 0), "revenue_events": revenue_names}


def window_counts(engine: Engine, prep: dict, behaviours: list[Behaviour] | None, within_days: float,
                  horizon_days: float) -> dict:
    """Counts for one behaviour window. behaviours=None: one `event:<name>` per event name seen.

    Returns {"units": {persona: (n, retained)}, "did": {(behaviour, persona): (n, retained)}, "left_early": int}."""
    u, ev = prep["units"], prep["events"]
    observed = u.filter(u.days_observed >= horizon_days, u.in_population)
    # Landmark: a unit that exited before the window ended had no full window to act in.
    early = observed.days_to_exit.notnull() & (observed.days_to_exit < within_days)
    pop = observed.filter(~early)
    pop = pop.mutate(retained=(pop.days_to_exit.isnull() | (pop.days_to_exit > horizon_days)).ifelse(1, 0))
    left_early = engine.execute(observed.aggregate(n=early.ifelse(1, 0).sum())).to_pylist()[0]["n"] or 0
    pu = pop.select(_u=pop.unit_id, _start=pop.start_at)
    w = ev.join(pu, ev.unit_id == pu._u)
    age = _days(w.ts, w._start)
    w = w.filter(age >= 0, age < within_days)
    branches = []
    if behaviours is None:
        branches.append(w.select("unit_id", behaviour=ibis.literal("event:") + w.event))
    else:
        named = [b.name for b in behaviours if b.kind == "event"]
        if named:
            e = w.filter(w.event.isin(named))
            branches.append(e.select("unit_id", behaviour=ibis.literal("event:") + e.event))
        for b in behaviours:
            if b.rule is not None:
                f = w.filter(rule_expr(engine, w, b.rule))
                branches.append(f.select("unit_id", behaviour=ibis.literal(b.id)))
    did = (branches[0] if len(branches) == 1 else ibis.union(*branches, distinct=False)).distinct()
    pr = pop.select(_u2=pop.unit_id, persona=pop.persona, retained=pop.retained)
    dj = did.join(pr, did.unit_id == pr._u2)
    by_b = dj.group_by(["behaviour", "persona"]).aggregate(n=dj.count(), k=dj.retained.sum())
    by_p = pop.group_by("persona").aggregate(n=pop.count(), k=pop.retained.sum())
    return {
        "units": {r["persona"]: (int(r["n"]), int(r["k"])) for r in engine.execute(by_p).to_pylist()},
        "did": {(r["behaviour"], r["persona"]): (int(r["n"]), int(r["k"])) for r in engine.execute(by_b).to_pylist()},
        "left_early": int(left_early),
    }


# -- statistics --------------------------------------------------------------------------------------------


def katz_interval(k1: int, n1: int, k0: int, n0: int) -> tuple[float | None, float | None]:
    """95% interval for the risk ratio (k1/n1)/(k0/n0) on the log scale; None when a count is 0.
    80 of 100 against 60 of 100: ratio 4/3, se = sqrt(1/80 - 1/100 + 1/60 - 1/100) = 0.0957.

    >>> [round(x, 3) for x in katz_interval(80, 100, 60, 100)]
    [1.105, 1.609]
    """
    if min(k1, k0) == 0 or min(n1, n0) == 0:
        return None, None
    rr = (k1 / n1) / (k0 / n0)
    se = math.sqrt(max(1 / k1 - 1 / n1 + 1 / k0 - 1 / n0, 0.0))
    return rr * math.exp(-Z95 * se), rr * math.exp(Z95 * se)


def newcombe_interval(k1: int, n1: int, k0: int, n0: int) -> tuple[float | None, float | None]:
    """95% hybrid score interval for p1 - p0 (Newcombe 1998, method 10).

    >>> [round(x, 4) for x in newcombe_interval(80, 100, 60, 100)]
    [0.0731, 0.3185]
    """
    if min(n1, n0) == 0:
        return None, None
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson_interval(k1, n1)
    l0, u0 = wilson_interval(k0, n0)
    d = p1 - p0
    return d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)


def two_proportion_test(k1: int, n1: int, k0: int, n0: int) -> tuple[float, str]:
    """Two-sided p-value: pooled z-test, or Fisher's exact test when an expected count is below 5.

    >>> p, test = two_proportion_test(80, 100, 60, 100); round(p, 4), test
    (0.002, 'z')
    """
    n, k = n1 + n0, k1 + k0
    expected = [n1 * k / n, n1 * (n - k) / n, n0 * k / n, n0 * (n - k) / n] if n else [0]
    if min(expected) < 5:
        return float(stats.fisher_exact([[k1, n1 - k1], [k0, n0 - k0]])[1]), "fisher"
    p = k / n
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n0))
    z = (k1 / n1 - k0 / n0) / se
    return float(2 * stats.norm.sf(abs(z))), "z"


def bh_qvalues(p: list[float]) -> list[float]:
    """Benjamini-Hochberg q-values (step-up, monotone).

    >>> bh_qvalues([0.01, 0.04, 0.03, 0.2])
    [0.04, 0.05333333333333334, 0.05333333333333334, 0.2]
    """
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i], reverse=True)
    q, running = [0.0] * m, 1.0
    for rank, i in zip(range(m, 0, -1), order, strict=True):
        running = min(running, p[i] * m / rank)
        q[i] = min(running, 1.0)
    return q


def holm(p: list[float]) -> list[float]:
    """Holm step-down adjusted p-values.

    >>> holm([0.01, 0.04, 0.03, 0.2])
    [0.04, 0.09, 0.09, 0.2]
    """
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out, running = [0.0] * m, 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out


def compare(k1: int, n1: int, k0: int, n0: int) -> dict:
    """The 2x2 comparison of doers (k1 retained of n1) and non-doers (k0 of n0)."""
    r1 = k1 / n1 if n1 else None
    r0 = k0 / n0 if n0 else None
    lift = r1 / r0 if r1 is not None and r0 else None
    lo, hi = katz_interval(k1, n1, k0, n0)
    dlo, dhi = newcombe_interval(k1, n1, k0, n0)
    p, test = two_proportion_test(k1, n1, k0, n0) if n1 and n0 else (None, None)
    return {"units_with": n1, "retained_with": k1, "units_without": n0, "retained_without": k0,
            "retention_with": r1, "retention_without": r0, "lift": lift, "lift_ci": [lo, hi],
            "difference": None if r1 is None or r0 is None else r1 - r0, "difference_ci": [dlo, dhi],
            "p_value": p, "test": test}


def mantel_haenszel(tables: list[tuple[int, int, int, int]]) -> float | None:
    """Persona-adjusted risk ratio from per-stratum (k1, n1, k0, n0): sum(k1 n0 / N) / sum(k0 n1 / N)."""
    num = sum(k1 * n0 / (n1 + n0) for k1, n1, k0, n0 in tables if n1 + n0)
    den = sum(k0 * n1 / (n1 + n0) for k1, n1, k0, n0 in tables if n1 + n0)
    return num / den if den else None


def _persona_block(b_id: str, counts: dict, overall_lift: float | None,
                   lift_ci: list | None = None) -> tuple[dict, list[str], float | None, float]:
    per, tables, impact = {}, [], 0.0
    for persona, (n, k) in sorted(counts["units"].items()):
        n1, k1 = counts["did"].get((b_id, persona), (0, 0))
        n0, k0 = n - n1, k - k1
        tables.append((k1, n1, k0, n0))
        r1, r0 = (k1 / n1 if n1 else None), (k0 / n0 if n0 else None)
        if n1 and n0:
            impact += n0 * (r1 - r0)
        per[persona] = {"units": n, "reach": n1 / n if n else None, "units_with": n1, "units_without": n0,
                        "retention_with": r1, "retention_without": r0,
                        "lift": r1 / r0 if r1 is not None and r0 else None}
    flags = []
    # A persona's lift is compared only with enough doers, non-doers and units lost to say anything.
    comparable = {p: v for p, v in per.items() if v["units_with"] >= MIN_PERSONA_UNITS
                  and v["units_without"] >= MIN_PERSONA_UNITS and counts["units"][p][0] - counts["units"][p][1] >= 5}
    reaches = {p: v["reach"] for p, v in per.items() if v["units"] >= MIN_PERSONA_UNITS}
    if len(reaches) > 1 and max(reaches.values()) - min(reaches.values()) >= PERSONA_REACH_GAP:
        listed = ", ".join(f"{p} {100 * r:.0f}%" for p, r in sorted(reaches.items(), key=lambda x: x[1]))
        flags.append(f"reach varies by persona ({listed}): compare within persona")
    if overall_lift:
        for p, v in comparable.items():
            lp = v["lift"]
            if lp is None:
                continue
            if (lp - 1) * (overall_lift - 1) < 0:
                flags.append(f"within {p} the lift is {lp:.2f}, on the other side of 1 from {overall_lift:.2f}")
            elif abs(lp / overall_lift - 1) > PERSONA_LIFT_GAP:
                flags.append(f"within {p} the lift is {lp:.2f}, more than 50% from {overall_lift:.2f}")
    adjusted = mantel_haenszel(tables)
    # Only a lift whose interval excludes 1 has something for persona to explain.
    clear = lift_ci is not None and lift_ci[0] is not None and (lift_ci[0] > 1 or lift_ci[1] < 1)
    if overall_lift and adjusted and clear:
        share = 1 - math.log(adjusted) / math.log(overall_lift)
        if share > PERSONA_LIFT_GAP:
            flags.append(f"persona explains {min(share, 1.0):.0%} of the lift (adjusted for persona: {adjusted:.3f})")
    return per, flags, adjusted, impact


def summarise(counts: dict, behaviours: list[Behaviour], min_units: int, aliases: dict[str, list[str]] | None = None) -> list[dict]:
    """Per behaviour: reach, retention with and without, lift and difference with intervals, the test,
    per-persona lifts and flags; q-values (BH) and Holm over the ranked ones.

    Sorted by `impact`, the within-persona impact: the sum over personas of n0 (p1 - p0), retained units
    gained if each persona's non-doers retained like its doers (`impact_crude` ignores persona). Working
    within persona keeps a behaviour that merely marks a persona that churns less from topping the list."""
    n_all = sum(n for n, _ in counts["units"].values())
    k_all = sum(k for _, k in counts["units"].values())
    rows = []
    for b in behaviours:
        n1 = sum(n for (bid, _), (n, _) in counts["did"].items() if bid == b.id)
        k1 = sum(k for (bid, _), (_, k) in counts["did"].items() if bid == b.id)
        row = {"behaviour": b.id, "kind": b.kind, "name": b.name, "same_as": (aliases or {}).get(b.id, []),
               "reach": n1 / n_all if n_all else None, **compare(k1, n1, k_all - k1, n_all - n1)}
        row["ranked"] = n1 >= min_units and n_all - n1 >= min_units
        row["impact_crude"] = (n_all - n1) * row["difference"] if row["difference"] is not None else None
        row["by_persona"], row["flags"], row["lift_persona_adjusted"], row["impact"] = _persona_block(
            b.id, counts, row["lift"], row["lift_ci"])
        rows.append(row)
    ranked = [r for r in rows if r["ranked"]]
    for r, q, h in zip(ranked, bh_qvalues([r["p_value"] for r in ranked]), holm([r["p_value"] for r in ranked]), strict=True):
        r["q_value"], r["p_holm"] = q, h
    for r in rows:
        r.setdefault("q_value", None)
        r.setdefault("p_holm", None)
    rows.sort(key=lambda r: (not r["ranked"], -(r["impact"] or 0.0), r["behaviour"]))
    for i, r in enumerate(ranked and [r for r in rows if r["ranked"]], 1):
        r["rank"] = i
    return rows


def youden(row: dict) -> float | None:
    """Sensitivity + specificity - 1 of "did it" as a test for "retained"."""
    k1, n1, k0, n0 = row["retained_with"], row["units_with"], row["retained_without"], row["units_without"]
    kept, lost = k1 + k0, (n1 - k1) + (n0 - k0)
    if not kept or not lost:
        return None
    return k1 / kept - (n1 - k1) / lost


# -- the analysis ------------------------------------------------------------------------------------------


def moments_of_truth(engine: Engine, definition: JourneyDefinition, level: str | None = None, within_days: float = 14,
                     horizon_days: float = 90, min_units: int = 30, exclude: list[str] | None = None,
                     include: list[str] | None = None, population: str | None = None, alpha: float = 0.05,
                     period: Period = (None, None)) -> dict:
    """Rank early behaviours by how much retention goes with them; suggest an activation definition.

    population: "customers" (units that entered `milestones.customer_stage` by the end of the horizon; the
    default when the definition names one) or "started" (every unit with a start; one that never paid has
    not churned and counts as retained)."""
    level = level or definition.analysis.level
    population = population or ("customers" if definition.milestones.customer_stage else "started")
    if population not in POPULATIONS:
        raise OptionError(f"--population must be one of {', '.join(POPULATIONS)}, not {population!r}")
    if population == "customers" and not definition.milestones.customer_stage:
        raise OptionError("--population customers needs milestones.customer_stage in journeymap.yml")
    if level not in LEVELS:
        raise OptionError(f"--by must be one of {', '.join(LEVELS)}, not {level!r}")
    if not 0 < within_days <= horizon_days:
        raise OptionError(f"--within ({within_days:g} days) must be positive and at most --horizon ({horizon_days:g} days)")
    if min_units < 1:
        raise OptionError("--min-units must be at least 1")
    with engine.scope():
        prep = prepare(engine, definition, level, horizon_days, population, period)
        counts = window_counts(engine, prep, None, within_days, horizon_days)
        leaky = leaky_events(definition, prep["revenue_events"])
        # Outcome-defining events are listed as excluded whether or not anyone did them in the window.
        names = sorted({bid.removeprefix("event:") for bid, _ in counts["did"]} | set(leaky))
        found, aliases = candidates(definition, names)
        behaviours, excluded = split_leaky(definition, found, leaky, exclude, include)
        rule_based = [b for b in behaviours if b.rule is not None]
        if rule_based:
            counts["did"].update(window_counts(engine, prep, rule_based, within_days, horizon_days)["did"])
        rows = summarise(counts, behaviours, min_units, aliases)
        activation = _activation(engine, prep, rows, {b.id: b for b in behaviours}, horizon_days, min_units, alpha,
                                 within_days)
    n = sum(x for x, _ in counts["units"].values())
    k = sum(x for _, x in counts["units"].values())
    return {
        "level": level, "within_days": within_days, "horizon_days": horizon_days, "min_units": min_units,
        "population": population,
        "outcome": f"retained: no churn within {horizon_days:g} days of the start",
        "impact": "sum over personas of units_without x (retention_with - retention_without): retained units gained "
                  "if each persona's non-doers retained like its doers",
        "difference_ci_method": "Newcombe hybrid score (Wilson)", "lift_ci_method": "Katz log risk ratio",
        "test": "pooled two-proportion z-test; Fisher exact when an expected count < 5",
        "multiple_comparisons": "Benjamini-Hochberg q-values (and Holm) over the ranked behaviours",
        "units": {"started": prep["started"], "censored": prep["censored"], "not_customers": prep["not_customers"],
                  "left_before_window_end": counts["left_early"],
                  "analysed": n, "retained": k, "retention": k / n if n else None,
                  "by_persona": {p: {"units": a, "retained": b} for p, (a, b) in sorted(counts["units"].items())}},
        "moments": rows, "excluded": excluded, "activation": activation, "caveat": CAVEAT,
    }


PERSONA_DOUBTS = ("persona explains", "other side")
"""Flags that say the overall association does not hold within persona: the behaviour may just mark a persona."""


def _overlap(a: list | None, b: list | None) -> bool:
    """Whether two 95% intervals overlap (an interval with an unknown end overlaps everything)."""
    if not a or not b or None in (*a, *b):
        return True
    return a[0] <= b[1] and b[0] <= a[1]


def activation_choice(rows: list[dict], alpha: float) -> tuple[dict | None, str | None, list[str]]:
    """Which behaviour, if any, the data supports naming as the activation: (top row, None, [its id]) or
    (None, why not, the behaviours in question); (None, None, []) when no behaviour qualifies.

    Candidates: ranked behaviours with a positive difference and q < alpha, in rank order, preferring those
    without a within-persona flag (sign, size or "persona explains"). No name when the top candidate is
    mostly persona (a "persona explains" or "other side of 1" flag), or when the runner-up's 95% interval of
    the difference overlaps the top one's: the data cannot tell them apart."""
    good = [r for r in rows if r["ranked"] and (r["difference"] or 0) > 0 and r["q_value"] is not None and r["q_value"] < alpha]
    if not good:
        return None, None, []
    clean = [r for r in good if not any(("other side" in f or "more than 50%" in f or "persona explains" in f) for f in r["flags"])]
    top = (clean or good)[0]
    doubts = [f for f in top["flags"] if any(d in f for d in PERSONA_DOUBTS)]
    if doubts:
        return None, (f"{top['name']} goes with retention overall, but {'; '.join(doubts)}: it may only mark a persona, "
                      "so no activation is named; compare within persona"), [top["behaviour"]]
    runner = next((r for r in good if r is not top), None)
    if runner is not None and _overlap(top["difference_ci"], runner["difference_ci"]):
        def ci(r: dict) -> str:
            lo, hi = r["difference_ci"]
            return "?" if lo is None or hi is None else f"{lo:+.3f} to {hi:+.3f}"
        return None, (f"{top['name']} and {runner['name']} cannot be told apart: their 95% intervals of the retention "
                      f"difference overlap ({ci(top)}; {ci(runner)}), so no activation is named"), [top["behaviour"], runner["behaviour"]]
    return top, None, [top["behaviour"]]


def _activation(engine: Engine, prep: dict, rows: list[dict], behaviours: dict[str, Behaviour], horizon_days: float,
                min_units: int, alpha: float, within_days: float) -> dict | None:
    """The activation the data supports (`activation_choice`), worded with the window it was measured in
    (`within_days`); Youden's J of that behaviour for each window in ACTIVATION_WINDOWS (and `within_days`) is
    listed alongside, to judge another window by rerunning with it. When no behaviour can be named, the
    reason instead (`undecided`)."""
    top, undecided, candidates = activation_choice(rows, alpha)
    if top is None and undecided is None:
        return None
    rule = ("top-ranked behaviour with a positive difference and q < alpha, preferring one whose lift holds in every "
            "persona; none when the top one is mostly persona or the runner-up's 95% interval of the difference "
            "overlaps it; worded with the window it was measured in (--within)")
    if top is None:
        return {"behaviour": None, "name": None, "within_days": within_days, "definition": None, "rule": rule,
                "windows": [], "persona_flags": [], "undecided": undecided, "candidates": candidates}
    behaviour = behaviours[top["behaviour"]]
    windows = []
    for days in sorted({*(d for d in ACTIVATION_WINDOWS if d <= horizon_days), within_days}):
        c = window_counts(engine, prep, [behaviour], days, horizon_days)
        r = summarise(c, [behaviour], min_units)[0]
        windows.append({"within_days": days, "reach": r["reach"], "lift": r["lift"], "lift_ci": r["lift_ci"],
                        "difference": r["difference"], "youden_j": youden(r), "units": r["units_with"] + r["units_without"]})
    return {
        "behaviour": top["behaviour"], "name": top["name"], "within_days": within_days,
        "definition": f"activated if they do {top['name']} within {within_days:g} days of their start",
        "rule": rule, "windows": windows, "persona_flags": top["flags"], "undecided": None, "candidates": candidates,
    }
