"""Per-key rate limits: one token bucket per write key, counted in events.

A bucket holds up to `burst` events and refills at `rate` events per second. A request costs its
number of events (a batch of 100 costs 100; a request larger than the bucket costs the whole bucket,
so it can pass when the bucket is full). When the bucket cannot pay, the request is refused with
429 and `Retry-After`: the whole seconds until it could.

>>> clock = iter([0.0, 0.0, 1.0]).__next__
>>> limits = RateLimiter(rate=10, burst=10, clock=clock)
>>> limits.take("k", 10), limits.take("k", 5), limits.take("k", 5)
(0.0, 0.5, 0.0)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, cost: float) -> float:
        """0.0 when the request may pass (and its cost is paid), else the seconds to wait."""
        if not self.enabled:
            return 0.0
        cost = min(cost, self.burst)
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (cost - tokens) / self.rate


def retry_after(seconds: float) -> str:
    """The Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
