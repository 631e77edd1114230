"""Experiments (A/B tests declared under `experiments:`): their statistics, and their place on the map.

- ``result``: ``experiment_result`` (what `journeymap experiment NAME` prints), ``srm_test``.
- ``on_map``: ``map_experiments``, each experiment summarised for the journey map (docs/map-json.md):
  the stage where exposure happens, the primary metric, a verdict and the SRM flag.

Both live here, below the analyses, so that the `experiment` analysis and the map share one computation.
"""

from __future__ import annotations

from journeymap.insights.experiments.on_map import map_experiments, summary
from journeymap.insights.experiments.result import experiment_result, find_experiment, srm_test

__all__ = ["experiment_result", "find_experiment", "map_experiments", "srm_test", "summary"]
