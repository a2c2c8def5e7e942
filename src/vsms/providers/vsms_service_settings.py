"""The service's own settings: Msvm_VirtualSystemManagementServiceSettingData (one instance,
InstanceID ``Microsoft:<host>``), ModifyServiceSettings, and FormatError.

ModifyServiceSettings takes an embedded Msvm_VirtualSystemManagementServiceSettingData; a NULL
property keeps its value. It completes within the call (0) after checking every value:
DefaultExternalDataRoot and DefaultVirtualHardDiskPath must be existing directories under a
storage root (outside: 32769 Access Denied, as every path of vsms; not a directory: 32773),
MinimumMacAddress / MaximumMacAddress 12 hexadecimal digits (":" or "-" between pairs allowed)
of a unicast address with minimum <= maximum, PrimaryOwnerName at most 64 characters,
PrimaryOwnerContact at most 256, BiosLockString empty or exactly 32; anything else is 32773
with nothing changed. The settings are stored in the state directory
(``store.service_settings``) and used by DefineVirtualSystem (a VM defined without an
ExternalDataRoot gets DefaultExternalDataRoot) and the import (disks copied without a target
go to ``<DefaultVirtualHardDiskPath>/<VM GUID>/Virtual Hard Disks/``; by default
DefaultVirtualHardDiskPath is ``<first storage root>/Virtual Machines``). The MAC range is
stored and validated only: the assignment of addresses belongs to the virtual switch code.

FormatError turns embedded Msvm_Error (or CIM_Error) instances into text: each error's Message
(or, without one, its MessageID and MessageArguments), one line per error in the order given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pywbem

from vsms.auth.policy import Role
from vsms.cim import names
from vsms.cim.enums import ReturnCode
from vsms.errors import InvalidParameter
from vsms.mapping.components import SERVICE_SETTINGS
from vsms.providers.base import CIMTarget, ServiceProvider, method
from vsms.providers.common import Params, Result, as_instance, param
from vsms.providers.context import ServiceContext
from vsms.store import service_settings as store
from vsms.store.service_settings import ServiceSettings

_MAC = re.compile(r"^[0-9A-F]{2}([:-]?[0-9A-F]{2}){5}$", re.IGNORECASE)
_ERROR_CLASSES = (names.MSVM_ERROR.lower(), "cim_error")

# property -> (field, kind, max length)
_FIELDS: dict[str, tuple[str, str, int]] = {
    "PrimaryOwnerName": ("primary_owner_name", "text", 64),
    "PrimaryOwnerContact": ("primary_owner_contact", "text", 256),
    "ScopeOfResidence": ("scope_of_residence", "text", 1024),
    "DefaultExternalDataRoot": ("default_external_data_root", "dir", 0),
    "DefaultVirtualHardDiskPath": ("default_virtual_hard_disk_path", "dir", 0),
    "MinimumMacAddress": ("minimum_mac_address", "mac", 0),
    "MaximumMacAddress": ("maximum_mac_address", "mac", 0),
    "NumaSpanningEnabled": ("numa_spanning_enabled", "bool", 0),
    "BiosLockString": ("bios_lock_string", "lock", 32),
}


def current(ctx: ServiceContext) -> ServiceSettings:
    return store.load(ctx.settings.state_dir)


def external_data_root(ctx: ServiceContext) -> str:
    """Where a new VM's data goes: DefaultExternalDataRoot, else the first storage root."""
    return current(ctx).default_external_data_root or str(ctx.roots.roots[0])


def vhd_path(ctx: ServiceContext) -> Path:
    """DefaultVirtualHardDiskPath: an import copies a VM's disks that have no target to
    ``<this>/<VM GUID>/Virtual Hard Disks``."""
    path = current(ctx).default_virtual_hard_disk_path
    return Path(path) if path else ctx.roots.roots[0] / "Virtual Machines"


def settings_path(hostname: str) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(SERVICE_SETTINGS, keybindings={
        "InstanceID": f"Microsoft:{hostname}"}, namespace=names.NAMESPACE)


def settings_instance(ctx: ServiceContext) -> pywbem.CIMInstance:
    s = current(ctx)
    path = settings_path(ctx.hostname)
    inst = pywbem.CIMInstance(SERVICE_SETTINGS, path=path)
    text = {
        "InstanceID": path.keybindings["InstanceID"],
        "Caption": "Virtual System Management Service",
        "Description": "Settings for the Virtual System Management Service",
        "ElementName": "Virtual System Management Service",
        "PrimaryOwnerName": s.primary_owner_name, "PrimaryOwnerContact": s.primary_owner_contact,
        "ScopeOfResidence": s.scope_of_residence,
        "DefaultExternalDataRoot": external_data_root(ctx),
        "DefaultVirtualHardDiskPath": str(vhd_path(ctx)),
        "MinimumMacAddress": s.minimum_mac_address, "MaximumMacAddress": s.maximum_mac_address,
        "BiosLockString": s.bios_lock_string or None,
    }
    for k, v in text.items():
        inst.properties[k] = pywbem.CIMProperty(k, v, type="string")
    inst.properties["NumaSpanningEnabled"] = pywbem.CIMProperty(
        "NumaSpanningEnabled", s.numa_spanning_enabled, type="boolean")
    return inst


