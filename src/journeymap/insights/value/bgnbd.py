"""BG/NBD repeat-purchase model for non-contractual, continuous-time settings.

Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the Pareto/NBD Model",
Marketing Science 24(2). While alive a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha);
after every purchase they drop out with probability p ~ Beta(a, b). Each customer is summarised by
x = ``frequency`` (repeat purchases), t_x = ``recency`` (time of the last repeat purchase since the first)
and T (time since the first purchase), all in one time unit (e.g. weeks).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1


class BetaGeometricNBD:
    """BG/NBD model: ``fit(frequency, recency, T)`` then predict purchases and P(alive)."""

    r_: float
    alpha_: float
    a_: float
    b_: float
    log_likelihood_: float

    def fit(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> BetaGeometricNBD:
        x, t_x, T_ = check_rfm(frequency, recency, T)

        def neg_ll(log_params: np.ndarray) -> float:
            return -float(np.sum(_log_likelihood(np.exp(log_params), x, t_x, T_)))

        # Log-params keep all four positive; Nelder-Mead is robust to the flat ridge in (a, b).
        res = minimize(neg_ll, x0=np.zeros(4), method="Nelder-Mead",
                       options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 20_000, "maxfev": 40_000})
        if not res.success:
            raise RuntimeError(f"BG/NBD fit did not converge: {res.message}")
        self.r_, self.alpha_, self.a_, self.b_ = (float(v) for v in np.exp(res.x))
        self.log_likelihood_ = float(-res.fun)
        return self

    def expected_purchases(self, t: ArrayLike) -> np.ndarray:
        """E[X(t)]: expected purchases in (0, t] by a random customer acquired at time 0 (FHL 2005 eq. 9)."""
        t = _check_nonneg(t, "t")
        r, alpha, a, b = self._params()
        z = t / (alpha + t)
        return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))

    def conditional_expected_purchases(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike,
                                       T: ArrayLike) -> np.ndarray:
        """E[Y(t) | x, t_x, T]: expected purchases in (T, T + t] for a customer with that history (eq. 10)."""
        t = _check_nonneg(t, "t")
        x, t_x, T_ = check_rfm(frequency, recency, T)
        r, alpha, a, b = self._params()
        z = t / (alpha + T_ + t)
        grow = 1 - ((alpha + T_) / (alpha + T_ + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        return (a + b + x - 1) / (a - 1) * grow * self._p_alive(x, t_x, T_)

    def probability_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> np.ndarray:
        """P(alive at T | x, t_x, T) (eq. 11); 1 for customers with no repeat purchase (they cannot have dropped)."""
        return self._p_alive(*check_rfm(frequency, recency, T))

    def _p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        r, alpha, a, b = self._params()
        # log of a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x): stays finite for large x where the power overflows
        log_odds = np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return np.where(x > 0, 1.0 / (1.0 + np.exp(np.where(x > 0, log_odds, 0.0))), 1.0)

    def _params(self) -> tuple[float, float, float, float]:
        if not hasattr(self, "r_"):
            raise RuntimeError("BetaGeometricNBD is not fitted: call fit(frequency, recency, T) first")
        return self.r_, self.alpha_, self.a_, self.b_

    def __repr__(self) -> str:
        if hasattr(self, "r_"):
            return f"BetaGeometricNBD(r_={self.r_:.4g}, alpha_={self.alpha_:.4g}, a_={self.a_:.4g}, b_={self.b_:.4g})"
        return "BetaGeometricNBD()"


def _log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer log L (FHL 2005 eq. 6), summed in log space with logaddexp."""
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    still_alive = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    # dropped right after the last purchase: only possible with x > 0 (the Beta term is undefined at x = 0)
    dropped = np.where(x > 0, betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return common + np.logaddexp(still_alive, dropped)


def check_rfm(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the (x, t_x, T) summary: whole x >= 0, 0 <= t_x <= T, t_x = 0 when x = 0."""
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(recency, dtype=float)
    T_ = np.asarray(T, dtype=float)
    try:
        x, t_x, T_ = np.broadcast_arrays(x, t_x, T_)
    except ValueError:
        raise ValueError("frequency, recency and T must have matching shapes") from None
    for name, arr in (("frequency", x), ("recency", t_x), ("T", T_)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
        if np.any(arr < 0):
            raise ValueError(f"{name} must be >= 0")
    if np.any(x != np.round(x)):
        raise ValueError("frequency must be whole numbers of repeat purchases")
    if np.any(t_x > T_ + 1e-9):
        raise ValueError("recency must not exceed T")
    if np.any((x == 0) & (t_x > 0)):
        raise ValueError("recency must be 0 where frequency is 0 (no repeat purchase)")
    return x, t_x, T_


def _check_nonneg(t: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(t, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and >= 0")
    return arr
