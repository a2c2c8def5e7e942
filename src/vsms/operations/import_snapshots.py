"""Import of an export that holds a snapshot tree (CopySnapshotConfiguration 0).

``plan_tree`` rebuilds the snapshots from config.xml and ``Snapshots/<GUID>.exp`` and decides
where every image of the chains will be: in place, the export's own copies (their backing
references, relative inside ``Virtual Hard Disks/``, were checked by ``read_export``) or, for a
configuration-only export, the images where they were (each must still build on what config.xml
records); as a copy, one new file per image in the target folder, each copied overlay then
re-pointed at the copy of its parent (``qemu-img rebase -u -F``); the overlays vsms made go to
the new VM's snapshot folder (``<root>/Snapshots/<VM GUID>/``), so removing its snapshots later
merges them as for the VM they came from (in place they stay in the export: never merged
into each other or removed, only the new overlays are). ``renew_tree`` gives every
snapshot and its settings new IDs with the VM (GenerateNewID): the device ids follow the VM's
new ones. A snapshot's memory state is carried only with the same ID (the saved state names the
VM it belongs to); with a new ID the snapshot is disk-only and the job says so.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

import pywbem

from vsms.cim import names
from vsms.cim.enums import SettingType
from vsms.disks import copy as diskcopy
from vsms.disks.api import ProgressFn
from vsms.errors import AccessDenied, InvalidParameter, ValidationFailed
from vsms.exportdir.layout import ExportPackage
from vsms.jobs.context import OpContext
from vsms.mapping.system import system_from_instances
from vsms.model.vm import DriveKind, ImageFormat, Snapshot, VirtualSystem, new_guid
from vsms.operations import files
from vsms.operations.export_snapshots import rebase_relative
from vsms.operations.identity import new_mac
from vsms.operations.paths import StorageRoots
from vsms.operations.progress import offset
from vsms.operations.snapshot_disks import backing_of, is_overlay_name, memory_file


@dataclass(frozen=True)
class ImageCopy:
    """One image to copy on import; ``backing``: the copy it builds on (same folder)."""

    src: str
    dst: str
    backing: str = ""
    backing_format: ImageFormat | None = None


@dataclass
class TreePlan:
    snapshots: list[Snapshot] = field(default_factory=list)
    previous: str = ""
    last_applied: str = ""
    where: dict[str, str] = field(default_factory=dict)  # original image path -> its path now
    copies: list[ImageCopy] = field(default_factory=list)
    memory: dict[str, str] = field(default_factory=dict)  # snapshot id -> memory source file
    notes: list[str] = field(default_factory=list)


def is_tree(pkg: ExportPackage) -> bool:
    return bool(pkg.config.snapshots or pkg.config.images)


def _snapshot_config(instances: list[pywbem.CIMInstance], formats: dict[str, ImageFormat],
                     vm_guid: str) -> VirtualSystem:
    items = [copy.deepcopy(i) for i in instances]
    for inst in items:  # read back as current settings by the same mapper
        if inst.classname.lower() == names.VSSD.lower():
            inst["SettingType"] = pywbem.Uint16(SettingType.CURRENT)
    config = system_from_instances(items)
    for media in config.disk_media():
        media.format = formats.get(os.path.normpath(media.path), media.format)
    for media in list(config.media):  # as for the VM: an ISO is not part of an export
        drive = config.drive(media.drive_id)
        if drive is not None and drive.kind is DriveKind.DVD and not os.path.exists(media.path):
            config.media.remove(media)
    config.guid = vm_guid
    return config


def plan_tree(pkg: ExportPackage, roots: StorageRoots, vs: VirtualSystem,
              copy_folder: Path | None, overlay_folder: Path | None = None) -> TreePlan:
    """Where every image goes and the snapshots of ``vs`` (still with the export's IDs); with
    ``copy_folder`` every image is copied there, except the overlays vsms made (named
    ``<GUID>.qcow2``), which go to ``overlay_folder`` (the new VM's snapshot folder, so that
    its snapshot operations merge and remove them as they do for the VM they came from).
    ValidationFailed lists every problem."""
    cfg = pkg.config
    plan = TreePlan(previous=cfg.previous_snapshot, last_applied=cfg.last_applied)
    problems: list[str] = []
    formats = {os.path.normpath(i.original_path): i.format for i in cfg.images}
    by_original = {os.path.normpath(i.original_path): i for i in cfg.images}
    sources: dict[str, str] = {}
    for key, image in by_original.items():
        if image.file:
            sources[key] = str(pkg.directory / image.file)
            continue
        try:  # a configuration-only export: the image where it was, building on the same
            src = str(roots.confine(image.original_path, "an image of the snapshot tree"))
        except AccessDenied as exc:
            problems.append(f"the image {image.original_path} cannot be used: {exc}")
            continue
        if not os.path.isfile(src):
            problems.append(f"the image {src} of the snapshot tree does not exist: the export "
                            "holds no copy of it (made without storage); restore it there")
            continue
        backing = backing_of(src) if image.format is ImageFormat.QCOW2 else ""
        if (os.path.normpath(backing) if backing else "") != \
                (os.path.normpath(image.backing) if image.backing else ""):
            problems.append(f"the image {src} builds on {backing or 'nothing'}, not on "
                            f"{image.backing or 'nothing'} as the export records")
        sources[key] = src
    names_used: set[str] = set()
    for key, src in sorted(sources.items()):
        if copy_folder is None:
            plan.where[key] = src
            continue
        name = Path(src).name
        folder = overlay_folder if overlay_folder is not None and is_overlay_name(name) \
            and by_original[key].backing else copy_folder
        if str(folder / name).lower() in names_used or (folder / name).exists():
            problems.append(f"the copy target {folder / name} already exists; an import "
                            "never overwrites: set TargetVhdDataRoot to a free folder")
        names_used.add(str(folder / name).lower())
        plan.where[key] = str(folder / name)
    for key, image in sorted(by_original.items()):
        if copy_folder is not None and key in sources:
            parent = os.path.normpath(image.backing) if image.backing else ""
            plan.copies.append(ImageCopy(sources[key], plan.where[key],
                                         plan.where.get(parent, ""), image.backing_format))
    for snap in cfg.snapshots:
        config = _snapshot_config(pkg.snapshot_instances.get(snap.id, []), formats, vs.guid)
        for media in config.disk_media():
            now = plan.where.get(os.path.normpath(media.path))
            if now is None:
                problems.append(f"snapshot '{snap.name}' uses the disk {media.path}, which is "
                                "not an image of the export")
            else:
                media.path = now
        memory = ""
        if snap.memory:
            memory = str(pkg.directory / snap.memory)
        elif snap.memory_original and os.path.isfile(snap.memory_original):
            memory = snap.memory_original
        if memory:
            plan.memory[snap.id] = memory
        plan.snapshots.append(Snapshot(snap.id, snap.name, snap.created, snap.parent, config,
                                       memory))
    if problems:
        raise ValidationFailed(problems, summary=f"cannot import the snapshot tree of "
                                                 f"{pkg.directory}")
    return plan


def attach(plan: TreePlan, vs: VirtualSystem) -> None:
    """Give ``vs`` (its current disks still at their original paths) the planned tree."""
    for media in vs.disk_media():
        media.path = plan.where.get(os.path.normpath(media.path), media.path)
    vs.snapshots = plan.snapshots
    vs.previous_snapshot, vs.last_applied = plan.previous, plan.last_applied


def renew_tree(old: VirtualSystem, new: VirtualSystem, plan: TreePlan) -> None:
    """GenerateNewID: ``new`` (``old`` with_new_identity) gets its snapshots with new IDs, their
    device ids and MACs following the VM's; memory states are dropped (see the module)."""
    devs: dict[str, str] = {}
    macs: dict[str, str] = {}
    pairs = [*((a.dev_id, b.dev_id) for a, b in zip(old.controllers, new.controllers,
                                                     strict=True)),
             *((a.dev_id, b.dev_id) for a, b in zip(old.drives, new.drives, strict=True)),
             *((a.dev_id, b.dev_id) for a, b in zip(old.media, new.media, strict=True))]
    devs.update(pairs)
    for a_nic, b_nic in zip(old.nics, new.nics, strict=True):
        devs[a_nic.dev_id], macs[a_nic.dev_id] = b_nic.dev_id, b_nic.mac

    def dev(old_id: str) -> str:
        return devs.setdefault(old_id, new_guid())

    sids = {s.id: new_guid() for s in plan.snapshots}
    for snap in new.snapshots:
        c = snap.config
        c.guid = new.guid
        c.bios_serial, c.baseboard_serial, c.chassis_serial = (
            new.bios_serial, new.baseboard_serial, new.chassis_serial)
        for ctl in c.controllers:
            ctl.dev_id = dev(ctl.dev_id)
        for drive in c.drives:
            drive.dev_id, drive.controller_id = dev(drive.dev_id), dev(drive.controller_id)
        for media in c.media:
            media.dev_id, media.drive_id = dev(media.dev_id), dev(media.drive_id)
        for nic in c.nics:
            old_id = nic.dev_id
            nic.dev_id = dev(old_id)
            nic.mac = macs.setdefault(old_id, new_mac())
        snap.id, snap.parent = sids[snap.id], sids.get(snap.parent, "")
        if snap.memory:
            plan.notes.append(f"snapshot '{snap.name}' was imported without its memory state "
                              "(a new ID was generated): applying it gives a turned-off VM")
            snap.memory = ""
    new.previous_snapshot = sids.get(new.previous_snapshot, "")
    new.last_applied = sids.get(new.last_applied, "")


def copy_tree(ctx: OpContext, roots: StorageRoots, vs: VirtualSystem, plan: TreePlan,
              progress: ProgressFn) -> None:
    """Copy every image (journaled, created exclusively through its folder handle), re-point
    each copied overlay at the copy of its parent, and copy the memory states kept;
    ``progress`` gets the bytes of data copied out of ``tree_bytes(plan)``."""
    done = 0
    for c in plan.copies:
        with files.open_target_dir(ctx, Path(c.dst).parent, roots.roots) as d:
            fd = files.create_file(ctx, d, Path(c.dst).name)
            try:
                done += diskcopy.copy_file(c.src, c.dst, cancel=ctx.cancel_event, dst_fd=fd,
                                           progress=offset(progress, done))
                files.check_in_place(c.dst, roots.roots, fd)
            finally:
                os.close(fd)
        ctx.check_cancelled()
    for c in plan.copies:
        if c.backing and c.backing_format is not None:
            rebase_relative(c.dst, os.path.relpath(c.backing, os.path.dirname(c.dst)),
                            c.backing_format)
    for snap in vs.snapshots:
        if not snap.memory:
            continue
        dst = memory_file(vs, snap.id)
        with files.open_target_dir(ctx, os.path.dirname(dst), roots.roots) as d:
            fd = files.create_file(ctx, d, os.path.basename(dst))
            try:
                diskcopy.copy_file(snap.memory, dst, cancel=ctx.cancel_event, dst_fd=fd)
            finally:
                os.close(fd)
        snap.memory = dst


def tree_bytes(plan: TreePlan) -> int:
    """The bytes of data ``copy_tree`` copies (the images; memory states are small)."""
    return sum(diskcopy.data_bytes(c.src) for c in plan.copies)


def refuse_targets(target_paths: tuple[str, ...]) -> None:
    if any(target_paths):
        raise InvalidParameter(
            "TargetResourcePaths cannot place the images of an export with a snapshot tree one "
            "by one (each overlay builds on its parent): set TargetVhdDataRoot instead")
