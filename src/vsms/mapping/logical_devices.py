"""The logical devices of a VM (Msvm_Processor, Msvm_DiskDrive, …, Msvm_BIOSElement) and the
associations between them, built from the VM model alone (no libvirt call).

Every device is keyed as Hyper-V keys it: SystemCreationClassName ``Msvm_ComputerSystem``,
SystemName the VM GUID, CreationClassName its class, DeviceID ``Microsoft:<device id>`` (the id
of its RASD; a virtual processor adds ``\\<index>``). The devices every VM has without a
RASD of ours (keyboard, mouse, display, serial and diskette controllers) and the serial ports
(whose RASDs are COM 1 and COM 2) have fixed DeviceIDs. A property the caller does not set
takes the value our MOF documents for the class (the
reference pages' values), so an instance always carries every property of its class.

EnabledState follows the reference pages: "always 5 (Not Applicable)" for most classes, always
2 for Msvm_VideoHead; the IDE controller, the synthetic mouse and the synthetic display
controller follow the VM (2 Enabled while it runs, 9 Quiesce while paused, 3 Disabled when off
or saved), and their Availability with it (3 Running, 18 Paused, 8 Off Line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pywbem

from vsms.cim import names
from vsms.cim.enums import EnabledState
from vsms.mapping import components, ids
from vsms.mapping.devices import device_instances
from vsms.mapping.system import bios_guid
from vsms.model.vm import COM_PORT_IDS, ControllerKind, DriveKind, VirtualSystem

PROCESSOR = "Msvm_Processor"
MEMORY = "Msvm_Memory"
IDE_CONTROLLER = "Msvm_IDEController"
SCSI_CONTROLLER = "Msvm_SCSIProtocolController"
DISK_DRIVE = "Msvm_DiskDrive"
DVD_DRIVE = "Msvm_DVDDrive"
LOGICAL_DISK = "Msvm_LogicalDisk"
SYNTHETIC_PORT = "Msvm_SyntheticEthernetPort"
EMULATED_PORT = "Msvm_EmulatedEthernetPort"
KEYBOARD = "Msvm_Keyboard"
MOUSE = "Msvm_SyntheticMouse"
VIDEO_HEAD = "Msvm_VideoHead"
DISPLAY = "Msvm_SyntheticDisplayController"
SERIAL_CONTROLLER = "Msvm_SerialController"
SERIAL_PORT = "Msvm_SerialPort"
DISKETTE_CONTROLLER = "Msvm_DisketteController"
DISKETTE_DRIVE = "Msvm_DisketteDrive"
BIOS = "Msvm_BIOSElement"

DEVICE_CLASSES = (PROCESSOR, MEMORY, IDE_CONTROLLER, SCSI_CONTROLLER, DISK_DRIVE, DVD_DRIVE,
                  LOGICAL_DISK, SYNTHETIC_PORT, EMULATED_PORT, KEYBOARD, MOUSE, VIDEO_HEAD,
                  DISPLAY, SERIAL_CONTROLLER, SERIAL_PORT, DISKETTE_CONTROLLER, DISKETTE_DRIVE)

SYSTEM_DEVICE = "Msvm_SystemDevice"
SYSTEM_BIOS = "Msvm_SystemBIOS"
CONTROLLED_BY = "Msvm_ControlledBy"
CONTROLLER_FOR_UNIT = "Msvm_ProtocolControllerForUnit"
MEDIA_PRESENT = "Msvm_MediaPresent"
PORT_ON_CONTROLLER = "Msvm_SerialPortOnSerialController"
HEAD_ON_CONTROLLER = "Msvm_VideoHeadOnController"
ASSOCIATIONS = (SYSTEM_DEVICE, SYSTEM_BIOS, CONTROLLED_BY, CONTROLLER_FOR_UNIT, MEDIA_PRESENT,
                PORT_ON_CONTROLLER, HEAD_ON_CONTROLLER)

COM_PORTS = ("COM 1", "COM 2")
_FOLLOWS_VM = {IDE_CONTROLLER, MOUSE, DISPLAY}
_DEVICE_STATE = {EnabledState.ENABLED: (2, 3), EnabledState.PAUSED: (9, 18)}  # state, availability
_OFF = (3, 8)


@dataclass
class Device:
    """One logical device: its class, DeviceID, the InstanceID of its RASD (None when it has
    none) and the property values that are not the class's documented ones."""

    classname: str
    device_id: str
    rasd: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


def device_path(guid: str, classname: str, device_id: str) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(classname, keybindings={
        "CreationClassName": classname, "DeviceID": device_id,
        "SystemCreationClassName": names.COMPUTER_SYSTEM, "SystemName": guid,
    }, namespace=names.NAMESPACE)


def bios_path(guid: str) -> pywbem.CIMInstanceName:
    return pywbem.CIMInstanceName(BIOS, keybindings={
        "Name": "BIOS", "Version": "8.02.00", "SoftwareElementState": pywbem.Uint16(2),
        "SoftwareElementID": f"Microsoft:{guid}\\BIOS",
        "TargetOperatingSystem": pywbem.Uint16(0)}, namespace=names.NAMESPACE)


