"""Which vsms owns a domain: the instance ID, and adopting domains no instance owns.

Every ``vsms serve`` has an instance ID, a GUID made once and kept in ``STATE_DIR/instance-id``.
Each domain it defines records that ID in our metadata (``vsms.virt.metadata``), and it sees,
lists and acts on those domains only: two instances on one libvirt never see each other's VMs.

A domain no instance owns is shown by none until it is *adopted* (``vsms vm adopt``, or the
``adopt_domains`` setting at start), which writes the adopting instance's ID into it:

* a domain made outside vsms (``virsh define``) gets our metadata built from its XML: its
  memory, processors, IDE and SCSI disks and DVD drives with file sources, and its network
  adapters (each given the alias that links it to the metadata); a disk vsms cannot represent
  (virtio, SATA, USB, a block device or a network source) makes the adoption fail, naming it;
* a domain whose vsms metadata names no instance (written by a vsms from before instance IDs)
  gets the ID added and is otherwise unchanged.

A domain owned by another instance is never adopted.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from vsms.errors import InUse, InvalidParameter
from vsms.mapping import checks
from vsms.model.vm import (
    IDE_CONTROLLERS,
    IDE_SLOTS,
    SCSI_SLOTS,
    Controller,
    ControllerKind,
    Drive,
    DriveKind,
    ImageFormat,
    Media,
    NetworkAdapter,
    VirtualSystem,
    default_controllers,
    new_guid,
)
from vsms.virt import domxml, metadata

INSTANCE_FILE = "instance-id"


def instance_id(state_dir: Path) -> str:
    """The instance ID kept in ``state_dir`` (made on first use, mode 0600, never changed)."""
    path = state_dir / INSTANCE_FILE
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        try:
            os.write(fd, (new_guid() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameter(f"cannot read the instance ID {path}: {exc}") from exc
    guid = checks.canonical_guid(text)
    if guid is None:
        raise InvalidParameter(
            f"the instance ID file {path} is damaged ({text[:60]!r} is not a GUID): restore it "
            "from a backup; the VMs of this instance carry that ID, so a new one would leave "
            "them to no instance (they could then be adopted again with `vsms vm adopt`)")
    return guid


@dataclass(frozen=True)
class Adoption:
    guid: str
    name: str  # the libvirt domain name
    kind: str  # "unmanaged" (made outside vsms), "unowned" (old vsms metadata), "ours" (no-op)


def _disk_slot(target: str, bus: str) -> tuple[int, int] | None:
    """(controller, slot) of a target name such as ``hdb`` or ``sdc``, or None."""
    prefix = {"ide": "hd", "scsi": "sd"}[bus]
    letters = target[2:] if target.startswith(prefix) else ""
    if not letters or not letters.isalpha() or not letters.islower():
        return None
    index = 0
    for ch in letters:
        index = index * 26 + (ord(ch) - ord("a") + 1)
    index -= 1
    if bus == "ide":
        return (index // IDE_SLOTS, index % IDE_SLOTS) if index < IDE_CONTROLLERS * IDE_SLOTS \
            else None
    return index // SCSI_SLOTS, index % SCSI_SLOTS


def _add_disks(root: ET.Element, vs: VirtualSystem, problems: list[str]) -> None:
    scsi: dict[int, Controller] = {}
    ide = {c.index: c for c in vs.controllers}
    for disk in root.findall("devices/disk"):
        device = disk.get("device", "disk")
        target = disk.find("target")
        dev = target.get("dev", "") if target is not None else ""
        bus = target.get("bus", "") if target is not None else ""
        if device not in ("disk", "cdrom"):
            problems.append(f"{device} {dev}: vsms has no {device} drives")
            continue
        if bus not in ("ide", "scsi"):
            problems.append(f"disk {dev} is on the {bus or 'unknown'} bus: vsms serves IDE and "
                            "SCSI disks only; move it to an IDE or SCSI bus with virsh edit")
            continue
        slot = _disk_slot(dev, bus)
        if slot is None:
            problems.append(f"disk {dev} has a target name vsms cannot place on the {bus} bus")
            continue
        source = disk.find("source")
        path = source.get("file", "") if source is not None else ""
        if disk.get("type", "file") != "file" or (source is not None and not path):
            problems.append(f"disk {dev} is not backed by an image file: vsms manages image "
                            "files only")
            continue
        dvd = device == "cdrom"
        if not path and not dvd:
            problems.append(f"disk {dev} has no image file")
            continue
        driver = disk.find("driver")
        fmt = driver.get("type", "raw") if driver is not None else "raw"
        if not dvd and fmt not in {f.value for f in ImageFormat}:
            problems.append(f"disk {dev} is in the {fmt} format, which vsms does not handle")
            continue
        if bus == "ide":
            ctl = ide[slot[0]]
        else:
            ctl = scsi.setdefault(slot[0], Controller(new_guid(), ControllerKind.SCSI, slot[0]))
        drive = Drive(new_guid(), DriveKind.DVD if dvd else DriveKind.DISK, ctl.dev_id, slot[1])
        vs.drives.append(drive)
        if path:
            vs.media.append(Media(new_guid(), drive.dev_id, path,
                                  ImageFormat.RAW if dvd else ImageFormat(fmt)))
    vs.controllers.extend(scsi[i] for i in sorted(scsi))


def _add_nics(root: ET.Element, vs: VirtualSystem) -> None:
    for i, iface in enumerate(root.findall("devices/interface")):
        mac = iface.find("mac")
        source = iface.find("source")
        model = iface.find("model")
        switch = (source.get("network", "") if iface.get("type") == "network"
                  and source is not None else "")
        vs.nics.append(NetworkAdapter(
            new_guid(), (mac.get("address", "") if mac is not None else "").upper(), switch,
            model is not None and model.get("type") == domxml.SYNTHETIC_NIC_MODEL))
        for old in iface.findall("alias"):
            iface.remove(old)
        ET.SubElement(iface, "alias", name=metadata.nic_alias(i))


def _plain_model(root: ET.Element, guid: str, label: str) -> VirtualSystem:
    """Our model of a domain made outside vsms; changes ``root`` (NIC aliases)."""
    title = (root.findtext("title") or "").strip() or (root.findtext("name") or "").strip()
    vs = VirtualSystem(guid=guid, name=title or guid, controllers=default_controllers(),
                       notes=(root.findtext("description") or ""))
    memory = domxml.memory_mb(root)
    if memory is not None:
        vs.memory_mb = memory
    vcpu = (root.findtext("vcpu") or "").strip()
    if vcpu.isdigit():
        vs.processors = int(vcpu)
    problems: list[str] = []
    _add_disks(root, vs, problems)
    _add_nics(root, vs)
    if problems:
        raise InvalidParameter(f"cannot adopt {label}: " + "; ".join(problems))
    try:
        checks.check(vs, checks.MACHINE_LIMITS)  # the host's own limits apply at define
    except InvalidParameter as exc:
        raise InvalidParameter(f"cannot adopt {label}: {exc}") from None
    return vs


def adopted_xml(xml: str, instance: str, label: str) -> tuple[str, str]:
    """(the domain XML to define, kind) for adopting the domain ``xml`` into ``instance``;
    ("", "ours") when it is already ours. InUse when another instance owns it,
    InvalidParameter when vsms cannot represent it."""
    reading = domxml.read(xml)
    if reading.owner == instance:
        return "", "ours"
    if reading.owner:
        raise InUse(f"cannot adopt {label}: another vsms instance manages it; only that "
                    "instance can give it up (destroy it there, or export and import it here)")
    root = ET.fromstring(xml)
    guid = (root.findtext("uuid") or "").strip().upper()
    if reading.owner is None:
        vs = _plain_model(root, guid, label)
        kind = "unmanaged"
    elif reading.vs is None:
        raise InvalidParameter(f"cannot adopt {label}: its vsms metadata cannot be read "
                               f"({reading.error}); repair or remove it with virsh first")
    else:
        element = metadata.find(root)
        assert element is not None
        vs = metadata.from_element(element)
        kind = "unowned"
    meta = root.find("metadata")
    if meta is None:
        meta = ET.SubElement(root, "metadata")
    for old in meta.findall(f"{{{metadata.NAMESPACE}}}system"):
        meta.remove(old)
    meta.append(metadata.to_element(vs, instance))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode"), kind
