"""Insights on top of the journey map; customer-lifetime-value models load lazily.

The CLV models (sBG, BG/NBD, Gamma-Gamma, BG/BB) need scipy, so they are imported on first attribute access
(PEP 562 ``__getattr__``) rather than when ``journeymap.insights`` is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {
    "ShiftedBetaGeometric": "journeymap.insights.sbg",
    "BetaGeometricNBD": "journeymap.insights.bgnbd",
    "GammaGamma": "journeymap.insights.gamma_gamma",
    "BetaGeometricBetaBinomial": "journeymap.insights.bgbb",
}

__all__ = ["BetaGeometricBetaBinomial", "BetaGeometricNBD", "GammaGamma", "ShiftedBetaGeometric"]

if TYPE_CHECKING:
    from journeymap.insights.bgbb import BetaGeometricBetaBinomial
    from journeymap.insights.bgnbd import BetaGeometricNBD
    from journeymap.insights.gamma_gamma import GammaGamma
    from journeymap.insights.sbg import ShiftedBetaGeometric


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
