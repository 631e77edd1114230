"""The journey map's assembly: one view per persona from the engine's metrics, with the placed insights.

- ``journey_map``: ``build_map`` (docs/map-json.md), used by ``journeymap map`` and ``Workspace.journey_map``.
- ``pain_points``: the largest drop-offs, slowest stages and worst-rated touchpoints, and opportunities.
- ``targets``: future-state targets against the current state.

``pain_points`` and ``targets`` are the map's building blocks and are not re-exported here (a re-exported
``pain_points`` function would hide the ``pain_points`` module); import them from their modules.
"""

from __future__ import annotations

from journeymap.insights.map.journey_map import SECTIONS, build_map, emotion

__all__ = ["SECTIONS", "build_map", "emotion"]
