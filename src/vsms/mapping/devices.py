"""Devices of a VM as resource allocation setting data (RASD), and what kind a client RASD is.

One RASD per device: the memory (Msvm_MemorySettingData, VirtualQuantity in MB), the processors
(Msvm_ProcessorSettingData), each IDE/SCSI controller, disk or DVD drive (``Parent`` = the
controller's path, ``Address`` = the slot), image (``Parent`` = the drive's path,
``Connection[0]`` = the file) and network adapter (Msvm_Synthetic/EmulatedEthernetPortSettingData,
``Address`` = the MAC without separators, ``Connection[0]`` = the switch) and serial port
(COM 1 and COM 2, ``Address`` 1 or 2, ``Connection[0]`` = a named pipe or socket path).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.enums import ResourceType
from vsms.errors import InvalidParameter, NotSupported
from vsms.mapping import ids
from vsms.mapping.switch_paths import connection_text
from vsms.model.vm import (
    COM_PORT_IDS,
    Controller,
    ControllerKind,
    Drive,
    DriveKind,
    Media,
    NetworkAdapter,
    VirtualSystem,
)


class Kind(StrEnum):
    """What a RASD describes, as far as this service supports it."""

    MEMORY = "memory"
    PROCESSOR = "processor"
    IDE_CONTROLLER = "IDE controller"
    SCSI_CONTROLLER = "SCSI controller"
    DISK_DRIVE = "disk drive"
    DVD_DRIVE = "DVD drive"
    HARD_DISK_IMAGE = "hard disk image"
    ISO_IMAGE = "ISO image"
    IMAGE = "image"  # type 21 without a subtype: hard disk or ISO, decided by the drive
    SYNTHETIC_NIC = "network adapter"
    EMULATED_NIC = "legacy network adapter"
    SERIAL_PORT = "serial port"


SUB_MEMORY = "Microsoft Virtual Machine Memory"
SUB_PROCESSOR = "Microsoft Processor"
SUB_IDE = "Microsoft Emulated IDE Controller"
SUB_SCSI = "Microsoft Synthetic SCSI Controller"
SUB_DISK_DRIVE = "Microsoft Synthetic Disk Drive"
SUB_DVD_DRIVE = "Microsoft Synthetic DVD Drive"
SUB_VHD = "Microsoft Virtual Hard Disk"
SUB_ISO = "Microsoft Virtual CD/DVD Disk"
SUB_SYNTHETIC_NIC = "Microsoft Synthetic Ethernet Port"
SUB_EMULATED_NIC = "Microsoft Emulated Ethernet Port"
SUB_SERIAL_PORT = "Microsoft Serial Port"

_BY_SUBTYPE: dict[str, Kind] = {
    SUB_MEMORY.lower(): Kind.MEMORY,
    SUB_PROCESSOR.lower(): Kind.PROCESSOR,
    SUB_IDE.lower(): Kind.IDE_CONTROLLER,
    SUB_SCSI.lower(): Kind.SCSI_CONTROLLER,
    SUB_DISK_DRIVE.lower(): Kind.DISK_DRIVE,
    SUB_DVD_DRIVE.lower(): Kind.DVD_DRIVE,
    SUB_VHD.lower(): Kind.HARD_DISK_IMAGE,
    SUB_ISO.lower(): Kind.ISO_IMAGE,
    "microsoft iso image": Kind.ISO_IMAGE,
    "microsoft virtual dvd disk": Kind.ISO_IMAGE,
    SUB_SYNTHETIC_NIC.lower(): Kind.SYNTHETIC_NIC,
    SUB_EMULATED_NIC.lower(): Kind.EMULATED_NIC,
    SUB_SERIAL_PORT.lower(): Kind.SERIAL_PORT,
}

# Hyper-V device types we know but do not implement (refused with Not supported).
_UNSUPPORTED_SUBTYPES = {s.lower() for s in (
    "Microsoft Physical Disk Drive", "Microsoft Physical DVD Drive", "Microsoft Synthetic CD Drive",
    "Microsoft Physical CD Drive", "Microsoft Virtual Floppy Disk",
    "Microsoft Synthetic Diskette Drive", "Microsoft Virtual Diskette Controller",
    "Microsoft Synthetic Display Controller", "Microsoft S3 Display Controller",
    "Microsoft Serial Controller", "Microsoft Synthetic Mouse",
    "Microsoft Virtual Keyboard")}

_BY_TYPE: dict[int, Kind] = {
    ResourceType.PROCESSOR: Kind.PROCESSOR,
    ResourceType.MEMORY: Kind.MEMORY,
    ResourceType.IDE_CONTROLLER: Kind.IDE_CONTROLLER,
    ResourceType.PARALLEL_SCSI_HBA: Kind.SCSI_CONTROLLER,
    ResourceType.ETHERNET_ADAPTER: Kind.SYNTHETIC_NIC,
    ResourceType.DVD_DRIVE: Kind.DVD_DRIVE,
    ResourceType.DISK: Kind.DISK_DRIVE,
    ResourceType.STORAGE_EXTENT: Kind.IMAGE,
    ResourceType.SERIAL_PORT: Kind.SERIAL_PORT,
}

_TYPES_OF: dict[Kind, tuple[int, ...]] = {
    Kind.MEMORY: (ResourceType.MEMORY,),
    Kind.PROCESSOR: (ResourceType.PROCESSOR,),
    Kind.IDE_CONTROLLER: (ResourceType.IDE_CONTROLLER,),
    Kind.SCSI_CONTROLLER: (ResourceType.PARALLEL_SCSI_HBA,),
    Kind.DISK_DRIVE: (ResourceType.DISK,),
    Kind.DVD_DRIVE: (ResourceType.DVD_DRIVE, ResourceType.CD_DRIVE),
    Kind.HARD_DISK_IMAGE: (ResourceType.STORAGE_EXTENT,),
    Kind.ISO_IMAGE: (ResourceType.STORAGE_EXTENT, ResourceType.DVD_DRIVE),
    Kind.SYNTHETIC_NIC: (ResourceType.ETHERNET_ADAPTER,),
    Kind.EMULATED_NIC: (ResourceType.ETHERNET_ADAPTER,),
    Kind.SERIAL_PORT: (ResourceType.SERIAL_PORT,),
}

_BY_CLASS: dict[str, Kind] = {
    names.MEMORY_SD.lower(): Kind.MEMORY,
    names.PROCESSOR_SD.lower(): Kind.PROCESSOR,
    names.SYNTHETIC_NIC_SD.lower(): Kind.SYNTHETIC_NIC,
    names.EMULATED_NIC_SD.lower(): Kind.EMULATED_NIC,
}

SUPPORTED = ", ".join(f"'{s}'" for s in (
    SUB_MEMORY, SUB_PROCESSOR, SUB_IDE, SUB_SCSI, SUB_DISK_DRIVE, SUB_DVD_DRIVE, SUB_VHD, SUB_ISO,
    SUB_SYNTHETIC_NIC, SUB_EMULATED_NIC, SUB_SERIAL_PORT))


def prop(inst: pywbem.CIMInstance, name: str) -> Any:
    """A property value by case-insensitive name (None when absent or NULL)."""
    for key, p in inst.properties.items():
        if key.lower() == name.lower():
            return p.value
    return None


def blank(value: Any) -> bool:
    """True for NULL and for an empty or all-blank string."""
    return value is None or (isinstance(value, str) and not value.strip())


def label(inst: pywbem.CIMInstance) -> str:
    """How an error message names a client RASD."""
    parts = [inst.classname]
    for name in ("ElementName", "ResourceSubType", "InstanceID"):
        value = prop(inst, name)
        if not blank(value):
            parts.append(f"{name}={value!r}")
    return " ".join(parts)


def classify(inst: pywbem.CIMInstance) -> Kind:
    """The kind of device a client RASD describes; InvalidParameter / NotSupported otherwise."""
    cls = inst.classname.lower()
    if cls not in _BY_CLASS and not cls.endswith("resourceallocationsettingdata"):
        raise InvalidParameter(
            f"{label(inst)} is not a resource allocation setting data instance: pass "
            f"{names.RASD} or one of its subclasses")
    raw_type = prop(inst, "ResourceType")
    try:
        rtype = int(raw_type) if raw_type is not None else None
    except (TypeError, ValueError):
        raise InvalidParameter(f"{label(inst)} has a ResourceType {raw_type!r} that is not a "
                               "number") from None
    subtype = prop(inst, "ResourceSubType")
    sub = subtype.strip().lower() if isinstance(subtype, str) else ""
    kind = _BY_CLASS.get(cls)
    if kind is None and sub:
        if sub in _UNSUPPORTED_SUBTYPES:
            raise NotSupported(f"{label(inst)}: devices of type {subtype!r} are not supported by "
                               f"this service; supported subtypes are {SUPPORTED}")
        kind = _BY_SUBTYPE.get(sub)
        if kind is None:
            raise InvalidParameter(
                f"{label(inst)}: unknown ResourceSubType {subtype!r} (ResourceType {rtype}); "
                f"supported subtypes are {SUPPORTED}")
    if kind is None:
        if rtype is None:
            raise InvalidParameter(f"{label(inst)} has neither ResourceType nor "
                                   f"ResourceSubType: set both; supported subtypes are {SUPPORTED}")
        kind = _BY_TYPE.get(rtype)
        if kind is None:
            known = rtype in ResourceType._value2member_map_
            err = NotSupported if known else InvalidParameter
            what = ResourceType(rtype).name.replace("_", " ").lower() if known else "unknown"
            raise err(f"{label(inst)}: ResourceType {rtype} ({what}) is not supported; supported "
                      f"subtypes are {SUPPORTED}")
    if rtype is not None and kind is not Kind.IMAGE and rtype not in _TYPES_OF[kind]:
        raise InvalidParameter(
            f"{label(inst)}: ResourceType {rtype} does not match a {kind.value} (expected "
            f"{' or '.join(str(t) for t in _TYPES_OF[kind])})")
    return kind


# ---------------------------------------------------------------------------- model -> RASD
def _inst(classname: str, instance_id: str, values: dict[str, Any],
          types: dict[str, str]) -> pywbem.CIMInstance:
    inst = pywbem.CIMInstance(classname, path=ids.setting_path(classname, instance_id))
    inst.properties["InstanceID"] = pywbem.CIMProperty("InstanceID", instance_id, type="string")
    for name, value in values.items():
        cimtype = types.get(name, "string")
        is_array = isinstance(value, list) or name in _ARRAYS
        inst.properties[name] = pywbem.CIMProperty(name, value, type=cimtype, is_array=is_array)
    return inst


_ARRAYS = {"HostResource", "Connection", "VirtualSystemIdentifiers"}
_TYPES = {
    "ResourceType": "uint16", "ConsumerVisibility": "uint16", "MappingBehavior": "uint16",
    "VirtualQuantity": "uint64", "Reservation": "uint64", "Limit": "uint64", "Weight": "uint32",
    "AutomaticAllocation": "boolean", "AutomaticDeallocation": "boolean",
    "IsVirtualized": "boolean", "DynamicMemoryEnabled": "boolean", "TargetMemoryBuffer": "uint32",
    "ProcessorsPerSocket": "uint16", "SocketCount": "uint16", "ThreadsEnabled": "boolean",
    "LimitCPUID": "boolean", "LimitProcessorFeatures": "boolean", "StaticMacAddress": "boolean",
}


def _rasd(vs: VirtualSystem, classname: str, dev_id: str, *, caption: str, element: str,
          description: str, rtype: ResourceType, subtype: str, units: str,
          quantity: int | None = 1, parent: str | None = None, connection: list[str] | None = None,
          address: str | None = None, **extra: Any) -> pywbem.CIMInstance:
    values: dict[str, Any] = {
        "Caption": caption, "Description": description,
        "ElementName": vs.element_names.get(dev_id, element),
        "ResourceType": pywbem.Uint16(rtype), "OtherResourceType": None,
        "ResourceSubType": subtype, "PoolID": ids.pool_id(subtype),  # its pool (mapping.pools)
        "ConsumerVisibility": pywbem.Uint16(3),
        "HostResource": None, "AllocationUnits": units,
        "VirtualQuantity": None if quantity is None else pywbem.Uint64(quantity),
        "Reservation": None, "Limit": None, "Weight": None,
        "AutomaticAllocation": True, "AutomaticDeallocation": True, "Parent": parent,
        "Connection": connection, "Address": address, "MappingBehavior": None,
    }
    values.update(extra)
    return _inst(classname, ids.device_id(vs.guid, dev_id), values, _TYPES)


def _memory(vs: VirtualSystem) -> pywbem.CIMInstance:
    mb = pywbem.Uint64(vs.memory_mb)
    return _rasd(vs, names.MEMORY_SD, vs.memory_dev_id, caption="Memory", element="Memory",
                 description="Settings for Microsoft Virtual Machine Memory",
                 rtype=ResourceType.MEMORY, subtype=SUB_MEMORY, units="MB",
                 quantity=vs.memory_mb, Reservation=mb, Limit=mb, Weight=pywbem.Uint32(5000),
                 IsVirtualized=True, DeviceID=f"Microsoft:{vs.memory_dev_id}",
                 DeviceIDFormat=None, DynamicMemoryEnabled=False, TargetMemoryBuffer=None)


def _processor(vs: VirtualSystem) -> pywbem.CIMInstance:
    return _rasd(vs, names.PROCESSOR_SD, vs.processor_dev_id, caption="Processor",
                 element="Processor", description="Settings for Microsoft Virtual Processor",
                 rtype=ResourceType.PROCESSOR, subtype=SUB_PROCESSOR, units="Processor Cores",
                 quantity=vs.processors, Reservation=pywbem.Uint64(0),
                 Limit=pywbem.Uint64(100000), Weight=pywbem.Uint32(100), IsVirtualized=True,
                 DeviceID=f"Microsoft:{vs.processor_dev_id}", DeviceIDFormat=None,
                 ProcessorsPerSocket=pywbem.Uint16(vs.processors), SocketCount=pywbem.Uint16(1),
                 ThreadsEnabled=False, LimitCPUID=False, LimitProcessorFeatures=False)


def _controller(vs: VirtualSystem, c: Controller) -> pywbem.CIMInstance:
    if c.kind is ControllerKind.IDE:
        return _rasd(vs, names.RASD, c.dev_id, caption="IDE Controller",
                     element=f"IDE Controller {c.index}",
                     description="Settings for the Microsoft Emulated IDE Controller.",
                     rtype=ResourceType.IDE_CONTROLLER, subtype=SUB_IDE, units="Controllers",
                     address=str(c.index), VirtualSystemIdentifiers=None)
    return _rasd(vs, names.RASD, c.dev_id, caption="SCSI Controller", element="SCSI Controller",
                 description="Settings for the Microsoft Synthetic SCSI Controller.",
                 rtype=ResourceType.PARALLEL_SCSI_HBA, subtype=SUB_SCSI, units="Controllers",
                 address=str(c.index), VirtualSystemIdentifiers=[f"{{{c.dev_id}}}"])


def _drive(vs: VirtualSystem, d: Drive) -> pywbem.CIMInstance:
    parent = ids.ref_text(names.RASD, ids.device_id(vs.guid, d.controller_id))
    if d.kind is DriveKind.DISK:
        return _rasd(vs, names.RASD, d.dev_id, caption="Hard Drive", element="Hard Drive",
                     description="Settings for the Microsoft Synthetic Disk Drive.",
                     rtype=ResourceType.DISK, subtype=SUB_DISK_DRIVE, units="Disk drives",
                     parent=parent, address=str(d.address), VirtualSystemIdentifiers=None)
    return _rasd(vs, names.RASD, d.dev_id, caption="DVD Drive", element="DVD Drive",
                 description="Settings for the Microsoft Synthetic DVD Drive.",
                 rtype=ResourceType.DVD_DRIVE, subtype=SUB_DVD_DRIVE, units="DVD drives",
                 parent=parent, address=str(d.address), VirtualSystemIdentifiers=None)


def _media(vs: VirtualSystem, m: Media) -> pywbem.CIMInstance:
    parent = ids.ref_text(names.RASD, ids.device_id(vs.guid, m.drive_id))
    drive = vs.drive(m.drive_id)
    if drive is not None and drive.kind is DriveKind.DVD:
        return _rasd(vs, names.RASD, m.dev_id, caption="ISO Disk Image", element="ISO Disk Image",
                     description="Settings for the Microsoft Virtual CD/DVD Disk.",
                     rtype=ResourceType.STORAGE_EXTENT, subtype=SUB_ISO, units="Disks",
                     parent=parent, connection=[m.path], VirtualSystemIdentifiers=None)
    return _rasd(vs, names.RASD, m.dev_id, caption="Hard Disk Image", element="Hard Disk Image",
                 description="Settings for the Microsoft Virtual Hard Disk.",
                 rtype=ResourceType.STORAGE_EXTENT, subtype=SUB_VHD, units="Disks",
                 parent=parent, connection=[m.path], VirtualSystemIdentifiers=None)


def _nic(vs: VirtualSystem, n: NetworkAdapter) -> pywbem.CIMInstance:
    common: dict[str, Any] = {
        "caption": "Ethernet Port", "rtype": ResourceType.ETHERNET_ADAPTER, "units": "Ports",
        "connection": [c] if (c := connection_text(n)) else None,
        "address": ids.address_from_mac(n.mac),
        "Reservation": pywbem.Uint64(1), "Limit": pywbem.Uint64(1), "Weight": pywbem.Uint32(0),
        "StaticMacAddress": n.static_mac,
    }
    if n.synthetic:
        return _rasd(vs, names.SYNTHETIC_NIC_SD, n.dev_id, element="Network Adapter",
                     description="Settings for the Microsoft Synthetic Ethernet Port",
                     subtype=SUB_SYNTHETIC_NIC,
                     VirtualSystemIdentifiers=n.identifiers or [f"{{{n.dev_id}}}"], **common)
    return _rasd(vs, names.EMULATED_NIC_SD, n.dev_id, element="Legacy Network Adapter",
                 description="Settings for the Microsoft Emulated Ethernet Port",
                 subtype=SUB_EMULATED_NIC, **common)


def _com(vs: VirtualSystem, index: int) -> pywbem.CIMInstance:
    name = f"COM {index + 1}"
    conn = vs.com_ports[index] if index < len(vs.com_ports) else ""
    return _rasd(vs, names.RASD, COM_PORT_IDS[index], caption=name, element=name,
                 description="Settings for the Microsoft Serial Port.",
                 rtype=ResourceType.SERIAL_PORT, subtype=SUB_SERIAL_PORT, units="Serial Ports",
                 connection=[conn] if conn else None, address=str(index + 1),
                 VirtualSystemIdentifiers=None)


def device_instances(vs: VirtualSystem) -> list[pywbem.CIMInstance]:
    """One RASD per device: memory, processor, controllers, drives, images, adapters, COM 1
    and COM 2."""
    out = [_memory(vs), _processor(vs)]
    out.extend(_controller(vs, c) for c in vs.controllers)
    out.extend(_drive(vs, d) for d in vs.drives)
    out.extend(_media(vs, m) for m in vs.media)
    out.extend(_nic(vs, n) for n in vs.nics)
    out.extend(_com(vs, i) for i in range(len(COM_PORT_IDS)))
    return out
