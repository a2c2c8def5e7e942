"""Our ``<metadata>`` element: the Hyper-V identity of a VM that libvirt has no place for.

It sits in the domain's ``<metadata>`` under our own namespace and records the complete model
(every dev_id, the ElementName of the VM and of each device a client named, notes, creation
time, boot order, data roots, lineage, the format and path of every image, each adapter's
StaticMacAddress and VirtualSystemIdentifiers, the SMBIOS serial numbers, the serial ports'
Connection), so a ``VirtualSystem`` can be rebuilt from it alone, and the instance ID of the
vsms that owns the domain (attribute ``instance``; see ``vsms.virt.adopt``). Every value is an
attribute: libvirt re-indents element content but keeps attribute values exactly.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import TypeVar

from vsms.model.vm import (
    Controller,
    ControllerKind,
    Drive,
    DriveKind,
    ImageFormat,
    Media,
    NetworkAdapter,
    Snapshot,
    VirtualSystem,
)
from vsms.virt import kvp

NAMESPACE = "urn:x-vsms:virtual-system:1"
PREFIX = "vsms"
SCHEMA_VERSION = 1

_E = TypeVar("_E", ControllerKind, DriveKind, ImageFormat)

_SYSTEM = f"{{{NAMESPACE}}}system"
_CONTROLLER = f"{{{NAMESPACE}}}controller"
_DRIVE = f"{{{NAMESPACE}}}drive"
_MEDIA = f"{{{NAMESPACE}}}media"
_NIC = f"{{{NAMESPACE}}}nic"
_LABEL = f"{{{NAMESPACE}}}label"  # the ElementName a client gave a device
_SNAPSHOT = f"{{{NAMESPACE}}}snapshot"  # one snapshot: its settings as a nested vsms:system
_DISCARD = f"{{{NAMESPACE}}}discard"  # a snapshot overlay to remove (VirtualSystem.discarded)
OWNER = "instance"  # attribute: the instance ID of the vsms that manages the domain


class MetadataError(ValueError):
    """Our metadata element is present but cannot be read (damaged, or from a newer vsms)."""


def nic_alias(index: int) -> str:
    """The libvirt user alias of the index-th network adapter (links the XML to the metadata)."""
    return f"ua-vsms-nic{index}"


def to_element(vs: VirtualSystem, owner: str = "") -> ET.Element:
    """The ``vsms:system`` element recording ``vs``, ready to serialise; ``owner`` is the
    instance ID of the vsms that manages it ("" writes none: a domain no instance owns).

    Tags carry the literal ``vsms:`` prefix and the root declares it, so ElementTree writes our
    prefix without touching its process-wide prefix registry.
    """
    head = {f"xmlns:{PREFIX}": NAMESPACE, "schema": str(SCHEMA_VERSION)}
    if owner:
        head[OWNER] = owner
    root = ET.Element(f"{PREFIX}:system", {
        **head,
        "guid": vs.guid.upper(),
        "name": vs.name,
        "notes": vs.notes,
        "created": vs.created.isoformat(),
        "boot-order": ",".join(str(b) for b in vs.boot_order),
        "external-data-root": vs.external_data_root,
        "snapshot-data-root": vs.snapshot_data_root,
        "scope-of-residence": vs.scope_of_residence,
        "imported-from": vs.imported_from,
        "memory-id": vs.memory_dev_id,
        "processor-id": vs.processor_dev_id,
        "memory-mb": str(vs.memory_mb),
        "processors": str(vs.processors),
        "bios-serial": vs.bios_serial,
        "baseboard-serial": vs.baseboard_serial,
        "chassis-serial": vs.chassis_serial,
    })
    for i, conn in enumerate(vs.com_ports):
        if conn:  # written only when connected
            root.set(f"com{i + 1}", conn)
    for c in vs.controllers:
        ET.SubElement(root, f"{PREFIX}:controller", {"id": c.dev_id, "kind": c.kind.value,
                                          "index": str(c.index)})
    for d in vs.drives:
        ET.SubElement(root, f"{PREFIX}:drive", {"id": d.dev_id, "kind": d.kind.value,
                                     "controller": d.controller_id, "address": str(d.address)})
    for m in vs.media:
        ET.SubElement(root, f"{PREFIX}:media", {"id": m.dev_id, "drive": m.drive_id, "path": m.path,
                                     "format": m.format.value})
    for i, n in enumerate(vs.nics):
        nic = ET.SubElement(root, f"{PREFIX}:nic", {
            "id": n.dev_id, "mac": n.mac, "switch": n.switch,
            "synthetic": "true" if n.synthetic else "false", "alias": nic_alias(i)})
        if n.port:
            nic.set("port", n.port)
            nic.set("switch-id", n.switch_id)
        if not n.static_mac:  # written only when not the default, as the identifiers
            nic.set("static-mac", "false")
        if n.identifiers:
            nic.set("identifiers", ",".join(n.identifiers))
    for dev_id, name in vs.element_names.items():
        ET.SubElement(root, f"{PREFIX}:label", {"id": dev_id, "name": name})
    for attr, value in (("previous-snapshot", vs.previous_snapshot),
                        ("last-applied", vs.last_applied)):
        if value:  # written only when set
            root.set(attr, value)
    for snap in vs.snapshots:
        el = ET.SubElement(root, f"{PREFIX}:snapshot", {
            "id": snap.id, "name": snap.name, "created": snap.created.isoformat(),
            "parent": snap.parent, "memory": snap.memory})
        inner = to_element(snap.config)
        del inner.attrib[f"xmlns:{PREFIX}"]  # declared once, on the outer element
        el.append(inner)
    for path in vs.discarded:
        ET.SubElement(root, f"{PREFIX}:discard", {"path": path})

    kvp.write(root, PREFIX, vs.kvp_items)
    return root


def _snapshot(el: ET.Element) -> Snapshot:
    inner = el.find(_SYSTEM)
    if inner is None:
        raise MetadataError("vsms:snapshot has no vsms:system element")
    try:
        created = datetime.fromisoformat(_get(el, "created"))
    except ValueError:
        raise MetadataError(f"snapshot 'created' is not a date: {el.get('created')!r}") from None
    return Snapshot(_get(el, "id"), _get(el, "name"), created, _get(el, "parent"),
                    from_element(inner), el.get("memory", ""))


def find(domain: ET.Element) -> ET.Element | None:
    """Our element inside a parsed ``<domain>``, or None when the domain is not ours."""
    return domain.find(f"metadata/{_SYSTEM}")


def owner_of(el: ET.Element) -> str:
    """The instance ID recorded in our element; "" for metadata written before instance IDs
    (or by a tool that manages no instance)."""
    return (el.get(OWNER) or "").strip().upper()


def _get(el: ET.Element, name: str) -> str:
    value = el.get(name)
    if value is None:
        tag = el.tag.rpartition("}")[2]
        raise MetadataError(f"vsms:{tag} has no '{name}' attribute")
    return value


def _int(el: ET.Element, name: str) -> int:
    raw = _get(el, name)
    try:
        return int(raw)
    except ValueError:
        raise MetadataError(f"attribute '{name}' is not an integer: {raw!r}") from None


def _enum(el: ET.Element, name: str, kind: type[_E]) -> _E:
    raw = _get(el, name)
    try:
        return kind(raw)
    except ValueError:
        raise MetadataError(f"attribute '{name}' has an unknown value {raw!r}") from None


def from_element(el: ET.Element) -> VirtualSystem:
    """Rebuild the model recorded by ``to_element``; raises MetadataError when unreadable."""
    version = _int(el, "schema")
    if version != SCHEMA_VERSION:
        raise MetadataError(
            f"metadata schema {version} is not supported (this vsms reads {SCHEMA_VERSION})")
    try:
        created = datetime.fromisoformat(_get(el, "created"))
    except ValueError:
        raise MetadataError(f"attribute 'created' is not a date: {el.get('created')!r}") from None
    boot_raw = _get(el, "boot-order")
    try:
        boot = [int(b) for b in boot_raw.split(",")] if boot_raw else []
    except ValueError:
        raise MetadataError(f"attribute 'boot-order' is not a list of numbers: {boot_raw!r}") \
            from None
    return VirtualSystem(
        guid=_get(el, "guid").upper(), name=_get(el, "name"), notes=_get(el, "notes"),
        memory_mb=_int(el, "memory-mb"), processors=_int(el, "processors"),
        created=created, boot_order=boot,
        external_data_root=_get(el, "external-data-root"),
        snapshot_data_root=_get(el, "snapshot-data-root"),
        scope_of_residence=_get(el, "scope-of-residence"),
        imported_from=_get(el, "imported-from"),
        memory_dev_id=_get(el, "memory-id"), processor_dev_id=_get(el, "processor-id"),
        bios_serial=el.get("bios-serial", ""), baseboard_serial=el.get("baseboard-serial", ""),
        chassis_serial=el.get("chassis-serial", ""),
        com_ports=[el.get("com1", ""), el.get("com2", "")],
        controllers=[Controller(_get(c, "id"), _enum(c, "kind", ControllerKind), _int(c, "index"))
                     for c in el.findall(_CONTROLLER)],
        drives=[Drive(_get(d, "id"), _enum(d, "kind", DriveKind), _get(d, "controller"),
                      _int(d, "address")) for d in el.findall(_DRIVE)],
        media=[Media(_get(m, "id"), _get(m, "drive"), _get(m, "path"),
                     _enum(m, "format", ImageFormat)) for m in el.findall(_MEDIA)],
        nics=[NetworkAdapter(_get(n, "id"), _get(n, "mac"), _get(n, "switch"),
                             _get(n, "synthetic") == "true", n.get("static-mac") != "false",
                             [i for i in n.get("identifiers", "").split(",") if i],
                             n.get("port", ""), n.get("switch-id", ""))
              for n in el.findall(_NIC)],
        element_names={_get(lb, "id"): _get(lb, "name") for lb in el.findall(_LABEL)},
        snapshots=[_snapshot(s) for s in el.findall(_SNAPSHOT)],
        previous_snapshot=el.get("previous-snapshot", ""),
        last_applied=el.get("last-applied", ""),
        discarded=[_get(d, "path") for d in el.findall(_DISCARD)],

        kvp_items=kvp.read(el, NAMESPACE),
    )


def nic_aliases(el: ET.Element) -> list[str]:
    """The libvirt alias recorded for each adapter, in model order."""
    return [_get(n, "alias") for n in el.findall(_NIC)]
