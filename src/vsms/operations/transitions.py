"""In-flight state changes: what a VM shows while a job changes it.

libvirt only knows steady states; while a job starts, stops, saves, pauses, resumes or exports a
VM, Msvm_ComputerSystem shows Hyper-V's transitional EnabledState (Starting 32770, Saving 32773,
…), RequestedState holds the requested value and OperationalStatus[1] may say "Exporting".
A VM has at most one transition at a time; a second state-changing request gets InvalidState.

``begin`` returns the :class:`Reservation`; whoever holds it releases it once: ``during`` at the
end of a change made within the call, the job engine when the job it was handed to ends or is
never run (``JobManager.submit(..., reservation=)``), and the reservation itself when used as a
context manager and an exception leaves the block before it was handed on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

from vsms.cim.enums import EnabledState, OperationalStatus, RequestedState
from vsms.errors import InvalidState


@dataclass(frozen=True)
class Transition:
    enabled_state: EnabledState | None  # None: keep the steady state (e.g. while exporting)
    requested: RequestedState
    operational: OperationalStatus | None = None
    what: str = ""


class Reservation:
    """One VM's transition, held until ``release`` (idempotent, thread-safe)."""

    def __init__(self, owner: Transitions, guid: str) -> None:
        self._owner: Transitions | None = owner
        self.guid = guid
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            owner, self._owner = self._owner, None
        if owner is not None:
            owner.end(self.guid)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Released when an exception leaves the block (a job it was handed to releases it
        otherwise)."""
        if kind is not None:
            self.release()


class Transitions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_guid: dict[str, Transition] = {}
        self._version = 0  # bumped by every change of _by_guid

    def version(self) -> int:
        """A number that changes whenever a transition begins, changes or ends."""
        return self._version

    def get(self, guid: str) -> Transition | None:
        with self._lock:
            return self._by_guid.get(guid)

    def snapshot(self) -> dict[str, Transition]:
        with self._lock:
            return dict(self._by_guid)

    def begin(self, guid: str, transition: Transition, vm_name: str = "") -> Reservation:
        with self._lock:
            current = self._by_guid.get(guid)
            if current is not None:
                label = f"'{vm_name}' ({guid})" if vm_name else guid
                raise InvalidState(
                    f"virtual machine {label} is busy: {current.what or 'a state change'} is in "
                    "progress; wait for its job to finish and try again")
            self._by_guid[guid] = transition
            self._version += 1
        return Reservation(self, guid)

    def relabel(self, guid: str, transition: Transition) -> None:
        """Show ``transition`` for a VM whose reservation is held (a job entering a new
        phase, e.g. Deleting Snapshot → Merging Disks); nothing when none is held."""
        with self._lock:
            if guid in self._by_guid:
                self._by_guid[guid] = transition
                self._version += 1

    def end(self, guid: str) -> None:
        with self._lock:
            if self._by_guid.pop(guid, None) is not None:
                self._version += 1

    @contextmanager
    def during(self, guid: str, transition: Transition, vm_name: str = "") -> Iterator[None]:
        reservation = self.begin(guid, transition, vm_name)
        try:
            yield
        finally:
            reservation.release()
