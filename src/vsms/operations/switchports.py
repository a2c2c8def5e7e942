"""Switch ports as adapters name them: resolving an RASD ``Connection`` (an Msvm_SwitchPort
path, WBEM URI or WMI form) to the libvirt network, port and switch it names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from vsms.errors import InUse, InvalidParameter
from vsms.exportdir.layout import ExportedNic
from vsms.mapping.switch_paths import port_keys
from vsms.model.switch import Port, Switch
from vsms.model.vm import VirtualSystem, new_guid
from vsms.virt.host import VirtHost
from vsms.virt.portindex import HeldPorts, held_by


def find_port(host: VirtHost, switch_id: str, port: str, held: HeldPorts | None = None
              ) -> Switch:
    """The switch holding ``port`` (``held``: the held ports, when the caller has them);
    InvalidParameter naming what does not exist."""
    sw = host.networks.get(switch_id)
    if sw is None:
        raise InvalidParameter(f"virtual switch {switch_id} does not exist: create it "
                               "(CreateSwitch) or name an existing Msvm_VirtualSwitch")
    if sw.port(port) is None and not (host.held_ports() if held is None else held).holds(
            sw.id, port):
        raise InvalidParameter(f"virtual switch '{sw.friendly}' has no port {port}: create "
                               "it first (CreateSwitchPort)")
    return sw


def port_resolver(host: VirtHost, guid: str) -> Callable[[str], tuple[str, str, str]]:
    """The ``ResourceEnv.resolve_port`` of a change to VM ``guid``."""
    def resolve(text: str) -> tuple[str, str, str]:
        switch_id, port = port_keys(text)
        # the cache's index of held ports: this runs on every define, whatever the VMs
        held = host.held_ports()
        sw = find_port(host, switch_id, port, held)
        user = held.user(sw.id, port)
        if user is not None and user.guid.upper() != guid.upper():
            raise InUse(f"switch port {port} of '{sw.friendly}' is already connected to "
                        f"virtual machine '{user.name}' ({user.guid}): create another port "
                        "(CreateSwitchPort)")
        return sw.network, port, sw.id
    return resolve


def exported_nics(vs: VirtualSystem, switches: list[Switch]) -> list[ExportedNic]:
    """The switch (Name and ElementName) of each connected adapter, for config.xml."""
    by_network = {s.network: s for s in switches}
    by_id = {s.id.casefold(): s for s in switches}
    out = []
    for n in vs.nics:
        sw = by_id.get(n.switch_id.casefold()) if n.switch_id else by_network.get(n.switch)
        if sw is not None:
            out.append(ExportedNic(n.dev_id, sw.id, sw.friendly))
        elif n.switch:
            out.append(ExportedNic(n.dev_id, n.switch_id, n.switch))
    return out


@dataclass
class ImportLinks:
    """How an import connects the imported VM's adapters: the ports to create first (switch
    Name, port Name) and a note for each adapter left disconnected."""

    ports: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_switch(switches: list[Switch], text: str) -> Switch | None:
    """The switch ``text`` names: its Name (GUID), else its ElementName or network name."""
    key = text.strip().casefold()
    if not key:
        return None
    for s in switches:
        if s.id.casefold() == key:
            return s
    return next((s for s in switches if key in (s.friendly.casefold(), s.network.casefold())),
                None)


def recorded_switches(vs: VirtualSystem, recorded: list[ExportedNic]) -> list[tuple[str, str]]:
    """(switch Name, switch ElementName) each adapter was on at the export, by index (config.xml
    when it records the adapter, else the RASD's port path or network name)."""
    by_dev = {n.dev_id.upper(): n for n in recorded}
    out = []
    for nic in vs.nics:
        r = by_dev.get(nic.dev_id.upper())
        out.append(((r.switch_id if r else "") or nic.switch_id,
                    (r.switch_name if r else "") or nic.switch))
    return out


def plan_import_links(switches: list[Switch], vs: VirtualSystem,
                      recorded: list[tuple[str, str]], targets: tuple[str, ...]) -> ImportLinks:
    """Connect each adapter of ``vs`` (changed in place) to TargetNetworkConnections[i] when
    given (a switch Name or ElementName; one that does not exist is InvalidParameter), else to
    the switch with the recorded ID, else to one with the recorded name; each on a new port.
    An adapter whose switch is found nowhere is left disconnected, with a note."""
    links = ImportLinks()
    for i, nic in enumerate(vs.nics):
        switch_id, switch_name = recorded[i] if i < len(recorded) else ("", "")
        target = targets[i].strip() if i < len(targets) and targets[i] else ""
        if target:
            sw = find_switch(switches, target)
            if sw is None:
                raise InvalidParameter(
                    f"TargetNetworkConnections[{i}] names {target!r}, which is no virtual switch "
                    "here: give the Name or ElementName of an existing Msvm_VirtualSwitch")
        else:
            sw = find_switch(switches, switch_id) or find_switch(switches, switch_name)
        if sw is None:
            nic.switch = nic.port = nic.switch_id = ""
            if switch_id or switch_name:
                links.notes.append(
                    f"network adapter {i + 1} left disconnected: its switch '{switch_name}' "
                    f"({switch_id or 'no ID'}) does not exist here; connect it with "
                    "TargetNetworkConnections or ConnectSwitchPort")
            continue
        port = new_guid()
        nic.switch, nic.port, nic.switch_id = sw.network, port, sw.id
        links.ports.append((sw.id, port))
    return links


def add_port(host: VirtHost, switch_id: str, port: str, friendly: str) -> None:
    """Add a port to a switch (an import's adapter's); InvalidParameter when it is gone."""
    with host.networks.lock:
        sw = host.networks.get(switch_id)
        if sw is None:
            raise InvalidParameter(f"virtual switch {switch_id} was deleted during the import")
        host.networks.save(replace(sw, ports=(*sw.ports, Port(port, friendly))))


def import_network_preview(switches: list[Switch], vs: VirtualSystem,
                           recorded: list[ExportedNic]) -> dict[str, list[str]]:
    """SourceNetworkConnections (the ElementName of each adapter's switch at the export) and
    TargetNetworkConnections (the switch here it would be connected to, "" when its switch does
    not exist here) of GetVirtualSystemImportSettingData."""
    source, target = [], []
    for switch_id, name in recorded_switches(vs, recorded):
        sw = find_switch(switches, switch_id) or find_switch(switches, name)
        source.append(name)
        target.append(sw.friendly if sw is not None else "")
    return {"source_network_connections": source, "target_network_connections": target}


# A switch's record lists its ports until an adapter connects to one; from then on the VM's
# definition records that port (NetworkAdapter.port / switch_id), and the switch's record drops
# it at its next write, so the record stays small however many VMs use the switch (the per-VM
# cost of CreateSwitchPort stays flat). A switch's ports are the union of both.

def _held(systems: HeldPorts | Iterable[VirtualSystem]) -> HeldPorts:
    return systems if isinstance(systems, HeldPorts) else held_by(systems)


def full(sw: Switch, systems: HeldPorts | Iterable[VirtualSystem]) -> Switch:
    """``sw`` with every port: those of its record and those adapters hold."""
    known = {p.name.casefold() for p in sw.ports}
    extra = [p for p in _held(systems).ports(sw.id) if p.name.casefold() not in known]
    return replace(sw, ports=(*sw.ports, *extra)) if extra else sw


def compact(sw: Switch, systems: HeldPorts | Iterable[VirtualSystem]) -> Switch:
    """``sw``'s record without the ports adapters hold (their VMs record them)."""
    held = _held(systems)
    return replace(sw, ports=tuple(p for p in sw.ports if not held.holds(sw.id, p.name)))
