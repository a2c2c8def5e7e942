"""Paths of the virtual switch classes and the RASD Connection of an adapter (no instance
building here: ``mapping.switches`` does that; this module is what ``mapping.devices`` needs)."""

from __future__ import annotations

import re
from typing import Any

import pywbem

from vsms.cim import names
from vsms.errors import InvalidParameter
from vsms.model.vm import NetworkAdapter

SERVICE = "Msvm_VirtualSwitchManagementService"
SERVICE_NAME = "nvspwmi"
SWITCH = "Msvm_VirtualSwitch"
PORT = "Msvm_SwitchPort"
SWITCH_ENDPOINT = "Msvm_SwitchLANEndpoint"
VM_ENDPOINT = "Msvm_VmLANEndpoint"
INTERNAL_PORT = "Msvm_InternalEthernetPort"
EXTERNAL_PORT = "Msvm_ExternalEthernetPort"
VLAN_ENDPOINT = "Msvm_VLANEndpoint"
VLAN_SETTINGS = "Msvm_VLANEndpointSettingData"
ACTIVE_CONNECTION = "Msvm_ActiveConnection"
HOSTED_ACCESS_POINT = "Msvm_HostedAccessPoint"
DEVICE_SAP = "Msvm_DeviceSAPImplementation"
GLOBAL_SAP = "Msvm_GlobalEthernetPortSAPImplementation"
BINDS_TO = "Msvm_BindsTo"
ELEMENT_SETTINGS = "Msvm_NetworkElementSettingData"

CLASSES = (SWITCH, PORT, SWITCH_ENDPOINT, VM_ENDPOINT, INTERNAL_PORT, EXTERNAL_PORT,
           VLAN_ENDPOINT, VLAN_SETTINGS)
ASSOCIATIONS = (ACTIVE_CONNECTION, HOSTED_ACCESS_POINT, DEVICE_SAP, GLOBAL_SAP, BINDS_TO,
                ELEMENT_SETTINGS)


def _p(classname: str, **keys: Any) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(classname, keybindings=keys, namespace=names.NAMESPACE)


def switch_path(switch_id: str) -> pywbem.CIMInstanceName:
    return _p(SWITCH, CreationClassName=SWITCH, Name=switch_id)


def port_path(switch_id: str, port: str) -> pywbem.CIMInstanceName:
    return _p(PORT, CreationClassName=PORT, Name=port, SystemCreationClassName=SWITCH,
              SystemName=switch_id)


def vlan_path(switch_id: str, port: str) -> pywbem.CIMInstanceName:
    return _p(VLAN_ENDPOINT, CreationClassName=VLAN_ENDPOINT, Name=f"{port}\\VLAN",
              SystemCreationClassName=SWITCH, SystemName=switch_id)


def vlan_settings_path(switch_id: str, port: str) -> pywbem.CIMInstanceName:
    return _p(VLAN_SETTINGS, InstanceID=f"Microsoft:{switch_id}\\{port}\\VLAN")


def vm_endpoint_path(guid: str, dev_id: str) -> pywbem.CIMInstanceName:
    return _p(VM_ENDPOINT, CreationClassName=VM_ENDPOINT, Name=f"Microsoft:{dev_id}",
              SystemCreationClassName=names.COMPUTER_SYSTEM, SystemName=guid)


def host_port_path(classname: str, hostname: str, device_id: str) -> pywbem.CIMInstanceName:
    return _p(classname, CreationClassName=classname, DeviceID=device_id,
              SystemCreationClassName=names.COMPUTER_SYSTEM, SystemName=hostname)


def host_endpoint_path(hostname: str, device_id: str) -> pywbem.CIMInstanceName:
    return _p(SWITCH_ENDPOINT, CreationClassName=SWITCH_ENDPOINT, Name=device_id,
              SystemCreationClassName=names.COMPUTER_SYSTEM, SystemName=hostname)


def internal_device_id(name: str) -> str:
    return f"Microsoft:{name}"


def connection_text(n: NetworkAdapter) -> str | None:
    """RASD ``Connection[0]`` of an adapter: its port's WBEM URI, the bare network name when it
    names a network directly, None when it is not connected."""
    if n.port and n.switch_id:
        return str(port_path(n.switch_id, n.port).to_wbem_uri())
    return n.switch or None


def _key(path: pywbem.CIMInstanceName, name: str) -> str:
    for k, v in path.keybindings.items():
        if k.lower() == name.lower():
            return str(v)
    return ""


def parse_port_path(path: pywbem.CIMInstanceName) -> tuple[str, str]:
    """(switch Name, port Name) of an Msvm_SwitchPort path ("" when a key is missing)."""
    return _key(path, "SystemName"), _key(path, "Name")


def endpoint_key(path: pywbem.CIMInstanceName, name: str) -> str:
    return _key(path, name)


_KEY = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def is_port_text(text: str) -> bool:
    """Does this Connection text name an Msvm_SwitchPort (WBEM URI or WMI path)?"""
    return "msvm_switchport" in text.lower()


def port_keys(text: str) -> tuple[str, str]:
    """(switch Name, port Name) of an Msvm_SwitchPort path given as text."""
    keys = {k.lower(): v.replace('\\"', '"').replace("\\\\", "\\")
            for k, v in _KEY.findall(text)}
    switch_id, port = keys.get("systemname", ""), keys.get("name", "")
    if not switch_id or not port:
        raise InvalidParameter(f"{text!r} is not the path of an Msvm_SwitchPort: it needs the "
                               "keys SystemName (the switch) and Name (the port)")
    return switch_id, port
