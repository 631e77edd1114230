"""The server's one cache (server/cache.py): which results it keeps and answers with, against the data version a
computation reads: as the store is (LIVE), or one snapshot's version (None when a refresh was under way as the
snapshot began)."""

from __future__ import annotations

from journeymap.server.cache import LIVE, AnalysisCache


class Counter:
    def __init__(self):
        self.version, self.calls = (1,), 0

    def compute(self, value):
        def run():
            self.calls += 1
            return value
        return run


def test_a_live_computation_is_kept_while_its_version_is_current():
    c = Counter()
    cache = AnalysisCache(lambda: c.version)
    assert cache.get(("a",), c.compute(1)) == 1 and cache.get(("a",), c.compute(2)) == 1 and c.calls == 1

    def moves():  # the version moves while it computes: its result is returned, not kept
        c.version = (2,)
        return "old data"
    assert cache.get(("b",), moves, reads=LIVE) == "old data" and cache.peek(("b",)) is None


def test_a_snapshot_of_the_current_version_reads_and_keeps_results():
    c = Counter()
    cache = AnalysisCache(lambda: c.version)
    assert cache.get(("a",), c.compute(1), reads=(1,)) == 1
    assert cache.get(("a",), c.compute(2), reads=(1,)) == 1 and cache.get(("a",), c.compute(3)) == 1 and c.calls == 1


def test_a_snapshot_begun_during_a_refresh_or_of_another_version_neither_reads_nor_keeps():
    c = Counter()
    cache = AnalysisCache(lambda: c.version)
    cache.get(("a",), c.compute("v1"))
    assert cache.get(("a",), c.compute("newer"), reads=None) == "newer"  # a refresh was under way
    assert cache.get(("a",), c.compute("older"), reads=(0,)) == "older"  # began before the last publish
    assert cache.peek(("a",)) == "v1" and c.calls == 3 and cache.stats["misses"] == 3 and cache.stats["hits"] == 0
