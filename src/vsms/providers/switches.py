"""The virtual switch classes (issue 14) and their associations, read from libvirt networks,
the VMs this instance manages, the host's interfaces and ``host-ports.json``.

``SwitchProvider`` serves Msvm_VirtualSwitch, Msvm_SwitchPort, Msvm_VLANEndpoint,
Msvm_VLANEndpointSettingData, Msvm_VmLANEndpoint, Msvm_SwitchLANEndpoint,
Msvm_InternalEthernetPort and Msvm_ExternalEthernetPort; ``SwitchAssociationProvider``
Msvm_HostedAccessPoint (switch → port), Msvm_ActiveConnection (port → LAN endpoint),
Msvm_DeviceSAPImplementation (VM Ethernet port → its Msvm_VmLANEndpoint),
Msvm_GlobalEthernetPortSAPImplementation (host-side port → its Msvm_SwitchLANEndpoint),
Msvm_BindsTo (port → VLAN endpoint) and Msvm_NetworkElementSettingData (VLAN endpoint → its
settings). Switches are host-wide; VM endpoints and their connections are those of the VMs this
instance (and the caller's scope) sees.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

import pywbem

from vsms.cim import names
from vsms.cim.schema import shared_classes
from vsms.mapping import switch_paths as sp
from vsms.mapping import switches as sm
from vsms.mapping.logical_devices import EMULATED_PORT, SYNTHETIC_PORT, Link, from_class
from vsms.model.switch import Switch
from vsms.model.vm import VirtualSystem
from vsms.operations.switches import SwitchOps
from vsms.operations.switchports import full
from vsms.providers.base import ServiceProvider
from vsms.providers.context import ServiceContext
from vsms.virt import hostnet

_VM_PORTS = {SYNTHETIC_PORT.lower(), EMULATED_PORT.lower(), "cim_logicaldevice",
             "cim_logicalport"}
_SWITCH_SIDE = {c.lower() for c in sp.CLASSES} | {
    "cim_lanendpoint", "cim_protocolendpoint", "cim_serviceaccesspoint", "cim_switchport",
    "cim_ethernetport", "cim_vlanendpoint", "cim_vlanendpointsettingdata", "cim_system",
    "cim_computersystem"}


class _Base(ServiceProvider):
    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.ops = SwitchOps(ctx.host, ctx.settings.state_dir, ctx.hostname)

    @functools.cached_property
    def classes(self) -> dict[str, pywbem.CIMClass]:
        return dict(shared_classes(names.NAMESPACE))  # read only (docs/contracts.md)

    def cls(self, classname: str) -> pywbem.CIMClass:
        return self.classes[classname.lower()]

    def host_ports(self) -> Iterator[tuple[str, str, str, str]]:
        """(class, DeviceID, MAC, switch port as "switch\\port" or "") of every host-side
        port: internal ports, then bound or connected host interfaces."""
        switches = self.ctx.host.networks.switches()
        for i in self.ops.internal_ports():
            sw = next((s for s in switches if s.internal is not None
                       and s.internal.name == i.name), None)
            yield (sp.INTERNAL_PORT, sp.internal_device_id(i.name), i.mac,
                   f"{sw.id}\\{i.port}" if sw is not None and i.port else "")
        bound = set(self.ops.ports_file.load().bound)
        on = {s.external: s for s in switches if s.external}
        for itf in hostnet.interfaces():
            if itf.name in bound or itf.name in on:
                sw = on.get(itf.name)
                yield (sp.EXTERNAL_PORT, itf.name, itf.mac,
                       f"{sw.id}\\{sw.external_port}" if sw is not None else "")


class SwitchProvider(_Base):
    classnames = sp.CLASSES

    def _switch_items(self, want: str, sw: Switch) -> list[pywbem.CIMInstance]:
        cls = self.cls(want)
        if want == sp.SWITCH.lower():
            return [sm.switch_instance(cls, sw, self.ops.status(sw))]
        out = []
        for n, port in enumerate(sw.ports, start=1):
            if want == sp.PORT.lower():
                out.append(sm.port_instance(cls, sw, port, n))
            elif want == sp.VLAN_ENDPOINT.lower():
                out.append(sm.vlan_instance(cls, sw, port))
            else:
                out.append(sm.vlan_settings_instance(cls, sw, port))
        return out

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        want = classname.lower()
        cls = self.cls(want)
        if want in (sp.SWITCH.lower(), sp.PORT.lower(), sp.VLAN_ENDPOINT.lower(),
                    sp.VLAN_SETTINGS.lower()):
            systems = self.ctx.host.held_ports()
            return [i for sw in self.ctx.host.networks.switches()
                    for i in self._switch_items(want, full(sw, systems))]
        if want == sp.VM_ENDPOINT.lower():
            return [sm.vm_endpoint_instance(cls, vs, n, bool(n.switch))
                    for vs in self.ctx.host.shared_systems() for n in vs.nics]
        if want == sp.INTERNAL_PORT.lower():
            return [sm.internal_instance(cls, self.ctx.hostname, i)
                    for i in self.ops.internal_ports()]
        if want == sp.EXTERNAL_PORT.lower():
            bound = set(self.ops.ports_file.load().bound)
            on = {s.external for s in self.ctx.host.networks.switches() if s.external}
            return [sm.external_instance(cls, self.ctx.hostname, i.name, i.mac,
                                         i.name in bound or i.name in on)
                    for i in hostnet.interfaces()]
        return [sm.host_endpoint_instance(cls, self.ctx.hostname, dev, mac, bool(port))
                for _, dev, mac, port in self.host_ports()]


class SwitchAssociationProvider(_Base):
    classnames = sp.ASSOCIATIONS

    def links(self) -> list[Link]:
        return (self.switch_links() + self.vm_links(self.ctx.host.shared_systems())
                + self.host_links())

    def switch_links(self) -> list[Link]:
        out: list[Link] = []
        systems = self.ctx.host.held_ports()
        for sw in self.ctx.host.networks.switches():
            for port in full(sw, systems).ports:
                pp = sp.port_path(sw.id, port.name)
                vlan = sp.vlan_path(sw.id, port.name)
                out.append(Link(sp.HOSTED_ACCESS_POINT, {"Antecedent": sp.switch_path(sw.id),
                                                         "Dependent": pp}))
                out.append(Link(sp.BINDS_TO, {"Antecedent": pp, "Dependent": vlan}))
                out.append(Link(sp.ELEMENT_SETTINGS, {
                    "ManagedElement": vlan,
                    "SettingData": sp.vlan_settings_path(sw.id, port.name)},
                    {"IsDefault": pywbem.Uint16(1), "IsCurrent": pywbem.Uint16(1),
                     "IsNext": pywbem.Uint16(1)}))
        return out

    def vm_links(self, systems: Iterable[VirtualSystem]) -> list[Link]:
        out: list[Link] = []
        for vs in systems:
            for n in vs.nics:
                endpoint = sp.vm_endpoint_path(vs.guid, n.dev_id)
                out.append(Link(sp.DEVICE_SAP, {"Antecedent": sm.nic_device_path(vs, n),
                                                "Dependent": endpoint}))
                if n.port and n.switch_id:
                    out.append(Link(sp.ACTIVE_CONNECTION, {
                        "Antecedent": sp.port_path(n.switch_id, n.port), "Dependent": endpoint},
                        {"TrafficType": pywbem.Uint16(2), "IsUnidirectional": False}))
        return out

    def host_links(self) -> list[Link]:
        out: list[Link] = []
        for classname, dev, _, on in self.host_ports():
            endpoint = sp.host_endpoint_path(self.ctx.hostname, dev)
            out.append(Link(sp.GLOBAL_SAP, {
                "Antecedent": sp.host_port_path(classname, self.ctx.hostname, dev),
                "Dependent": endpoint}))
            if on:
                switch_id, port_name = on.split("\\", 1)
                out.append(Link(sp.ACTIVE_CONNECTION, {
                    "Antecedent": sp.port_path(switch_id, port_name), "Dependent": endpoint},
                    {"TrafficType": pywbem.Uint16(2), "IsUnidirectional": False}))
        return out

    def _instances(self, classname: str, links: list[Link]) -> list[pywbem.CIMInstance]:
        want = classname.lower()
        cls = self.cls(want)
        return [from_class(cls, pywbem.CIMInstanceName(cls.classname, keybindings=link.refs,
                                                       namespace=names.NAMESPACE), link.values)
                for link in links if link.classname.lower() == want]

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return self._instances(classname, self.links())

    def references_to(self, classname: str, target: pywbem.CIMInstanceName
                      ) -> Iterable[pywbem.CIMInstance]:
        """A VM's device or LAN endpoint: that VM's links only; a switch class: every link;
        anything else (a VM, its settings): none."""
        cls = target.classname.lower()
        if cls == sp.VM_ENDPOINT.lower() or cls in _VM_PORTS:
            vs = self.ctx.host.get_system(sp.endpoint_key(target, "SystemName"))
            return self._instances(classname, self.vm_links([vs] if vs is not None else []))
        if cls in _SWITCH_SIDE:
            return self.enumerate(classname)
        return []
