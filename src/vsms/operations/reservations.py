"""The targets of running jobs: one table shared by exports, imports and disk creation.

A method that will create files reserves their paths in its quick checks; while the job runs,
every other call that names one of them, a folder above it or a path inside it is refused with
32774 (InUse) at once. The job releases its reservation when it ends (or is abandoned before it
starts). The table lives in memory: after a restart nothing runs, so nothing is reserved.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from vsms.errors import InUse


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


class Reservation:
    """What one job holds; ``release`` (idempotent) gives it back."""

    def __init__(self, table: Targets, paths: tuple[Path, ...]) -> None:
        self._table = table
        self.paths = paths

    def release(self) -> None:
        self._table._release(self)


class Targets:
    """Paths reserved by running jobs (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[Path, tuple[Reservation, str]] = {}

    def check(self, paths: Iterable[Path]) -> None:
        """Raise InUse (32774) when a path is reserved (the quick check of a method call)."""
        with self._lock:
            self._check(tuple(Path(p) for p in paths))

    def _check(self, wanted: tuple[Path, ...]) -> None:
        for p in wanted:
            for held, (_, who) in self._held.items():
                if _overlap(p, held):
                    raise InUse(f"{p} is the target of a running job ({who}): wait until that "
                                "job has finished, or choose another path")

    def reserve(self, paths: Iterable[Path], holder: str) -> Reservation:
        """Reserve every path for ``holder`` (a description of the job), all or none; InUse
        (32774) when one is reserved already."""
        wanted = tuple(dict.fromkeys(Path(p) for p in paths))
        with self._lock:
            self._check(wanted)
            reservation = Reservation(self, wanted)
            for p in wanted:
                self._held[p] = (reservation, holder)
        return reservation

    def _release(self, reservation: Reservation) -> None:
        with self._lock:
            for p in reservation.paths:
                entry = self._held.get(p)
                if entry is not None and entry[0] is reservation:
                    del self._held[p]

    def held(self) -> list[Path]:
        """The reserved paths (for tests and diagnostics)."""
        with self._lock:
            return sorted(self._held)
