"""InstanceIDs of a VM's setting data, object paths of them, and MAC address spelling.

Hyper-V names every setting data instance of a VM after the VM GUID: the system settings are
``Microsoft:<GUID>``, the global settings ``Microsoft:<GUID>\\Global`` and each device
``Microsoft:<GUID>\\<device id>``. A new VM GUID therefore re-derives every InstanceID.
"""

from __future__ import annotations

import re
import uuid

import pywbem

from vsms.cim import names
from vsms.errors import InvalidParameter

_PREFIX = "microsoft:"
_GLOBAL = "Global"
_INSTANCE_ID = re.compile(r"InstanceID\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|'((?:[^'\\]|\\.)*)')",
                          re.IGNORECASE)
_MAC_HEX = re.compile(r"^[0-9A-Fa-f]{12}$")
_MAC_SEPARATORS = re.compile(r"[:\-.]")


def vssd_id(guid: str) -> str:
    """InstanceID of the VM's Msvm_VirtualSystemSettingData."""
    return f"Microsoft:{guid}"


def vsgsd_id(guid: str) -> str:
    """InstanceID of the VM's Msvm_VirtualSystemGlobalSettingData."""
    return f"Microsoft:{guid}\\{_GLOBAL}"


def device_id(guid: str, dev_id: str) -> str:
    """InstanceID of one device's resource allocation setting data."""
    return f"Microsoft:{guid}\\{dev_id}"


def _split(instance_id: str) -> tuple[str, str]:
    text = instance_id.strip() if isinstance(instance_id, str) else ""
    if not text.lower().startswith(_PREFIX):
        raise InvalidParameter(
            f"InstanceID {instance_id!r} is not a virtual machine setting: expected "
            "'Microsoft:<VM GUID>' or 'Microsoft:<VM GUID>\\<device>' as this service returns it")
    rest = text[len(_PREFIX):]
    guid, _, tail = rest.partition("\\")
    if not guid:
        raise InvalidParameter(f"InstanceID {instance_id!r} names no virtual machine GUID")
    return guid.upper(), tail


def parse_device_id(instance_id: str) -> tuple[str, str]:
    """(VM GUID, device id) of a device InstanceID; InvalidParameter when it is not one."""
    guid, dev = _split(instance_id)
    if not dev or "\\" in dev or dev == _GLOBAL:
        raise InvalidParameter(
            f"InstanceID {instance_id!r} does not name a device: expected "
            "'Microsoft:<VM GUID>\\<device id>'")
    return guid, dev.upper()


def parse_system_id(instance_id: str) -> tuple[str, bool]:
    """(VM GUID, is_global) of a VSSD (``Microsoft:<GUID>``) or VSGSD InstanceID."""
    guid, tail = _split(instance_id)
    if tail and tail != _GLOBAL:
        raise InvalidParameter(
            f"InstanceID {instance_id!r} is not the settings of a virtual machine: expected "
            "'Microsoft:<VM GUID>' or 'Microsoft:<VM GUID>\\Global'")
    return guid, bool(tail)


def guid_of(instance_id: str) -> str:
    """The VM GUID any of a VM's setting data InstanceIDs names."""
    return _split(instance_id)[0]


def setting_path(classname: str, instance_id: str) -> pywbem.CIMInstanceName:
    """The object path of a setting data instance (key InstanceID) in our namespace."""
    return pywbem.CIMInstanceName(classname, keybindings={"InstanceID": instance_id},
                                  namespace=names.NAMESPACE)


def ref_text(classname: str, instance_id: str) -> str:
    """The WBEM URI of a setting data instance, as RASD ``Parent`` carries it."""
    return str(setting_path(classname, instance_id).to_wbem_uri())


def instance_id_from_ref(ref: object) -> str:
    """The InstanceID a reference names.

    Accepts a ``CIMInstanceName``, a WBEM URI or WMI object path whose key is InstanceID
    (backslashes escaped as ``\\\\`` or not), or the bare InstanceID itself.
    """
    if isinstance(ref, pywbem.CIMInstanceName):
        for k, v in ref.keybindings.items():
            if k.lower() == "instanceid":
                return str(v)
        raise InvalidParameter(f"reference {ref} has no InstanceID key")
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidParameter(f"{ref!r} is not a reference to a setting data instance")
    text = ref.strip()
    m = _INSTANCE_ID.search(text)
    if m is None:
        if text.lower().startswith(_PREFIX):
            return text
        raise InvalidParameter(
            f"{text!r} is not a reference to a setting data instance: pass the object path "
            "this service returned (…InstanceID=\"Microsoft:…\") or the InstanceID itself")
    raw = m.group(1) if m.group(1) is not None else m.group(2)
    if "\\\\" in raw or '\\"' in raw or "\\'" in raw:
        raw = re.sub(r"\\(.)", r"\1", raw)
    return raw


def mac_from_address(address: str) -> str:
    """``00:15:5D:0A:0B:0C`` from a RASD Address (12 hex digits, separators allowed)."""
    text = _MAC_SEPARATORS.sub("", address.strip()) if isinstance(address, str) else ""
    if not _MAC_HEX.match(text):
        raise InvalidParameter(
            f"network adapter Address {address!r} is not a MAC address: pass 12 hexadecimal "
            "digits such as 00155D0A0B0C")
    if int(text[:2], 16) & 1:
        raise InvalidParameter(
            f"network adapter Address {address!r} is a multicast MAC address: the first octet "
            "must be even (for example 00155D…)")
    if int(text, 16) == 0:
        raise InvalidParameter("network adapter Address 000000000000 is not a usable MAC address")
    text = text.upper()
    return ":".join(text[i:i + 2] for i in range(0, 12, 2))


def address_from_mac(mac: str) -> str:
    """The RASD Address form of a MAC: 12 upper-case hex digits without separators."""
    return _MAC_SEPARATORS.sub("", mac).upper()


_POOL_NAMESPACE = uuid.UUID("6f1d3c2a-5b7e-4c1d-9a8e-2f4b6d8c0e1a")


def pool_id(subtype: str) -> str:
    """The PoolID of the primordial pool of resource subtype ``subtype``: a GUID derived from
    the subtype (case-insensitive), so it is the same on every host and after every restart."""
    return str(uuid.uuid5(_POOL_NAMESPACE, subtype.strip().lower())).upper()
