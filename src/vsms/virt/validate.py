"""Checks a VirtualSystem must pass before it becomes a libvirt domain.

Every problem is collected, so the caller sees them all at once in one ``InvalidParameter``.
"""

from __future__ import annotations

import os
import re
import uuid

from vsms.errors import InvalidParameter
from vsms.model.vm import (
    IDE_CONTROLLERS,
    IDE_SLOTS,
    SCSI_CONTROLLERS_MAX,
    SCSI_SLOTS,
    ControllerKind,
    DriveKind,
    ImageFormat,
    VirtualSystem,
)

MAX_PROCESSORS = 255  # the i440fx machine's limit
MAX_MEMORY_MB = 16 * 1024 * 1024
BOOT_DEVICES = range(5)  # Hyper-V BootOrder: 0 floppy, 1 CD, 2 IDE disk, 3 network, 4 SCSI disk

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
# Characters XML 1.0 cannot carry at all (libvirt would reject the document).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def canonical_guid(raw: str) -> str | None:
    """``raw`` as an upper-case GUID without braces, or None when it is not a GUID."""
    if not isinstance(raw, str):
        return None
    try:
        return str(uuid.UUID(raw.strip().strip("{}"))).upper()
    except ValueError:
        return None


def _text_problems(vs: VirtualSystem) -> list[str]:
    fields = {"ElementName": vs.name, "notes": vs.notes,
              "external data root": vs.external_data_root,
              "snapshot data root": vs.snapshot_data_root,
              "scope of residence": vs.scope_of_residence, "imported_from": vs.imported_from,
              "memory dev_id": vs.memory_dev_id, "processor dev_id": vs.processor_dev_id}
    fields.update({f"path of media {m.dev_id}": m.path for m in vs.media})
    fields.update({f"switch of adapter {n.dev_id}": n.switch for n in vs.nics})
    fields.update({f"dev_id {d}": d for d in _dev_ids(vs)})
    return [f"{what} contains a character XML cannot hold (control character or lone "
            f"surrogate): remove it" for what, value in fields.items() if _NOT_XML.search(value)]


def _dev_ids(vs: VirtualSystem) -> list[str]:
    return ([c.dev_id for c in vs.controllers] + [d.dev_id for d in vs.drives]
            + [m.dev_id for m in vs.media] + [n.dev_id for n in vs.nics]
            + [vs.memory_dev_id, vs.processor_dev_id])


def _device_problems(vs: VirtualSystem) -> list[str]:
    problems: list[str] = []
    ids = _dev_ids(vs)
    dupes = sorted({d for d in ids if ids.count(d) > 1})
    if dupes:
        problems.append(f"dev_ids used by more than one device: {', '.join(dupes)}")
    if any(not d for d in ids):
        problems.append("a device has an empty dev_id: give every device a GUID")
    seen_ctl: set[tuple[ControllerKind, int]] = set()
    for c in vs.controllers:
        limit = IDE_CONTROLLERS if c.kind is ControllerKind.IDE else SCSI_CONTROLLERS_MAX
        if not 0 <= c.index < limit:
            problems.append(f"{c.kind.value.upper()} controller {c.dev_id} has index {c.index}: "
                            f"use 0..{limit - 1}")
        if (c.kind, c.index) in seen_ctl:
            problems.append(f"two {c.kind.value.upper()} controllers have index {c.index}")
        seen_ctl.add((c.kind, c.index))
    seen_slot: set[tuple[str, int]] = set()
    for d in vs.drives:
        ctl = vs.controller(d.controller_id)
        if ctl is None:
            problems.append(f"drive {d.dev_id} refers to controller {d.controller_id!r}, "
                            "which the VM does not have")
            continue
        slots = IDE_SLOTS if ctl.kind is ControllerKind.IDE else SCSI_SLOTS
        if not 0 <= d.address < slots:
            problems.append(f"drive {d.dev_id} is at slot {d.address} of "
                            f"{ctl.kind.value.upper()} controller {ctl.index}: use 0..{slots - 1}")
        if (ctl.dev_id, d.address) in seen_slot:
            problems.append(f"two drives use slot {d.address} of {ctl.kind.value.upper()} "
                            f"controller {ctl.index}")
        seen_slot.add((ctl.dev_id, d.address))
    used: set[str] = set()
    for m in vs.media:
        drive = vs.drive(m.drive_id)
        if drive is None:
            problems.append(f"media {m.dev_id} is in drive {m.drive_id!r}, "
                            "which the VM does not have")
        elif drive.kind is DriveKind.DVD and m.format is not ImageFormat.RAW:
            problems.append(f"media {m.dev_id} in DVD drive {drive.dev_id} has format "
                            f"{m.format.value}: a DVD holds a raw image (ISO)")
        if m.drive_id in used:
            problems.append(f"drive {m.drive_id} holds more than one media")
        used.add(m.drive_id)
        if not m.path or not os.path.isabs(m.path):
            problems.append(f"media {m.dev_id} has path {m.path!r}: use an absolute path")
    macs: set[str] = set()
    for n in vs.nics:
        if not _MAC.match(n.mac or ""):
            problems.append(f"network adapter {n.dev_id} has MAC address {n.mac!r}: "
                            "use six colon-separated hex pairs such as 00:15:5D:00:00:01")
        elif n.mac.upper() in macs:
            problems.append(f"MAC address {n.mac} is used by two network adapters")
        macs.add((n.mac or "").upper())
    return problems


def check(vs: VirtualSystem) -> str:
    """Validate ``vs``: its canonical GUID, or InvalidParameter listing every problem."""
    guid = canonical_guid(vs.guid)
    problems: list[str] = []
    if guid is None:
        problems.append(f"GUID {vs.guid!r} is not a GUID")
    if not 1 <= vs.memory_mb <= MAX_MEMORY_MB:
        problems.append(f"memory {vs.memory_mb} MiB is out of range: use 1..{MAX_MEMORY_MB}")
    if not 1 <= vs.processors <= MAX_PROCESSORS:
        problems.append(f"{vs.processors} processors is out of range: use 1..{MAX_PROCESSORS}")
    if any(b not in BOOT_DEVICES for b in vs.boot_order) or \
            len(set(vs.boot_order)) != len(vs.boot_order):
        problems.append(f"boot order {vs.boot_order} is invalid: list distinct values among "
                        "0 (floppy), 1 (CD), 2 (IDE disk), 3 (network), 4 (SCSI disk)")
    problems += _text_problems(vs) + _device_problems(vs)
    if problems:
        label = f"'{vs.name}' ({vs.guid})" if vs.name else repr(vs.guid)
        raise InvalidParameter(f"cannot define virtual machine {label}: "
                               + "; ".join(problems))
    assert guid is not None
    return guid
