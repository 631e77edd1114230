"""The journey map's assembly: one view per persona from the engine's metrics, with the placed insights.

- ``journey_map``: ``build_map`` (docs/map-json.md), used by ``journeymap map`` and ``Workspace.journey_map``.
- ``pain_points``: the largest drop-offs, slowest stages and worst-rated touchpoints, and opportunities.
- ``targets``: future-state targets against the current state.
- ``emotion``: the emotion scale (-1..1) survey scores are put on, for a stage's emotion and its targets.
- ``curves``: the current-vs-future curves, emotion and time, actual against target, per stage.

``pain_points`` and ``targets`` are the map's building blocks and are not re-exported here (a re-exported
``pain_points`` function would hide the ``pain_points`` module); import them from their modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["SECTIONS", "build_map", "emotion"]

if TYPE_CHECKING:
    from journeymap.insights.map.journey_map import SECTIONS, build_map, emotion


def __getattr__(name: str):
    # Lazy (PEP 562): importing insights.map.minimums, which the registry does at CLI start, must not pull
    # in the map's machinery (scipy, VADER); `from journeymap.insights.map import build_map` still works.
    if name in __all__:
        return getattr(importlib.import_module("journeymap.insights.map.journey_map"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
