"""Friction and delight moments, ranked by the customers and revenue at stake.

Friction comes from six detectors: stage drop-offs before the customer stage, units stuck in a stage
far longer than normal, high-effort support tickets, low-rated touchpoints (CSAT, CES, NPS by each
survey's own thresholds), negative themes in customer text, and failed-payment loops. Delight from
highly rated touchpoints, positive themes and fast progression. Every item says where it sits on the
map (stage, touchpoint), how many units it touches, the MRR at stake and the evidence.

MRR at stake = the sum, over the accounts touched, of the account's MRR when the moment first touched it
(the MRR stated by its last revenue event up to then, 0 after a churn; engine/revenue.py); `mrr_now` is
the same at the end of the data. `mrr_lost` adds the MRR of touched accounts that
churned after they were first touched. Both lists rank by impact: the mean of units and MRR at stake, each
as a share of the largest item's (`rank`). Definitions and worked example: docs/metrics/friction.md.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import Counter
from collections.abc import Iterable

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeymap.engine.annotate import journey_tables
from journeymap.engine.backends import Engine
from journeymap.engine.intervals import Period
from journeymap.engine.revenue import revenue_events
from journeymap.engine.rules import rule_expr
from journeymap.engine.stages import progress, stay_durations, time_in_stage_summaries
from journeymap.insights.voice.sentiment import score_texts
from journeymap.insights.voice.themes import find_themes
from journeymap.insights.voice.texts import representative_quotes, text_rows
from journeymap.journey.definition import HealthSignals, JourneyDefinition
from journeymap.journey.durations import format_duration

SLOW_P50_MULTIPLE = 2.0  # a visit is "stuck" beyond max(p90, 2 x median) of its stage's completed visits
FAST_P50_FRACTION = 0.5  # delight: a completed visit that moved on to a later stage in under half the median
MIN_ANSWERS = 5  # low or high answers a touchpoint needs before it is an item
MIN_SHARE = 0.05  # ... and their share of the touchpoint's answers of that kind
LOOP_DAYS, LOOP_FAILURES = 30, 2
CHURN_WINDOW_DAYS = 90  # churn this soon after a touch counts as following it
NEGATIVE_THEME, POSITIVE_THEME = -0.05, 0.2  # mean compound of a theme's texts


# -- who is touched, and the revenue at stake ---------------------------------------------------------

class Stakes:
    """MRR per account over time (revenue events), churn, and the account of each unit."""

    def __init__(self, engine: Engine, definition: JourneyDefinition, level: str, until: dt.datetime | None = None):
        self.until = until
        self.has_revenue = definition.revenue is not None
        self.account: dict[str, str] = {}
        self.history: dict[str, tuple[list[dt.datetime], list[float]]] = {}  # per account: event times, MRR after each
        self.churned_at: dict[str, dt.datetime] = {}
        self.lost: dict[str, float] = {}
        if level == "person":
            je = engine.table("journey_events")
            je = je.filter(je.person_id.notnull() & je.account_id.notnull())
            m = je.group_by(unit=je.person_id).aggregate(account=je.account_id.max())
            self.account = {r["unit"]: r["account"] for r in engine.execute(m).to_pylist()}
        if not self.has_revenue:
            return
        rev = revenue_events(engine, definition)
        rows = engine.execute(rev.order_by(["unit_id", "ts", "seq"]).select("unit_id", "ts", "mrr", "churn")).to_pylist()
        for r in rows:
            times, values = self.history.setdefault(r["unit_id"], ([], []))
            before = values[-1] if values else 0.0
            times.append(r["ts"])
            values.append(float(r["mrr"] or 0.0))
            if r["churn"]:
                self.churned_at[r["unit_id"]], self.lost[r["unit_id"]] = r["ts"], before
            else:
                self.churned_at.pop(r["unit_id"], None)
                self.lost.pop(r["unit_id"], None)

    def mrr_at(self, account: str, ts: dt.datetime | None) -> float:
        """The account's MRR after its last revenue event at or before `ts` (None: the latest)."""
        times, values = self.history.get(account, ((), ()))
        if not times:
            return 0.0
        i = len(times) if ts is None else bisect.bisect_right(times, ts)
        return values[i - 1] if i else 0.0

    def base_loss(self) -> float:
        """Revenue churn over CHURN_WINDOW_DAYS in the whole data: all MRR lost to churn / MRR-days in force
        x the window. What any group of paying accounts loses in that window, friction or not."""
        mrr_days = 0.0
        for times, values in self.history.values():
            ends = [*times[1:], max(self.until or times[-1], times[-1])]
            mrr_days += sum(v * (e - t).total_seconds() / 86400 for t, e, v in zip(times, ends, values, strict=True))
        return sum(self.lost.values()) / mrr_days * CHURN_WINDOW_DAYS if mrr_days else 0.0

    def of(self, touches: Iterable[tuple[str, dt.datetime | None]]) -> dict:
        """Stakes of a moment from its touches, (unit, time) pairs: units, accounts; mrr_at_stake (MRR of
        each touched account at its first touch), mrr_now (its current MRR), paying_accounts (still paying);
        churned_after and mrr_lost (accounts that churned within CHURN_WINDOW_DAYS after a touch, and the MRR
        in force before that churn)."""
        units: set[str] = set()
        times: dict[str, list[dt.datetime | None]] = {}
        for unit, ts in touches:
            units.add(unit)
            acct = self.account.get(unit) if self.account else unit
            if acct is not None:
                times.setdefault(acct, []).append(ts)
        first = {a: min((t for t in ts if t is not None), default=None) for a, ts in times.items()}
        window = dt.timedelta(days=CHURN_WINDOW_DAYS)
        churned = [a for a, ts in times.items() if a in self.churned_at
                   and any(t is None or t <= self.churned_at[a] <= t + window for t in ts)]
        money = self.has_revenue
        return {
            "units": len(units), "accounts": len(first),
            # summed in account order: a float sum depends on its order, and the touches come in the engine's
            "mrr_at_stake": round(sum(self.mrr_at(a, first[a]) for a in sorted(first)), 2) if money else None,
            "mrr_now": round(sum(self.mrr_at(a, None) for a in sorted(first)), 2) if money else None,
            "paying_accounts": sum(self.mrr_at(a, None) > 0 for a in first),
            "churned_after": len(churned),
            "mrr_lost": round(sum(self.lost.get(a, 0.0) for a in sorted(churned)), 2) if money else None,
        }


