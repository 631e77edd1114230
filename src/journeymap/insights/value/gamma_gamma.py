"""Gamma-Gamma model of spend per transaction, and CLV from it plus a BG/NBD purchase forecast.

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis", and Hardie's
note "The Gamma-Gamma Model of Monetary Value" (2013). A customer's transaction values are Gamma(p, nu) with
nu ~ Gamma(q, gamma) across customers, so the mean of x values, zbar, is Gamma(p x, nu x).
It assumes spend per transaction is independent of purchase frequency: check the correlation first.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import gammaln

from journeymap.insights.value.bgnbd import BetaGeometricNBD, check_rfm

# Periods of the time unit of (recency, T) in one month, as lifelines/lifetimes define them.
PERIODS_PER_MONTH = {"D": 30.0, "W": 4.345, "M": 1.0, "H": 30.0 * 24}


class GammaGamma:
    """Gamma-Gamma spend model. ``fit`` uses only customers with ``frequency > 0`` (zbar is undefined otherwise)."""

    p_: float
    q_: float
    gamma_: float
    log_likelihood_: float
    n_customers_: int

    def fit(self, frequency: ArrayLike, monetary_value: ArrayLike) -> GammaGamma:
        x, m = _check_spend(frequency, monetary_value)
        repeat = x > 0
        if not np.any(repeat):
            raise ValueError("frequency has no customer with a repeat purchase (> 0): nothing to fit the spend model on")
        x, m = x[repeat], m[repeat]
        if np.any(m <= 0):
            raise ValueError("monetary_value must be > 0 for customers with frequency > 0")

        def neg_ll(log_params: np.ndarray) -> float:
            return -float(np.sum(_log_likelihood(np.exp(log_params), x, m)))

        res = minimize(neg_ll, x0=np.zeros(3), method="Nelder-Mead",
                       options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 20_000, "maxfev": 40_000})
        if not res.success:
            raise RuntimeError(f"Gamma-Gamma fit did not converge: {res.message}")
        self.p_, self.q_, self.gamma_ = (float(v) for v in np.exp(res.x))
        self.log_likelihood_ = float(-res.fun)
        self.n_customers_ = int(repeat.sum())
        return self

    def population_mean(self) -> float:
        """E[Z] = p gamma / (q - 1): mean spend per transaction in the population (infinite when q <= 1)."""
        p, q, g = self._params()
        return p * g / (q - 1) if q > 1 else np.inf

    def conditional_expected_average_profit(self, frequency: ArrayLike, monetary_value: ArrayLike) -> np.ndarray:
        """E[Z | x, zbar]: a weighted mean of the population mean and the customer's own zbar.

        = (q - 1) / (p x + q - 1) * p gamma / (q - 1) + p x / (p x + q - 1) * zbar = p (gamma + x zbar) / (p x + q - 1).
        Customers with x = 0 get the population mean.
        """
        x, m = _check_spend(frequency, monetary_value)
        p, q, g = self._params()
        return p * (g + x * m) / (p * x + q - 1)

    def customer_lifetime_value(self, bgnbd: BetaGeometricNBD, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
                                monetary_value: ArrayLike, time: int = 12, discount_rate: float = 0.01,
                                freq: str = "W") -> np.ndarray:
        """Discounted CLV over the next ``time`` months, with lifelines/lifetimes semantics.

        Units: ``recency`` and ``T`` are in the unit ``freq`` ("D" days, "W" weeks, "M" months, "H" hours; a month is
        30 days or 4.345 weeks); ``time`` is in months; ``discount_rate`` is per month. For each month i = 1..time:

            CLV += E[Z | x, zbar] * (E[Y(i months) | x, t_x, T] - E[Y((i-1) months) | ...]) / (1 + discount_rate)^i

        The default ``freq`` is "W" (the CDNOW summary's unit); lifetimes defaults to "D".
        """
        if freq not in PERIODS_PER_MONTH:
            raise ValueError(f"freq must be one of {sorted(PERIODS_PER_MONTH)}, got {freq!r}")
        if int(time) != time or time < 1:
            raise ValueError(f"time must be a whole number of months >= 1, got {time!r}")
        if not np.isfinite(discount_rate) or discount_rate <= -1:
            raise ValueError(f"discount_rate must be a finite monthly rate > -1, got {discount_rate!r}")
        x, t_x, T_ = check_rfm(frequency, recency, T)
        profit = self.conditional_expected_average_profit(x, monetary_value)
        factor = PERIODS_PER_MONTH[freq]
        months = np.arange(0, int(time) + 1)
        cumulative = np.stack([bgnbd.conditional_expected_purchases(i * factor, x, t_x, T_) for i in months])
        per_month = np.diff(cumulative, axis=0)  # expected purchases in each month
        discount = (1 + discount_rate) ** -months[1:].astype(float)
        return profit * np.tensordot(discount, per_month, axes=1)

    def _params(self) -> tuple[float, float, float]:
        if not hasattr(self, "p_"):
            raise RuntimeError("GammaGamma is not fitted: call fit(frequency, monetary_value) first")
        return self.p_, self.q_, self.gamma_

    def __repr__(self) -> str:
        if hasattr(self, "p_"):
            return f"GammaGamma(p_={self.p_:.4g}, q_={self.q_:.4g}, gamma_={self.gamma_:.4g})"
        return "GammaGamma()"


def _log_likelihood(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """log f(zbar | p, q, gamma; x) for zbar ~ Gamma(p x, nu x), nu ~ Gamma(q, gamma)."""
    p, q, g = params
    px = p * x
    return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g)
            + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(g + x * m))


def _check_spend(frequency: ArrayLike, monetary_value: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(frequency, dtype=float)
    m = np.asarray(monetary_value, dtype=float)
    try:
        x, m = np.broadcast_arrays(x, m)
    except ValueError:
        raise ValueError("frequency and monetary_value must have matching shapes") from None
    if not np.all(np.isfinite(x)) or np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must be whole numbers >= 0")
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise ValueError("monetary_value must be finite and >= 0")
    return x, m
