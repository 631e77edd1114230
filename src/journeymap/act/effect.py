"""A playbook's measured effect: treated against held-out entries (docs/playbooks.md, "Measured effect").

Computed when data arrives, not when someone looks: every evaluation (act.evaluate) stores each playbook's
effect in `act_effects` (one JSON row per playbook), in the evaluation's transaction; the pages, the map and
`journeymap act show` read that row.

Measured entries: the live ones (`act_entries.live`: at or after the watermark, so sent or held out from being
sent; history never counts, nor a backtest, which stores nothing) whose window, `goal.within` after the entry,
has closed by the data's time. Per entry: the goal was reached (the run ended with the goal within the window),
the unit churned (entered a churn stage within the window), and its MRR change (MRR at the window's end less
MRR at entry, the latest revenue event at or before each; 0 without one). Treated = not held out.

  goal rate, churn rate  difference treated − holdout, 95% Newcombe hybrid score interval (Wilson per side)
  MRR change             difference of means, 95% Welch interval

"Too small to tell" when a side has fewer than MIN_GROUP measured entries or the interval of the goal-rate
difference is wider than ±DETECT; the note then says how many entries (and of them held out) a two-sided 5% test
needs for 80% power to tell a DETECT change from the observed base rate (Fleiss, no continuity correction).
Entries, not units, are counted: a unit that enters twice counts twice, and the intervals treat entries as
independent (the holdout is per unit, so a re-entering unit stays on its side).
"""

from __future__ import annotations

import datetime as dt
import json
import math

from scipy import stats

from journeymap.act.triggers import Context, q, revenue_sql
from journeymap.engine.backends import duckdb_engine
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.durations import parse_duration
from journeymap.journey.playbooks import Playbook

Z = 1.959963984540054
"""The normal quantile of a 95% two-sided interval."""
MIN_GROUP = 30
"""Measured entries each side (treated, held out) needs before the page states an effect."""
DETECT = 0.10
"""The change in the goal rate (10 points) the 95% interval must be able to tell: a wider one is too small."""
POWER = 0.8
VOLUME_DAYS = 30

DDL = """
CREATE TABLE IF NOT EXISTS act_effects (
    playbook VARCHAR PRIMARY KEY,
    computed_at TIMESTAMP NOT NULL,    -- wall clock of the evaluation that computed it
    data_through TIMESTAMP,            -- the data's time then: windows closed by it are measured
    effect JSON NOT NULL               -- act.effect.measure: volume, goal, churn, mrr
);
"""


def wilson(x: int, n: int, z: float = Z) -> tuple[float, float]:
    """The Wilson score interval of x successes in n.

    >>> tuple(round(v, 4) for v in wilson(8, 40))
    (0.105, 0.3476)
    """
    if n == 0:
        return 0.0, 1.0
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float, float]:
    """p1 − p2 and its Newcombe hybrid score interval (Newcombe 1998, method 10): from the Wilson intervals of
    each side, d − √((p1 − l1)² + (u2 − p2)²) to d + √((u1 − p1)² + (p2 − l2)²).

    >>> tuple(round(v, 4) for v in newcombe(30, 100, 8, 40))
    (0.1, -0.0684, 0.235)
    """
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson(x1, n1), wilson(x2, n2)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def welch(a: list[float], b: list[float]) -> tuple[float, float | None, float | None]:
    """mean(a) − mean(b) and its 95% Welch interval (None when a side has fewer than 2 values or no variance)."""
    n1, n2 = len(a), len(b)
    m1, m2 = sum(a) / n1, sum(b) / n2
    if n1 < 2 or n2 < 2:
        return m1 - m2, None, None
    v1 = sum((x - m1) ** 2 for x in a) / (n1 - 1)
    v2 = sum((x - m2) ** 2 for x in b) / (n2 - 1)
    se2 = v1 / n1 + v2 / n2
    if se2 == 0:
        return m1 - m2, None, None
    df = se2 ** 2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(se2)
    return m1 - m2, m1 - m2 - half, m1 - m2 + half


