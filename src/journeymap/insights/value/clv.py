"""Customer lifetime value of subscription accounts, by persona and acquisition channel, and LTV:CAC.

docs/metrics/clv.md ("From the workspace") defines every number here. In short:

- From the revenue section's MRR (engine/revenue.py), an account's lifetime starts in its first month
  with MRR > 0 and ends in the first later month with MRR 0: sBG is a contractual model, so a
  reactivated account is not alive again. Monthly acquisition cohorts give alive counts per month of
  tenure; the last (partial) month of data is not observed.
- A shifted-beta-geometric model is fitted to all cohorts at once (each right-censored at its own
  length), for all accounts and per persona and per channel where there is enough data.
- A new account's CLV = first-month MRR x margin x (1 + DERL / (1 + d)), with d the monthly discount
  rate: the first payment, plus the discounted expected residual lifetime value from the first renewal.
- CAC per channel = spend / new paying accounts whose first touch was that channel (spend file).

Only one row per account comes back to Python (its first paid month, end month, MRR, persona and
channel); events never do.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections import defaultdict
from pathlib import Path

import ibis

from journeymap.errors import InputError, NotEnoughData, OptionError
from journeymap.engine.backends import Engine
from journeymap.engine.personas import units
from journeymap.engine.revenue import monthly_mrr, revenue_events
from journeymap.engine.unit_events import unit_events
from journeymap.insights.value.sbg import ShiftedBetaGeometric
from journeymap.journey.definition import JourneyDefinition

TOUCH_SOURCES = ("marketing", "crm")
MIN_SEGMENT = 30  # accounts a persona or channel needs for its own retention curve
HORIZON = 36  # months of projected survival to report
UNATTRIBUTED = "(none)"


def _month_index(d: dt.date) -> int:
    return d.year * 12 + d.month - 1


def account_lifetimes(engine: Engine, definition: JourneyDefinition, touch_sources=TOUCH_SOURCES) -> tuple[list[dict], int]:
    """One dict per paying account, and the month index of the last month with data."""
    mm = monthly_mrr(engine, revenue_events(engine, definition))
    with engine.scope():
        paid = mm.filter(mm.mrr > 0)
        first = paid.group_by("unit_id").aggregate(first=paid.month.min())
        j = mm.join(first, "unit_id")
        first_mrr = j.filter(j.month == j.first).select("unit_id", first_mrr=j.mrr)
        ended = j.filter((j.month > j.first) & (j.mrr <= 0)).group_by("unit_id").aggregate(ended=j.month.min())
        ev = unit_events(engine, "account")
        touch = ev.filter(ev.source.isin(list(touch_sources)) & ev.channel.notnull())
        w = ibis.window(group_by=touch.unit_id, order_by=[touch.ts, touch.seq])
        touch = touch.mutate(_n=ibis.row_number().over(w))
        channel = touch.filter(touch._n == 0).select(c_unit=touch.unit_id, channel=touch.channel)
        who = units(engine, definition, "account").rename(p_unit="unit_id")
        t = first.join(first_mrr, "unit_id").left_join(ended, "unit_id").drop("unit_id_right")
        t = t.left_join(channel, t.unit_id == channel.c_unit).drop("c_unit")
        t = t.left_join(who, t.unit_id == who.p_unit).drop("p_unit")
        # in account order: the engine returns rows in any order, and the segment means (float sums) depend on it
        rows = sorted(engine.execute(t).to_pylist(), key=lambda r: r["unit_id"])
        last = engine.execute(mm.aggregate(m=mm.month.max())).to_pylist()[0]["m"]
    out = [{"account": r["unit_id"], "first": _month_index(r["first"]), "first_mrr": float(r["first_mrr"]),
            "ended": _month_index(r["ended"]) if r["ended"] is not None else None,
            "persona": r["persona"], "channel": r["channel"] or UNATTRIBUTED} for r in rows]
    return out, (_month_index(last) if last is not None else 0)


def cohort_counts(accounts: list[dict], last_month: int) -> dict[int, list[int]]:
    """Acquisition month -> alive counts at tenure 0, 1, ... up to the last complete month of data."""
    by_cohort: dict[int, list[dict]] = defaultdict(list)
    for a in accounts:
        by_cohort[a["first"]].append(a)
    out = {}
    for c, members in sorted(by_cohort.items()):
        observed = last_month - 1 - c  # the last month is partial: churn later in it is not seen yet
        if observed < 0:
            continue
        out[c] = [sum(1 for a in members if a["ended"] is None or a["ended"] > c + t) for t in range(observed + 1)]
    return out


def observed_survival(cohorts: dict[int, list[int]]) -> list[float]:
    """Pooled survival by tenure: the product of each month's retention over the cohorts observed then."""
    longest = max((len(v) for v in cohorts.values()), default=0)
    s, out = 1.0, [1.0]
    for t in range(1, longest):
        alive = sum(v[t] for v in cohorts.values() if len(v) > t)
        at_risk = sum(v[t - 1] for v in cohorts.values() if len(v) > t)
        s *= alive / at_risk if at_risk else 1.0
        out.append(s)
    return out


def _fit(cohorts: dict[int, list[int]], errors: list[str] | None = None) -> ShiftedBetaGeometric | None:
    try:
        return ShiftedBetaGeometric().fit_cohorts(list(cohorts.values()))
    except (ValueError, RuntimeError) as exc:  # no churn yet, or too little to pin both parameters down
        if errors is not None:
            errors.append(str(exc))
        return None


def _new_account_clv(model: ShiftedBetaGeometric, value: float, margin: float, d: float) -> float:
    return float(value * margin * (1 + model.derl(d, 0) / (1 + d)))


