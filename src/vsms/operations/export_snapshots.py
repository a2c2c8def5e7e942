"""The disks and the snapshot tree of an export (CopySnapshotConfiguration 0, 1 and 2).

``image_graph`` follows every disk chain of a VM and of its snapshots from their headers (each
backing format as the child's header records it, never probed) and refuses an image outside
the storage roots or a backing file whose format is not recorded. ``write_disks`` then fills the
export's temporary folder (everything in it is removed by the export's undo step):

- all (0) of a VM with a tree: every image of every chain is copied under ``Virtual Hard
  Disks/`` and each copied overlay's backing reference is rewritten to the copy of its parent,
  by a name relative to its folder (``qemu-img rebase -u -F <format>``); each snapshot's
  settings go to ``Snapshots/<GUID>.exp`` and its memory state, if any, to
  ``Snapshots/<GUID>.save``; config.xml lists the snapshots and the images;
- none (1), one (2), or a VM without a tree: each disk is one standalone image: a disk that
  builds on others is flattened (``qemu-img convert`` of its chain into the format of the
  chain's base image), others are copied as they are.

Without storage nothing is copied: config.xml records the tree and the images' paths.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pywbem

from vsms.cim import names
from vsms.cim.enums import CopySnapshotConfiguration, SettingType
from vsms.disks import copy as diskcopy
from vsms.disks import qemuimg
from vsms.disks.api import ProgressFn
from vsms.disks.convert import convert_file
from vsms.disks.digests import DigestBook
from vsms.disks.lanes import CopyTask, run_lanes
from vsms.errors import AccessDenied, InvalidParameter, NotFound, OperationFailed
from vsms.exportdir import layout, writer
from vsms.exportdir.expfile import exp_to_xml
from vsms.exportdir.layout import ExportedDisk, ExportedImage, ExportedSnapshot
from vsms.exportdir.snapconfig import snapshot_exp, snapshot_memory
from vsms.jobs.context import OpContext
from vsms.mapping import ids
from vsms.mapping.system import settings_instances
from vsms.model.vm import ImageFormat, Snapshot, VirtualSystem
from vsms.operations.paths import StorageRoots
from vsms.operations.snapshot_disks import backing_of, referenced
from vsms.virt.cache import clone

_REBASE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Image:
    """One image of a VM's chains: its format and what it builds on ("" for a base image)."""

    path: str
    format: ImageFormat
    backing: str = ""
    backing_format: ImageFormat | None = None


def recorded_backing_format(path: str) -> ImageFormat | None:
    """The backing format the qcow2 header of ``path`` records (qemu-img info, no probing)."""
    result = subprocess.run(["qemu-img", "info", "-U", "-f", "qcow2", "--output=json", path],
                            capture_output=True, text=True, timeout=_REBASE_TIMEOUT, check=False)
    if result.returncode != 0:
        raise InvalidParameter(f"qemu-img cannot read the qcow2 image {path}: "
                               f"{result.stderr.strip()[:300]}")
    fmt = json.loads(result.stdout).get("backing-filename-format")
    try:
        return ImageFormat(fmt) if fmt else None
    except ValueError:
        return None


def image_graph(vs: VirtualSystem, roots: StorageRoots, verb: str) -> dict[str, Image]:
    """Every image of the VM's and its snapshots' disk chains, by normalised path. AccessDenied
    (32769) for an image outside the storage roots, InvalidParameter for a backing file whose
    format its child does not record."""
    found: dict[str, Image] = {}
    todo = [(os.path.normpath(m.path), m.format) for m in referenced(vs)]
    while todo:
        path, fmt = todo.pop()
        if path in found:
            continue
        try:
            roots.confine(path, "an image of its disks")
        except AccessDenied as exc:
            raise AccessDenied(
                f"cannot {verb} virtual machine '{vs.name}' ({vs.guid}): {exc}; the chain of "
                "its disks (or of a snapshot's) leads outside the storage roots: move that image "
                "under a storage root (and rebase the overlay on it), or add its directory as "
                "a storage root") from None
        parent = backing_of(path) if fmt is ImageFormat.QCOW2 else ""
        parent_fmt = recorded_backing_format(path) if parent else None
        if parent and parent_fmt is None:
            raise InvalidParameter(
                f"cannot {verb} virtual machine '{vs.name}' ({vs.guid}): the overlay {path} does "
                f"not record the format of its backing file {parent}, and vsms never probes "
                "formats: rebase it naming the format (qemu-img rebase -u -b … -F …)")
        found[path] = Image(path, fmt, parent, parent_fmt)
        if parent and parent_fmt is not None:
            todo.append((parent, parent_fmt))
    for snap in vs.snapshots:  # memory states are copied too: read only inside the roots
        if snap.memory:
            roots.confine(snap.memory, f"the memory state of snapshot '{snap.name}'")
    return found


