"""Who may hold a connection, and how many request-body bytes may be held at once.

Protocol-agnostic accounting of the HTTP layer (``vsms.wbem.server``), used from its event-loop
thread only (no locks):

- :class:`Admission` admits a new connection or says why not. A connection is *unauthenticated*
  until one of its requests passed authentication. Limits: ``max_connections`` in all,
  ``max_per_source`` from one source address, and ``max_unauthenticated`` for connections that
  have not authenticated yet, so the rest of the capacity is kept for clients that have. When
  the unauthenticated share (or the whole capacity) is full, the oldest unauthenticated
  connection that is still waiting for its request is closed to make room: idle connections
  opened without logging in cannot lock newcomers out, whatever their number and sources.
- :class:`BodyBudget` bounds the bytes of request bodies buffered across all connections; a
  body that does not fit is refused (the server answers 503), never queued in memory.
- :class:`HeapTrim` says when to trim the C heap (``malloc_trim``) after a burst, so the memory
  of closed connections and dropped bodies goes back to the system; buffers of 1 MiB and more
  are mmapped and returned when freed (:func:`fixed_mmap_threshold`).
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vsms.errors import InvalidParameter

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Conn:
    """One admitted connection. ``close`` aborts it (used to evict it)."""

    source: str
    close: Callable[[], None]
    opened: float
    authenticated: bool = False
    waiting: bool = True  # waiting for (the start of) its next request, nothing in progress
    evicted: bool = False
    gone: bool = field(default=False, repr=False)


class Admission:
    def __init__(self, *, max_connections: int = 256, max_per_source: int = 64,
                 max_unauthenticated: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        unauth = max_connections * 3 // 4 if max_unauthenticated is None else max_unauthenticated
        if not 0 < unauth <= max_connections or max_per_source < 1:
            raise InvalidParameter(
                f"connection limits: need 0 < max_unauthenticated_connections ({unauth}) <= "
                f"max_connections ({max_connections}) and max_connections_per_source >= 1")
        self.max_connections = max_connections
        self.max_per_source = max_per_source
        self.max_unauthenticated = unauth
        self._clock = clock
        self._conns: list[Conn] = []  # oldest first
        self._per_source: dict[str, int] = {}
        self._unauthenticated = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._conns)

    @property
    def unauthenticated(self) -> int:
        return self._unauthenticated

    def from_source(self, source: str) -> int:
        return self._per_source.get(source, 0)

    def admit(self, source: str, close: Callable[[], None]) -> Conn | str:
        """The new connection's record, or why it is refused."""
        if self._per_source.get(source, 0) >= self.max_per_source:
            return (f"too many connections from {source} (limit {self.max_per_source} per "
                    f"address); close idle ones or retry later")
        while (len(self._conns) >= self.max_connections
               or self._unauthenticated >= self.max_unauthenticated):
            victim = next((c for c in self._conns if not c.authenticated and c.waiting), None)
            if victim is None:
                return (f"too many connections (limit {self.max_connections}); retry later")
            self.release(victim)
            victim.evicted = True
            self.evictions += 1
            victim.close()
        conn = Conn(source, close, self._clock())
        self._conns.append(conn)
        self._per_source[source] = self._per_source.get(source, 0) + 1
        self._unauthenticated += 1
        return conn

    def authenticated(self, conn: Conn) -> None:
        """``conn`` sent a request that passed authentication: it is never evicted now."""
        if not conn.authenticated and not conn.gone:
            conn.authenticated = True
            self._unauthenticated -= 1

    def release(self, conn: Conn) -> None:
        """The connection is closed (idempotent)."""
        if conn.gone:
            return
        conn.gone = True
        self._conns.remove(conn)
        left = self._per_source[conn.source] - 1
        if left:
            self._per_source[conn.source] = left
        else:
            del self._per_source[conn.source]
        if not conn.authenticated:
            self._unauthenticated -= 1


class BodyBudget:
    """At most ``limit`` bytes of request bodies held at once (``take`` / ``give``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        self.peak = max(self.peak, self.used)
        return True

    def give(self, size: int) -> None:
        self.used -= size


class HeapTrim:
    """When to give freed heap memory back to the system: after ``bytes_after`` bytes of
    bodies went through (held, or read and dropped) or ``closes_after`` connections closed
    since the last time (asyncio reads up to 256 KiB at a time per connection, from the heap).
    The server asks :meth:`due` once a second."""

    def __init__(self, *, bytes_after: int = 16 * 1024 * 1024, closes_after: int = 16) -> None:
        self._bytes_after, self._closes_after = bytes_after, closes_after
        self._bytes = self._closes = 0
        self.trims = 0

    def passed(self, size: int) -> None:
        self._bytes += size

    def closed(self) -> None:
        self._closes += 1

    def due(self) -> bool:
        if self._bytes < self._bytes_after and self._closes < self._closes_after:
            return False
        self._bytes = self._closes = 0
        self.trims += 1
        return True


_M_MMAP_THRESHOLD = -3


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the process's own symbols: libc's on Linux
    except OSError:
        return None


def fixed_mmap_threshold(size: int = 1024 * 1024) -> bool:
    """glibc: serve allocations of ``size`` bytes and more from mmap, returned to the system
    when freed. (glibc otherwise raises the threshold after each large free, so later large
    buffers come from the heap and stay there.) False when not glibc."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, size))


def trim_heap() -> None:
    """Give free heap memory back to the system (glibc ``malloc_trim``; no-op elsewhere)."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)
