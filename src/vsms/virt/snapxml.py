"""The ``<domainsnapshot>`` XML of a live switch of a VM's disks onto overlays vsms made."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from vsms.errors import InvalidParameter


def snapshot_disks_xml(domain_xml: str, overlays: dict[str, str]) -> str:
    """An external disk-only snapshot of every disk of the running domain (``domain_xml``,
    its live XML) whose source file is a key of ``overlays``, onto the value (a qcow2 overlay
    already made on it); every other disk (DVDs, disks not switched) is left out of it."""
    wanted = {os.path.normpath(k): v for k, v in overlays.items()}
    root = ET.fromstring(domain_xml)
    snap = ET.Element("domainsnapshot")
    ET.SubElement(snap, "description").text = "vsms: disk switch onto snapshot overlays"
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
