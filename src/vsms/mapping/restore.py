"""Rebuild a VM's devices from its RASD instances (the inverse of ``devices.device_instances``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

import pywbem

from vsms.errors import InvalidParameter, VsmsError
from vsms.mapping import ids
from vsms.mapping.devices import Kind, blank, classify, device_instances, label, prop
from vsms.mapping.switch_paths import is_port_text, port_keys
from vsms.model.vm import (
    COM_PORT_IDS,
    Controller,
    ControllerKind,
    Drive,
    DriveKind,
    ImageFormat,
    Media,
    NetworkAdapter,
    VirtualSystem,
)

_EXTENSIONS = {
    ".vhd": ImageFormat.VHD, ".avhd": ImageFormat.VHD, ".vhdx": ImageFormat.VHDX,
    ".avhdx": ImageFormat.VHDX, ".qcow2": ImageFormat.QCOW2, ".iso": ImageFormat.RAW,
}


def format_from_extension(path: str) -> ImageFormat | None:
    """The image format a file name implies, or None when the extension says nothing."""
    return _EXTENSIONS.get(PurePosixPath(path).suffix.lower())


def _int(inst: pywbem.CIMInstance, name: str) -> int:
    value = prop(inst, name)
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"{label(inst)}: {name} {value!r} is not a number") from None


def _parent(vs: VirtualSystem, inst: pywbem.CIMInstance) -> str:
    ref = prop(inst, "Parent")
    if blank(ref):
        raise ValueError(f"{label(inst)} has no Parent")
    guid, dev = ids.parse_device_id(ids.instance_id_from_ref(ref))
    if guid != vs.guid.upper():
        raise ValueError(f"{label(inst)}: Parent {ref!r} belongs to another virtual machine")
    return dev


def _one(vs: VirtualSystem, inst: pywbem.CIMInstance, formats: Mapping[str, ImageFormat],
         image_drives: dict[str, str]) -> None:
    kind = classify(inst)
    guid, dev = ids.parse_device_id(str(prop(inst, "InstanceID") or ""))
    if guid != vs.guid.upper():
        raise ValueError(f"{label(inst)} belongs to virtual machine {guid}, not {vs.guid}")
    if kind is Kind.MEMORY:
        vs.memory_mb, vs.memory_dev_id = _int(inst, "VirtualQuantity"), dev
    elif kind is Kind.PROCESSOR:
        vs.processors, vs.processor_dev_id = _int(inst, "VirtualQuantity"), dev
    elif kind in (Kind.IDE_CONTROLLER, Kind.SCSI_CONTROLLER):
        ckind = ControllerKind.IDE if kind is Kind.IDE_CONTROLLER else ControllerKind.SCSI
        vs.controllers.append(Controller(dev, ckind, _int(inst, "Address")))
    elif kind in (Kind.DISK_DRIVE, Kind.DVD_DRIVE):
        dkind = DriveKind.DISK if kind is Kind.DISK_DRIVE else DriveKind.DVD
        vs.drives.append(Drive(dev, dkind, _parent(vs, inst), _int(inst, "Address")))
    elif kind in (Kind.HARD_DISK_IMAGE, Kind.ISO_IMAGE, Kind.IMAGE):
        conn = prop(inst, "Connection") or []
        path = conn[0] if isinstance(conn, list) and conn else None
        if not isinstance(path, str) or not path:
            raise ValueError(f"{label(inst)} has no image path in Connection[0]")
        fmt = formats.get(dev) or formats.get(dev.lower())
        if fmt is None and kind is Kind.ISO_IMAGE:
            fmt = ImageFormat.RAW
        if fmt is None:
            fmt = format_from_extension(path)
        if fmt is None:
            image_drives[dev] = path
            fmt = ImageFormat.RAW
        vs.media.append(Media(dev, _parent(vs, inst), path, fmt))
    elif kind is Kind.SERIAL_PORT:
        port = _com_index(inst, dev)
        conn = prop(inst, "Connection") or []
        value = conn[0] if isinstance(conn, list) and conn else ""
        vs.com_ports = [*vs.com_ports, "", ""][:len(COM_PORT_IDS)]
        vs.com_ports[port] = str(value or "")
    else:
        conn = prop(inst, "Connection") or []
        switch = str(conn[0]) if isinstance(conn, list) and conn and conn[0] else ""
        switch_id = port_name = ""
        if is_port_text(switch):  # a switch port: the importer finds the switch (issue 14)
            with contextlib.suppress(InvalidParameter):
                switch_id, port_name = port_keys(switch)
            switch = ""
        given = prop(inst, "VirtualSystemIdentifiers") or []
        vs.nics.append(NetworkAdapter(dev, ids.mac_from_address(str(prop(inst, "Address") or "")),
                                      switch, synthetic=kind is Kind.SYNTHETIC_NIC,
                                      static_mac=prop(inst, "StaticMacAddress") is not False,
                                      identifiers=[str(i) for i in given
                                                   if str(i) != f"{{{dev}}}"],
                                      port=port_name, switch_id=switch_id))


def _com_index(inst: pywbem.CIMInstance, dev: str) -> int:
    """Which COM port a serial port RASD is: by our device id, else by Address or ElementName
    ("COM 1" / "COM 2", as Hyper-V writes them)."""
    if dev in COM_PORT_IDS:
        return COM_PORT_IDS.index(dev)
    for name in ("Address", "ElementName"):
        text = str(prop(inst, name) or "").strip()[-1:]
        if text in ("1", "2"):
            return int(text) - 1
    raise ValueError(f"{label(inst)}: cannot tell whether it is COM 1 or COM 2")


def restore_devices(vs: VirtualSystem, instances: Iterable[pywbem.CIMInstance],
                    formats: Mapping[str, ImageFormat]) -> list[str]:
    """Fill ``vs``'s devices from RASDs (in place); returns the problems found, one per RASD."""
    problems: list[str] = []
    unknown_format: dict[str, str] = {}
    for inst in instances:
        try:
            _one(vs, inst, formats, unknown_format)
        except (VsmsError, ValueError) as err:
            problems.append(str(err))
    for m in vs.media:
        drive = vs.drive(m.drive_id)
        if m.dev_id in unknown_format and (drive is None or drive.kind is DriveKind.DISK):
            problems.append(f"cannot tell the format of hard disk image {m.path}: its extension "
                            "is not .vhd, .vhdx or .qcow2 and no format was recorded for it")
        elif drive is not None and drive.kind is DriveKind.DVD:
            m.format = ImageFormat.RAW
    _restore_names(vs, instances)
    return problems


def _restore_names(vs: VirtualSystem, instances: Iterable[pywbem.CIMInstance]) -> None:
    """The ElementName of each device that differs from the one it would get by default."""
    default = {str(i.path.keybindings["InstanceID"]).upper(): prop(i, "ElementName")
               for i in device_instances(vs)}
    for inst in instances:
        iid, name = str(prop(inst, "InstanceID") or "").upper(), prop(inst, "ElementName")
        if iid in default and isinstance(name, str) and name.strip() and name != default[iid]:
            vs.element_names[ids.parse_device_id(iid)[1]] = name