def _fixed(dev_id: str) -> str:
    return f"Microsoft:{dev_id}"


def devices(vs: VirtualSystem) -> list[Device]:
    """Every logical device of ``vs`` (without state: see ``instance``)."""
    rasd_names = {str(r.path.keybindings["InstanceID"]): r["ElementName"]
                  for r in device_instances(vs) if r.path is not None}

    def rasd(dev_id: str) -> str:
        return ids.device_id(vs.guid, dev_id)

    def named(dev_id: str, **values: Any) -> dict[str, Any]:
        name = rasd_names.get(rasd(dev_id))
        return {"ElementName": name, **values} if name else values

    out = [Device(PROCESSOR, f"Microsoft:{vs.processor_dev_id}\\{i}", rasd(vs.processor_dev_id),
                  {"Name": f"{vs.processor_dev_id}\\{i}"}) for i in range(vs.processors)]
    out.append(Device(MEMORY, _fixed(vs.memory_dev_id), rasd(vs.memory_dev_id), named(
        vs.memory_dev_id, Name=vs.memory_dev_id, NumberOfBlocks=vs.memory_mb,
        ConsumableBlocks=vs.memory_mb, EndingAddress=vs.memory_mb * 1024 - 1)))
    for c in vs.controllers:
        ide = c.kind is ControllerKind.IDE
        out.append(Device(IDE_CONTROLLER if ide else SCSI_CONTROLLER, _fixed(c.dev_id),
                          rasd(c.dev_id), named(c.dev_id, Name=f"{c.kind.value.upper()} "
                                                f"Controller {c.index}")))
    for d in vs.drives:
        cls = DISK_DRIVE if d.kind is DriveKind.DISK else DVD_DRIVE
        extra = {"DriveNumber": d.address} if cls == DISK_DRIVE else {}
        out.append(Device(cls, _fixed(d.dev_id), rasd(d.dev_id), named(d.dev_id, **extra)))
    for m in vs.media:
        out.append(Device(LOGICAL_DISK, _fixed(m.dev_id), rasd(m.dev_id),
                          named(m.dev_id, Name=m.path, ElementName=m.path.rsplit("/", 1)[-1])))
    for n in vs.nics:
        address = ids.address_from_mac(n.mac)
        out.append(Device(SYNTHETIC_PORT if n.synthetic else EMULATED_PORT, _fixed(n.dev_id),
                          rasd(n.dev_id), named(n.dev_id, PermanentAddress=address,
                                                NetworkAddresses=[address])))
    out += [Device(KEYBOARD, "Microsoft:Keyboard"), Device(MOUSE, "Microsoft:SyntheticMouse"),
            Device(DISPLAY, "Microsoft:SyntheticDisplay"),
            Device(VIDEO_HEAD, "Microsoft:SyntheticDisplay\\Head\\0"),
            Device(SERIAL_CONTROLLER, "Microsoft:SerialController"),
            Device(DISKETTE_CONTROLLER, "Microsoft:DisketteController"),
            Device(DISKETTE_DRIVE, "Microsoft:DisketteController\\0")]
    out += [Device(SERIAL_PORT, f"Microsoft:SerialController\\{i}", rasd(COM_PORT_IDS[i]),
                   values={"Name": name, "ElementName": name, "Caption": name})
            for i, name in enumerate(COM_PORTS)]
    return out


def _typed(prop: pywbem.CIMProperty, value: Any) -> Any:
    if value is None:
        return None
    if prop.is_array:
        return [pywbem.cimvalue(v, prop.type) for v in value]
    return pywbem.cimvalue(value, prop.type)


def from_class(cls: pywbem.CIMClass, path: pywbem.CIMInstanceName,
                values: Mapping[str, Any]) -> pywbem.CIMInstance:
    """An instance of ``cls`` at ``path``: its keys from the path, ``values``, and the class's
    documented value for every other property."""
    unknown = set(values) - set(cls.properties)
    if unknown:
        raise ValueError(f"{cls.classname} has no properties {sorted(unknown)}")
    inst = pywbem.CIMInstance(cls.classname, path=path)
    for name, prop in cls.properties.items():
        value = values.get(name, prop.value)
        if name in path.keybindings:
            value = path.keybindings[name]
        inst.properties[name] = pywbem.CIMProperty(
            name, _typed(prop, value), type=prop.type, is_array=prop.is_array,
            reference_class=prop.reference_class)
    return inst


def instance(cls: pywbem.CIMClass, vs: VirtualSystem, state: EnabledState,
             dev: Device) -> pywbem.CIMInstance:
    """The CIM instance of ``dev`` of ``vs`` running in ``state``, from class ``cls``."""
    values = dict(dev.values)
    if dev.classname in _FOLLOWS_VM:
        values["EnabledState"], values["Availability"] = _DEVICE_STATE.get(state, _OFF)
    return from_class(cls, device_path(vs.guid, dev.classname, dev.device_id), values)


