"""A per-VM memo of built CIM instances: building a pywbem instance costs far more than comparing
the values it is built from, and a VM that does not change gives the same values request after
request."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import pywbem


class InstanceMemo:
    """The last instance built for each VM, with what it was built from (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built: dict[str, tuple[tuple[Any, ...], pywbem.CIMInstance]] = {}

    def get(self, guid: str, inputs: tuple[Any, ...],
            build: Callable[..., pywbem.CIMInstance]) -> pywbem.CIMInstance:
        """The instance ``build(*inputs)`` returns: the kept one when ``inputs`` are equal."""
        with self._lock:
            seen = self._built.get(guid)
        if seen is not None and seen[0] == inputs:
            return seen[1]
        inst = build(*inputs)
        with self._lock:
            self._built[guid] = (inputs, inst)
        return inst

    def keep_only(self, guids: Iterable[str]) -> None:
        keep = set(guids)
        with self._lock:
            for guid in [g for g in self._built if g not in keep]:
                del self._built[guid]
