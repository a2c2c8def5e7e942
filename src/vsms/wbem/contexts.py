"""Open enumeration contexts, shared by every front end (CIM-XML pull operations now,
WS-Management Enumerate/Pull later): bounded in total and per user, expired when idle.

An enumeration is a snapshot of its result (``items``) with a renderer for the front end's
wire format, an owner (the user who opened it), and an idle timeout renewed on every use.
Nothing here knows a protocol: the front end turns :class:`ContextLimit` and
:class:`UnknownContext` into its own fault (CIM-XML: CIM_ERR_SERVER_LIMITS_EXCEEDED and
CIM_ERR_INVALID_ENUMERATION_CONTEXT).

Limits: ``max_open`` contexts in all, at most ``max_per_owner`` of them for one owner, so one
user (a reader opening contexts and never pulling them) cannot take the capacity of everyone;
the global cap must stay above the per-owner one. A context another owner opened is not found
(the same answer as a context that never existed). Idle contexts are dropped once their
timeout has passed, checked on every call. ``owner`` None (the in-process Python API) is
counted in the global cap only.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from vsms.errors import InvalidParameter, VsmsError


class ContextLimit(VsmsError):
    """Too many open contexts (for this owner or in all); the message names the limit."""

    expected = True


class UnknownContext(VsmsError):
    """No such context for this caller (never opened, finished, closed, expired, or another
    user's), or a context read as another kind than it yields (``yields`` names it)."""

    expected = True

    def __init__(self, message: str, yields: str | None = None) -> None:
        super().__init__(message)
        self.yields = yields


@dataclass
class Enumeration:
    owner: str | None
    namespace: str
    kind: str  # what the items are; the front end's Pull must ask for the same kind
    items: Sequence[Any]  # read only (may be a provider's shared tuple)
    render: Callable[[Any], str]
    timeout: float
    expires: float
    pos: int = 0


class EnumerationContexts:
    """Thread-safe store of open enumerations."""

    def __init__(self, *, default_timeout: float = 60.0, max_timeout: float = 3600.0,
                 max_open: int = 256, max_per_owner: int = 32,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < max_per_owner < max_open:
            raise InvalidParameter(
                f"enumeration limits: need 0 < pull_max_per_user ({max_per_owner}) < "
                f"pull_max_open ({max_open}): one user must not be able to fill the store")
        self.default_timeout = default_timeout
        self.max_timeout = max_timeout
        self.max_open = max_open
        self.max_per_owner = max_per_owner
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, Enumeration] = {}

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._open)

    def owned(self, owner: str | None) -> int:
        """Open contexts of ``owner``."""
        with self._lock:
            self._expire()
            return sum(1 for e in self._open.values() if e.owner == owner)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, e in self._open.items() if e.expires <= now]:
            del self._open[key]

    def open(self, namespace: str, kind: str, items: Sequence[Any], render: Callable[[Any], str],
             max_count: int, timeout: float, owner: str | None = None) -> tuple[str, str | None]:
        """First batch (rendered) and the context id, or None when nothing remains."""
        if max_count >= len(items):
            return "".join(render(i) for i in items), None
        with self._lock:
            self._expire()
            if owner is not None:
                mine = sum(1 for e in self._open.values() if e.owner == owner)
                if mine >= self.max_per_owner:
                    raise ContextLimit(
                        f"user {owner!r} has {mine} open enumerations, the limit per user; "
                        f"pull them to the end or close them (idle ones expire after their "
                        f"timeout)")
            if len(self._open) >= self.max_open:
                raise ContextLimit(
                    f"{self.max_open} enumerations are open, the limit of this server; "
                    f"pull them to the end or close them, or retry later")
            key = secrets.token_hex(16)
            self._open[key] = Enumeration(owner, namespace, kind, items, render, timeout,
                                          self._clock() + timeout, max_count)
        return "".join(render(i) for i in items[:max_count]), key

    def _find(self, key: str, namespace: str, owner: str | None) -> Enumeration:
        e = self._open.get(key)
        if (e is None or e.namespace.lower() != namespace.lower()
                or (owner is not None and e.owner != owner)):
            raise UnknownContext(f"enumeration context {key!r} does not exist in {namespace} "
                                 f"(closed, finished or expired)")
        return e

    def pull(self, key: str, namespace: str, kind: str, max_count: int,
             owner: str | None = None, deadline: float | None = None
             ) -> tuple[str, str | None, int]:
        """The next batch (rendered), the context id (None: finished) and the batch size.
        ``kind`` must be the kind the context was opened with (else UnknownContext naming
        it). With a ``deadline`` (time.monotonic()), items are rendered while it has not
        passed: the batch may be shorter, or empty (the context is then left as it was)."""
        with self._lock:
            self._expire()
            e = self._find(key, namespace, owner)
            if e.kind != kind:
                raise UnknownContext(f"enumeration context {key!r} yields {e.kind}", e.kind)
            if deadline is not None:
                return self._pull_until(key, e, max_count, deadline)
            batch = e.items[e.pos:e.pos + max_count]
            e.pos += len(batch)
            if e.pos >= len(e.items):
                del self._open[key]
                nxt = None
            else:
                e.expires = self._clock() + e.timeout
                nxt = key
        return "".join(e.render(i) for i in batch), nxt, len(batch)

    def _pull_until(self, key: str, e: Enumeration, max_count: int, deadline: float
                    ) -> tuple[str, str | None, int]:
        """``pull`` with a deadline (under the lock: what is rendered is what is taken)."""
        parts: list[str] = []
        while e.pos < len(e.items) and len(parts) < max_count and time.monotonic() < deadline:
            parts.append(e.render(e.items[e.pos]))
            e.pos += 1
        nxt: str | None = key
        if e.pos >= len(e.items):
            del self._open[key]
            nxt = None
        else:
            e.expires = self._clock() + e.timeout
        return "".join(parts), nxt, len(parts)

    def close(self, key: str, namespace: str, owner: str | None = None) -> None:
        with self._lock:
            self._expire()
            self._find(key, namespace, owner)
            del self._open[key]