def _touches(rows: Iterable[dict], ts: str = "ts") -> list[tuple[str, dt.datetime | None]]:
    return [(r["unit_id"], r.get(ts)) for r in rows]


def _mode(values: Iterable[str | None]) -> str | None:
    """The most common value; a tie goes to the smallest value, so the answer never depends on the order in
    which the engine returned the rows (DuckDB and Spark return unordered rows in different orders).

    >>> _mode(["retention", "adoption", None, "adoption", "retention"])
    'adoption'
    """
    c = Counter(v for v in values if v is not None)
    return min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] if c else None


def _item(kind: str, title: str, stage: str | None, touchpoint: str | None, stakes: dict, sentence: str,
          quotes: list[str] | None = None, **numbers) -> dict:
    return {"kind": kind, "title": title, "stage": stage, "touchpoint": touchpoint, **stakes,
            "evidence": {"sentence": sentence, **numbers, **({"quotes": quotes} if quotes is not None else {})}}


# -- detectors ------------------------------------------------------------------------------------------

def _before_customer(definition: JourneyDefinition) -> list[str]:
    """Stages where stalling is friction: the progression up to (not including) the customer stage."""
    prog = [s.id for s in definition.progression]
    cs = definition.milestones.customer_stage
    return prog[:prog.index(cs)] if cs in prog else prog[:-1]


def dropped_units(engine: Engine, v, definition: JourneyDefinition, stages: list[str]) -> pa.Table:
    """The units that reached one of `stages` and never moved on to a later one (the funnel's "dropped"):
    unit_id, stage, ts (when they first entered it) and `reached`, that stage's count of units. One query over
    engine.stages.progress; only the dropped units come back."""
    idx = {s.id: i for i, s in enumerate(definition.stages)}
    per = progress(v, definition)
    per = per.mutate(**{f"_reached_{idx[s]}": per[f"first_{idx[s]}"].count().over(ibis.window()) for s in stages})
    return engine.execute(ibis.union(*[
        per.filter(per[f"first_{idx[s]}"].notnull() & ~per[f"moved_{idx[s]}"]).select(
            "unit_id", stage=ibis.literal(s), ts=per[f"entered_{idx[s]}"], reached=per[f"_reached_{idx[s]}"])
        for s in stages], distinct=False))


