"""The latest entries of a cache, least recently used dropped: what engine.compile_cache (compiled SQL by the
expression's shape) and engine.statements (an analysis's statement by its options) keep.

>>> stats = {"hits": 0, "misses": 0}
>>> kept = Recent(lambda: 2, stats)
>>> for key in "abc":
...     kept.put(key, key.upper())
>>> list(kept), kept.get("a"), kept.get("b"), stats
(['b', 'c'], None, 'B', {'hits': 1, 'misses': 3})
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable


class Recent(OrderedDict):
    """At most `size()` entries (read at each put, so that a module's SIZE can change), thread-safe; `get`
    counts a hit into `stats`, `put` a miss."""

    def __init__(self, size: Callable[[], int], stats: dict[str, int]):
        super().__init__()
        self.size, self.stats, self.lock = size, stats, threading.Lock()

    def get(self, key: Hashable, default=None):
        with self.lock:
            value = super().get(key)
            if value is None:
                return default
            self.move_to_end(key)
            self.stats["hits"] += 1
            return value

    def put(self, key: Hashable, value) -> None:
        with self.lock:
            self[key] = value
            self.stats["misses"] += 1
            while len(self) > self.size():
                self.popitem(last=False)

    def count(self, what: str) -> None:
        with self.lock:
            self.stats[what] += 1

    def clear(self) -> None:
        with self.lock:
            super().clear()
            self.stats.update(dict.fromkeys(self.stats, 0))
