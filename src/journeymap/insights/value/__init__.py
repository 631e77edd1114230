"""Lifetime value: the CLV probability models and the workspace's CLV by persona and channel.

- ``sbg``, ``bgnbd``, ``gamma_gamma``, ``bgbb``: sBG, BG/NBD, Gamma-Gamma and BG/BB (docs/metrics/clv.md).
- ``clv``: lifetime value of subscription accounts by persona and channel, and LTV:CAC (``journeymap clv``).

Importing this package loads scipy; ``journeymap.insights`` re-exports the four models lazily instead.
"""

from __future__ import annotations

from journeymap.insights.value.bgbb import BetaGeometricBetaBinomial
from journeymap.insights.value.bgnbd import BetaGeometricNBD
from journeymap.insights.value.clv import account_lifetimes, cohort_counts, lifetime_value, observed_survival, read_spend
from journeymap.insights.value.gamma_gamma import GammaGamma
from journeymap.insights.value.sbg import ShiftedBetaGeometric

__all__ = [
    "BetaGeometricBetaBinomial",
    "BetaGeometricNBD",
    "GammaGamma",
    "ShiftedBetaGeometric",
    "account_lifetimes",
    "cohort_counts",
    "lifetime_value",
    "observed_survival",
    "read_spend",
]