def drop_offs(engine: Engine, v, definition: JourneyDefinition, stakes: Stakes) -> list[dict]:
    """Units that reached a stage before the customer stage and never moved on to a later one."""
    stages = _before_customer(definition)
    if not stages:
        return []
    gone = dropped_units(engine, v, definition, stages)
    names = {s.id: s.name for s in definition.stages}
    out = []
    for sid in stages:
        dropped = gone.filter(pc.equal(gone.column("stage"), sid))
        if not dropped.num_rows:
            continue
        reached = dropped.column("reached")[0].as_py()
        share = dropped.num_rows / reached
        touches = list(zip(dropped.column("unit_id").to_pylist(), dropped.column("ts").to_pylist()))
        out.append(_item("drop_off", f"{100 * share:.0f}% drop in {names[sid]}", sid, None, stakes.of(touches),
                         f"{dropped.num_rows:,} of {reached:,} units that reached {names[sid]} never moved on to a later stage.",
                         reached=reached, dropped=dropped.num_rows, drop_rate=round(share, 4)))
    return out


def slow_and_fast(engine: Engine, v, definition: JourneyDefinition, stakes: Stakes, until,
                  time_in_stage: dict[str, dict] | None = None) -> tuple[list[dict], list[dict]]:
    """Stuck: a visit on the way in (open or closed) longer than max(p90, 2 x p50) of the stage's time in
    stage, in a stage before the customer stage. Fast: a completed visit that moved on to a later stage in
    under half the median (delight).

    p50 and p90 are the map's time in stage (Kaplan-Meier over every visit to the stage, open visits
    censored: engine.survival.time_in_stage_summary), so a card never cites a median the map's metrics
    lane does not show. Where censoring hides the median, there is no item; where it hides p90, the
    threshold is 2 x p50.

    The engine does the work: Kaplan-Meier reads each stage's distinct (seconds, observed) with their counts,
    and only the stuck and fast visits themselves come back (their units and times are the stakes); a map of
    a million events has about as many visits, which fetched one by one took most of the map's time.
    `time_in_stage`: those summaries per stage (engine.stages.time_in_stage_summaries, the map's "all" view),
    when the caller has computed them from the same visits; otherwise they are computed here."""
    names = {s.id: s.name for s in definition.stages}
    order = {s.id: i for i, s in enumerate(definition.stages)}
    ahead = {s.id for s in definition.stages if not s.terminal or s.kind == "won"}
    stages = _before_customer(definition)
    d, _ = stay_durations(v, definition, until)
    # Only the way in counts: a customer who comes back to an earlier stage is not stalling in it.
    customer = d.filter(d.stage == definition.milestones.customer_stage)
    since = customer.group_by(_u=customer.unit_id).aggregate(_since=customer.entered_at.min())
    every = d.filter(d.stage.isin(stages))
    every = every.left_join(since, every.unit_id == since._u).select(
        "unit_id", "stage", "entered_at", "seconds", "observed", "next_stage", "_since")
    if time_in_stage is None:
        time_in_stage = {s: t for (s, _), t in time_in_stage_summaries(engine, v, definition, until, "",
                                                                       by_persona=False).items()}
    limits, quick_under = {}, {}
    p50s, p90s = {}, {}
    for sid in stages:
        tis = time_in_stage.get(sid)
        if tis is None or tis["n"] - tis["censored"] < 10:  # fewer than 10 visits seen to end
            continue
        p50, p90 = tis["p50_seconds"], tis["p90_seconds"]
        if p50 is None:
            continue
        p50s[sid], p90s[sid] = p50, p90
        limits[sid] = max(p90 or 0.0, SLOW_P50_MULTIPLE * p50)
        quick_under[sid] = FAST_P50_FRACTION * p50
    if not limits:
        return [], []
    way_in = every._since.isnull() | (every.entered_at < every._since)
    stuck_at = ibis.or_(*[(every.stage == sid) & (every.seconds > limit) for sid, limit in limits.items() if limit > 0],
                        ibis.literal(False))
    quick_at = ibis.or_(*[(every.stage == sid) & every.observed & (every.seconds < quick_under[sid])
                          & every.next_stage.isin([n for n in ahead if order[n] > order[sid]] or [""])
                          for sid in limits if p50s[sid] > 0], ibis.literal(False))
    picked = every.filter(way_in & (stuck_at | quick_at)).mutate(stuck=stuck_at)
    visits = engine.execute(picked.select("unit_id", "stage", "entered_at", "observed", "stuck")).to_pylist()
    by_stage: dict[tuple[str, bool], list[dict]] = {}  # (stage, stuck) -> visits, in one pass over them
    for r in visits:
        by_stage.setdefault((r["stage"], bool(r["stuck"])), []).append(r)
    slow, fast = [], []
    for sid, limit in limits.items():
        p50, p90 = p50s[sid], p90s[sid]
        stuck = by_stage.get((sid, True), [])
        shown_p90 = format_duration(p90) if p90 is not None else "unknown (too many visits still open)"
        if stuck and limit > 0:
            slow.append(_item(
                "slow_stage", f"Stuck in {names[sid]} beyond {format_duration(limit)}", sid, None,
                stakes.of(_touches(stuck, "entered_at")),
                f"{len({d['unit_id'] for d in stuck}):,} units spent longer than {format_duration(limit)} in {names[sid]} "
                f"(median {format_duration(p50)}, p90 {shown_p90}); {sum(not d['observed'] for d in stuck):,} "
                "visits are still open.", p50_seconds=p50, p90_seconds=p90, threshold_seconds=limit, visits=len(stuck)))
        quick = by_stage.get((sid, False), [])
        if quick and p50 > 0:
            fast.append(_item(
                "fast_progression", f"Fast through {names[sid]}: under {format_duration(FAST_P50_FRACTION * p50)}", sid, None,
                stakes.of(_touches(quick, "entered_at")),
                f"{len({d['unit_id'] for d in quick}):,} units moved on from {names[sid]} in under half the median "
                f"({format_duration(p50)}).", p50_seconds=p50, visits=len(quick)))
    return slow, fast


