"""The one validator of a VirtualSystem: every rule a VM must meet before it is defined.

Every broken rule is reported as one sentence that names the value and the fix; ``check``
collects them all into one ``InvalidParameter``. Limits that depend on the host (virtual
processors, memory) come in a ``Limits`` read from libvirt (``vsms.virt.caps.host_limits``);
the others are Hyper-V's (name length, minimum memory, controllers, slots, BootOrder).
``VirtHost.define`` accepts a ``Checked`` so that each definition is checked exactly once.
"""

from __future__ import annotations

import copy
import os
import re
import uuid
from collections import Counter
from dataclasses import dataclass

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

MAX_NAME = 100
MIN_MEMORY_MB = 8  # Hyper-V's smallest VM
BOOT_DEVICES = (0, 1, 2, 3, 4)  # 0 floppy, 1 CD, 2 IDE hard drive, 3 network, 4 SCSI hard drive
DISK_FORMATS = (ImageFormat.VHD, ImageFormat.VHDX, ImageFormat.QCOW2)

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
# Characters XML 1.0 cannot carry at all (libvirt would reject the document).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass(frozen=True)
class Limits:
    """What the host allows one VM: read from libvirt (see ``vsms.virt.caps.host_limits``)."""

    max_processors: int  # the domain capabilities' <vcpu max> for the machine type
    max_memory_mb: int  # the host's physical memory
    source: str = ""  # where the numbers come from, named in refusals ("libvirt at …")


# The i440fx machine's vCPU limit and a bound on memory, for a libvirt that does not say
# (the test driver answers no domain capabilities).
MACHINE_LIMITS = Limits(max_processors=255, max_memory_mb=16 * 1024 * 1024,
                        source="the pc machine type")


@dataclass(frozen=True)
class Checked:
    """A VirtualSystem that passed ``check`` (a private copy) and its canonical GUID."""

    vs: VirtualSystem
    guid: str


def canonical_guid(raw: str) -> str | None:
    """``raw`` as an upper-case GUID without braces, or None when it is not a GUID."""
    if not isinstance(raw, str):
        return None
    try:
        return str(uuid.UUID(raw.strip().strip("{}"))).upper()
    except ValueError:
        return None


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


def memory_problem(mb: int, limits: Limits) -> str | None:
    if not MIN_MEMORY_MB <= mb <= limits.max_memory_mb:
        return (f"memory of {mb} MB is out of range: give {MIN_MEMORY_MB} to "
                f"{limits.max_memory_mb} MB (the most {limits.source} allows)")
    return None


def processors_problem(count: int, limits: Limits) -> str | None:
    if not 1 <= count <= limits.max_processors:
        return (f"{count} virtual processors is out of range: give 1 to "
                f"{limits.max_processors} (the most {limits.source} allows)")
    return None


def _dev_ids(vs: VirtualSystem) -> list[str]:
    return ([vs.memory_dev_id, vs.processor_dev_id] + [c.dev_id for c in vs.controllers]
            + [d.dev_id for d in vs.drives] + [m.dev_id for m in vs.media]
            + [n.dev_id for n in vs.nics])


def _text_problems(vs: VirtualSystem) -> list[str]:
    fields = {"the name (ElementName)": vs.name, "the notes": vs.notes,
              "ExternalDataRoot": vs.external_data_root,
              "SnapshotDataRoot": vs.snapshot_data_root,
              "ScopeOfResidence": vs.scope_of_residence, "the import source": vs.imported_from}
    fields.update({f"the path of image {m.dev_id}": m.path for m in vs.media})
    fields.update({f"the switch of network adapter {n.dev_id}": n.switch for n in vs.nics})
    fields.update({f"device id {d!r}": d for d in _dev_ids(vs)})
    fields.update({f"the Connection of COM {i + 1}": c for i, c in enumerate(vs.com_ports)})
    fields.update({"BIOSSerialNumber": vs.bios_serial,
                   "BaseBoardSerialNumber": vs.baseboard_serial,
                   "ChassisSerialNumber": vs.chassis_serial})
    return [f"{what} contains a character XML cannot hold (a control character or a lone "
            "surrogate): remove it" for what, value in fields.items() if _NOT_XML.search(value)]


