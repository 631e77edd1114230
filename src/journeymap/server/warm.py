"""Work happens when data arrives: after each refresh the loader computes the journey map page's default result
on the new data and puts it in the server's one cache (server/cache.py) as the new version is published, so the
first view after new events reads it instead of computing it while someone waits.

The map is what every visit starts with and the costliest page (its insights read the journey state, the stored
churn scores and the surveys). Other pages are computed on their first view, as before. The result is the one
the page would compute (the same analysis, options and cache key), so warming changes when the work is done,
never the numbers. It adds the map's time to every refresh of the loader, which refreshes at most every
`--stitch-seconds` (30 by default) while events arrive. The loader also computes it once when the server starts
on a workspace with journeys, so the first view after a restart is read too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from journeymap.analyses import get
from journeymap.ingest.store import cursor
from journeymap.server.api import cache_key
from journeymap.server.context import ServerWorkspace
from journeymap.server.views.map import map_options

log = logging.getLogger("journeymap.server")


def default_map(workspace, con) -> list[tuple[tuple, Callable[[], Any]]]:
    """The map page with an empty query (its default options): its cache key, and what computes it through a
    cursor of the server's store, as a page view reads it."""
    analysis = get("map")
    p = analysis.validate({})
    params = analysis.validate(map_options(p, p.date_from, p.date_to))

    def compute() -> Any:
        ws = ServerWorkspace(workspace, cursor(con))
        try:
            return analysis(ws, params)
        finally:
            ws.close()

    return [(cache_key(analysis, params), compute)]


class Warmer:
    """What the loader calls: `at_start` once, `after_refresh` after each refresh. A failure is logged, never
    raised: the events and the journey state are in, and the page says why when it is viewed."""

    def __init__(self, pages: Callable[[], list[tuple[tuple, Callable[[], Any]]]], version: Callable[[], tuple],
                 cache):
        """`pages`: the (cache key, computation) of each page to compute ahead; `version`: the cache's data
        version once the refresh under way is published (one stitch more); `cache`: server/cache.py's."""
        self.pages, self.version, self.cache = pages, version, cache
        self.stats = {"warmed": 0, "failed": 0, "seconds": None}
        """Results published, computations that failed, and the last one's seconds (shown by /-/health)."""

    def at_start(self) -> None:
        """The pages of what the store already holds, through the cache: a view that arrives meanwhile waits for
        this computation instead of repeating it."""
        started = time.monotonic()
        try:
            for key, compute in self.pages():
                self.cache.get(key, compute)
                self.stats["warmed"] += 1
        except Exception as exc:  # noqa: BLE001 - see the class
            self._failed(exc)
            return
        self.stats["seconds"] = round(time.monotonic() - started, 3)

    def after_refresh(self) -> Callable[[], None] | None:
        """Computes the pages on the refreshed data before readers see it; returns what puts them in the cache
        once the stitch count has moved (None when the computation failed)."""
        version = self.version()
        started = time.monotonic()
        try:
            values = {key: compute() for key, compute in self.pages()}
        except Exception as exc:  # noqa: BLE001 - see the class
            self._failed(exc)
            return None
        self.stats["seconds"] = round(time.monotonic() - started, 3)

        def publish() -> None:
            if self.cache.install(version, values):
                self.stats["warmed"] += 1

        return publish

    def _failed(self, exc: Exception) -> None:
        self.stats["failed"] += 1
        log.info("the map was not computed ahead of its first view: %s", exc)