def survey_moments(engine: Engine, ac, definition: JourneyDefinition, stakes: Stakes) -> tuple[list[dict], list[dict]]:
    """Per touchpoint and survey kind: units with low answers (NPS detractors, CSAT below satisfied_min,
    CES at 5+ on 1-7, i.e. in the scale's top third) or with high ones (promoters, CSAT 5, CES 1-2),
    whichever are more: a touchpoint is friction or delight for one survey kind, not both."""
    from journeymap.engine.metrics import survey_answers

    tp_names = {t.id: t.name for t in definition.touchpoints}
    pooled = []
    for s in definition.surveys:
        ans = survey_answers(engine, ac, s)
        lo, hi = s.bounds
        third = (hi - lo) / 3
        low = {"nps": ans.detractor == 1, "csat": ans.satisfied == 0, "ces": ans.score >= hi - third}[s.kind]
        high = {"nps": ans.promoter == 1, "csat": ans.score >= hi, "ces": ans.score <= lo + third - 1e-9}[s.kind]
        pooled.append(ans.select("unit_id", "ts", "touchpoint", "score", stage=ibis.coalesce(ans.stage_before, ans.current_stage),
                                 kind=ibis.literal(s.kind), low=low, high=high))
    if not pooled:
        return [], []
    u = pooled[0] if len(pooled) == 1 else ibis.union(*pooled, distinct=False)
    rows = engine.execute(u.filter(u.touchpoint.notnull())).to_pylist()
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["touchpoint"], r["kind"]), []).append(r)
    bad, good = [], []
    for (tp, kind), answers in sorted(groups.items()):
        n = len(answers)
        mean = float(np.mean([a["score"] for a in answers]))
        # One touchpoint's rating of one kind is one fact: it goes on the side with more answers (for NPS,
        # the sign of the score), never on both lists. A tie goes on neither.
        lows, highs = sum(bool(a["low"]) for a in answers), sum(bool(a["high"]) for a in answers)
        for side, out, word in (("low", bad, {"nps": "detractors", "csat": "unsatisfied", "ces": "high effort"}),
                                ("high", good, {"nps": "promoters", "csat": "very satisfied", "ces": "very easy"})):
            if (lows <= highs) if side == "low" else (highs <= lows):
                continue
            hits = [a for a in answers if a[side]]
            if len(hits) < MIN_ANSWERS or len(hits) / n < MIN_SHARE:
                continue
            label = f"{tp_names.get(tp, tp)}: {len(hits) / n:.0%} {word[kind]} ({kind.upper()})"
            out.append(_item(
                "low_rated_touchpoint" if side == "low" else "high_rated_touchpoint", label, _mode(a["stage"] for a in hits), tp,
                stakes.of(_touches(hits)),
                f"{len(hits):,} of {n:,} {kind.upper()} answers at {tp_names.get(tp, tp)} are {word[kind]}; mean score {mean:.2f}.",
                answers=n, hits=len(hits), share=round(len(hits) / n, 4), mean_score=round(mean, 4), survey=kind))
    return bad, good


