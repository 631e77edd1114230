"""Difference-in-differences against a comparison series the improvement should not affect.

    d_w = y_w - c_w = a + delta * post_w + e_w

on the weeks both series have (the ship week left out), with the standard error of its.level_change
(Newey-West, floored by the AR(1)-inflated OLS error; t intervals). The comparison carries what both series share: seasons of any length, a trend common to the whole
journey, a launch or an outage. `delta` is the effect on the improvement's series over the comparison's.

It rests on parallel trends: before the ship date the difference has no trend. `pre_trend` tests it (the slope of
d_w on the week over the pre-period, its p-value); effect.py falls back to the interrupted time series when it fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeymap.insights.improvements.its import hac_lags, level_change


@dataclass
class Fit:
    effect: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    n_pre: int
    n_post: int
    hac_lags: int
    pre_trend_per_week: float
    pre_trend_p_value: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def pre_trend(weeks: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    """(slope per week, p-value) of the difference over the pre-period, HAC errors."""
    pre = np.asarray(weeks) < 0
    w, v = np.asarray(weeks)[pre].astype(float), np.asarray(d, dtype=float)[pre]
    slope, _, _, _, p = level_change(v, np.column_stack([np.ones(len(w)), w]), 1)
    return slope, p


def fit(weeks: np.ndarray, y: np.ndarray, c: np.ndarray) -> Fit:
    """`y` and `c` on the same `weeks` (relative to the ship week, 0 removed)."""
    weeks = np.asarray(weeks)
    d = np.asarray(y, dtype=float) - np.asarray(c, dtype=float)
    X = np.column_stack([np.ones(len(d)), (weeks > 0).astype(float)])
    est, se, low, high, p_value = level_change(d, X, 1)
    slope, p = pre_trend(weeks, d)
    return Fit(effect=est, se=se, ci_low=low, ci_high=high, p_value=p_value, n_pre=int((weeks < 0).sum()),
               n_post=int((weeks > 0).sum()), hac_lags=hac_lags(len(d)), pre_trend_per_week=slope,
               pre_trend_p_value=p)


def design_variance(n_pre: int, n_post: int) -> float:
    """(X'X)^-1 for delta: 1/n_pre + 1/n_post."""
    return 1.0 / n_pre + 1.0 / n_post
