"""Msvm_ComputerSystem: the host and every VM, and RequestStateChange on a VM.

Enumeration and Get read the VMs' states from the table libvirt's lifecycle events keep
(``host.inventory()``, ``host.cached_state()``: no libvirt call when nothing changed; a listing
of every domain when events are not delivered; docs/architecture.md, Sources of truth); a VM
with a state change, export or configuration change in flight shows what ``ctx.transitions``
holds (transitional EnabledState, RequestedState, OperationalStatus[1]). TimeOfLastStateChange
and OnTimeInMilliseconds are measured from when this service first saw the VM in its current
state. RequestStateChange always answers 4096 with a non-cancellable job (or a refusal code at
once); its TimeoutPeriod is accepted and ignored.

Building a pywbem CIMInstance costs far more than writing it as CIM-XML, so enumeration keeps the
instance of each VM and builds it again only when something it is made from changed (the VM's
definition, its state, transition or on-time): a VM list of 1,000 VMs then costs about as much
as the two libvirt calls. The instances ``enumerate`` returns are therefore shared between calls:
treat them as read-only (``get`` builds a fresh one). And while the host's inventory is the very
same tuple (no VM and no state changed), no transition began or ended and no VM runs (a running
VM's OnTimeInMilliseconds moves with the clock), ``enumerate`` returns its last tuple again, so
that the registry and the writers can keep what they made of it (docs/contracts.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import pywbem

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.enums import (
    ElementEffects,
    EnabledState,
    OperationalStatus,
    RequestedState,
)
from vsms.errors import InvalidParameter, NotSupported
from vsms.mapping.memo import InstanceMemo
from vsms.mapping.system import computer_system, host_system
from vsms.model.vm import VirtualSystem
from vsms.operations.state import prepare_state_change
from vsms.operations.transitions import Transition
from vsms.providers.base import CIMTarget, ServiceProvider, method
from vsms.providers.common import Params, Result, key, param, vm_element
from vsms.providers.context import ServiceContext
from vsms.virt.host import Inventory


class StateClock:
    """When this service first saw each VM in its current steady state (thread-safe)."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[EnabledState, datetime]] = {}

    def since(self, guid: str, state: EnabledState) -> datetime:
        with self._lock:
            seen = self._seen.get(guid)
            if seen is None or seen[0] is not state:
                seen = (state, self._now())
                self._seen[guid] = seen
            return seen[1]

    def keep_only(self, guids: Iterable[str]) -> None:
        keep = set(guids)
        with self._lock:
            for guid in [g for g in self._seen if g not in keep]:
                del self._seen[guid]

    def on_time_ms(self, guid: str, state: EnabledState) -> int:
        if state is not EnabledState.ENABLED:
            return 0
        return int((self._now() - self.since(guid, state)).total_seconds() * 1000)


@dataclass(frozen=True)
class _Listed:
    """An enumeration's answer and what it was made from: the host's inventory (the very
    tuple, which the host gives again while no VM and no state changed), the transitions'
    version read before their snapshot, and whether a VM was running (its OnTimeInMilliseconds
    moves with the clock: such an answer is never given again)."""

    systems: Inventory
    transitions: int
    timed: bool
    instances: tuple[pywbem.CIMInstance, ...]


class ComputerSystemProvider(ServiceProvider):
    classnames = (names.COMPUTER_SYSTEM,)

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.clock = StateClock()
        self._built = InstanceMemo()
        self._listed: _Listed | None = None

    def _instance(self, vs: VirtualSystem, steady: EnabledState, transition: Transition | None,
                  since: datetime, on_time_ms: int) -> pywbem.CIMInstance:
        state, requested = steady, RequestedState.NOT_APPLICABLE
        operational: list[int] = [OperationalStatus.OK]
        if transition is not None:
            state = transition.enabled_state or steady
            requested = transition.requested
            if transition.operational is not None:
                operational.append(transition.operational)
        return computer_system(vs, state, requested, operational, on_time_ms=on_time_ms,
                               last_state_change=since)

    def _observed(self, guid: str, steady: EnabledState) -> tuple[datetime, int]:
        return self.clock.since(guid, steady), self.clock.on_time_ms(guid, steady)

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        systems = self.ctx.host.inventory()  # shared models: read only
        moved = self.ctx.transitions.version()  # before the snapshot: see _Listed
        last = self._listed
        if (last is not None and last.systems is systems and last.transitions == moved
                and not last.timed):
            return last.instances
        moving = {g.upper(): t for g, t in self.ctx.transitions.snapshot().items()}
        self.clock.keep_only(vs.guid.upper() for vs, _ in systems)
        self._built.keep_only(vs.guid.upper() for vs, _ in systems)
        out = [host_system(self.ctx.hostname)]
        timed = False
        for vs, steady in systems:
            guid = vs.guid.upper()
            transition = moving.get(guid)
            since, on_ms = self._observed(guid, steady)
            timed = timed or steady is EnabledState.ENABLED
            # everything the instance is made from (the transition is a frozen dataclass)
            inputs = (vs, steady, transition, since, on_ms)
            out.append(self._built.get(guid, inputs, self._instance))
        listed = _Listed(systems, moved, timed, tuple(out))
        self._listed = listed
        return listed.instances

    def get(self, path: pywbem.CIMInstanceName) -> pywbem.CIMInstance | None:
        try:
            guid = key(path, "Name")
        except InvalidParameter:
            return None
        if guid.upper() == self.ctx.hostname.upper():
            return host_system(self.ctx.hostname)
        vs = self.ctx.host.get_system(guid)
        if vs is None:
            return None
        steady = self.ctx.host.cached_state(vs.guid)
        return self._instance(vs, steady, self.ctx.transitions.get(vs.guid.upper()),
                              *self._observed(vs.guid.upper(), steady))

    @method("RequestStateChange", Role.OPERATOR, job=True,
            params=("RequestedState", "TimeoutPeriod"))
    def request_state_change(self, target: CIMTarget, params: Params) -> Result:
        if not isinstance(target, pywbem.CIMInstanceName):
            raise NotSupported("RequestStateChange is a method of a virtual machine instance: "
                               "invoke it on an Msvm_ComputerSystem path")
        guid = key(target, "Name").upper()
        if guid == self.ctx.hostname.upper():
            raise NotSupported("the state of the host computer system cannot be changed through "
                               "this service")
        change = prepare_state_change(self.ctx.host, self.ctx.transitions, guid,
                                      param(params, "RequestedState"))
        return self.start_job(change.action.title,
                              f"{change.action.title}: '{change.vs.name}' ({guid})", change,
                              affected=[vm_element(guid, ElementEffects.EXCLUSIVE_USE)],
                              reservation=change.reservation, cancellable=False)
