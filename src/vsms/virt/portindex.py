"""Which VM holds each switch port, kept up to date one VM at a time (issue 14).

A switch port an adapter is connected to is recorded by that adapter's VM (``NetworkAdapter.port``
and ``switch_id``), not by the switch. Finding the VM holding a port, or whether a port name is
taken, would otherwise be a pass over every VM; the cache (``vsms.virt.cache``) keeps this index
beside its MAC index instead, adding a VM's ports when it reads or defines the VM and removing
them when the model is replaced or the domain goes, so each question costs the same whatever the
number of VMs. ``HeldPorts`` answers the questions, from the cache's index (under the cache's
lock) or from an index built once over a list of VMs (``held_by``). Keys are case-insensitive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

from vsms.model.switch import Port
from vsms.model.vm import VirtualSystem

HELD_PORT_NAME = "Network adapter port"  # the ElementName of a port an adapter holds


class PortIndex:
    """switch Name -> port Name -> GUIDs of the VMs with an adapter on it (all case-folded
    but the GUIDs). Not thread-safe: its owner locks."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, set[str]]] = {}

    def add(self, guid: str, vs: VirtualSystem) -> None:
        for n in vs.nics:
            if n.port and n.switch_id:
                self._held.setdefault(n.switch_id.casefold(), {}).setdefault(
                    n.port.casefold(), set()).add(guid)

    def remove(self, guid: str, vs: VirtualSystem) -> None:
        for n in vs.nics:
            if n.port and n.switch_id:
                ports = self._held.get(n.switch_id.casefold())
                if ports is None:
                    continue
                users = ports.get(n.port.casefold())
                if users is not None:
                    users.discard(guid)
                    if not users:
                        del ports[n.port.casefold()]
                if not ports:
                    del self._held[n.switch_id.casefold()]

    def clear(self) -> None:
        self._held.clear()

    def holders(self, switch_id: str, port: str) -> list[str]:
        """GUIDs of the VMs holding the port, sorted."""
        return sorted(self._held.get(switch_id.casefold(), {}).get(port.casefold(), ()))

    def switches_with(self, port: str) -> list[str]:
        """Case-folded Names of the switches on which some VM holds a port of this name (a pass
        over the switches, not the VMs)."""
        key = port.casefold()
        return sorted(s for s, ports in self._held.items() if key in ports)

    def ports(self, switch_id: str) -> list[tuple[str, list[str]]]:
        """(case-folded port Name, GUIDs) of every held port of the switch."""
        return [(p, sorted(g)) for p, g in self._held.get(switch_id.casefold(), {}).items()]


class HeldPorts:
    """The ports VMs' adapters hold: who holds a port, whether a name is taken, a switch's held
    ports. ``systems`` maps GUID -> model for the GUIDs in ``index``; ``lock`` guards both."""

    def __init__(self, index: PortIndex, systems: Mapping[str, VirtualSystem],
                 lock: contextlib.AbstractContextManager[object] | None = None) -> None:
        self._index = index
        self._systems = systems
        self._lock: contextlib.AbstractContextManager[object] = lock if lock is not None \
            else contextlib.nullcontext()

    def user(self, switch_id: str, port: str) -> VirtualSystem | None:
        """The VM whose adapter holds the port (the first by GUID), or None."""
        with self._lock:
            for guid in self._index.holders(switch_id, port):
                vs = self._systems.get(guid)
                if vs is not None:
                    return vs
            return None

    def user_nic(self, switch_id: str, port: str) -> tuple[VirtualSystem, int] | None:
        """The VM and the index of its adapter on the port, or None."""
        vs = self.user(switch_id, port)
        if vs is None:
            return None
        for i, n in enumerate(vs.nics):
            if n.port.casefold() == port.casefold() \
                    and n.switch_id.casefold() == switch_id.casefold():
                return vs, i
        return None

    def holds(self, switch_id: str, port: str) -> bool:
        return self.user(switch_id, port) is not None

    def switch_of(self, port: str) -> str | None:
        """The (case-folded) Name of a switch on which an adapter holds a port of this name."""
        with self._lock:
            found = self._index.switches_with(port)
            return found[0] if found else None

    def ports(self, switch_id: str) -> list[Port]:
        """The held ports of the switch, ElementName ``Network adapter port``: not the VM's
        name, which a user who may not see that VM (a scoped user) would read on the port."""
        out = []
        with self._lock:
            for key, guids in self._index.ports(switch_id):
                vs = self._systems.get(guids[0]) if guids else None
                if vs is None:
                    continue
                out += [Port(n.port, HELD_PORT_NAME) for n in vs.nics
                        if n.port.casefold() == key
                        and n.switch_id.casefold() == switch_id.casefold()][:1]
        return out


def held_by(systems: Iterable[VirtualSystem]) -> HeldPorts:
    """The ports ``systems`` hold, indexed once (for callers that have a list of VMs)."""
    index = PortIndex()
    by_guid: dict[str, VirtualSystem] = {}
    for vs in systems:
        by_guid[vs.guid.upper()] = vs
        index.add(vs.guid.upper(), vs)
    return HeldPorts(index, by_guid)
