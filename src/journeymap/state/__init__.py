"""The journey state: per unit, what the views read, folded in from new events (docs/state.md).

The fold itself is `journeymap.state.fold.fold` (not re-exported: the name would hide the module)."""

from journeymap.state.fold import FoldReport
from journeymap.state.read import current_tables, status
from journeymap.state.refresh import RefreshResult, refresh

__all__ = ["FoldReport", "RefreshResult", "current_tables", "refresh", "status"]
