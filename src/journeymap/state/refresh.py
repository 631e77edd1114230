"""A refresh: identity stitched from the events, then the journey state folded in (state.fold)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from journeymap.identity import stitch
from journeymap.identity.stitch import StitchResult
from journeymap.journey.definition import JourneyDefinition
from journeymap.state.fold import FoldReport, fold


@dataclass
class RefreshResult:
    stitch: StitchResult
    state: FoldReport | None
    """None without a journey definition: there is nothing to fold the events into."""
    risk: Any = None
    """What the churn model did after the fold (insights.risk.stored.RiskRefresh): set by the callers above
    this layer (Workspace.refresh, the server's loader thread), which own the models; None when not run."""


def refresh(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition | None,
            rebuild: bool = False) -> RefreshResult:
    stitched = stitch(con)
    return RefreshResult(stitched, fold(con, definition, rebuild=rebuild) if definition is not None else None)
