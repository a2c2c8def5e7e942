"""Per-source back-off of failed logins.

Each source address may fail ``free`` times; every further failure blocks that source for
``base`` seconds, doubling up to ``ceiling`` (1, 2, 4, ... s). While a source is blocked its
requests are answered at once (HTTP 429 with Retry-After) without checking any password, so a
guessing client costs neither CPU (argon2, PAM) nor worker time, and other sources are not
slowed at all. A successful login clears the source; failures older than ``forget_after`` are
forgotten. At most ``max_sources`` addresses are tracked (the stalest are dropped first), so a
flood from many addresses cannot grow memory without bound.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    failures: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


class FailureLimiter:
    def __init__(self, *, free: int = 5, base: float = 1.0, ceiling: float = 300.0,
                 forget_after: float = 900.0, max_sources: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if free < 0 or base <= 0 or ceiling < base:
            raise ValueError("need free >= 0 and 0 < base <= ceiling")
        self.free, self.base, self.ceiling = free, base, ceiling
        self.forget_after = max(forget_after, ceiling)
        self.max_sources = max_sources
        self._clock = clock
        self._lock = threading.Lock()
        self._sources: dict[str, _Entry] = {}

    def retry_after(self, source: str) -> float:
        """Seconds ``source`` must still wait (0: it may try now)."""
        now = self._clock()
        with self._lock:
            entry = self._sources.get(source)
            if entry is None:
                return 0.0
            if now - entry.last > self.forget_after:
                del self._sources[source]
                return 0.0
            return max(0.0, entry.blocked_until - now)

    def failure(self, source: str) -> float:
        """Record a failed login; returns how long ``source`` is now blocked (0: not yet)."""
        now = self._clock()
        with self._lock:
            entry = self._sources.get(source)
            if entry is None or now - entry.last > self.forget_after:
                if len(self._sources) >= self.max_sources:
                    self._evict()
                entry = self._sources[source] = _Entry()
            entry.failures += 1
            entry.last = now
            over = entry.failures - self.free
            if over <= 0:
                return 0.0
            delay = min(self.ceiling, self.base * 2.0 ** min(over - 1, 64))
            entry.blocked_until = now + delay
            return delay

    def success(self, source: str) -> None:
        with self._lock:
            self._sources.pop(source, None)

    def tracked(self) -> int:
        with self._lock:
            return len(self._sources)

    def _evict(self) -> None:
        stalest = sorted(self._sources.items(), key=lambda kv: kv[1].last)
        for key, _ in stalest[: max(1, len(stalest) // 8)]:
            del self._sources[key]


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up, at least 1 (the Retry-After header value)."""
    return str(max(1, math.ceil(seconds)))