def high_effort_tickets(engine: Engine, ac, signals: HealthSignals, stakes: Stakes) -> list[dict]:
    """Units with a solved ticket whose effort score is at or above `health.signals.high_effort`."""
    t = ac.filter(rule_expr(engine, ac, signals.ticket_solved))
    t = t.mutate(_effort=engine.json_get(t.properties, signals.effort).try_cast("float64"))
    t = t.filter(t._effort.notnull())
    rows = engine.execute(t.select("unit_id", "ts", "touchpoint", "_effort",
                                   stage=ibis.coalesce(t.stage_before, t.current_stage))).to_pylist()
    hits = [r for r in rows if r["_effort"] >= signals.high_effort]
    if not hits:
        return []
    everyone = stakes.of(_touches(rows))
    touched = stakes.of(_touches(hits))
    rest_acc = everyone["accounts"] - touched["accounts"]
    rest_churn = everyone["churned_after"] - touched["churned_after"]
    rate = touched["churned_after"] / touched["accounts"] if touched["accounts"] else 0.0
    other = rest_churn / rest_acc if rest_acc > 0 else None
    sentence = (f"{len(hits):,} of {len(rows):,} solved tickets with an effort score cost the customer "
                f"{signals.high_effort:g}+ of 7; {touched['churned_after']:,} of {touched['accounts']:,} accounts churned within {CHURN_WINDOW_DAYS} days of one"
                + (f" ({rate:.0%}, against {other:.0%} of accounts whose tickets were easier)." if other is not None else "."))
    return [_item("high_effort_ticket", "High-effort support tickets", _mode(r["stage"] for r in hits),
                  _mode(r["touchpoint"] for r in hits), touched, sentence, tickets=len(hits), rated_tickets=len(rows),
                  churn_rate_after=round(rate, 4), churn_rate_other=round(other, 4) if other is not None else None)]


def failed_payment_loops(engine: Engine, ac, signals: HealthSignals, stakes: Stakes) -> list[dict]:
    """Units with >= LOOP_FAILURES failed payments within LOOP_DAYS days (`health.signals.failed_payment`)."""
    f = ac.filter(rule_expr(engine, ac, signals.failed_payment))
    rows = engine.execute(f.select("unit_id", "ts", "seq", "touchpoint", stage=ibis.coalesce(f.stage_before, f.current_stage))
                          .order_by(["unit_id", "ts", "seq"])).to_pylist()  # seq: ties in ts in input order
    by_unit: dict[str, list[dict]] = {}
    for r in rows:
        by_unit.setdefault(r["unit_id"], []).append(r)
    window = dt.timedelta(days=LOOP_DAYS)
    loops: dict[str, dict] = {}
    for unit, fails in by_unit.items():
        for i in range(len(fails) - LOOP_FAILURES + 1):
            if fails[i + LOOP_FAILURES - 1]["ts"] - fails[i]["ts"] <= window:
                loops[unit] = fails[i]
                break
    if not loops:
        return []
    touched = stakes.of((u, r["ts"]) for u, r in loops.items())
    in_loops = sum(len(by_unit[u]) for u in loops)
    sentence = (f"{len(loops):,} units had {LOOP_FAILURES}+ failed payments within {LOOP_DAYS} days ({in_loops:,} failures); "
                f"{touched['churned_after']:,} of their {touched['accounts']:,} accounts churned within {CHURN_WINDOW_DAYS} days, "
                f"{touched['paying_accounts']:,} still pay.")
    return [_item("failed_payment_loop", "Failed-payment loops", _mode(r["stage"] for r in loops.values()),
                  _mode(r["touchpoint"] for r in loops.values()), touched, sentence, failures=in_loops,
                  units_with_failures=len(by_unit))]