def _controller_problems(vs: VirtualSystem) -> list[str]:
    out: list[str] = []
    limits = {ControllerKind.IDE: IDE_CONTROLLERS, ControllerKind.SCSI: SCSI_CONTROLLERS_MAX}
    for kind, limit in limits.items():
        ctrls = [c for c in vs.controllers if c.kind is kind]
        if len(ctrls) > limit:
            out.append(f"{len(ctrls)} {kind.value.upper()} controllers: a virtual machine has at "
                       f"most {limit}")
        out.extend(f"{kind.value.upper()} controller number {index} appears {n} times"
                   for index, n in Counter(c.index for c in ctrls).items() if n > 1)
        out.extend(f"{kind.value.upper()} controller number {c.index} is out of range 0.."
                   f"{limit - 1}" for c in ctrls if not 0 <= c.index < limit)
    return out


def _drive_problems(vs: VirtualSystem) -> list[str]:
    out: list[str] = []
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
        if d.kind is DriveKind.DVD and ctrl.kind is ControllerKind.SCSI:
            out.append(f"DVD drive {d.dev_id} is on a SCSI controller: DVD drives attach to IDE")
        used[(ctrl.dev_id, d.address)] += 1
    for (ctrl_id, slot), n in used.items():
        ctrl = vs.controller(ctrl_id)
        if n > 1 and ctrl is not None:
            out.append(f"slot {slot} of {ctrl.kind.value.upper()} controller {ctrl.index} holds "
                       f"{n} drives")
    return out


def _media_problems(vs: VirtualSystem) -> list[str]:
    out: list[str] = []
    for m in vs.media:
        drive = vs.drive(m.drive_id)
        if drive is None:
            out.append(f"image {m.path} is inserted in drive {m.drive_id}, which does not exist")
        elif drive.kind is DriveKind.DISK and m.format not in DISK_FORMATS:
            out.append(f"hard disk image {m.path} has format {m.format.value}: use a VHD, VHDX "
                       "or qcow2 image")
        elif drive.kind is DriveKind.DVD and m.format is not ImageFormat.RAW:
            out.append(f"DVD image {m.path} has format {m.format.value}: use an ISO image")
        if not m.path or not os.path.isabs(m.path):
            out.append(f"image {m.dev_id} has path {m.path!r}: use an absolute path")
    out.extend(f"drive {d} holds {n} images: a drive holds one"
               for d, n in Counter(m.drive_id for m in vs.media).items() if n > 1)
    return out


def _nic_problems(vs: VirtualSystem) -> list[str]:
    out = [f"network adapter {n.dev_id} has MAC address {n.mac!r}: use six colon-separated hex "
           "pairs such as 00:15:5D:00:00:01" for n in vs.nics if not _MAC.match(n.mac or "")]
    out.extend(f"MAC address {mac} is used by {n} network adapters of this machine"
               for mac, n in Counter(n.mac.upper() for n in vs.nics
                                     if _MAC.match(n.mac or "")).items() if n > 1)
    return out


def problems(vs: VirtualSystem, limits: Limits) -> list[str]:
    """Every broken rule of ``vs`` (empty when the VM can be defined as it is)."""
    out = [p for p in (name_problem(vs.name), boot_order_problem(list(vs.boot_order)),
                       memory_problem(vs.memory_mb, limits),
                       processors_problem(vs.processors, limits)) if p]
    if canonical_guid(vs.guid) is None:
        out.append(f"the virtual machine ID {vs.guid!r} is not a GUID")
    ids = _dev_ids(vs)
    if any(not i for i in ids):
        out.append("a device has an empty device id: give every device a GUID")
    out.extend(f"device id {i} is used by more than one device"
               for i, n in Counter(ids).items() if n > 1 and i)
    return (out + _text_problems(vs) + _controller_problems(vs) + _drive_problems(vs)
            + _media_problems(vs) + _nic_problems(vs))


def check(vs: VirtualSystem, limits: Limits) -> Checked:
    """``vs`` checked (a copy, with its canonical GUID), or InvalidParameter listing every
    broken rule."""
    found = problems(vs, limits)
    if found:
        label = f"'{vs.name}' ({vs.guid})" if vs.name.strip() else repr(vs.guid)
        raise InvalidParameter(f"cannot define virtual machine {label}: " + "; ".join(found))
    guid = canonical_guid(vs.guid)
    assert guid is not None
    return Checked(copy.deepcopy(vs), guid)
