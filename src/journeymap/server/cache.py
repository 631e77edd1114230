"""The one cache of the server: analysis results by (name, options), for the JSON API and the web app.

One invalidation rule: a result is valid while the journey tables and journeymap.yml are those it was
computed from. The journey tables change only when identity is stitched (the loader thread stitches after
loads), so the version is the runner's stitch count and the definition file's stamp. One computation per
key at a time: a second request for the same key waits for the first instead of computing it again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["AnalysisCache", "definition_stamp"]

ENTRIES = 128


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

    def clear(self) -> None:
        """Drop every result, as new data would (benchmarks/bench_server_reads.py times requests this way)."""
        with self._lock:
            self._items.clear()

    def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        with self._lock:
            version = self._current()
            if key in self._items:
                self._items.move_to_end(key)
                self.stats["hits"] += 1
                return self._items[key]
            busy = self._busy.setdefault(key, threading.Lock())
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
