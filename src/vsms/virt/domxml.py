"""VirtualSystem → libvirt domain XML, and back.

Layout: ``<name>`` is the upper-case GUID, ``<title>`` the ElementName, ``<description>`` the
notes; ``<sysinfo type='smbios'>`` the SMBIOS serial numbers (``<os><smbios mode='sysinfo'/>``);
machine ``pc`` (i440fx, which has IDE); IDE controller c slot s is disk ``hd{a+2c+s}`` at
drive address (0, c, s); SCSI controller i is a virtio-scsi controller with index i whose slot s
is disk ``sd…`` at drive address (i, 0, s); a connected COM port is a ``<serial type='unix'>``
whose socket QEMU creates; one emulated VGA display (no graphics listener: libvirt's
screenshot reads it). Our metadata element records the whole model.

Reading back, the metadata defines the device set and the Hyper-V identity; the XML supplies
what libvirt users may change with virsh: the domain type (the accelerator: kvm or qemu),
memory, processors, image paths and formats, MAC addresses, switches and adapter models. A
media whose disk or source is gone from the XML is dropped; XML devices the metadata does not
know are ignored.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace

from vsms.model.vm import ControllerKind, DriveKind, ImageFormat, NetworkAdapter, VirtualSystem
from vsms.virt import metadata

log = logging.getLogger(__name__)

# Hyper-V BootOrder value -> libvirt <boot dev>; IDE and SCSI disks are both "hd".
_BOOT_DEV = {0: "fd", 1: "cdrom", 2: "hd", 3: "network", 4: "hd"}
_KIB_PER_UNIT = {"KiB": 1, "k": 1, "K": 1, "MiB": 1024, "M": 1024, "GiB": 1024 ** 2,
                 "G": 1024 ** 2, "b": 1 / 1024, "bytes": 1 / 1024}
LEGACY_NIC_MODEL = "e1000"
SYNTHETIC_NIC_MODEL = "virtio"
_FORMATS = frozenset(f.value for f in ImageFormat)


def disk_target(kind: ControllerKind, controller: int, slot: int) -> str:
    """The libvirt target name of a slot: ``hda``..``hdd`` on IDE, ``sda``… on SCSI."""
    if kind is ControllerKind.IDE:
        return "hd" + chr(ord("a") + 2 * controller + slot)
    index = controller * 64 + slot
    letters = ""
    while True:
        letters = chr(ord("a") + index % 26) + letters
        index = index // 26 - 1
        if index < 0:
            return "sd" + letters


def boot_devices(order: list[int]) -> list[str]:
    """The ``<boot dev>`` list for a Hyper-V BootOrder (first occurrence of each device)."""
    devs: list[str] = []
    for b in order:
        dev = _BOOT_DEV.get(b)
        if dev is not None and dev not in devs:
            devs.append(dev)
    return devs


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _disks(devices: ET.Element, vs: VirtualSystem) -> None:
    for drive in vs.drives:
        ctl = vs.controller(drive.controller_id)
        assert ctl is not None  # validated before
        media = vs.media_in(drive.dev_id)
        dvd = drive.kind is DriveKind.DVD
        if media is None and not dvd:
            continue  # an empty disk drive (Hyper-V allows it) lives only in our metadata
        disk = _sub(devices, "disk", type="file", device="cdrom" if dvd else "disk")
        fmt = ImageFormat.RAW if dvd or media is None else media.format
        _sub(disk, "driver", name="qemu", type=fmt.value)
        if media is not None:
            _sub(disk, "source", file=media.path)
        _sub(disk, "target", dev=disk_target(ctl.kind, ctl.index, drive.address),
             bus=ctl.kind.value)
        if dvd:
            _sub(disk, "readonly")
        if ctl.kind is ControllerKind.IDE:
            _sub(disk, "address", type="drive", controller="0", bus=str(ctl.index),
                 unit=str(drive.address))
        else:
            _sub(disk, "address", type="drive", controller=str(ctl.index), bus="0",
                 unit=str(drive.address))


def _nic(devices: ET.Element, nic: NetworkAdapter, index: int, network: str,
         link_down: bool) -> ET.Element:
    if network:
        iface = _sub(devices, "interface", type="network")
        _sub(iface, "source", network=network)
    else:
        iface = _sub(devices, "interface", type="user")
    _sub(iface, "mac", address=nic.mac.lower())
    _sub(iface, "model", type=SYNTHETIC_NIC_MODEL if nic.synthetic else LEGACY_NIC_MODEL)
    if link_down or not network:
        _sub(iface, "link", state="down")
    _sub(iface, "alias", name=metadata.nic_alias(index))
    return iface


def _nics(devices: ET.Element, vs: VirtualSystem) -> None:
    for i, nic in enumerate(vs.nics):
        _nic(devices, nic, i, nic.switch, False)


def interface_xml(vs: VirtualSystem, index: int, *, network: str | None = None,
                  link_down: bool = False) -> str:
    """The ``<interface>`` of adapter ``index`` of ``vs`` for a live update: on ``network``
    (default: the adapter's own) with its link up, or down with ``link_down`` (how a running
    VM's adapter is disconnected: libvirt cannot move a live adapter off a network)."""
    holder = ET.Element("devices")
    nic = vs.nics[index]
    return ET.tostring(_nic(holder, nic, index, nic.switch if network is None else network,
                            link_down), encoding="unicode")


def _serials(devices: ET.Element, vs: VirtualSystem) -> None:
    """COM 1 and COM 2: a connected port is a Unix socket QEMU listens on (``com_socket``); an
    unconnected COM 1 stays a pty with the console on it (``virsh console``); an unconnected
    COM 2 is absent."""
    for port in range(2):
        path = vs.com_socket(port)
        if path:
            serial = _sub(devices, "serial", type="unix")
            _sub(serial, "source", mode="bind", path=path)
        elif port == 0:
            serial = _sub(devices, "serial", type="pty")
        else:
            continue
        _sub(serial, "target", port=str(port))
        if port == 0 and not path:
            _sub(_sub(devices, "console", type="pty"), "target", type="serial", port="0")


def _sysinfo(root: ET.Element, vs: VirtualSystem) -> bool:
    """The SMBIOS tables QEMU gives the guest: the serial numbers of the system (type 1), the
    base board (type 2) and the chassis (type 3); False when there are none. The system UUID
    is the domain ``<uuid>``."""
    serials = [(section, value) for section, value in (
        ("system", vs.bios_serial), ("baseBoard", vs.baseboard_serial),
        ("chassis", vs.chassis_serial)) if value]
    if not serials:
        return False
    info = _sub(root, "sysinfo", type="smbios")
    for section, value in serials:
        _sub(_sub(info, section), "entry", value, name="serial")
    return True


def build(vs: VirtualSystem, guid: str, domain_type: str, emulator: str | None = None,
          owner: str = "") -> str:
    """The domain XML for ``vs`` (already validated; ``guid`` is its canonical form), owned by
    the vsms instance ``owner`` ("" records no owner)."""
    root = ET.Element("domain", type=domain_type)
    _sub(root, "name", guid.upper())
    _sub(root, "uuid", guid.lower())
    title = " ".join(vs.name.splitlines()).strip()
    if title:
        _sub(root, "title", title)
    if vs.notes:
        _sub(root, "description", vs.notes)
    _sub(root, "metadata").append(metadata.to_element(replace(vs, guid=guid), owner))
    _sub(root, "memory", str(vs.memory_mb), unit="MiB")
    _sub(root, "vcpu", str(vs.processors))
    smbios = _sysinfo(root, vs)
    os_el = _sub(root, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    if smbios:
        _sub(os_el, "smbios", mode="sysinfo")
    for dev in boot_devices(vs.boot_order):
        _sub(os_el, "boot", dev=dev)
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")
    devices = _sub(root, "devices")
    if emulator:
        _sub(devices, "emulator", emulator)
    _disks(devices, vs)
    for ctl in sorted(vs.controllers, key=lambda c: c.index):
        if ctl.kind is ControllerKind.SCSI:
            _sub(devices, "controller", type="scsi", index=str(ctl.index), model="virtio-scsi")
    _nics(devices, vs)
    _serials(devices, vs)
    # the emulated display (Msvm_VideoHead): what the console and thumbnails show
    _sub(_sub(devices, "video"), "model", type="vga")

    # the QEMU guest agent's port (heartbeat and guest KVP items, vsms.virt.agent); libvirt
    # chooses the host socket
    _sub(_sub(devices, "channel", type="unix"), "target", type="virtio",
         name="org.qemu.guest_agent.0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def memory_mb(root: ET.Element) -> int | None:
    el = root.find("memory")
    if el is None or not (el.text or "").strip():
        return None
    per = _KIB_PER_UNIT.get(el.get("unit", "KiB"))
    if per is None:
        return None
    return int(int(el.text or "0") * per) // 1024


def _overlay_disks(root: ET.Element, vs: VirtualSystem) -> None:
    by_target: dict[str, ET.Element] = {}
    for el in root.findall("devices/disk"):
        target = el.find("target")
        if target is not None and target.get("dev"):
            by_target[target.get("dev", "")] = el
    kept = []
    for media in vs.media:
        drive = vs.drive(media.drive_id)
        ctl = vs.controller(drive.controller_id) if drive is not None else None
        disk = None
        if drive is not None and ctl is not None:
            disk = by_target.get(disk_target(ctl.kind, ctl.index, drive.address))
        source = disk.find("source") if disk is not None else None
        path = source.get("file") if source is not None else None
        if disk is None or not path:
            log.info("VM %s: media %s has no disk source in the domain XML; not listed",
                     vs.guid, media.dev_id)
            continue
        media.path = path
        driver = disk.find("driver")
        fmt = driver.get("type") if driver is not None else None
        is_dvd = drive is not None and drive.kind is DriveKind.DVD
        if fmt in _FORMATS and not is_dvd:
            media.format = ImageFormat(fmt)
        kept.append(media)
    vs.media = kept


def _overlay_nics(root: ET.Element, vs: VirtualSystem, aliases: list[str]) -> None:
    by_alias: dict[str, ET.Element] = {}
    for el in root.findall("devices/interface"):
        alias = el.find("alias")
        if alias is not None and alias.get("name"):
            by_alias[alias.get("name", "")] = el
    kept = []
    for nic, alias_name in zip(vs.nics, aliases, strict=True):
        iface = by_alias.get(alias_name)
        if iface is None:
            log.info("VM %s: adapter %s is gone from the domain XML; not listed",
                     vs.guid, nic.dev_id)
            continue
        mac = iface.find("mac")
        address = mac.get("address", "") if mac is not None else ""
        if address and address.upper() != nic.mac.upper():
            nic.mac = address.upper()
        source = iface.find("source")
        nic.switch = (source.get("network", "") if iface.get("type") == "network"
                      and source is not None else "")
        if not nic.switch:
            nic.port = nic.switch_id = ""
        model = iface.find("model")
        nic.synthetic = model is not None and model.get("type") == SYNTHETIC_NIC_MODEL
        kept.append(nic)
    vs.nics = kept


@dataclass(frozen=True)
class Reading:
    """What a domain XML says about its vsms: ``owner`` is None when it carries no metadata of
    ours, else the instance ID recorded there ("" when none, i.e. written before instance IDs
    existed); exactly one of ``vs`` and ``error`` is set when ``owner`` is not None."""

    owner: str | None
    vs: VirtualSystem | None = None
    error: str | None = None


def read(xml: str) -> Reading:
    """Owner and model of a domain XML; never raises for bad metadata (see ``Reading``)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        return Reading("", error=f"domain XML does not parse: {exc}")
    element = metadata.find(root)
    if element is None:
        return Reading(None)
    owner = metadata.owner_of(element)
    try:
        return Reading(owner, vs=_model(root, element))
    except metadata.MetadataError as exc:
        return Reading(owner, error=str(exc))


def parse(xml: str) -> VirtualSystem | None:
    """The VirtualSystem a domain XML describes, or None when it carries no metadata of ours.

    Raises ``metadata.MetadataError`` when our metadata is present but unreadable.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise metadata.MetadataError(f"domain XML does not parse: {exc}") from None
    element = metadata.find(root)
    if element is None:
        return None
    return _model(root, element)


def _model(root: ET.Element, element: ET.Element) -> VirtualSystem:
    vs = metadata.from_element(element)
    uuid_el = root.find("uuid")
    if uuid_el is not None and uuid_el.text and uuid_el.text.strip().upper() != vs.guid:
        raise metadata.MetadataError(
            f"metadata names GUID {vs.guid} but the domain UUID is {uuid_el.text.strip()}")
    vs.accelerator = root.get("type", "")
    memory = memory_mb(root)
    if memory is not None:
        vs.memory_mb = memory
    vcpu = root.find("vcpu")
    if vcpu is not None and (vcpu.text or "").strip().isdigit():
        vs.processors = int(vcpu.text or "0")
    _overlay_disks(root, vs)
    _overlay_nics(root, vs, metadata.nic_aliases(element))
    return vs
