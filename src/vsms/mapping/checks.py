"""Invariants of a VirtualSystem's devices, each broken one reported as one sentence."""

from __future__ import annotations

from collections import Counter

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

MAX_NAME = 100
MIN_MEMORY_MB = 8
MAX_MEMORY_MB = 1024 * 1024
MAX_PROCESSORS = 64
BOOT_DEVICES = (0, 1, 2, 3, 4)
DISK_FORMATS = (ImageFormat.VHD, ImageFormat.VHDX, ImageFormat.QCOW2)


def slots(kind: ControllerKind) -> int:
    return IDE_SLOTS if kind is ControllerKind.IDE else SCSI_SLOTS


def name_problem(name: str) -> str | None:
    if not name.strip():
        return "the virtual machine name (ElementName) is empty: give it a name"
    if len(name) > MAX_NAME:
        return (f"the virtual machine name (ElementName) has {len(name)} characters: use at most "
                f"{MAX_NAME}")
    if any(ord(ch) < 32 for ch in name):
        return "the virtual machine name (ElementName) contains control characters: remove them"
    return None


def boot_order_problem(order: list[int]) -> str | None:
    if not order or len(order) > len(BOOT_DEVICES) or len(set(order)) != len(order) or any(
            v not in BOOT_DEVICES for v in order):
        return (f"BootOrder {order} is not valid: give distinct values among 0 (floppy), 1 (CD), "
                "2 (IDE hard drive), 3 (network), 4 (SCSI hard drive)")
    return None


def problems(vs: VirtualSystem) -> list[str]:
    """Every broken invariant of ``vs`` (empty when the VM can be defined as it is)."""
    out: list[str] = []
    for p in (name_problem(vs.name), boot_order_problem(list(vs.boot_order))):
        if p:
            out.append(p)
    if not MIN_MEMORY_MB <= vs.memory_mb <= MAX_MEMORY_MB:
        out.append(f"memory of {vs.memory_mb} MB is out of range: give {MIN_MEMORY_MB} to "
                   f"{MAX_MEMORY_MB} MB")
    if not 1 <= vs.processors <= MAX_PROCESSORS:
        out.append(f"{vs.processors} virtual processors is out of range: give 1 to "
                   f"{MAX_PROCESSORS}")
    ids = [vs.memory_dev_id, vs.processor_dev_id] + [c.dev_id for c in vs.controllers] + [
        d.dev_id for d in vs.drives] + [m.dev_id for m in vs.media] + [n.dev_id for n in vs.nics]
    out.extend(f"device id {i} is used by more than one device" for i, n in Counter(ids).items()
               if n > 1)
    by_kind = {k: [c for c in vs.controllers if c.kind is k] for k in ControllerKind}
    limits = {ControllerKind.IDE: IDE_CONTROLLERS, ControllerKind.SCSI: SCSI_CONTROLLERS_MAX}
    for kind, ctrls in by_kind.items():
        if len(ctrls) > limits[kind]:
            out.append(f"{len(ctrls)} {kind.value.upper()} controllers: a virtual machine has at "
                       f"most {limits[kind]}")
        for index, n in Counter(c.index for c in ctrls).items():
            if n > 1:
                out.append(f"{kind.value.upper()} controller number {index} appears {n} times")
        out.extend(f"{kind.value.upper()} controller number {c.index} is out of range 0.."
                   f"{limits[kind] - 1}" for c in ctrls if not 0 <= c.index < limits[kind])
    used: Counter[tuple[str, int]] = Counter()
    for d in vs.drives:
        ctrl = vs.controller(d.controller_id)
        if ctrl is None:
            out.append(f"{d.kind.value} drive {d.dev_id} is attached to controller "
                       f"{d.controller_id}, which does not exist")
            continue
        if not 0 <= d.address < slots(ctrl.kind):
            out.append(f"{d.kind.value} drive {d.dev_id} uses slot {d.address} of "
                       f"{ctrl.kind.value.upper()} controller {ctrl.index}, which has slots 0.."
                       f"{slots(ctrl.kind) - 1}")
        used[(ctrl.dev_id, d.address)] += 1
    for (ctrl_id, slot), n in used.items():
        if n > 1:
            ctrl = vs.controller(ctrl_id)
            assert ctrl is not None
            out.append(f"slot {slot} of {ctrl.kind.value.upper()} controller {ctrl.index} holds "
                       f"{n} drives")
    for d in vs.drives:
        ctrl = vs.controller(d.controller_id)
        if d.kind is DriveKind.DVD and ctrl is not None and ctrl.kind is ControllerKind.SCSI:
            out.append(f"DVD drive {d.dev_id} is on a SCSI controller: DVD drives attach to IDE")
    per_drive: Counter[str] = Counter()
    for m in vs.media:
        drive = vs.drive(m.drive_id)
        per_drive[m.drive_id] += 1
        if drive is None:
            out.append(f"image {m.path} is inserted in drive {m.drive_id}, which does not exist")
        elif drive.kind is DriveKind.DISK and m.format not in DISK_FORMATS:
            out.append(f"hard disk image {m.path} has format {m.format.value}: use a VHD, VHDX "
                       "or qcow2 image")
        elif drive.kind is DriveKind.DVD and m.format is not ImageFormat.RAW:
            out.append(f"DVD image {m.path} has format {m.format.value}: use an ISO image")
    out.extend(f"drive {d} holds {n} images: a drive holds one" for d, n in per_drive.items()
               if n > 1)
    for mac, n in Counter(nic.mac.upper() for nic in vs.nics).items():
        if n > 1:
            out.append(f"MAC address {mac} is used by {n} network adapters of this machine")
    return out
