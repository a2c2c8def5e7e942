"""The ``<domainsnapshot>`` XML of a live switch of a VM's disks onto overlays vsms made."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from vsms.errors import InvalidParameter


def snapshot_disks_xml(domain_xml: str, overlays: dict[str, str], memory: str = "") -> str:
    """An external snapshot of every disk of the running domain (``domain_xml``, its live
    XML) whose source file is a key of ``overlays``, onto the value (a qcow2 overlay already
    made on it), with the memory state saved to ``memory`` when given; every other disk (DVDs,
    disks not switched) is left out of it."""
    wanted = {os.path.normpath(k): v for k, v in overlays.items()}
    root = ET.fromstring(domain_xml)
    snap = ET.Element("domainsnapshot")
    ET.SubElement(snap, "description").text = "vsms: disk switch onto snapshot overlays"
    if memory:
        ET.SubElement(snap, "memory", snapshot="external", file=memory)
    disks = ET.SubElement(snap, "disks")
    found: set[str] = set()
    for disk in root.findall("devices/disk"):
        target = disk.find("target")
        source = disk.find("source")
        dev = target.get("dev") if target is not None else None
        path = source.get("file") if source is not None else None
        if not dev:
            continue
        overlay = wanted.get(os.path.normpath(path)) if path else None
        if overlay is None:
            ET.SubElement(disks, "disk", name=dev, snapshot="no")
            continue
        found.add(os.path.normpath(path or ""))
        el = ET.SubElement(disks, "disk", name=dev, snapshot="external", type="file")
        ET.SubElement(el, "driver", type="qcow2")
        ET.SubElement(el, "source", file=overlay)
    missing = sorted(set(wanted) - found)
    if missing:
        raise InvalidParameter(f"the running machine does not use {', '.join(missing)} (its "
                               "disks changed meanwhile): take the snapshot again")
    return ET.tostring(snap, encoding="unicode")


def retarget_disks(domain_xml: str, overlays: dict[str, str]) -> str:
    """``domain_xml`` with each disk whose source file is a key of ``overlays`` reading the
    value instead (a qcow2 overlay on it); InvalidParameter when one is not found."""
    wanted = {os.path.normpath(k): v for k, v in overlays.items()}
    root = ET.fromstring(domain_xml)
    found: set[str] = set()
    for disk in root.findall("devices/disk"):
        source = disk.find("source")
        path = source.get("file") if source is not None else None
        overlay = wanted.get(os.path.normpath(path)) if path else None
        if source is None or overlay is None:
            continue
        found.add(os.path.normpath(path or ""))
        source.set("file", overlay)
        for child in list(source):  # a backing chain libvirt recorded for the old image
            source.remove(child)
        for old in disk.findall("backingStore"):
            disk.remove(old)
        driver = disk.find("driver")
        if driver is None:
            driver = ET.SubElement(disk, "driver", name="qemu")
        driver.set("type", "qcow2")
    missing = sorted(set(wanted) - found)
    if missing:
        raise InvalidParameter(f"the saved state does not use {', '.join(missing)}: take the "
                               "snapshot again")
    return ET.tostring(root, encoding="unicode")


def disks_from(saved_xml: str, defined_xml: str) -> str:
    """``saved_xml`` (the XML stored in a memory image) with the source and format of each
    disk replaced by those of the disk with the same target in ``defined_xml`` (the VM's
    definition now): a memory state resumes onto the disks the VM has now."""
    defined = {t.get("dev"): d for d in ET.fromstring(defined_xml).findall("devices/disk")
               if (t := d.find("target")) is not None}
    root = ET.fromstring(saved_xml)
    for disk in root.findall("devices/disk"):
        target = disk.find("target")
        now = defined.get(target.get("dev")) if target is not None else None
        if now is None or disk.get("device") != "disk":
            continue
        for tag in ("source", "driver", "backingStore"):
            for old in disk.findall(tag):
                disk.remove(old)
        for tag in ("driver", "source"):
            new = now.find(tag)
            if new is not None:
                disk.insert(0, new)
    return ET.tostring(root, encoding="unicode")
