"""The one cache of the server: analysis results by (name, options), for the JSON API and the web app.

One invalidation rule: a result is valid while the journey tables and journeymap.yml are those it was
computed from. The journey tables change only when identity is stitched (the loader thread stitches after
loads), so the version is the runner's stitch count and the definition file's stamp. One computation per
key at a time: a second request for the same key waits for the first instead of computing it again.

A read request computes from one snapshot of the store (server/context.py: a read transaction per request),
whose version it knows when no refresh was under way as it began (`reads`). Only such a result is kept, and a
request reads kept results only when they are of its snapshot's version: a request that began during a refresh
(its snapshot may hold the new journey events before the new version is published) or before the last publish
computes from its snapshot and keeps nothing, so two panels of one page, or of two pages, never mix versions.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["LIVE", "AnalysisCache", "definition_stamp"]

ENTRIES = 128

LIVE = "live"
"""`reads` of a computation that reads the store as it is when each query runs (no snapshot): the version when
it began is its version, as long as it is still current when it ends."""


def definition_stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class AnalysisCache:
    def __init__(self, version: Callable[[], tuple], entries: int = ENTRIES):
        self._version_of = version
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._busy: dict[tuple, threading.Lock] = {}
        self._version: tuple | None = None
        self.entries = entries
        self.stats = {"hits": 0, "misses": 0, "warmed": 0}
        """Lookups answered from the cache, computed on a miss, and results the loader put in after a refresh."""

    def _current(self) -> tuple:
        """The data version now; clears the cache when it moved (call with the lock held)."""
        version = self._version_of()
        if version != self._version:
            self._items.clear()
            self._version = version
        return version

    def version(self) -> tuple:
        """The data version now."""
        with self._lock:
            return self._current()

    def clear(self) -> None:
        """Drop every result, as new data would (benchmarks/bench_server_reads.py times requests this way)."""
        with self._lock:
            self._items.clear()

    def get(self, key: tuple, compute: Callable[[], Any], reads: tuple | str | None = LIVE) -> Any:
        """The result for `key`, computed on a miss. `reads`: the version of the snapshot `compute` reads (None:
        unknown, a refresh was under way), or LIVE (module docstring)."""
        with self._lock:
            version = self._current()
            foreign = reads is not LIVE and reads != version  # not this version's data: neither read nor kept
            if foreign:
                self.stats["misses"] += 1
            elif key in self._items:
                self._items.move_to_end(key)
                self.stats["hits"] += 1
                return self._items[key]
            else:
                busy = self._busy.setdefault(key, threading.Lock())
        if foreign:
            return compute()
        with busy:
            with self._lock:
                if self._current() == version and key in self._items:
                    self.stats["hits"] += 1
                    return self._items[key]
                self.stats["misses"] += 1
            value = compute()
            with self._lock:
                if self._current() == version:  # computed from the data still current
                    self._items[key] = value
                    while len(self._items) > self.entries:
                        self._items.popitem(last=False)
        return value

    def install(self, version: tuple, values: dict[tuple, Any]) -> bool:
        """Put results computed for the data `version` (the loader's, after a refresh: server/warm.py) in, if that
        is still the current version; returns whether it was."""
        with self._lock:
            if self._current() != version:
                return False
            for key, value in values.items():
                self._items[key] = value
                self.stats["warmed"] += 1
            while len(self._items) > self.entries:
                self._items.popitem(last=False)
            return True

    def peek(self, key: tuple) -> Any:
        with self._lock:
            self._current()
            return self._items.get(key)
