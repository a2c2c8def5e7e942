"""Virtual switches as CIM instances (issue 14): paths, instances and associations.

Every instance is built from the MOF class (``logical_devices.from_class``), so it carries
every property of its class with the reference page's documented value unless set here. Keys:

- Msvm_VirtualSwitch: CreationClassName, Name = the switch's Name (a GUID for vsms switches).
- Msvm_SwitchPort, Msvm_VLANEndpoint: SystemCreationClassName Msvm_VirtualSwitch, SystemName
  the switch's Name, Name the port's Name (the VLAN endpoint: the port's Name + ``\\VLAN``).
- Msvm_VmLANEndpoint: SystemCreationClassName Msvm_ComputerSystem, SystemName the VM GUID,
  Name = the DeviceID of the VM's Ethernet port (``Microsoft:<dev_id>``).
- Msvm_InternalEthernetPort / Msvm_ExternalEthernetPort: the host (Msvm_ComputerSystem,
  hostname), DeviceID ``Microsoft:<Name>`` / the interface's name; their Msvm_SwitchLANEndpoint
  has the same system keys and Name = that DeviceID.
- Msvm_VLANEndpointSettingData: InstanceID ``Microsoft:<switch>\\<port>\\VLAN``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pywbem

from vsms.mapping import ids
from vsms.mapping.logical_devices import EMULATED_PORT, SYNTHETIC_PORT, device_path, from_class
from vsms.mapping.switch_paths import (
    EXTERNAL_PORT,
    INTERNAL_PORT,
    host_endpoint_path,
    host_port_path,
    internal_device_id,
    port_path,
    switch_path,
    vlan_path,
    vlan_settings_path,
    vm_endpoint_path,
)
from vsms.model.switch import HostPort, Port, Switch
from vsms.model.vm import NetworkAdapter, VirtualSystem


@dataclass(frozen=True)
class Connected:
    """One VM adapter connected to a switch port."""

    vs: VirtualSystem
    nic: NetworkAdapter


def switch_instance(cls: pywbem.CIMClass, sw: Switch, status: tuple[int, str] = (2, "OK")
                    ) -> pywbem.CIMInstance:
    """``status``: OperationalStatus and StatusDescription (``SwitchOps.status``)."""
    kind = ("external" if sw.external else "internal" if sw.internal is not None
            else "private" if sw.made_here else f"libvirt network '{sw.network}'")
    return from_class(cls, switch_path(sw.id), {
        "ElementName": sw.friendly, "Description": f"Virtual switch ({kind})",
        "NumLearnableAddresses": pywbem.Uint32(sw.learnable), "ScopeOfResidence": sw.scope,
        "EnabledState": pywbem.Uint16(2 if sw.active else 3),
        "OperationalStatus": [pywbem.Uint16(status[0])], "StatusDescriptions": [status[1]],
        "HealthState": pywbem.Uint16(5 if status[0] != 3 else 10),
        "OtherIdentifyingInfo": [sw.network], "IdentifyingDescriptions": ["libvirt network"]})


def port_instance(cls: pywbem.CIMClass, sw: Switch, port: Port, number: int) -> pywbem.CIMInstance:
    return from_class(cls, port_path(sw.id, port.name), {
        "ElementName": port.friendly or port.name, "ScopeOfResidence": port.scope,
        "PortNumber": pywbem.Uint16(number & 0xFFFF)})


def vlan_instance(cls: pywbem.CIMClass, sw: Switch, port: Port) -> pywbem.CIMInstance:
    return from_class(cls, vlan_path(sw.id, port.name), {
        "ElementName": f"{port.friendly or port.name} VLAN", "Caption": "VLAN Endpoint",
        "Description": "VLAN endpoint of a switch port (access mode, untagged)",
        "DesiredEndpointMode": pywbem.Uint16(2), "OperationalEndpointMode": pywbem.Uint16(2),
        "SupportedEndpointModes": [pywbem.Uint16(2)]})


def vlan_settings_instance(cls: pywbem.CIMClass, sw: Switch, port: Port) -> pywbem.CIMInstance:
    return from_class(cls, vlan_settings_path(sw.id, port.name), {
        "ElementName": f"{port.friendly or port.name} VLAN settings",
        "Caption": "VLAN Endpoint Settings", "Description": "No VLAN: untagged access",
        "AccessVLAN": pywbem.Uint16(0), "NativeVLAN": pywbem.Uint16(0)})


def vm_endpoint_instance(cls: pywbem.CIMClass, vs: VirtualSystem, n: NetworkAdapter,
                         connected: bool) -> pywbem.CIMInstance:
    return from_class(cls, vm_endpoint_path(vs.guid, n.dev_id), {
        "ElementName": vs.element_names.get(n.dev_id, "Network Adapter"),
        "MACAddress": ids.address_from_mac(n.mac), "Connected": connected})


def internal_instance(cls: pywbem.CIMClass, hostname: str, port: HostPort
                      ) -> pywbem.CIMInstance:
    address = ids.address_from_mac(port.mac)
    return from_class(cls, host_port_path(INTERNAL_PORT, hostname,
                                          internal_device_id(port.name)), {
        "ElementName": port.friendly or port.name, "Name": port.name,
        "PermanentAddress": address, "NetworkAddresses": [address]})


def external_instance(cls: pywbem.CIMClass, hostname: str, ifname: str, mac: str, bound: bool
                      ) -> pywbem.CIMInstance:
    address = mac.replace(":", "").upper()
    return from_class(cls, host_port_path(EXTERNAL_PORT, hostname, ifname), {
        "ElementName": ifname, "Name": ifname, "Caption": "Ethernet Port",
        "Description": "Network interface of the host", "PermanentAddress": address,
        "NetworkAddresses": [address], "IsBound": bound, "EnabledState": pywbem.Uint16(2)})


def host_endpoint_instance(cls: pywbem.CIMClass, hostname: str, device_id: str, mac: str,
                           connected: bool) -> pywbem.CIMInstance:
    return from_class(cls, host_endpoint_path(hostname, device_id), {
        "ElementName": device_id, "MACAddress": mac.replace(":", "").upper(),
        "Connected": connected})


def nic_device_path(vs: VirtualSystem, n: NetworkAdapter) -> pywbem.CIMInstanceName:
    return device_path(vs.guid, SYNTHETIC_PORT if n.synthetic else EMULATED_PORT,
                       f"Microsoft:{n.dev_id}")
