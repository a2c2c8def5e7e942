"""The virtual switch service's work (issue 14): switches, ports, host-side ports, connections.

Every change is one write of one record, so a crash leaves the old state or the new one: a
switch and its ports are one libvirt network (``virt.networks``: the network *is* the record);
a VM adapter's connection is its VM's definition (``operations.switching``); a host-side port on
no switch is a line of ``host-ports.json`` (``virt.hostnet``). Moving a host-side port onto a
switch writes the switch first and then drops the line (a crash in between leaves the port in
both; the switch's copy wins when listed and the line is dropped at the next start).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pywbem

from vsms.errors import InUse, InvalidParameter, InvalidState, NotFound, VsmsError
from vsms.mapping import ids
from vsms.mapping import switch_paths as sp
from vsms.mapping.resources import new_mac
from vsms.model.switch import HostPort, Port, Switch
from vsms.operations import switching
from vsms.operations.switchbridge import Bridges
from vsms.operations.switchports import compact, full
from vsms.operations.undo import OpContext
from vsms.virt import hostnet
from vsms.virt.host import VirtHost
from vsms.virt.networks import CREATING, DELETING, RUNNING, host_link_local

log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9_.:{}-]{1,64}")
_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,256}")


def check_name(value: str, what: str) -> str:
    value = value.strip()
    if not _NAME.fullmatch(value) or value.startswith("-"):
        raise InvalidParameter(f"{what} {value!r} is not valid: use 1 to 64 letters, digits and "
                               "_ . : { } - (a GUID is the convention)")
    return value


def check_text(value: str, what: str, default: str) -> str:
    value = value.strip() or default
    if not _TEXT.fullmatch(value):
        raise InvalidParameter(f"{what} must be 1 to 256 printable characters")
    return value


@dataclass(frozen=True)
class SetupWork:
    """SetupSwitch as a job: bind the interface, connect it and a new internal port."""

    ops: SwitchOps
    external: tuple[str, str]
    internal: tuple[str, str]
    ifname: str
    name: str
    friendly: str

    @property
    def description(self) -> str:
        return f"Binding host interface {self.ifname} to virtual switch {self.external[0]}"

    def run(self, ctx: OpContext) -> None:
        if self.ifname not in self.ops.ports_file.load().bound:
            self.ops.bind(self.ifname)
        self.ops.connect_host(self.external[0], self.external[1], self.ifname)
        self.ops.create_internal(self.name, self.friendly, None)
        self.ops.connect_host(self.internal[0], self.internal[1],
                              sp.internal_device_id(self.name))


@dataclass(frozen=True)
class TeardownWork:
    ops: SwitchOps
    ifname: str
    internal: str | None

    @property
    def description(self) -> str:
        return f"Unbinding host interface {self.ifname} from its virtual switch"

    def run(self, ctx: OpContext) -> None:
        sw = self.ops.external_switch(self.ifname)
        if sw is not None:
            self.ops.disconnect(sw.id, sw.external_port)
        if self.internal:
            self.ops.delete_internal(self.internal)
        self.ops.unbind(self.ifname)


class SwitchOps:
    """The switch service's operations on one host."""

    def __init__(self, host: VirtHost, state_dir: Path, hostname: str, *,
                 allow_management: bool = False) -> None:
        self.host = host
        self.nets = host.networks
        self.ports_file = hostnet.HostPortFile(state_dir)
        self.hostname = hostname
        self.allow_management = allow_management
        self.bridges = Bridges(self.nets, self.ports_file, f"vsms:{state_dir.resolve()}")
        # who creates or deletes a switch (its record's ``owner``): the instance ID
        self.owner = host.instance or self.bridges.mark

    # -- start-up ------------------------------------------------------------------------

    def recover(self) -> None:
        """Finish what a crash of this instance interrupted, from the switches' records:
        a DeleteSwitch (``deleting``) is completed, or rolled back when a VM's adapter is on
        the switch now; the external switches' bridges are repaired from their journal; a
        CreateSwitch (``creating``) gets its network started. A record of an older vsms
        (no ``state``) is wanted running, once: started if inactive, then recorded
        ``running``. Any other inactive network stays inactive (stopped on purpose), and
        other instances' ``creating``/``deleting`` switches are theirs to finish. Lines of
        host-ports.json whose port is on a switch already are dropped."""
        try:
            switches = self.nets.switches()
            deleting = [s for s in switches if s.state == DELETING and s.owner == self.owner]
            for sw in deleting:
                self._recover_one(sw, self._finish_delete)
            if self.bridges.repair() or deleting:
                switches = self.nets.switches()
            for sw in switches:
                if sw.made_here and (sw.state == "" or (sw.state == CREATING
                                                        and sw.owner == self.owner)):
                    self._recover_one(sw, self._finish_create)
                elif sw.active:
                    self._recover_one(sw, host_link_local)
            on_switch = {sw.internal.name for sw in switches if sw.internal is not None}
            with self.ports_file.lock:
                held = self.ports_file.load()
                if any(p.name in on_switch for p in held.internal):
                    held.internal = [p for p in held.internal if p.name not in on_switch]
                    self.ports_file.save(held)
        except VsmsError:
            log.exception("could not recover the virtual switches")

    @staticmethod
    def _recover_one(sw: Switch, action: Callable[[Switch], object]) -> None:
        try:
            action(sw)
        except VsmsError:
            log.exception("could not recover virtual switch '%s' (%s)", sw.friendly, sw.id)

    def _finish_create(self, sw: Switch) -> None:
        """A CreateSwitch interrupted before its network started, or an older vsms's switch
        (wanted running once): start it, record it running."""
        if not sw.active:
            log.info("starting virtual switch '%s' (%s)%s", sw.friendly, sw.id,
                     " made by an older vsms" if sw.state == "" else
                     ": its CreateSwitch was interrupted")
        self.nets.save(replace(sw, state=RUNNING, owner=""), start=True)

    def _finish_delete(self, sw: Switch) -> None:
        """A DeleteSwitch of this instance interrupted: completed (the internal port back on
        no switch, as DeleteSwitch does), or, when a VM's adapter is on the switch now,
        rolled back (recorded running and started)."""
        users = self.users(sw)
        if users:
            log.warning("virtual switch '%s' (%s) was being deleted but is in use now (%s): "
                        "it stays", sw.friendly, sw.id, ", ".join(users))
            self.nets.save(replace(sw, state=RUNNING, owner=""), start=True)
            return
        log.info("finishing the deletion of virtual switch '%s' (%s)", sw.friendly, sw.id)
        self.nets.delete(sw, self.owner)
        if sw.internal is not None:
            self._hold_internal(replace(sw.internal, port=""))

    # -- status --------------------------------------------------------------------------

    @staticmethod
    def status(sw: Switch) -> tuple[int, str]:
        """Msvm_VirtualSwitch's OperationalStatus and its StatusDescription: OK (2), Starting
        (8) while a CreateSwitch runs or was interrupted, Stopping (9) for a DeleteSwitch,
        Stopped (10) for an inactive network, Degraded (3) for an external switch whose
        interface is not on its bridge (taken off by hand)."""
        if sw.state == CREATING:
            return 8, ("Starting: CreateSwitch has not started its network yet (if it was "
                       "interrupted, the next start of its vsms instance starts it)")
        if sw.state == DELETING:
            return 9, ("Stopping: DeleteSwitch is removing it (if it was interrupted, the next "
                       "start of its vsms instance finishes it)")
        if not sw.active:
            return 10, (f"Stopped: its libvirt network {sw.network} is not active (stopped "
                        f"by an administrator, e.g. virsh net-destroy); start it with virsh "
                        f"net-start {sw.network}")
        if sw.external and sw.made_here and sw.bridge:
            master = hostnet.master_of(sw.external)
            if master != sw.bridge:
                return 3, (f"Degraded: host interface {sw.external} is not a port of the "
                           f"switch's bridge {sw.bridge} (" + (f"it is on {master}" if master
                                                               else "taken off by hand") +
                           f"): guests have no uplink; put it back with ip link set "
                           f"{sw.external} master {sw.bridge}, or disconnect and connect its "
                           "switch port again")
        return 2, "OK"

    # -- switches ------------------------------------------------------------------------

    def switch(self, switch_id: str) -> Switch:
        sw = self.nets.get(switch_id)
        if sw is None:
            raise NotFound(f"virtual switch {switch_id!r} does not exist: pass the path of an "
                           "existing Msvm_VirtualSwitch")
        return sw

    def create_switch(self, name: str, friendly: str, learnable: int, scope: str) -> Switch:
        name = check_name(name, "Name")
        friendly = check_text(friendly, "FriendlyName", name)
        with self.nets.lock:
            for s in self.nets.switches():
                if name.casefold() in (s.id.casefold(), s.network.casefold()):
                    raise InUse(f"a virtual switch named {name!r} already exists "
                                f"('{s.friendly}'): choose another Name")
            return self.nets.create(Switch(id=name, friendly=friendly, network=name,
                                           learnable=learnable, scope=scope), self.owner)

    def users(self, sw: Switch) -> list[str]:
        """What keeps ``sw`` in use: VMs (any owner) with an adapter on it."""
        return [f"virtual machine {name}" + (" (running)" if running else "")
                for name, running in self.nets.users(sw.network)]

    def delete_switch(self, switch_id: str) -> None:
        with self.nets.lock:
            sw = self.switch(switch_id)
            users = self.users(sw)
            if users:
                raise InUse(f"virtual switch '{sw.friendly}' has connected ports: "
                            f"{', '.join(users)}; disconnect them first (DisconnectSwitchPort "
                            "or the adapters' Connection)")
            if sw.external and sw.made_here:
                self.bridges.delete(sw, lambda: self.nets.delete(sw, self.owner))
            else:
                self.nets.delete(sw, self.owner)
            if sw.internal is not None:  # the host's port goes back to being on no switch
                self._hold_internal(replace(sw.internal, port=""))

    # -- ports ---------------------------------------------------------------------------

    def create_port(self, switch_id: str, name: str, friendly: str, scope: str
                    ) -> tuple[Switch, Port]:
        name = check_text(name, "Name", "")
        with self.nets.lock:
            switches = self.nets.switches()
            sw = next((s for s in switches if s.id.casefold() == switch_id.casefold()), None)
            if sw is None:
                sw = self.switch(switch_id)  # NotFound
            held = self.host.held_ports()  # the cache's index: no pass over the VMs
            on = held.switch_of(name)
            for s in switches:
                if s.port(name) is not None or s.id.casefold() == on:
                    raise InUse(f"a switch port named {name!r} already exists (on "
                                f"'{s.friendly}'): port names are unique on the host")
            port = Port(name, check_text(friendly, "FriendlyName", name), scope)
            return self.nets.save(compact(replace(sw, ports=(*sw.ports, port)), held)), port

    def _port(self, switch_id: str, name: str) -> tuple[Switch, Port]:
        """The switch's record and the port (in the record or held by an adapter)."""
        sw = self.switch(switch_id)
        port = full(sw, self.host.held_ports()).port(name)
        if port is None:
            raise NotFound(f"virtual switch '{sw.friendly}' has no port {name!r}: pass the "
                           "path of an existing Msvm_SwitchPort")
        return sw, port

    def connected(self, sw: Switch, port: str) -> str:
        """What is connected to ``port`` ("" nothing)."""
        if sw.internal is not None and sw.internal.port.casefold() == port.casefold():
            return f"internal port {sw.internal.name}"
        if sw.external and sw.external_port.casefold() == port.casefold():
            return f"host interface {sw.external}"
        found = self.host.held_ports().user_nic(sw.id, port)
        if found is not None:
            vs, i = found
            return f"network adapter {vs.nics[i].dev_id} of '{vs.name}' ({vs.guid})"
        return ""

    def delete_port(self, switch_id: str, name: str) -> None:
        with self.nets.lock:
            sw, port = self._port(switch_id, name)
            user = self.connected(sw, port.name)
            if user:
                raise InUse(f"switch port {port.name} is connected to {user}: disconnect it "
                            "first (DisconnectSwitchPort)")
            self.nets.save(compact(replace(sw, ports=tuple(
                p for p in sw.ports if p.name != port.name)), self.host.held_ports()))

    # -- connections ---------------------------------------------------------------------

    def connect(self, switch_id: str, port: str, endpoint: pywbem.CIMInstanceName
                ) -> tuple[str, pywbem.CIMInstanceName]:
        """Connect ``port`` to a VM's or a host-side port's LAN endpoint; (switch Name, the
        endpoint's path as this service writes it)."""
        name = sp.endpoint_key(endpoint, "Name")
        if endpoint.classname.lower() == sp.VM_ENDPOINT.lower():
            guid = sp.endpoint_key(endpoint, "SystemName").upper()
            dev = name.split(":", 1)[1] if name.lower().startswith("microsoft:") else name
            with self.nets.lock:
                sw, p = self._port(switch_id, port)
                user = self.connected(sw, p.name)
                if user:
                    raise InUse(f"switch port {p.name} is already connected to {user}: "
                                "create another port (CreateSwitchPort)")
                switching.set_link(self.host, guid, dev, (sw.network, p.name, sw.id))
            return sw.id, sp.vm_endpoint_path(guid, dev.upper())
        if endpoint.classname.lower() == sp.SWITCH_ENDPOINT.lower():
            sw = self.connect_host(switch_id, port, name)
            return sw.id, sp.host_endpoint_path(self.hostname, name)
        raise InvalidParameter(f"LANEndpoint must reference an {sp.VM_ENDPOINT} (a virtual "
                               f"machine's adapter) or an {sp.SWITCH_ENDPOINT} (a host-side "
                               f"port), not a {endpoint.classname}")

    def _require_idle(self, sw: Switch, what: str) -> None:
        running = [n for n, up in self.nets.users(sw.network) if up]
        if running:
            raise InvalidState(f"cannot {what} while virtual machines on '{sw.friendly}' run "
                               f"({', '.join(running)}): the switch restarts; turn them off")

    def connect_host(self, switch_id: str, port: str, device_id: str) -> Switch:
        """Put a host-side port (``Microsoft:<internal name>`` or a bound interface's name) on
        ``port``: the switch's network is rebuilt and restarted (no VM on it may run)."""
        with self.nets.lock, self.ports_file.lock:
            sw, p = self._port(switch_id, port)
            user = self.connected(sw, p.name)
            if user:
                raise InUse(f"switch port {p.name} is already connected to {user}")
            if not sw.made_here:
                raise InvalidState(f"switch '{sw.friendly}' was defined outside vsms: give "
                                   "its network a host port with virsh net-edit")
            held = self.ports_file.load()
            if device_id.lower().startswith("microsoft:"):
                iname = device_id.split(":", 1)[1]
                internal = next((i for i in held.internal if i.name == iname), None)
                if internal is None:
                    raise NotFound(f"internal port {iname!r} does not exist or is on a switch "
                                   "already")
                if sw.internal is not None:
                    raise InUse(f"switch '{sw.friendly}' has an internal port already "
                                f"({sw.internal.name})")
                self._require_idle(sw, "add the host's port")
                saved = self.nets.save(replace(sw, internal=replace(internal, port=p.name)),
                                       rebuild=True)
                held.internal = [i for i in held.internal if i.name != iname]
                self.ports_file.save(held)
                return saved
            if device_id not in held.bound:
                raise InvalidState(f"host interface {device_id!r} is not bound: bind it first "
                                   "(BindExternalEthernetPort)")
            other = self.external_switch(device_id)
            if other is not None:
                raise InUse(f"host interface {device_id} is on switch '{other.friendly}' "
                            "already")
            if sw.external:
                raise InUse(f"switch '{sw.friendly}' is bound to {sw.external} already")
            self._require_idle(sw, "bind the switch to a host interface")
            return self.bridges.bind(sw, device_id, p.name)

    def external_switch(self, ifname: str) -> Switch | None:
        return next((s for s in self.nets.switches() if s.external == ifname), None)

    def disconnect(self, switch_id: str, port: str) -> None:
        with self.nets.lock:
            sw, p = self._port(switch_id, port)
            if sw.internal is not None and sw.internal.port.casefold() == p.name.casefold():
                self._require_idle(sw, "remove the host's port")
                self.nets.save(replace(sw, internal=None), rebuild=True)
                self._hold_internal(replace(sw.internal, port=""))
                return
            if sw.external and sw.external_port.casefold() == p.name.casefold():
                self._require_idle(sw, "unbind the switch from its host interface")
                self.bridges.unbind(sw, start=sw.active)
                return
            found = self.host.held_ports().user_nic(sw.id, p.name)
            if found is None:
                raise InvalidState(f"switch port {p.name} of '{sw.friendly}' is not connected")
            vs, i = found
            if sw.port(p.name) is None:  # back into the switch's record first
                self.nets.save(replace(sw, ports=(*sw.ports, p)))
            switching.set_link(self.host, vs.guid, vs.nics[i].dev_id, switching.UNCONNECTED)

    # -- host-side ports ----------------------------------------------------------------------

    def _hold_internal(self, port: HostPort) -> None:
        with self.ports_file.lock:
            held = self.ports_file.load()
            if all(i.name != port.name for i in held.internal):
                held.internal.append(port)
                self.ports_file.save(held)

    def internal_ports(self) -> list[HostPort]:
        """Every internal port: those on a switch, then those on none."""
        on = [s.internal for s in self.nets.switches() if s.internal is not None]
        names = {i.name for i in on}
        return on + [i for i in self.ports_file.load().internal if i.name not in names]

    def create_internal(self, name: str, friendly: str, mac: str | None) -> HostPort:
        name = check_name(name, "Name")
        with self.ports_file.lock:
            ports = self.internal_ports()
            if any(i.name.casefold() == name.casefold() for i in ports):
                raise InUse(f"an internal port named {name!r} already exists")
            taken = {i.mac.upper() for i in ports} | set(self.host.macs_in_use())
            if mac is None:
                chosen = new_mac(taken)
            else:
                chosen = ids.mac_from_address(mac)
                if chosen in taken:
                    raise InUse(f"MAC address {chosen} is already in use on this host")
            port = HostPort(name, check_text(friendly, "FriendlyName", name), chosen)
            self._hold_internal(port)
            return port

    def delete_internal(self, device_id: str) -> None:
        name = device_id.split(":", 1)[1] if device_id.lower().startswith("microsoft:") \
            else device_id
        with self.nets.lock, self.ports_file.lock:
            sw = next((s for s in self.nets.switches()
                       if s.internal is not None and s.internal.name == name), None)
            if sw is not None:
                self._require_idle(sw, "delete the host's port")
                self.nets.save(replace(sw, internal=None), rebuild=True)
                return
            held = self.ports_file.load()
            if all(i.name != name for i in held.internal):
                raise NotFound(f"internal port {name!r} does not exist")
            held.internal = [i for i in held.internal if i.name != name]
            self.ports_file.save(held)

    def bind(self, ifname: str) -> None:
        known = {i.name for i in hostnet.interfaces()}
        if ifname not in known:
            raise InvalidParameter(f"host interface {ifname!r} does not exist (or cannot be "
                                   f"bound): choose one of {', '.join(sorted(known)) or 'none'}")
        reason = hostnet.management_reason(ifname)
        if reason and not self.allow_management:
            raise InvalidParameter(
                f"{reason}: binding it to a switch would cut the host off; choose another "
                "interface, or set switch_allow_management_interface = true to force it")
        with self.ports_file.lock:
            held = self.ports_file.load()
            if ifname not in held.bound:
                held.bound.append(ifname)
                self.ports_file.save(held)

    def unbind(self, ifname: str) -> None:
        with self.ports_file.lock:
            sw = self.external_switch(ifname)
            if sw is not None:
                raise InUse(f"host interface {ifname} is connected to switch '{sw.friendly}': "
                            "disconnect its port first (DisconnectSwitchPort)")
            held = self.ports_file.load()
            if ifname not in held.bound:
                raise InvalidState(f"host interface {ifname!r} is not bound")
            held.bound = [b for b in held.bound if b != ifname]
            self.ports_file.save(held)

    def prepare_setup(self, external: tuple[str, str], internal: tuple[str, str], ifname: str,
                      name: str, friendly: str) -> SetupWork:
        for switch_id, port in (external, internal):
            sw, p = self._port(switch_id, port)
            user = self.connected(sw, p.name)
            if user:
                raise InUse(f"switch port {p.name} is already connected to {user}")
        check_name(name, "InternalEthernetPortName")
        if any(i.name.casefold() == name.casefold() for i in self.internal_ports()):
            raise InUse(f"an internal port named {name!r} already exists")
        if ifname not in {i.name for i in hostnet.interfaces()}:
            raise InvalidParameter(f"host interface {ifname!r} does not exist")
        return SetupWork(self, external, internal, ifname, name, friendly)

    def prepare_teardown(self, ifname: str, internal: str | None) -> TeardownWork:
        if ifname not in self.ports_file.load().bound:
            raise InvalidState(f"host interface {ifname!r} is not bound")
        return TeardownWork(self, ifname, internal)
