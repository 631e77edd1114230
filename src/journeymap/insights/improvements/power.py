"""How large a change the data can see, and how many more weeks it needs to see one of a given size.

The minimum detectable effect (two-sided 5% test, 80% power) of a level change is

    MDE = (z_0.975 + z_0.80) * sigma * sqrt(v(n_pre, n_post)) * sqrt((1 + rho) / (1 - rho))

with sigma the residual standard deviation of a straight line through the pre-period's weeks, rho the lag-1
autocorrelation of those residuals (clipped to [0, 0.9]: the AR(1) variance inflation of a mean), and v the
design variance of the method's effect ((X'X)^-1 of its regression: its.design_variance, did.design_variance).
"Too early: N more weeks" is the smallest N for which the MDE with n_post + N weeks after the ship date falls to
the change asked about.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy.stats import norm

ALPHA, POWER = 0.05, 0.80
MAX_MORE_WEEKS = 260  # five years: past that, "no detectable change" (the noise is too large for the change)


def inflation(rho: float) -> float:
    rho = min(max(rho, 0.0), 0.9)
    return math.sqrt((1 + rho) / (1 - rho))


def mde(sigma: float, rho: float, variance: float) -> float:
    return (norm.ppf(1 - ALPHA / 2) + norm.ppf(POWER)) * sigma * math.sqrt(variance) * inflation(rho)


def more_weeks(sigma: float, rho: float, n_pre: int, n_post: int, change: float,
               design_variance: Callable[[int, int], float]) -> int | None:
    """Weeks to add after the ship date (0: enough now) until a change of `change` is detectable; None past
    MAX_MORE_WEEKS."""
    for k in range(0, MAX_MORE_WEEKS + 1):
        if n_post + k >= 1 and mde(sigma, rho, design_variance(n_pre, n_post + k)) <= abs(change):
            return k
    return None
