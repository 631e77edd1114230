"""Work happens when data arrives: after each refresh the loader computes the journey map page's default result
on the new data and puts it in the server's one cache (server/cache.py) as the new version is published, so the
first view after new events reads it instead of computing it while someone waits.

The map is what every visit starts with and the costliest page (its insights read the journey state, the stored
churn scores and the surveys). Other pages are computed on their first view, as before. The result is the one
the page would compute (the same analysis, options and cache key), so warming changes when the work is done,
never the numbers. It adds the map's time to every refresh of the loader, which refreshes at most every
`--stitch-seconds` (30 by default) while events arrive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from journeymap.analyses import get
from journeymap.server.api import cache_key
from journeymap.server.context import ServerWorkspace
from journeymap.server.views.map import map_options

log = logging.getLogger("journeymap.server")


def default_map(workspace, con) -> dict[tuple, Any]:
    """The map page's result with an empty query (its default options), by its cache key, read through a cursor
    of the server's store as a page view reads it."""
    analysis = get("map")
    p = analysis.validate({})
    params = analysis.validate(map_options(p, p.date_from, p.date_to))
    ws = ServerWorkspace(workspace, con.cursor())
    try:
        return {cache_key(analysis, params): analysis(ws, params)}
    finally:
        ws.close()


class Warmer:
    """Called by the loader after a refresh, before the cache's version moves: computes, then returns what puts
    the results in once the version has moved (None when it skipped or failed; a failure is logged, never
    raised: the events and the journey state are in)."""

    def __init__(self, compute: Callable[[], dict[tuple, Any]], version_after: Callable[[], tuple],
                 install: Callable[[tuple, dict], bool]):
        self.compute, self.version_after, self.install = compute, version_after, install
        self.stats = {"warmed": 0, "failed": 0, "seconds": None}
        """Results published, computations that failed, and the last one's seconds (shown by /-/health)."""

    def __call__(self) -> Callable[[], None] | None:
        version = self.version_after()  # the data version readers will see once this refresh is published
        started = time.monotonic()
        try:
            values = self.compute()
        except Exception as exc:  # noqa: BLE001 - a page that cannot be computed says why when it is viewed
            self.stats["failed"] += 1
            log.info("the map was not computed ahead of its first view: %s", exc)
            return None
        self.stats["seconds"] = round(time.monotonic() - started, 3)

        def publish() -> None:
            if self.install(version, values):
                self.stats["warmed"] += 1

        return publish