def _mac(value: str, name: str) -> str:
    if not _MAC.match(value.strip()):
        raise InvalidParameter(f"{name} {value!r} is not a MAC address: give 12 hexadecimal "
                               "digits such as 00155D000000")
    digits = re.sub(r"[:-]", "", value.strip()).upper()
    if int(digits[:2], 16) & 1:
        raise InvalidParameter(f"{name} {value!r} is a multicast address: the first byte "
                               "must be even (for example 00155D…)")
    return digits


def _checked(ctx: ServiceContext, prop: str, kind: str, limit: int, value: Any) -> Any:
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidParameter(f"{prop} must be a boolean")
        return value
    if not isinstance(value, str):
        raise InvalidParameter(f"{prop} must be a string, got {value!r}")
    if kind == "text":
        if len(value) > limit:
            raise InvalidParameter(f"{prop} is {len(value)} characters long; at most {limit} "
                                   "are allowed")
        return value
    if kind == "lock":
        if value and len(value) != limit:
            raise InvalidParameter(f"BiosLockString must be exactly {limit} characters (or "
                                   f"empty), got {len(value)}")
        return value
    if kind == "mac":
        return _mac(value, prop)
    resolved = ctx.roots.confine(value, prop)  # AccessDenied outside the roots
    if not os.path.isdir(resolved):
        raise InvalidParameter(f"{prop} {value!r} is not an existing directory: create it "
                               "under a storage root first")
    return str(resolved)


def modified(ctx: ServiceContext, inst: pywbem.CIMInstance) -> ServiceSettings:
    """The current settings with the non-NULL properties of ``inst`` applied (checked)."""
    if inst.classname.lower() != SERVICE_SETTINGS.lower():
        raise InvalidParameter(f"SettingData holds an embedded {inst.classname}: pass an "
                               f"embedded {SERVICE_SETTINGS}")
    iid = inst.get("InstanceID")
    if iid is not None and str(iid).lower() != f"microsoft:{ctx.hostname}".lower():
        raise InvalidParameter(f"SettingData InstanceID {iid!r} is not this service's "
                               f"(Microsoft:{ctx.hostname}): get the instance and change it")
    changes: dict[str, Any] = {}
    for prop, (field, kind, limit) in _FIELDS.items():
        value = inst.get(prop)
        if value is not None:
            changes[field] = _checked(ctx, prop, kind, limit, value)
    new = replace(current(ctx), **changes)
    if int(new.minimum_mac_address, 16) > int(new.maximum_mac_address, 16):
        raise InvalidParameter(f"MinimumMacAddress {new.minimum_mac_address} is above "
                               f"MaximumMacAddress {new.maximum_mac_address}: give a range "
                               "with minimum <= maximum")
    return new


def error_text(inst: pywbem.CIMInstance, where: str) -> str:
    """The message of one embedded error."""
    if inst.classname.lower() not in _ERROR_CLASSES:
        raise InvalidParameter(f"{where} is an embedded {inst.classname}: pass embedded "
                               f"{names.MSVM_ERROR} instances (from GetErrorEx, for example)")
    message = inst.get("Message")
    if isinstance(message, str) and message.strip():
        return message.strip()
    mid, args = inst.get("MessageID"), inst.get("MessageArguments")
    if isinstance(mid, str) and mid.strip():
        extra = [str(a) for a in args or [] if a is not None]
        return f"{mid.strip()}: {'; '.join(extra)}" if extra else mid.strip()
    raise InvalidParameter(f"{where} has neither a Message nor a MessageID: there is nothing "
                           "to format")


class ServiceSettingsProvider(ServiceProvider):
    classnames = (SERVICE_SETTINGS,)

    def enumerate(self, classname: str) -> Iterable[pywbem.CIMInstance]:
        return [settings_instance(self.ctx)]


class ServiceSettingsMethods(ServiceProvider):
    """ModifyServiceSettings and FormatError."""

    @method("ModifyServiceSettings", Role.ADMINISTRATOR, params=("SettingData",))
    def modify_service_settings(self, target: CIMTarget, params: Params) -> Result:
        inst = as_instance(param(params, "SettingData"), "SettingData")
        store.save(self.ctx.settings.state_dir, modified(self.ctx, inst))
        return int(ReturnCode.COMPLETED), {}

    @method("FormatError", Role.OPERATOR, params=("Errors",))
    def format_error(self, target: CIMTarget, params: Params) -> Result:
        value = param(params, "Errors", required=False)
        items = [] if value is None else value if isinstance(value, list | tuple) else [value]
        if not items:
            raise InvalidParameter("Errors is empty: pass one or more embedded Msvm_Error "
                                   "instances")
        lines = [error_text(as_instance(raw, f"Errors[{i}]"), f"Errors[{i}]")
                 for i, raw in enumerate(items)]
        return int(ReturnCode.COMPLETED), {"ErrorMessage": "\n".join(lines)}
