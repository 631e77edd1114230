"""Insights on top of the journey map, one subpackage per concern.

- ``value``: lifetime value (sBG, BG/NBD, Gamma-Gamma, BG/BB models; CLV by persona and channel).
- ``risk``: point-in-time features, churn risk with reason codes, health scores.
- ``voice``: voice of the customer (sentiment, themes, texts tied to the journey, interviews).
- ``map``: the journey map's assembly (``build_map``, pain points, targets).
- ``improvements``: improvements that are owned and measured (interrupted time series, difference-in-differences).
- ``friction`` and ``moments``: friction and delight ranked by what is at stake; moments of truth.
- ``conformance``: real journeys against the designed future state.
- ``experiments``: A/B tests' statistics (shared by the `experiment` analysis and the map).

Data flows one way: insights import engine, journey, identity, ingest, events and errors, never workspace,
report, server or cli. This package imports none of its subpackages; it only re-exports the four CLV models,
lazily (PEP 562 ``__getattr__``), because they need scipy and ``import journeymap.insights`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {
    "ShiftedBetaGeometric": "journeymap.insights.value.sbg",
    "BetaGeometricNBD": "journeymap.insights.value.bgnbd",
    "GammaGamma": "journeymap.insights.value.gamma_gamma",
    "BetaGeometricBetaBinomial": "journeymap.insights.value.bgbb",
}

__all__ = ["BetaGeometricBetaBinomial", "BetaGeometricNBD", "GammaGamma", "ShiftedBetaGeometric"]

if TYPE_CHECKING:
    from journeymap.insights.value.bgbb import BetaGeometricBetaBinomial
    from journeymap.insights.value.bgnbd import BetaGeometricNBD
    from journeymap.insights.value.gamma_gamma import GammaGamma
    from journeymap.insights.value.sbg import ShiftedBetaGeometric


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
