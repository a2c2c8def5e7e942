"""The encoded text of instances already written, kept by instance identity.

Providers that build an instance only when what it is made from changed (Msvm_ComputerSystem's
``InstanceMemo``: the same VM in the same state is the same ``CIMInstance`` object from one
enumeration to the next) hand out shared, read-only instances. Writing such an instance as
WS-Man or CIM-XML text was most of an enumeration's time, and gives the same text every time:
:class:`Rendered` keeps that text with the instance it was written from and gives it back
while the very same object is asked for again with the same options.

Correctness rests on two things: an instance handed out by a provider is never changed
afterwards (the providers' contract: a changed VM is a new instance), and an entry holds a
reference to its instance, so its ``id`` cannot be reused by another object while the entry
exists. Any new object, equal or not, is written afresh.

Memory: an entry lives as long as its instance is referenced from elsewhere (a provider's memo,
an open enumeration context). Whenever the table has grown to twice its size after the last
sweep (at least :data:`SWEEP_FLOOR` entries), entries whose instance only the table still
references (CPython's reference count) are dropped, so instances built once for a single
answer (most providers build fresh ones every time) do not pile up: the table stays within
about twice the instances alive anyway.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

SWEEP_FLOOR = 512
# references to an instance while the sweep looks at it when only the table holds it: the
# entry tuple and getrefcount's own argument
_ONLY_OURS = 2


T = TypeVar("T")  # what is kept: str (a text) or bytes (an encoded one)


class Rendered(Generic[T]):
    """Thread-safe table id(instance) -> (instance, options, text)."""

    def __init__(self, floor: int = SWEEP_FLOOR) -> None:
        self._lock = threading.Lock()
        self._table: dict[int, tuple[object, Hashable, T]] = {}
        self._floor = floor
        self._sweep_at = floor
        self.hits = 0
        self.misses = 0

    def text(self, inst: object, options: Hashable, write: Callable[[], T]) -> T:
        """``write()``'s text for ``inst`` written with ``options`` (hashable, compared with
        ==): the kept one when this very object was written with equal options before."""
        got = self._table.get(id(inst))
        if got is not None and got[0] is inst and got[1] == options:
            self.hits += 1
            return got[2]
        text = write()
        self.misses += 1
        with self._lock:
            self._table[id(inst)] = (inst, options, text)
            if len(self._table) > self._sweep_at:
                self._sweep()
        return text

    def _sweep(self) -> None:
        """Drop the entries whose instance nothing else references (lock held)."""
        dead = [key for key, entry in self._table.items()
                if sys.getrefcount(entry[0]) <= _ONLY_OURS]
        for key in dead:
            del self._table[key]
        self._sweep_at = max(self._floor, 2 * len(self._table))

    def __len__(self) -> int:
        return len(self._table)
