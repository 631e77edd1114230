"""Shifted-beta-geometric (sBG) retention model for contractual, discrete renewals.

Fader & Hardie (2007), "How to Project Customer Retention", J. Interactive Marketing 21(1).
Each customer churns at the end of every period with a fixed probability theta; theta varies across
customers as Beta(alpha, beta). Lifetime T (periods active, T >= 1):

    P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)
    S(t)     = P(T > t) = B(alpha, beta + t) / B(alpha, beta)          S(0) = 1
    r(t)     = S(t) / S(t - 1) = (beta + t - 1) / (alpha + beta + t - 1)

Retention rises with tenure because the churn-prone leave first (heterogeneity, not loyalty).
The residual value follows Fader & Hardie (2010), "Customer-Base Valuation in a Contractual Setting".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import betaln, hyp2f1


HOMOGENEOUS = 1e6
"""The most alpha + beta a fit takes. Where the units churn as if with one probability, the likelihood rises
without a finite maximum as alpha and beta grow at a fixed alpha / (alpha + beta) (the geometric model is the
limit); betaln's rounding at large arguments makes that ridge bumpy (about 1e-4 at 1e8, 1e-2 at 1e10), and an
unbounded search walked it until its evaluations ran out (the 600-account demo's clv did). At this cap theta's
spread is under 1e-3 of its mean for any mean above 0.001: the fit is the geometric limit to within what any
survival curve shows."""


class ShiftedBetaGeometric:
    """sBG model for one cohort.

    ``fit(alive_counts)``: ``alive_counts[t]`` is the number of the cohort still active at the end of
    period t, for t = 0..n, starting with the cohort size (e.g. ``[1000, 869, 743, ...]``).
    """

    alpha_: float
    beta_: float
    log_likelihood_: float

    def fit(self, alive_counts: ArrayLike) -> ShiftedBetaGeometric:
        return self.fit_cohorts([alive_counts])

    def fit_cohorts(self, cohorts: Sequence[ArrayLike]) -> ShiftedBetaGeometric:
        """Pooled maximum likelihood over several cohorts, each observed for its own number of periods
        (e.g. monthly acquisition cohorts: the oldest is seen longest). Each cohort's survivors are
        right-censored at its last period; a cohort seen for no period yet adds nothing."""
        parts = []
        for i, alive in enumerate(cohorts):
            counts = _check_alive_counts(alive, allow_flat=len(cohorts) > 1, name=f"cohort {i}" if len(cohorts) > 1 else None)
            if counts.size >= 2:
                parts.append((counts[:-1] - counts[1:], counts[-1], np.arange(1, len(counts))))  # lost at ends of 1..n
        if not parts or all(churned.sum() == 0 for churned, _, _ in parts):
            raise ValueError("alive_counts shows no churn at all: the sBG parameters are not identifiable")

        def neg_ll(log_params: np.ndarray) -> float:
            a, b = np.exp(log_params)
            past = max(np.log((a + b) / HOMOGENEOUS), 0.0)
            a, b = a / np.exp(past), b / np.exp(past)  # past the cap, the cap's point at the same mean
            log_b0 = betaln(a, b)
            ll = 0.0
            for churned, survivors, periods in parts:
                ll += np.sum(churned * (betaln(a + 1, b + periods - 1) - log_b0))
                ll += survivors * (betaln(a, b + periods[-1]) - log_b0)
            return -ll + 1e-9 * past  # a slight slope back to the cap, so that the search settles there

        # Start at alpha = 1 and the mean churn of the first period (alpha / (alpha + beta) = E[theta]):
        # with low churn beta is large, and a start at (1, 1) can run out of evaluations before it gets there.
        lost = sum(churned[0] for churned, _, _ in parts)
        first = sum(churned[0] + (survivors if len(periods) == 1 else 0) for churned, survivors, periods in parts)
        at_risk = sum(c.sum() + s for c, s, _ in parts)
        p1 = min(max(lost / max(first, 1), 1.0 / at_risk), 0.5)
        x0 = np.log([1.0, (1 - p1) / p1])
        # Nelder-Mead on log-params: two parameters, smooth surface, no gradients to get wrong.
        res = minimize(neg_ll, x0=x0, method="Nelder-Mead",
                       options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 20_000, "maxfev": 40_000})
        res.x = res.x - max(np.log(np.exp(res.x).sum() / HOMOGENEOUS), 0.0)  # the cap's point, when past it
        res.fun = neg_ll(res.x)
        if not res.success:
            # On the ridge the likelihood is nearly flat and the search can run out of evaluations before it
            # settles. Where it stopped is then no more likely than the geometric model (the ridge's limit, in
            # closed form); take that limit at the cap. A search that failed anywhere else still raises.
            at_risk = sum(float((c * p).sum() + s * p[-1]) for c, s, p in parts)  # unit-periods at risk
            churns = sum(float(c.sum()) for c, _, _ in parts)
            p_geo = churns / at_risk
            geometric_nll = -(churns * np.log(p_geo) + (at_risk - churns) * np.log1p(-p_geo))
            if res.fun < geometric_nll - 1e-3:
                raise RuntimeError(f"sBG fit did not converge: {res.message}")
            res.x = np.log([p_geo * HOMOGENEOUS, (1 - p_geo) * HOMOGENEOUS])
            res.fun = neg_ll(res.x)
        self.alpha_, self.beta_ = (float(v) for v in np.exp(res.x))
        self.log_likelihood_ = float(-res.fun)
        return self

    # --- curves -------------------------------------------------------------------------------------
    def survival(self, t: ArrayLike) -> np.ndarray:
        """S(t) = P(still active at the end of period t); S(0) = 1. Vectorised over t >= 0."""
        t = _check_periods(t, "t", minimum=0)
        a, b = self._params()
        return np.exp(betaln(a, b + t) - betaln(a, b))

    def retention_rate(self, t: ArrayLike) -> np.ndarray:
        """r(t) = S(t) / S(t-1) = (beta + t - 1) / (alpha + beta + t - 1), for t >= 1."""
        t = _check_periods(t, "t", minimum=1)
        a, b = self._params()
        return (b + t - 1) / (a + b + t - 1)

    def churn_probability(self, t: ArrayLike) -> np.ndarray:
        """P(T = t): share of the cohort that churns at the end of period t, for t >= 1."""
        t = _check_periods(t, "t", minimum=1)
        a, b = self._params()
        return np.exp(betaln(a + 1, b + t - 1) - betaln(a, b))

    # --- lifetimes and value -----------------------------------------------------------------------
    def expected_lifetime(self) -> float:
        """E[T] in periods = (alpha + beta - 1) / (alpha - 1); ``math.inf`` when alpha <= 1 (heavy tail)."""
        return float(self.expected_remaining_lifetime(0))

    def expected_remaining_lifetime(self, periods_survived: ArrayLike = 0) -> np.ndarray:
        """E[T - m | T > m] for a customer who has survived m periods (made m renewals).

        Counts period m + 1, which the last renewal already bought. Survivors' theta is
        Beta(alpha, beta + m), so this is (alpha + beta + m - 1) / (alpha - 1); ``math.inf`` when alpha <= 1.
        """
        m = _check_periods(periods_survived, "periods_survived", minimum=0)
        a, b = self._params()
        if a <= 1:
            return np.full(np.shape(m), math.inf)
        return (a + b + m - 1) / (a - 1)

    def derl(self, discount_rate: float = 0.1, periods_survived: ArrayLike = 0) -> np.ndarray:
        """Discounted expected residual lifetime, in periods (Fader & Hardie 2010, eq. 6).

        For a customer who has made m = ``periods_survived`` renewals, valued just before the next
        renewal decision (so that renewal's payment is undiscounted):

            DERL = sum_{k>=0} S(m + 1 + k) / S(m) / (1 + d)^k
                 = (beta + m) / (alpha + beta + m) * 2F1(1, beta + m + 1; alpha + beta + m + 1; 1 / (1 + d))
        """
        if not np.isfinite(discount_rate) or discount_rate < 0:
            raise ValueError(f"discount_rate must be a finite number >= 0, got {discount_rate!r}")
        m = _check_periods(periods_survived, "periods_survived", minimum=0)
        a, b = self._params()
        if discount_rate == 0:  # 2F1 at z = 1: the undiscounted sum, (beta + m) / (alpha - 1), finite only for alpha > 1
            return (b + m) / (a - 1) if a > 1 else np.full(np.shape(m), math.inf)
        return (b + m) / (a + b + m) * hyp2f1(1.0, b + m + 1, a + b + m + 1, 1.0 / (1.0 + discount_rate))

    def clv(self, value_per_period: ArrayLike, margin: float = 1.0, discount_rate: float = 0.1,
            periods_survived: ArrayLike = 0) -> np.ndarray:
        """Expected discounted residual value: value_per_period * margin * DERL.

        Excludes payments already received; a freshly acquired customer (``periods_survived=0``) is
        valued from their first renewal on. Units follow the period of ``alive_counts`` (e.g. years,
        with an annual ``discount_rate``).
        """
        value = np.asarray(value_per_period, dtype=float)
        if not np.all(np.isfinite(value)):
            raise ValueError("value_per_period must be finite")
        if not np.isfinite(margin):
            raise ValueError(f"margin must be finite, got {margin!r}")
        return value * margin * self.derl(discount_rate, periods_survived)

    def _params(self) -> tuple[float, float]:
        if not hasattr(self, "alpha_"):
            raise RuntimeError("ShiftedBetaGeometric is not fitted: call fit(alive_counts) first")
        return self.alpha_, self.beta_

    def __repr__(self) -> str:
        if hasattr(self, "alpha_"):
            return f"ShiftedBetaGeometric(alpha_={self.alpha_:.4g}, beta_={self.beta_:.4g})"
        return "ShiftedBetaGeometric()"


def _check_alive_counts(alive_counts: ArrayLike, allow_flat: bool = False, name: str | None = None) -> np.ndarray:
    """One cohort's counts. With several cohorts (`allow_flat`), a cohort may be a single count or show
    no churn: the pooled fit decides identifiability."""
    what = f"alive_counts ({name})" if name else "alive_counts"
    counts = np.asarray(alive_counts, dtype=float)
    if counts.ndim != 1 or counts.size < (1 if allow_flat else 2):
        raise ValueError(f"{what} must be a 1-D sequence of at least two counts (cohort size, then survivors)")
    if not np.all(np.isfinite(counts)) or np.any(counts != np.round(counts)):
        raise ValueError(f"{what} must be whole numbers")
    if counts[0] <= 0:
        raise ValueError(f"{what} must start with a positive cohort size, got {counts[0]:g}")
    if np.any(counts < 0):
        raise ValueError(f"{what} must not be negative")
    if np.any(np.diff(counts) > 0):
        raise ValueError(f"{what} must be non-increasing: a cohort cannot gain customers")
    if counts[-1] == counts[0] and not allow_flat:
        raise ValueError("alive_counts shows no churn at all: the sBG parameters are not identifiable")
    return counts


def _check_periods(t: ArrayLike, name: str, minimum: int) -> np.ndarray:
    arr = np.asarray(t, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < minimum):
        raise ValueError(f"{name} must be >= {minimum}")
    return arr