def has_tree(vs: VirtualSystem, graph: dict[str, Image]) -> bool:
    """Does the VM have snapshots or a disk that builds on another image?"""
    return bool(vs.snapshots) or any(i.backing for i in graph.values())


def base_of(graph: dict[str, Image], path: str) -> Image:
    """The bottom of the chain that ``path`` heads."""
    image = graph[os.path.normpath(path)]
    while image.backing:
        image = graph[image.backing]
    return image


def one_snapshot_view(vs: VirtualSystem, snapshot_id: str) -> VirtualSystem:
    """The VM as snapshot ``snapshot_id`` recorded it (CopySnapshotConfiguration 2): its
    settings and frozen disks under the VM's identity, name and data roots, without a tree."""
    sid = ids.guid_of(ids.instance_id_from_ref(snapshot_id)) if snapshot_id else ""
    snap = next((s for s in vs.snapshots if s.id.upper() == sid.upper()), None)
    if snap is None:
        raise NotFound(f"SnapshotVirtualSystem {snapshot_id!r} is not a snapshot of virtual "
                       f"machine '{vs.name}' ({vs.guid}): pass the path of one of its snapshots' "
                       f"{names.VSSD} (SettingType 5)")
    view = clone(snap.config)
    for name in ("guid", "name", "created", "external_data_root", "snapshot_data_root",
                 "scope_of_residence", "imported_from"):
        setattr(view, name, clone(getattr(vs, name)))
    view.snapshots, view.previous_snapshot, view.last_applied, view.discarded = [], "", "", []
    return view


def snapshot_settings(vs: VirtualSystem, snap: Snapshot) -> list[pywbem.CIMInstance]:
    """What ``Snapshots/<GUID>.exp`` holds: the snapshot's configuration as settings instances
    named after the snapshot (its VSSD with SettingType 5, Parent, SystemName the VM)."""
    config = replace(snap.config, guid=snap.id, name=snap.name, created=snap.created)
    items = settings_instances(config)
    props = items[0].properties
    props["SettingType"].value = pywbem.Uint16(SettingType.SNAPSHOT)
    props["SystemName"].value = vs.guid
    props["Parent"].value = (ids.ref_text(names.VSSD, ids.vssd_id(snap.parent)) if snap.parent
                             else None)
    return items


@dataclass
class DiskResult:
    """What ``write_disks`` put into the export, for config.xml and the manifest."""

    disks: list[ExportedDisk] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # rel -> sha256 known from the copy
    snapshots: list[ExportedSnapshot] = field(default_factory=list)
    images: list[ExportedImage] = field(default_factory=list)
    previous: str = ""
    last_applied: str = ""


def unique_name(name: str, used: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    candidate, n = name, 1
    while candidate.lower() in used:
        n += 1
        candidate = f"{stem} ({n}).{ext}" if dot else f"{name} ({n})"
    used.add(candidate.lower())
    return candidate


Job = Callable[[ProgressFn, threading.Event], str]


def _copier(src: str, dst: str, book: DigestBook | None) -> Job:
    def run(progress: ProgressFn, cancel: threading.Event) -> str:
        return diskcopy.copy_and_hash(src, dst, progress=progress, cancel=cancel, book=book)[1]
    return run


def _flattener(src: str, src_fmt: ImageFormat, dst: str, dst_fmt: ImageFormat) -> Job:
    def run(progress: ProgressFn, cancel: threading.Event) -> str:
        # created here, inside the export's temporary folder (removed whole on failure)
        fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        try:
            convert_file(src, src_fmt, dst, dst_fmt, progress=progress, cancel=cancel,
                         dst_fd=fd)
        finally:
            os.close(fd)
        return ""  # hashed with the manifest
    return run


def _inherited(path: str) -> tuple[int, ...]:
    """The descriptor a ``/proc/self/fd/N/…`` path goes through (a folder handle of this
    process), for the child that opens it (the same number, see subprocess ``pass_fds``)."""
    m = re.match(r"^/proc/self/fd/(\d+)(/|$)", path)
    return (int(m.group(1)),) if m else ()


def rebase_relative(path: str, backing_name: str, backing_fmt: ImageFormat) -> None:
    """Record ``backing_name`` (relative to the folder of ``path``, opened as ``backing_fmt``)
    as the backing file of the qcow2 image ``path``, without touching data (rebase -u)."""
    result = subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", backing_name,
                             "-F", backing_fmt.value, path], capture_output=True, text=True,
                            timeout=_REBASE_TIMEOUT, check=False, pass_fds=_inherited(path))
    if result.returncode != 0:
        raise OperationFailed(f"qemu-img could not point {path} at {backing_name}: "
                              f"{result.stderr.strip()[:300]}")