def _lifetime(model: ShiftedBetaGeometric) -> float | None:
    e = model.expected_lifetime()
    return None if math.isinf(e) else float(e)


def _segment(accounts: list[dict], last: int, pooled: ShiftedBetaGeometric, margin: float, d: float) -> dict:
    arpa = sum(a["first_mrr"] for a in accounts) / len(accounts)
    cohorts = cohort_counts(accounts, last)
    own = _fit(cohorts) if len(accounts) >= MIN_SEGMENT else None
    model = own or pooled
    return {"accounts": len(accounts), "churned": sum(a["ended"] is not None for a in accounts),
            "first_month_mrr": round(arpa, 2), "retention_curve": "own" if own else "pooled",
            "alpha": round(model.alpha_, 6), "beta": round(model.beta_, 6),
            "month_1_retention": round(float(model.retention_rate(1)), 6),
            "expected_lifetime_months": _lifetime(model), "clv": round(_new_account_clv(model, arpa, margin, d), 2)}


def read_spend(path: str | Path) -> dict[str, tuple[float, set[int] | None]]:
    """channel -> (spend, the months it covers or None): CSV with `channel`, `spend` and optional `month` (YYYY-MM)."""
    path = Path(path)
    spend: dict[str, float] = defaultdict(float)
    months: dict[str, set[int]] = defaultdict(set)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"channel", "spend"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{path}: the header needs columns {', '.join(sorted(missing))} (has {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            try:
                amount = float(row["spend"])
            except (TypeError, ValueError):
                raise InputError(f"{path}:{line}: field spend: {row['spend']!r} is not a number") from None
            if amount < 0 or not math.isfinite(amount):
                raise InputError(f"{path}:{line}: field spend: must be a finite amount >= 0")
            if not row["channel"]:
                raise InputError(f"{path}:{line}: field channel: empty")
            spend[row["channel"]] += amount
            if row.get("month"):
                try:
                    m = dt.date.fromisoformat(row["month"] + "-01")
                except ValueError:
                    raise InputError(f"{path}:{line}: field month: {row['month']!r} is not YYYY-MM") from None
                months[row["channel"]].add(_month_index(m))
    return {c: (s, months.get(c) or None) for c, s in spend.items()}


def lifetime_value(engine: Engine, definition: JourneyDefinition, *, margin: float = 0.8, annual_discount: float = 0.10,
                   spend: str | Path | None = None, touch_sources=TOUCH_SOURCES) -> dict:
    """The JSON of `journeymap clv` (docs/metrics/clv.md)."""
    if not 0 < margin <= 1:
        raise OptionError(f"--margin must be in (0, 1], not {margin}")
    if annual_discount < 0:
        raise OptionError("--discount must not be negative")
    spend_by = read_spend(spend) if spend else None
    d = (1 + annual_discount) ** (1 / 12) - 1
    accounts, last = account_lifetimes(engine, definition, touch_sources)
    cohorts = cohort_counts(accounts, last)
    errors: list[str] = []
    pooled = _fit(cohorts, errors) if cohorts else None
    if pooled is None:
        why = errors[0] if errors else "no paying account has a complete month yet"
        raise NotEnoughData(f"lifetime value cannot be estimated from {len(accounts)} paying accounts: {why}")
    observed = observed_survival(cohorts)
    result = {
        "period": "month", "margin": margin, "annual_discount_rate": annual_discount, "monthly_discount_rate": round(d, 8),
        "accounts": len(accounts), "cohorts": len(cohorts),
        "model": {"alpha": pooled.alpha_, "beta": pooled.beta_, "log_likelihood": pooled.log_likelihood_},
        "fit": [{"month": t, "observed": round(s, 6), "predicted": round(float(pooled.survival(t)), 6)}
                for t, s in enumerate(observed)],
        "projection": [{"month": t, "survival": round(float(pooled.survival(t)), 6),
                        "retention_rate": round(float(pooled.retention_rate(t)), 6)} for t in range(1, HORIZON + 1)],
        "expected_lifetime_months": _lifetime(pooled),
        **_segment(accounts, last, pooled, margin, d),
    }
    result.pop("retention_curve")
    segments: dict[str, list] = {}
    for key in ("persona", "channel"):
        groups: dict[str, list] = defaultdict(list)
        for a in accounts:
            groups[a[key] or UNATTRIBUTED].append(a)
        segments[key] = sorted(({"value": v, **_segment(g, last, pooled, margin, d)} for v, g in groups.items()),
                               key=lambda r: (-r["accounts"], r["value"]))
    result["segments"] = segments
    if spend_by is not None:
        clv_of = {r["value"]: r["clv"] for r in segments["channel"]}
        rows = []
        for channel, (amount, months) in sorted(spend_by.items()):
            new = sum(1 for a in accounts if a["channel"] == channel and (months is None or a["first"] in months))
            cac = amount / new if new else None
            clv = clv_of.get(channel)
            rows.append({"channel": channel, "spend": amount, "new_accounts": new, "cac": round(cac, 2) if cac else None,
                         "clv": clv, "ltv_cac": round(clv / cac, 3) if clv is not None and cac else None})
        result["cac"] = rows
    result["notes"] = [
        "Lifetime is contractual: it ends at the first month with MRR 0; a reactivation starts no new lifetime.",
        "CLV values the first month's MRR at the margin, discounted monthly; expansion and contraction are not projected.",
        f"Personas and channels with fewer than {MIN_SEGMENT} paying accounts use the pooled retention curve.",
    ]
    return result