def entries_needed(base: float, holdout: float, detect: float = DETECT, power: float = POWER) -> tuple[int, int]:
    """(entries, of them held out) a two-sided 5% test needs to tell the rate `base` (the holdout's) from
    base ± detect with `power`, when a share `holdout` of entries is held out (Fleiss 1981, no continuity
    correction).

    >>> entries_needed(0.2, 0.2)
    (945, 189)
    """
    p0 = base
    p1 = p0 + detect if p0 + detect <= 1 else p0 - detect
    k = (1 - holdout) / holdout  # treated entries per held-out one
    pbar = (k * p1 + p0) / (k + 1)
    zb = stats.norm.ppf(power)
    n0 = (Z * math.sqrt(pbar * (1 - pbar) * (1 + 1 / k)) + zb * math.sqrt(p1 * (1 - p1) / k + p0 * (1 - p0))) ** 2
    n0 = math.ceil(n0 / detect ** 2)
    return math.ceil(n0 * (1 + k)), n0


def proportion(x_t: int, n_t: int, x_h: int, n_h: int, holdout: float, what: str) -> dict:
    """One rate, treated against held out: the rates, the difference with its interval, and the verdict."""
    out = {"treated": {"n": n_t, "reached": x_t, "rate": x_t / n_t if n_t else None},
           "holdout": {"n": n_h, "reached": x_h, "rate": x_h / n_h if n_h else None},
           "difference": None, "ci_low": None, "ci_high": None, "too_small": True, "needed": None}
    if n_t and n_h:
        out["difference"], out["ci_low"], out["ci_high"] = newcombe(x_t, n_t, x_h, n_h)
    wide = out["difference"] is None or (out["ci_high"] - out["ci_low"]) / 2 > DETECT
    if min(n_t, n_h) >= MIN_GROUP and not wide:
        out["too_small"] = False
        out["verdict"] = ("higher" if out["ci_low"] > 0 else "lower" if out["ci_high"] < 0 else "no detectable change")
        out["text"] = _text(out, what)
        return out
    base = (x_h / n_h if n_h else x_t / n_t if n_t else 0.5)
    if holdout > 0:
        total, held = entries_needed(base, holdout)
        out["needed"] = {"entries": total, "holdout": held, "base_rate": base}
        more = (f"about {total:,} measured entries ({held:,} held out) tell a {DETECT:.0%} change in the {what} "
                f"from none at a base rate of {base:.0%}")
    else:
        more = "add a holdout (holdout: 0.1) to measure the effect"
    out["verdict"] = "too small to tell"
    out["text"] = (f"too small to tell: {n_t:,} treated and {n_h:,} held-out entries measured "
                   f"(each side needs {MIN_GROUP} and an interval within ±{DETECT:.0%}); {more}")
    return out


def _text(out: dict, what: str) -> str:
    pts = lambda v: f"{100 * v:+.1f}"  # noqa: E731
    return (f"{what} {100 * out['treated']['rate']:.1f}% treated vs {100 * out['holdout']['rate']:.1f}% held out: "
            f"{pts(out['difference'])} points (95% CI {pts(out['ci_low'])} to {pts(out['ci_high'])}): "
            f"{out['verdict']}")


def entry_outcomes_sql(con, definition: JourneyDefinition, playbook: Playbook, now: dt.datetime,
                       watermark: dt.datetime | None) -> str:
    """SQL: one row per measured entry: unit_id, entry, entered_at, holdout, goal, churned, mrr_change."""
    level = definition.playbook_level(playbook)
    ctx = Context(duckdb_engine(con), definition, level, now)
    window = f"to_microseconds({int(parse_duration(playbook.goal.within) * 1e6)}::BIGINT)"
    live = f"coalesce(live, entered_at >= {q(watermark)})" if watermark else "coalesce(live, FALSE)"
    churn = [s.id for s in definition.stages if s.kind == "churn"]
    churned = (f"EXISTS (SELECT 1 FROM {ctx.t['visits']} v WHERE v.unit_id = e.unit_id AND v.stage IN "
               f"({', '.join(q(s) for s in churn)}) AND v.entered_at > e.entered_at AND v.entered_at <= e.window_end)"
               if churn else "NULL::BOOLEAN")
    base = f"""
        SELECT unit_id, entry, entered_at, entered_at + {window} AS window_end, holdout,
               coalesce(exit_reason = 'goal' AND exited_at <= entered_at + {window}, FALSE) AS goal
        FROM act_entries WHERE playbook = {q(playbook.id)} AND {live} AND entered_at + {window} <= {q(now)}"""
    revenue = revenue_sql(ctx)
    if revenue is None:
        return f"SELECT e.unit_id, e.entry, e.entered_at, e.holdout, e.goal, {churned} AS churned, " \
               f"NULL::DOUBLE AS mrr_change FROM ({base}) e"
    return f"""
        WITH e AS ({base}), r AS MATERIALIZED ({revenue}),
        s AS (SELECT e.*, coalesce(r._mrr, 0) AS mrr_start FROM e ASOF LEFT JOIN r
              ON e.unit_id = r.unit_id AND e.entered_at >= r.ts),
        f AS (SELECT s.*, coalesce(r._mrr, 0) AS mrr_end FROM s ASOF LEFT JOIN r
              ON s.unit_id = r.unit_id AND s.window_end >= r.ts)
        SELECT e.unit_id, e.entry, e.entered_at, e.holdout, e.goal, {churned} AS churned,
               e.mrr_end - e.mrr_start AS mrr_change FROM f e"""