def copy_bytes(vs: VirtualSystem, graph: dict[str, Image],
               mode: CopySnapshotConfiguration) -> int:
    """The bytes of data ``write_disks`` reads (its progress total): every image of a tree, or
    each current disk (a flattened one counts its own data, as ``convert_file`` reports)."""
    if mode is CopySnapshotConfiguration.EXPORT_ALL_SNAPSHOTS and has_tree(vs, graph):
        paths = [*graph, *(s.memory for s in vs.snapshots if s.memory)]
    else:
        paths = [m.path for m in vs.disk_media()]
    return sum(diskcopy.data_bytes(p) for p in paths)


def write_disks(ctx: OpContext, tmp: Path, vs: VirtualSystem, graph: dict[str, Image],
                mode: CopySnapshotConfiguration, copy_storage: bool,
                book: DigestBook | None, progress: ProgressFn) -> DiskResult:
    """Copy (or flatten) the disks of ``vs`` into the export folder ``tmp``; see the module."""
    if mode is CopySnapshotConfiguration.EXPORT_ALL_SNAPSHOTS and has_tree(vs, graph):
        return _write_tree(ctx, tmp, vs, graph, copy_storage, book, progress)
    result = DiskResult()
    used: set[str] = set()
    tasks: list[CopyTask[str]] = []
    for media in vs.disk_media():
        path = os.path.normpath(media.path)
        base = base_of(graph, path)
        flat = graph[path].backing != ""
        fmt = base.format if flat else media.format
        rel = ""
        if copy_storage:
            rel = f"{layout.VHD_DIR}/{unique_name(Path(base.path if flat else path).name, used)}"
            dst = str(tmp / rel)
            tasks.append(CopyTask(path, dst, _flattener(path, media.format, dst, fmt) if flat
                                  else _copier(path, dst, book)))
        size = qemuimg.info(path, media.format).virtual_size
        result.disks.append(ExportedDisk(media.dev_id, media.path, rel, fmt, size))
    digests = run_lanes(tasks, progress=progress, cancel=ctx.cancel_event)
    rels = [d.file for d in result.disks if d.file]
    result.digests = {rel: digest for rel, digest in zip(rels, digests, strict=True) if digest}
    return result


def _write_tree(ctx: OpContext, tmp: Path, vs: VirtualSystem, graph: dict[str, Image],
                copy_storage: bool, book: DigestBook | None,
                progress: ProgressFn) -> DiskResult:
    result = DiskResult(previous=vs.previous_snapshot, last_applied=vs.last_applied)
    used: set[str] = set()
    rel_of: dict[str, str] = {}
    tasks: list[CopyTask[str]] = []
    for path in sorted(graph):
        rel = ""
        if copy_storage:
            rel = f"{layout.VHD_DIR}/{unique_name(Path(path).name, used)}"
            tasks.append(CopyTask(path, str(tmp / rel), _copier(path, str(tmp / rel), book)))
        rel_of[path] = rel
    for snap in vs.snapshots:
        memory = ""
        if snap.memory and copy_storage:
            memory = snapshot_memory(snap.id)
            dst = str(tmp / memory)
            tasks.append(CopyTask(snap.memory, dst, _copier(snap.memory, dst, book)))
        result.snapshots.append(ExportedSnapshot(snap.id.upper(), snap.name, snap.created,
                                                 snap.parent.upper(), memory, snap.memory))
        writer.write_atomic(tmp / snapshot_exp(snap.id), exp_to_xml(snapshot_settings(vs, snap)))
    digests = run_lanes(tasks, progress=progress, cancel=ctx.cancel_event)
    ctx.check_cancelled()
    result.digests = dict(zip([t.dst for t in tasks], digests, strict=True))
    for path, image in sorted(graph.items()):
        rel = rel_of[path]
        if rel and image.backing and image.backing_format is not None:
            # the copy builds on the copy of its parent, named relative to its folder
            rebase_relative(str(tmp / rel), rel_of[image.backing].rsplit("/", 1)[-1],
                            image.backing_format)
            result.digests.pop(str(tmp / rel), None)  # changed: hashed with the manifest
        result.images.append(ExportedImage(rel, path, image.format, image.backing,
                                           image.backing_format))
    result.digests = {os.path.relpath(dst, tmp): digest
                      for dst, digest in result.digests.items()}
    for media in vs.disk_media():
        path = os.path.normpath(media.path)
        size = qemuimg.info(path, media.format).virtual_size
        result.disks.append(ExportedDisk(media.dev_id, media.path, rel_of[path], media.format,
                                         size))
    return result
