"""Improvements that are owned and measured (docs/improvements.md).

- ``store``: the `improvements` and `improvement_history` tables, and the one way to add, change and read them.
- ``series``: the weekly series of an improvement's metric, computed by the engine on the store.
- ``its``: an interrupted time series (segmented regression with Newey-West errors).
- ``did``: difference-in-differences against a comparison series the improvement should not affect.
- ``power``: the minimum detectable effect from the pre-period's noise, and the weeks still needed.
- ``effect``: which method applies, the effect with its 95% interval, and the plain verdict.

Nothing here imports the analyses layer; the CLI, API and map call ``effect.measure``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["measure"]

if TYPE_CHECKING:
    from journeymap.insights.improvements.effect import measure


def __getattr__(name: str):
    # lazily: `measure` needs statsmodels, while the store alone (read by every page) must stay cheap
    if name == "measure":
        value = importlib.import_module("journeymap.insights.improvements.effect").measure
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