def measure(con, definition: JourneyDefinition, playbook: Playbook, now: dt.datetime | None,
            watermark: dt.datetime | None) -> dict:
    """The playbook's volume and effect at data time `now` (act_effects.effect)."""
    volume = _volume(con, playbook, now)
    out = {"playbook": playbook.id, "level": definition.playbook_level(playbook), "data_through": now,
           "watermark": watermark, "holdout_share": playbook.holdout, "volume": volume,
           "window": playbook.goal.within if playbook.goal else None, "measured": 0,
           "goal": None, "churn": None, "mrr": None, "note": None}
    if playbook.goal is None:
        out["note"] = "no goal: add goal: (an event or a stage, and within:) to measure the play's effect"
        return out
    if now is None:
        out["note"] = "no data yet"
        return out
    rows = con.execute(entry_outcomes_sql(con, definition, playbook, now, watermark)).fetchall()
    treated = [r for r in rows if not r[3]]
    held = [r for r in rows if r[3]]
    out["measured"] = len(rows)
    out["goal"] = proportion(sum(r[4] for r in treated), len(treated), sum(r[4] for r in held), len(held),
                             playbook.holdout, "goal rate")
    if any(s.kind == "churn" for s in definition.stages):
        out["churn"] = proportion(sum(r[5] for r in treated), len(treated), sum(r[5] for r in held), len(held),
                                  playbook.holdout, "churn rate")
    if definition.revenue is not None and treated and held:
        a, b = [r[6] for r in treated], [r[6] for r in held]
        d, lo, hi = welch(a, b)
        out["mrr"] = {"treated_mean": sum(a) / len(a), "holdout_mean": sum(b) / len(b), "difference": d,
                      "ci_low": lo, "ci_high": hi, "too_small": min(len(a), len(b)) < MIN_GROUP or lo is None}
    if playbook.holdout <= 0:
        out["note"] = "no holdout: add holdout: 0.1 to the playbook to measure its effect against held-out entries"
    elif not rows:
        out["note"] = (f"no measured entries yet: an entry counts once its {playbook.goal.within} window has closed "
                       "and it entered at or after the watermark (history is not measured)")
    return out


def _volume(con, playbook: Playbook, now: dt.datetime | None) -> dict:
    since = (now - dt.timedelta(days=VOLUME_DAYS)) if now else None
    total, live, sent, held, recent = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE live), count(*) FILTER (WHERE sent),
               count(*) FILTER (WHERE live AND holdout), count(*) FILTER (WHERE entered_at > {q(since)})
        FROM act_entries WHERE playbook = {q(playbook.id)}""").fetchone()
    return {"entries": total, "live": live, "sent": sent, "held_out": held, f"last_{VOLUME_DAYS}_days": recent}


def store(con, definition: JourneyDefinition, playbook: Playbook, now: dt.datetime | None,
          watermark: dt.datetime | None, wall_now: dt.datetime) -> dict:
    """Measure and keep the playbook's effect (inside the evaluation's transaction)."""
    con.execute(DDL)
    effect = measure(con, definition, playbook, now, watermark)
    con.execute("INSERT OR REPLACE INTO act_effects VALUES (?, ?, ?, ?)",
                [playbook.id, wall_now, now, json.dumps(effect, default=str)])
    return effect


def stored(con, playbook_id: str | None = None) -> dict[str, dict]:
    """The effects the last evaluations stored, by playbook id (empty before the first)."""
    from journeymap.ingest.store import has_table

    if not has_table(con, "act_effects"):
        return {}
    where = f"WHERE playbook = {q(playbook_id)}" if playbook_id else ""
    rows = con.execute(f"SELECT playbook, computed_at, effect FROM act_effects {where}").fetchall()
    return {p: {**json.loads(e), "computed_at": c.isoformat()} for p, c, e in rows}