def theme_moments(rows, stakes: Stakes, n_themes: int | None, seed: int) -> tuple[list[dict], list[dict]]:
    """Themes whose texts' mean compound is negative (friction: units who wrote a negative text in it) or
    clearly positive (delight: units who wrote a positive one)."""
    if rows.num_rows == 0:
        return [], []
    d = rows.to_pylist()
    texts = [r["text"] for r in d]
    compound = score_texts(texts).compound
    th = find_themes(texts, n_themes=n_themes, seed=seed)
    bad, good = [], []
    for t in th.themes:
        idx = np.flatnonzero(th.assignment == t.index)
        mean = float(np.nanmean(compound[idx]))
        if mean <= NEGATIVE_THEME:
            side, out, keep = "negative", bad, [i for i in idx if compound[i] <= -0.05]
        elif mean >= POSITIVE_THEME:
            side, out, keep = "positive", good, [i for i in idx if compound[i] >= 0.05]
        else:
            continue
        if not keep:
            continue
        quotes = representative_quotes([texts[i] for i in keep], th.weight[keep])
        out.append(_item(
            "negative_theme" if side == "negative" else "positive_theme", f"'{t.label}' ({side})",
            _mode(d[i]["stage"] for i in keep), _mode(d[i]["touchpoint"] for i in keep),
            stakes.of(_touches(d[i] for i in keep)),
            f"{len(idx):,} texts ({t.share:.0%} of all) are about '{t.label}', mean compound {mean:+.2f}; "
            f"{len(keep):,} of them are {side}.", quotes, texts=int(len(idx)), mean_compound=round(mean, 4),
            terms=[term for term, _ in t.terms[:6]]))
    return bad, good


# -- the report -------------------------------------------------------------------------------------

def rank(items: list[dict], base_loss: float | None = None) -> list[dict]:
    """Order by impact: the mean of shares of the largest item's value of units touched, MRR at stake and,
    when `base_loss` is given (friction), excess MRR lost = MRR lost within CHURN_WINDOW_DAYS of the touch
    beyond what the data's revenue churn over that window takes of the MRR at stake (base_loss x mrr_at_stake).
    Writes `impact` and `rank`."""
    keys = ["units", "mrr_at_stake"]
    if base_loss is not None:
        keys.append("excess_mrr_lost")
        for i in items:
            i["excess_mrr_lost"] = (round(max(0.0, (i["mrr_lost"] or 0.0) - base_loss * (i["mrr_at_stake"] or 0.0)), 2)
                                    if i["mrr_lost"] is not None else None)
    tops = {k: max((i[k] or 0.0 for i in items), default=0.0) or 1.0 for k in keys}
    for i in items:
        i["impact"] = round(sum((i[k] or 0.0) / top for k, top in tops.items()) / len(keys), 4)
    items.sort(key=lambda i: (-i["impact"], -i["units"], i["title"]))
    for n, i in enumerate(items, start=1):
        i["rank"] = n
    return items


def friction(engine: Engine, definition: JourneyDefinition, level: str | None = None, n_themes: int | None = None,
             seed: int = 0, period: Period = (None, None), texts=None,
             time_in_stage: dict[str, dict] | None = None) -> dict:
    """{"friction": [...], "delight": [...]} ranked by revenue at stake, then units. JSON-ready.

    `period` (first and last day, inclusive): only the events inside it count, as in the map of that period.
    `texts`: the customer texts of that level and period (voice.texts.text_rows), when the caller has them.
    `time_in_stage`: the map's time in stage per stage for all units of that level and period, when the caller
    has computed it (slow_and_fast)."""
    level = level or definition.analysis.level
    signals = definition.health.signals if definition.health else HealthSignals()
    with engine.scope():
        a, v, ac = journey_tables(engine, definition, level, period)
        until = engine.execute(a.aggregate(t=a.ts.max())).column("t")[0].as_py()
        stakes = Stakes(engine, definition, level, until)
        items = drop_offs(engine, v, definition, stakes)
        slow, fast = slow_and_fast(engine, v, definition, stakes, until, time_in_stage) if until else ([], [])
        low, high = survey_moments(engine, ac, definition, stakes)
        tickets = high_effort_tickets(engine, ac, signals, stakes)
        loops = failed_payment_loops(engine, ac, signals, stakes)
        texts = text_rows(engine, definition, level, ac=ac) if texts is None else texts
    neg, pos = theme_moments(texts, stakes, n_themes, seed)
    bad = rank(items + slow + low + tickets + loops + neg, stakes.base_loss())
    good = rank(fast + high + pos)
    return {"level": level, "as_of": until.isoformat() if until else None, "has_revenue": stakes.has_revenue,
            "churn_window_days": CHURN_WINDOW_DAYS, "base_loss": round(stakes.base_loss(), 4), "friction": bad, "delight": good}
