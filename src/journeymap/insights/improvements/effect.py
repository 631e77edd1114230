"""The measured effect of a shipped improvement: which method, the effect with its 95% interval, the verdict.

Method (docs/improvements.md, "Measured effect"):
  1. The comparison series: the improvement's `comparison` (stage:ID or persona:ID) when set; else, for an
     improvement scoped to a persona, every unit not in that persona (the same metric and stage); else none.
  2. Difference-in-differences (did.py) when there is a comparison with MIN_PRE_WEEKS weeks before the ship date
     and one after, both series, and its pre-period difference has no trend (p >= 0.05): the comparison removes
     seasons and journey-wide shifts the interrupted time series can only model.
  3. Otherwise the interrupted time series (its.py), and `why` says why (no comparison, or its trend differed).

Verdict, with CHANGE the change asked about (5 points for rates and NPS, 0.5 for CES, 10% of the pre-period mean
for durations):
  "moved"                    the 95% interval excludes 0
  "no detectable change"     it includes 0, and the data could see a change of CHANGE (its MDE is at most CHANGE),
                             or never will within power.MAX_MORE_WEEKS weeks
  "too early"                it includes 0 and the MDE is above CHANGE: `more_weeks` more weeks would bring it down;
                             and always while fewer than MIN_POST_WEEKS weeks follow the ship date
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from journeymap.insights.improvements import did, its, power
from journeymap.insights.improvements.series import MIN_WEEK_N, Series, weekly
from journeymap.insights.improvements.store import STAGE_METRICS, Improvement, unit_of
from journeymap.journey.targets import RATE_METRICS

MIN_PRE_WEEKS = 8
MIN_POST_WEEKS = 4
"""Weeks after the ship date before any verdict but "too early": Newey-West errors from fewer post weeks are too
small (the simulations in tests/test_improvements_effect.py: a null series reads as "moved" far above 5%)."""
PARALLEL_P = 0.05


def change_asked(metric: str, pre_mean: float) -> tuple[float, str]:
    """The change the verdict is about, and how it is said."""
    if metric in RATE_METRICS or metric == "nps":
        return 5.0, "a 5-point change"
    if metric == "ces":
        return 0.5, "a 0.5-point change"
    return 0.1 * abs(pre_mean), "a 10% change"


@dataclass
class Aligned:
    rel: np.ndarray  # weeks from the ship week, ship week removed
    weeks: list[dt.date]
    y: np.ndarray


def align(series: Series, ship: dt.date, other: Series | None = None) -> tuple[Aligned, np.ndarray | None]:
    ship_week = ship - dt.timedelta(days=ship.weekday())
    values = dict(zip(series.weeks, series.values, strict=True))
    weeks = [w for w in series.weeks if w != ship_week]
    comp = None
    if other is not None:
        cvals = dict(zip(other.weeks, other.values, strict=True))
        weeks = [w for w in weeks if w in cvals]
        comp = np.array([cvals[w] for w in weeks], dtype=float)
    rel = np.array([(w - ship_week).days // 7 for w in weeks], dtype=int)
    return Aligned(rel, weeks, np.array([values[w] for w in weeks], dtype=float)), comp


def estimate(weeks: list[dt.date], y: list[float], ship: dt.date, metric: str,
             comparison: tuple[str, list[dt.date], list[float]] | None = None, target: float | None = None) -> dict:
    """The effect from weekly values alone (what `measure` computes after reading the series from the engine)."""
    s = Series("metric", list(weeks), list(y), [0] * len(y))
    c = None if comparison is None else Series(comparison[0], list(comparison[1]), list(comparison[2]), [0] * len(y))
    return toward(_estimate(s, ship, metric, c, None), target)


def toward(out: dict, target: float | None) -> dict:
    """`toward_target`: whether the effect points from the level before the ship date to the target (null without
    a target or an effect); a metric that moved away from its target says so in its verdict."""
    out["toward_target"] = None
    if target is None or out.get("effect") is None or out.get("before") is None or target == out["before"]:
        return out
    out["toward_target"] = (out["effect"] > 0) == (target > out["before"])
    if out["verdict"] == "moved" and not out["toward_target"]:
        out["verdict_text"] += ", away from the target"
    return out


def _estimate(series: Series, ship: dt.date, metric: str, comparison: Series | None, why_none: str | None) -> dict:
    a, _ = align(series, ship)
    n_pre, n_post = int((a.rel < 0).sum()), int((a.rel > 0).sum())
    out = {"metric": metric, "unit": unit_of(metric), "ship_date": ship.isoformat(), "weeks_before": n_pre,
           "weeks_after": n_post, "method": None, "why": None, "comparison": None, "effect": None, "ci_low": None,
           "ci_high": None, "p_value": None, "before": None, "after": None, "seasonality": None, "verdict": None,
           "verdict_text": None, "more_weeks": None, "mde": None, "change_asked": None, "fit": None}
    if n_pre < MIN_PRE_WEEKS:
        out["verdict_text"] = (f"not measured: {n_pre} weeks of {metric} before the ship date; the effect needs "
                               f"{MIN_PRE_WEEKS} to know the trend and the noise" + (
                                   f" ({series.dropped_weeks} weeks were left out: fewer than {MIN_WEEK_N} units or "
                                   "answers)" if series.dropped_weeks else ""))
        return out
    pre = a.y[a.rel < 0]
    out["before"] = float(pre.mean())
    out["after"] = float(a.y[a.rel > 0].mean()) if n_post else None
    change, said = change_asked(metric, out["before"])
    out["change_asked"] = change
    method, why, fit, variance = "its", why_none or "no comparison series", None, its.design_variance
    if comparison is not None:
        ca, comp = align(series, ship, comparison)
        c_pre, c_post = int((ca.rel < 0).sum()), int((ca.rel > 0).sum())
        if c_pre >= MIN_PRE_WEEKS and c_post >= 1:
            dfit = did.fit(ca.rel, ca.y, comp)
            if dfit.pre_trend_p_value >= PARALLEL_P:
                method, fit, variance = "did", dfit, did.design_variance
                why = (f"a comparison series ({comparison.label}) the improvement should not affect, with parallel "
                       f"trends before the ship date (pre-period trend of the difference p = "
                       f"{dfit.pre_trend_p_value:.2f})")
                a, n_pre, n_post = ca, c_pre, c_post
                sigma_source = ca.y - comp
            else:
                why = (f"the comparison ({comparison.label}) trended differently before the ship date "
                       f"(p = {dfit.pre_trend_p_value:.3f} < {PARALLEL_P}), so differences-in-differences would "
                       "read that trend as an effect")
        else:
            why = f"the comparison ({comparison.label}) has {c_pre} weeks before and {c_post} after the ship date in common"
        out["comparison"] = comparison.label
    if method == "its":
        seasonal = n_pre >= its.SEASONAL_WEEKS
        woy = np.array([w.isocalendar()[1] for w in a.weeks], dtype=float) if seasonal else None
        sigma_source = a.y
        if n_post >= 1:
            fit = its.fit(a.rel, a.y, woy)
        out["seasonality"] = ("yearly seasonality modelled (two Fourier terms of the week of the year)" if seasonal
                              else f"yearly seasonality not modelled: {n_pre} weeks before the ship date, "
                                   f"{its.SEASONAL_WEEKS} needed")
    else:
        out["seasonality"] = "removed by the comparison series (it has the same seasons)"
    out["method"], out["why"] = method, why
    sigma, rho = its.pre_noise(a.rel, sigma_source)
    if fit is not None:
        out.update(effect=fit.effect, ci_low=fit.ci_low, ci_high=fit.ci_high, p_value=fit.p_value, fit=fit.as_dict())
        out["mde"] = float(power.mde(sigma, rho, variance(n_pre, n_post)))
    if n_post < MIN_POST_WEEKS:
        k = power.more_weeks(sigma, rho, n_pre, n_post, change, variance)
        k = max(MIN_POST_WEEKS - n_post, k if k is not None else 0)
        out["verdict"], out["more_weeks"] = "too early", k
        out["verdict_text"] = (f"too early: {k} more week{'s' if k != 1 else ''} for {said} "
                               f"({n_post} of the {MIN_POST_WEEKS} weeks after the ship date a verdict needs)")
        return out
    if fit.ci_low > 0 or fit.ci_high < 0:
        out["verdict"] = "moved"
        out["verdict_text"] = (f"moved: {fit.effect:+.3g} {unit_of(metric)} (95% CI {fit.ci_low:+.3g} to "
                               f"{fit.ci_high:+.3g}), {method.upper()}")
        return out
    k = power.more_weeks(sigma, rho, n_pre, n_post, change, variance)
    if k is None or k == 0:
        out["verdict"] = "no detectable change"
        out["verdict_text"] = ("no detectable change" + (
            f": the data could see {said} and saw none" if k == 0 else
            f": the weekly noise is too large to see {said} within {power.MAX_MORE_WEEKS} more weeks"))
    else:
        out["verdict"], out["more_weeks"] = "too early", k
        out["verdict_text"] = f"too early: {k} more week{'s' if k != 1 else ''} for {said}"
    return out


def comparison_spec(imp: Improvement) -> str | None:
    if imp.comparison:
        return imp.comparison
    if imp.persona:
        return f"persona:!{imp.persona}"
    return None


def measure(engine, definition, level: str, imp: Improvement) -> dict:
    """The effect of `imp` on its metric (docs/improvements.md); a dict with `verdict` null until it shipped."""
    if imp.status != "shipped" or imp.ship_date is None:
        return {"metric": imp.metric, "method": None, "verdict": None,
                "verdict_text": f"not measured: the improvement is {imp.status}, its effect is measured once shipped"}
    stage = imp.stage if imp.metric in STAGE_METRICS else None
    label = imp.metric + (f" at {stage}" if stage else "") + (f", persona {imp.persona}" if imp.persona else "")
    series = weekly(engine, definition, level, imp.metric, stage, imp.persona, imp.feature, label)
    spec, comp = comparison_spec(imp), None
    if spec is not None:
        kind, _, ident = spec.partition(":")
        if kind == "stage":
            c_stage = ident if stage is not None or imp.metric in ("nps", "csat", "ces") else None
            comp = weekly(engine, definition, level, imp.metric, c_stage, imp.persona, imp.feature,
                          f"{imp.metric} at {ident}")
        else:
            comp = weekly(engine, definition, level, imp.metric, stage, ident, imp.feature,
                          f"{imp.metric}" + (f" at {stage}" if stage else "") +
                          (f", every persona but {ident[1:]}" if ident.startswith("!") else f", persona {ident}"))
    out = toward(_estimate(series, imp.ship_date, imp.metric, comp, None), imp.target_value)
    out["series"] = series.as_dict()
    out["comparison_series"] = None if comp is None else comp.as_dict()
    return out
