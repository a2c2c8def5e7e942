"""A VM as CIM instances: Msvm_ComputerSystem, its settings (VSSD, VSGSD, RASDs), and back.

``settings_instances`` is what a ``.exp`` file holds and what the settings providers serve;
``system_from_instances`` rebuilds the model from such a set, reporting every problem at once.
``apply_global_settings`` / ``apply_system_settings`` fold a client's embedded VSGSD/VSSD into a
copy of a VM (DefineVirtualSystem, ModifyVirtualSystem); the rules a whole VM must meet are
``vsms.mapping.checks``, applied with the host's limits before it is defined.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.enums import (
    VIRTUAL_SYSTEM_TYPE_HYPERV,
    EnabledState,
    HealthState,
    OperationalStatus,
    RequestedState,
    SettingType,
)
from vsms.errors import InvalidParameter, ValidationFailed, VsmsError
from vsms.mapping import checks, components, ids
from vsms.mapping.devices import device_instances, prop
from vsms.mapping.restore import restore_devices
from vsms.model.vm import ImageFormat, VirtualSystem

SERIAL_MAX = 64  # characters an SMBIOS serial number may have here
_SERIALS = (("BIOSSerialNumber", "bios_serial"), ("BaseBoardSerialNumber", "baseboard_serial"),
            ("ChassisSerialNumber", "chassis_serial"))

GLOBAL_SETTING_TYPE = 32768
DEFAULT_NAME = "New Virtual Machine"

_STATUS_TEXT = {
    OperationalStatus.OK: "Operating normally",
    OperationalStatus.EXPORTING: "Exporting Virtual Machine",
    OperationalStatus.CREATING_SNAPSHOT: "Creating Snapshot",
    OperationalStatus.APPLYING_SNAPSHOT: "Applying Snapshot",
    OperationalStatus.DELETING_SNAPSHOT: "Deleting Snapshot",
    OperationalStatus.MERGING_DISKS: "Merging Disks",
}


def status_descriptions(operational: Sequence[int]) -> list[str]:
    """StatusDescriptions for an OperationalStatus array ("" for a value without a text)."""
    return [_STATUS_TEXT.get(OperationalStatus(v), "") if v in OperationalStatus._value2member_map_
            else "" for v in operational]


def _dt(value: datetime | None) -> pywbem.CIMDateTime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return pywbem.CIMDateTime(value)


def _build(classname: str, keys: dict[str, str], values: dict[str, tuple[Any, str]]
           ) -> pywbem.CIMInstance:
    path = pywbem.CIMInstanceName(classname, keybindings=keys, namespace=names.NAMESPACE)
    inst = pywbem.CIMInstance(classname, path=path)
    for name, value in keys.items():
        inst.properties[name] = pywbem.CIMProperty(name, value, type="string")
    for name, (value, cimtype) in values.items():
        is_array = cimtype.endswith("[]")
        inst.properties[name] = pywbem.CIMProperty(name, value, type=cimtype.rstrip("[]"),
                                                   is_array=is_array)
    return inst


ACCELERATOR_INFO = "vsms:Accelerator"
"""IdentifyingDescriptions entry whose OtherIdentifyingInfo entry names how a VM's processors
run: "KVM" (hardware virtualization) or "TCG" (QEMU's emulation)."""


def accelerator_label(domain_type: str) -> str | None:
    """The wire label of a libvirt domain type ("kvm" -> KVM, "qemu" -> TCG); None while it is
    not known (a VM not read back from libvirt yet)."""
    if not domain_type:
        return None
    return {"kvm": "KVM", "qemu": "TCG"}.get(domain_type, domain_type.upper())


def computer_system(vs: VirtualSystem, state: EnabledState, requested: RequestedState,
                    operational: Sequence[int], *, on_time_ms: int = 0,
                    last_state_change: datetime | None = None) -> pywbem.CIMInstance:
    """The VM's Msvm_ComputerSystem (keys CreationClassName + Name = the VM GUID).

    The accelerator the VM is defined with is in OtherIdentifyingInfo, described by
    ``ACCELERATOR_INFO`` in IdentifyingDescriptions.
    ``operational`` is the whole OperationalStatus array (``[2]``, or ``[2, 32773]`` while
    exporting); ``on_time_ms`` and ``last_state_change`` are what the caller observed.
    """
    status = [pywbem.Uint16(v) for v in (operational or [OperationalStatus.OK])]
    texts = status_descriptions(status)
    accel = accelerator_label(vs.accelerator)
    return _build(names.COMPUTER_SYSTEM,
                  {"CreationClassName": names.COMPUTER_SYSTEM, "Name": vs.guid}, {
        "ElementName": (vs.name, "string"),
        "Caption": ("Virtual Machine", "string"),
        "Description": ("Microsoft Virtual Machine", "string"),
        "InstallDate": (_dt(vs.created), "datetime"),
        "OperationalStatus": (status, "uint16[]"),
        "StatusDescriptions": (texts, "string[]"),
        "Status": (None, "string"),
        "HealthState": (pywbem.Uint16(HealthState.OK), "uint16"),
        "EnabledState": (pywbem.Uint16(state), "uint16"),
        "OtherEnabledState": (None, "string"),
        "RequestedState": (pywbem.Uint16(requested), "uint16"),
        "TimeOfLastStateChange": (_dt(last_state_change), "datetime"),
        "PrimaryOwnerName": (None, "string"),
        "PrimaryOwnerContact": (None, "string"),
        "IdentifyingDescriptions": ([ACCELERATOR_INFO] if accel else None, "string[]"),
        "OtherIdentifyingInfo": ([accel] if accel else None, "string[]"),
        "Dedicated": ([pywbem.Uint16(0)], "uint16[]"),
        "OtherDedicatedDescriptions": (None, "string[]"),
        "ResetCapability": (pywbem.Uint16(1), "uint16"),
        "PowerManagementCapabilities": (None, "uint16[]"),
        "EnabledDefault": (pywbem.Uint16(2), "uint16"),
        "Roles": (None, "string[]"),
        "NameFormat": (None, "string"),
        "OnTimeInMilliseconds": (pywbem.Uint64(max(0, on_time_ms)), "uint64"),
        "TimeOfLastConfigurationChange": (None, "datetime"),
        "ProcessID": (None, "uint32"),
        "AssignedNumaNodeList": (None, "uint16[]"),
    })


def host_system(hostname: str) -> pywbem.CIMInstance:
    """The hosting computer's own Msvm_ComputerSystem (Name = host name), as Hyper-V lists it."""
    return _build(names.COMPUTER_SYSTEM,
                  {"CreationClassName": names.COMPUTER_SYSTEM, "Name": hostname}, {
        "ElementName": (hostname, "string"),
        "Caption": ("Hosting Computer System", "string"),
        "Description": ("Microsoft Hosting Computer System", "string"),
        "OperationalStatus": ([pywbem.Uint16(OperationalStatus.OK)], "uint16[]"),
        "StatusDescriptions": (["OK"], "string[]"),
        "HealthState": (pywbem.Uint16(HealthState.OK), "uint16"),
        "EnabledState": (pywbem.Uint16(EnabledState.ENABLED), "uint16"),
        "RequestedState": (pywbem.Uint16(RequestedState.NOT_APPLICABLE), "uint16"),
        "EnabledDefault": (pywbem.Uint16(2), "uint16"),
        "Dedicated": ([pywbem.Uint16(0)], "uint16[]"),
        "ResetCapability": (pywbem.Uint16(1), "uint16"),
    })


def bios_guid(guid: str) -> str:
    """BIOSGUID of the VM ``guid``: the SMBIOS system UUID the guest reads (the domain UUID, which
    is the VM GUID) in the byte order Windows uses for GUIDs, i.e. with its first three fields
    byte-swapped, in braces. Swapping them back gives the UUID the guest's dmidecode prints."""
    return "{" + str(uuid.UUID(bytes=uuid.UUID(guid).bytes_le)).upper() + "}"


def guid_of_bios_guid(value: str) -> str:
    """The SMBIOS UUID (upper case, no braces) a BIOSGUID stands for (inverse of bios_guid);
    InvalidParameter when ``value`` is no GUID."""
    try:
        raw = uuid.UUID(value.strip().strip("{}"))
    except (ValueError, AttributeError):
        raise InvalidParameter(f"BIOSGUID {value!r} is not a GUID") from None
    return str(uuid.UUID(bytes_le=raw.bytes)).upper()


def vssd_instance(vs: VirtualSystem) -> pywbem.CIMInstance:
    """The VM's current Msvm_VirtualSystemSettingData (InstanceID ``Microsoft:<GUID>``)."""
    return _build(names.VSSD, {"InstanceID": ids.vssd_id(vs.guid)}, {
        "Caption": ("Virtual Machine", "string"),
        "Description": ("Active settings for the virtual machine", "string"),
        "SettingType": (pywbem.Uint16(SettingType.CURRENT), "uint16"),
        "SystemName": (vs.guid, "string"),
        "ElementName": (vs.name, "string"),
        "AutoActivate": (None, "boolean"),
        "OtherVirtualSystemType": (None, "string"),
        "CreationTime": (_dt(vs.created), "datetime"),
        "VirtualSystemType": (pywbem.Uint16(VIRTUAL_SYSTEM_TYPE_HYPERV), "uint16"),
        "Notes": (vs.notes, "string"),
        "BIOSGUID": (bios_guid(vs.guid), "string"),
        "BIOSSerialNumber": (vs.bios_serial or None, "string"),
        "BaseBoardSerialNumber": (vs.baseboard_serial or None, "string"),
        "ChassisSerialNumber": (vs.chassis_serial or None, "string"),
        "ChassisAssetTag": (None, "string"),
        "BIOSNumLock": (False, "boolean"),
        "BootOrder": ([pywbem.Uint16(v) for v in vs.boot_order], "uint16[]"),
        "Parent": (None, "string"),
        "NumaNodeList": (None, "uint16[]"),
        "NumaNodesAreRequired": (False, "boolean"),
    })


def vsgsd_instance(vs: VirtualSystem) -> pywbem.CIMInstance:
    """The VM's Msvm_VirtualSystemGlobalSettingData (InstanceID ``Microsoft:<GUID>\\Global``)."""
    return _build(names.VSGSD, {"InstanceID": ids.vsgsd_id(vs.guid)}, {
        "Caption": ("Global Virtual Machine Settings", "string"),
        "Description": ("Global settings for the virtual machine", "string"),
        "SystemName": (vs.guid, "string"),
        "ElementName": (vs.name, "string"),
        "VirtualSystemType": (pywbem.Uint16(VIRTUAL_SYSTEM_TYPE_HYPERV), "uint16"),
        "AutoActivate": (None, "boolean"),
        "OtherVirtualSystemType": (None, "string"),
        "CreationTime": (_dt(vs.created), "datetime"),
        "ExternalDataRoot": (vs.external_data_root, "string"),
        "SettingType": (pywbem.Uint16(GLOBAL_SETTING_TYPE), "uint16"),
        "SnapshotDataRoot": (vs.snapshot_data_root, "string"),
        "AutomaticStartupAction": (pywbem.Uint16(0), "uint16"),
        "AutomaticStartupActionDelay": (pywbem.CIMDateTime("00000000000000.000000:000"),
                                        "datetime"),
        "AutomaticShutdownAction": (None, "uint16"),
        "AutomaticRecoveryAction": (pywbem.Uint16(0), "uint16"),
        "AdditionalRecoveryInformation": (None, "string"),
        "ScopeOfResidence": (vs.scope_of_residence, "string"),
        "DebugChannelId": (None, "uint32"),
        "DebugPort": (None, "uint32"),
        "DebugPortEnabled": (pywbem.Uint16(0), "uint16"),
        "AllowFullSCSICommandSet": (False, "boolean"),
        "Version": (None, "string"),
    })


def settings_instances(vs: VirtualSystem) -> list[pywbem.CIMInstance]:
    """VSSD, VSGSD and one RASD per device (memory, processor, controllers, drives, images,
    network adapters), each with its path set."""
    return [vssd_instance(vs), vsgsd_instance(vs), *device_instances(vs)]


# ---------------------------------------------------------------------------- client -> model
def _text(inst: pywbem.CIMInstance, name: str) -> str | None:
    value = prop(inst, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParameter(f"{inst.classname}.{name} must be a string, got {value!r}")
    return value


def _check_own(vs: VirtualSystem, inst: pywbem.CIMInstance) -> None:
    iid = _text(inst, "InstanceID")
    if iid and iid.lower().startswith("microsoft:") and ids.guid_of(iid) != vs.guid.upper():
        raise InvalidParameter(
            f"{inst.classname} InstanceID {iid!r} belongs to another virtual machine, not "
            f"'{vs.name}' ({vs.guid}): pass the settings of the machine you modify")


def _data_root(inst: pywbem.CIMInstance, name: str) -> str | None:
    value = _text(inst, name)
    if value and not value.startswith("/"):
        raise InvalidParameter(f"{name} {value!r} is not an absolute path: give a fully "
                               "qualified directory or leave it empty")
    return value


def apply_global_settings(vs: VirtualSystem, inst: pywbem.CIMInstance, *,
                          defining: bool = False) -> VirtualSystem:
    """A copy of ``vs`` with a client's Msvm_VirtualSystemGlobalSettingData applied
    (ElementName, ExternalDataRoot (only when ``defining``), SnapshotDataRoot,
    ScopeOfResidence). NULL properties keep their value."""
    out = copy.deepcopy(vs)
    if not defining:
        _check_own(vs, inst)
    name = _text(inst, "ElementName")
    if name is not None:
        out.name = name
    elif defining:
        out.name = DEFAULT_NAME
    external = _data_root(inst, "ExternalDataRoot")
    if external is not None and external != vs.external_data_root:
        if not defining:
            raise InvalidParameter(
                "ExternalDataRoot can only be set when the virtual machine is defined "
                f"(it is {vs.external_data_root!r}): leave it unchanged")
        out.external_data_root = external
    snapshot = _data_root(inst, "SnapshotDataRoot")
    if snapshot is not None:
        out.snapshot_data_root = snapshot
    scope = _text(inst, "ScopeOfResidence")
    if scope is not None:
        out.scope_of_residence = scope
    problem = checks.name_problem(out.name)
    if problem:
        raise InvalidParameter(problem)
    return out


def apply_system_settings(vs: VirtualSystem, inst: pywbem.CIMInstance) -> VirtualSystem:
    """A copy of ``vs`` with ModifyVirtualSystem's SystemSettingData applied: a VSGSD (see
    ``apply_global_settings``) or a VSSD (ElementName, Notes, BootOrder, the SMBIOS serial
    numbers; a BIOSGUID other than the VM's is refused: it is the VM GUID)."""
    if inst.classname.lower() == names.VSGSD.lower():
        return apply_global_settings(vs, inst)
    if not inst.classname.lower().endswith("virtualsystemsettingdata"):
        raise InvalidParameter(
            f"SystemSettingData holds a {inst.classname}: pass an embedded {names.VSSD} or "
            f"{names.VSGSD} instance")
    _check_own(vs, inst)
    out = copy.deepcopy(vs)
    name = _text(inst, "ElementName")
    if name is not None:
        out.name = name
    notes = _text(inst, "Notes")
    if notes is not None:
        out.notes = notes
    order = prop(inst, "BootOrder")
    if order is not None:
        try:
            out.boot_order = [int(v) for v in (order if isinstance(order, list) else [order])]
        except (TypeError, ValueError):
            raise InvalidParameter(f"BootOrder {order!r} is not a list of numbers") from None
    for problem in (checks.name_problem(out.name), checks.boot_order_problem(out.boot_order)):
        if problem:
            raise InvalidParameter(problem)
    _apply_smbios(out, inst)
    return out


def _apply_smbios(vs: VirtualSystem, inst: pywbem.CIMInstance) -> None:
    given = _text(inst, "BIOSGUID")
    if given and guid_of_bios_guid(given) != vs.guid.upper():
        raise InvalidParameter(
            f"BIOSGUID {given!r} cannot be changed: it is the SMBIOS UUID of the virtual "
            f"machine, derived from its GUID ({bios_guid(vs.guid)}); leave it as returned or NULL")
    for name, attr in _SERIALS:
        value = _text(inst, name)
        if value is None:
            continue
        if len(value) > SERIAL_MAX or not value.isprintable() or "," in value:
            raise InvalidParameter(
                f"{name} {value!r} is not usable as an SMBIOS serial number: give at most "
                f"{SERIAL_MAX} printable characters without commas")
        setattr(vs, attr, value)


def system_from_instances(instances: Iterable[pywbem.CIMInstance],
                          formats: Mapping[str, ImageFormat] | None = None,
                          limits: checks.Limits = checks.MACHINE_LIMITS) -> VirtualSystem:
    """Rebuild a VM from its settings instances (what ``settings_instances`` produced).

    ``formats`` maps an image's device id to its format (e.g. from an export's config.xml);
    otherwise the format follows the file extension (.vhd, .vhdx, .qcow2; DVD images are raw).
    Raises ValidationFailed listing every problem found: in the instances, and the validator's
    rules (``vsms.mapping.checks``) with ``limits`` (the host's, ``VirtHost.limits()``).
    """
    items = list(instances)
    problems: list[str] = []
    vssds = [i for i in items if i.classname.lower() == names.VSSD.lower()]
    current = [i for i in vssds if prop(i, "SettingType") in (None, SettingType.CURRENT)]
    if len(current) != 1:
        problems.append(f"expected one {names.VSSD} with SettingType 3 (current settings), "
                        f"found {len(current)}")
        raise ValidationFailed(problems, summary="The virtual machine settings are not valid")
    vssd = current[0]
    guid = ""
    try:
        guid, is_global = ids.parse_system_id(str(prop(vssd, "InstanceID") or ""))
        if is_global:
            raise InvalidParameter(f"{names.VSSD} has a global settings InstanceID")
    except InvalidParameter as err:
        problems.append(str(err))
        guid = str(prop(vssd, "SystemName") or "").upper()
    vs = VirtualSystem(guid=guid, name=str(prop(vssd, "ElementName") or DEFAULT_NAME))
    vs.notes = str(prop(vssd, "Notes") or "")
    for name, attr in _SERIALS:
        value = prop(vssd, name)
        if isinstance(value, str) and value:
            setattr(vs, attr, value)
    order = prop(vssd, "BootOrder")
    if order:
        vs.boot_order = [int(v) for v in order]
    created = prop(vssd, "CreationTime")
    if isinstance(created, pywbem.CIMDateTime) and isinstance(created.datetime, datetime):
        vs.created = created.datetime.astimezone(UTC)  # plain UTC tzinfo: pywbem's won't deepcopy
    for inst in items:
        if inst.classname.lower() == names.VSGSD.lower():
            vs.external_data_root = str(prop(inst, "ExternalDataRoot") or "")
            vs.snapshot_data_root = str(prop(inst, "SnapshotDataRoot") or "")
            vs.scope_of_residence = str(prop(inst, "ScopeOfResidence") or "")
    for inst in items:  # the host's key-value items (issue 12: they go along with an export)
        if inst.classname.lower() == components.KVP_SETTINGS.lower():
            try:
                vs.kvp_items = components.host_items(inst)
            except (VsmsError, ValueError) as err:
                problems.append(str(err))
    others = [i for i in items if i.classname.lower() not in (
        names.VSSD.lower(), names.VSGSD.lower(), components.KVP_SETTINGS.lower())]
    problems.extend(restore_devices(vs, others, formats or {}))
    problems.extend(checks.problems(vs, limits))
    if problems:
        raise ValidationFailed(problems, summary="The virtual machine settings are not valid")
    return vs