def bios_instance(cls: pywbem.CIMClass, vs: VirtualSystem) -> pywbem.CIMInstance:
    """The VM's Msvm_BIOSElement: its SMBIOS identity and boot order."""
    return from_class(cls, bios_path(vs.guid), {
        "BIOSGUID": bios_guid(vs.guid), "BIOSSerialNumber": vs.bios_serial or None,
        "BaseBoardSerialNumber": vs.baseboard_serial or None,
        "ChassisSerialNumber": vs.chassis_serial or None, "BIOSNumLock": False,
        "BootOrder": list(vs.boot_order)})


@dataclass(frozen=True)
class Link:
    """One association instance: its class, references by role, other property values."""

    classname: str
    refs: dict[str, pywbem.CIMInstanceName]
    values: dict[str, Any] = field(default_factory=dict)


def links(vs: VirtualSystem, found: list[Device] | None = None) -> list[Link]:
    """Every association among the VM, its BIOS and its devices."""
    devs = devices(vs) if found is None else found
    guid = vs.guid

    def path(d: Device) -> pywbem.CIMInstanceName:
        return device_path(guid, d.classname, d.device_id)

    vm = pywbem.CIMInstanceName(names.COMPUTER_SYSTEM, keybindings={
        "CreationClassName": names.COMPUTER_SYSTEM, "Name": guid}, namespace=names.NAMESPACE)
    by_id = {d.device_id: d for d in devs}
    out = [Link(SYSTEM_DEVICE, {"GroupComponent": vm, "PartComponent": path(d)}) for d in devs]
    out.append(Link(SYSTEM_BIOS, {"GroupComponent": vm, "PartComponent": bios_path(guid)}))
    for d in vs.drives:
        ctl = vs.controller(d.controller_id)
        if ctl is None:
            continue
        drive, controller = by_id[_fixed(d.dev_id)], by_id[_fixed(ctl.dev_id)]
        refs = {"Antecedent": path(controller), "Dependent": path(drive)}
        out.append(Link(CONTROLLED_BY if ctl.kind is ControllerKind.IDE else CONTROLLER_FOR_UNIT,
                        refs, {"DeviceNumber": str(d.address)}))
    for m in vs.media:
        drv = vs.drive(m.drive_id)
        out.append(Link(MEDIA_PRESENT, {"Antecedent": path(by_id[_fixed(m.drive_id)]),
                                        "Dependent": path(by_id[_fixed(m.dev_id)])},
                        {"FixedMedia": drv is not None and drv.kind is DriveKind.DISK}))
    serial = by_id["Microsoft:SerialController"]
    out += [Link(PORT_ON_CONTROLLER, {"Antecedent": path(serial), "Dependent": path(d)})
            for d in devs if d.classname == SERIAL_PORT]
    out.append(Link(HEAD_ON_CONTROLLER, {"Antecedent": path(by_id["Microsoft:SyntheticDisplay"]),
                                         "Dependent": path(by_id[
                                             "Microsoft:SyntheticDisplay\\Head\\0"])}))
    out.append(Link(CONTROLLED_BY, {"Antecedent": path(by_id["Microsoft:DisketteController"]),
                                    "Dependent": path(by_id["Microsoft:DisketteController\\0"])},
                    {"DeviceNumber": "0"}))
    out += [Link(cn, refs) for cn, refs in components.links(vs)]  # integration components
    return out


def setting_links(vs: VirtualSystem) -> list[Link]:
    """Msvm_ElementSettingData from each device that has a RASD to that RASD (IsCurrent)."""
    rasd_paths = {str(r.path.keybindings["InstanceID"]): r.path for r in device_instances(vs)
                  if r.path is not None}
    flags = {"IsDefault": pywbem.Uint16(0), "IsCurrent": pywbem.Uint16(1),
             "IsNext": pywbem.Uint16(0), "IsMaximum": pywbem.Uint16(0),
             "IsMinimum": pywbem.Uint16(0)}
    return [Link(names.ELEMENT_SETTING_DATA,
                 {"ManagedElement": device_path(vs.guid, d.classname, d.device_id),
                  "SettingData": rasd_paths[d.rasd]}, flags)
            for d in devices(vs) if d.rasd is not None and d.rasd in rasd_paths] + [
        Link(cn, refs, flags) for cn, refs in components.setting_links(vs)]


def system_of(ref: pywbem.CIMInstanceName) -> str | None:
    """The VM GUID a device, BIOS or VM path names (None for anything else)."""
    keys = {k.lower(): v for k, v in ref.keybindings.items()}
    if ref.classname.lower() == names.COMPUTER_SYSTEM.lower():
        return str(keys.get("name", "")) or None
    if "systemname" in keys and "deviceid" in keys:
        return str(keys["systemname"]) or None
    sid = str(keys.get("softwareelementid", ""))
    if sid.lower().startswith("microsoft:") and sid.lower().endswith("\\bios"):
        return sid[len("microsoft:"):-len("\\bios")] or None
    return None
