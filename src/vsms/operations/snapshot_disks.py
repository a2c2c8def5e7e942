"""The disks of snapshots: qcow2 overlays (our AVHDs) on frozen images, and their merges.

Taking a snapshot freezes each disk of the VM: the image the VM wrote until then becomes the
snapshot's (read-only from now on) and a new qcow2 overlay whose backing file is that image
(its format always named) takes the VM's new writes. Creating an overlay writes a header only,
so a snapshot costs the same whatever the size of the disk. Overlays live in
``<snapshot data root>/Snapshots/<VM GUID>/`` (the root falls back to the external data root,
then to the folder of the VM's first disk), always inside the storage roots, each created
exclusively through a folder handle and journaled (``operations.files``).

Removing a snapshot or applying one leaves images nobody references: ``collapse`` tidies the
image graph of a VM after its definition has changed. An overlay the VM listed as discarded
(the current state an apply dropped, the images of removed snapshots) is removed once no image
depends on it and no definition names it (a disk a client detaches is never listed: its file
stays); an unreferenced image with exactly one child, when that child is one of our overlays,
is merged: the child's clusters
are committed into it (the child's guest view never changes meanwhile), the child's own
children are re-parented onto it, the child's owner (the VM or a snapshot) is redefined to use
it, and the child is removed. Each step leaves a consistent graph, and a collapse stopped at
any point is finished by the next one. An unreferenced image with two children or more (the
common parent of two branches) stays until one branch goes. While the VM runs (``live``), the
images of its current disks are merged by block commit in the running QEMU when the caller
gives a ``merge_live`` (``operations.snapshot_live``), else left alone: their merge waits for
the next collapse with the VM off.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vsms.disks import anchor, qemuimg
from vsms.disks.anchor import Identity
from vsms.disks.copy import copy_file
from vsms.errors import InvalidParameter
from vsms.model.vm import ImageFormat, Media, VirtualSystem, new_guid
from vsms.operations.files import Journal, create_file, open_target_dir
from vsms.operations.paths import StorageRoots
from vsms.operations.snapshot_live import LiveMergeFn
from vsms.virt.host import VirtHost

log = logging.getLogger(__name__)

SNAPSHOTS = "Snapshots"
_OVERLAY_NAME = re.compile(r"^[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}\.qcow2$")
_MEMORY_NAME = re.compile(r"^[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}\.save$")
_MAX_ROUNDS = 64  # a collapse merges at most this many images (each round removes one)


def snapshot_dir(vs: VirtualSystem) -> str:
    """The folder of the VM's overlays; "" when it has no root and no disk."""
    root = vs.snapshot_data_root or vs.external_data_root
    if not root:
        disks = vs.disk_media()
        root = os.path.dirname(disks[0].path) if disks else ""
        if disks and is_overlay_of(vs, disks[0].path):  # <root>/Snapshots/<GUID>/<overlay>
            root = os.path.dirname(os.path.dirname(root))
    return os.path.join(root, SNAPSHOTS, vs.guid.upper()) if root else ""


def is_overlay_name(name: str) -> bool:
    """Is ``name`` the name of an overlay vsms makes (``<GUID>.qcow2``)?"""
    return bool(_OVERLAY_NAME.match(name))


def is_overlay_of(vs: VirtualSystem, path: str) -> bool:
    """Is ``path`` an overlay vsms made for this VM (``…/Snapshots/<VM GUID>/<GUID>.qcow2``)?
    Only those are merged into their parents or removed: a disk the VM was given (even a
    qcow2 overlay a user made on a shared base image) is never changed by a merge."""
    folder = os.path.dirname(os.path.normpath(path))
    return (is_overlay_name(os.path.basename(path))
            and os.path.basename(folder) == vs.guid.upper()
            and os.path.basename(os.path.dirname(folder)) == SNAPSHOTS)


def new_overlays(journal: Journal, roots: StorageRoots, folder: str,
                 parents: Iterable[Media]) -> dict[str, str]:
    """One new overlay in ``folder`` (created with its parents, journaled) on each of
    ``parents``; media dev_id → the overlay's path."""
    parents = list(parents)
    if not parents:
        return {}
    made: dict[str, str] = {}
    with open_target_dir(journal, folder, roots.roots) as d:
        for media in parents:
            name = f"{new_guid()}.qcow2"
            fd = create_file(journal, d, name)
            try:
                qemuimg.create_differencing(os.path.join(d.path, name), media.path,
                                            media.format, fd=fd)
            finally:
                os.close(fd)
            made[media.dev_id] = os.path.join(d.path, name)
    return made


def copy_memory(journal: Journal, roots: StorageRoots, source: str, target: str,
                progress: Callable[[float], None]) -> None:
    """Copy the memory state ``source`` (a saved VM's managed save image) to the new file
    ``target`` in the overlay folder (created exclusively through a folder handle, journaled;
    cloned where the filesystem can, else sparse), with ``progress`` from 0 to 1."""
    total = max(1, os.path.getsize(source))
    with open_target_dir(journal, os.path.dirname(target), roots.roots) as d:
        name = os.path.basename(target)
        fd = create_file(journal, d, name, 0o600)
        try:
            copy_file(source, os.path.join(d.path, name), dst_fd=fd,
                      progress=lambda done: progress(min(done / total, 1.0)))
        finally:
            os.close(fd)


def use_overlays(vs: VirtualSystem, overlays: dict[str, str]) -> None:
    """Point each disk of ``vs`` named in ``overlays`` at its overlay (format qcow2)."""
    for media in vs.media:
        if media.dev_id in overlays:
            media.path = overlays[media.dev_id]
            media.format = ImageFormat.QCOW2


# ------------------------------------------------------------------------------ the image graph

def backing_of(path: str) -> str:
    """The backing file of the image at ``path`` as an absolute path; "" for none."""
    for kind, name in qemuimg.referenced_files(path):
        if kind == "backing file" and name:
            return os.path.normpath(os.path.join(os.path.dirname(path), name))
    return ""


def referenced(vs: VirtualSystem) -> list[Media]:
    """The disk media of the VM and of each of its snapshots: the images someone uses."""
    return [*vs.disk_media(), *(m for s in vs.snapshots for m in s.config.disk_media())]


@dataclass
class Graph:
    """The images of one VM: who backs whom, and which folders hold our overlays."""

    parent: dict[str, str]  # image -> its backing file ("" for a base image)
    owned: set[str]  # images a definition (the VM's or a snapshot's) names

    def children(self, path: str) -> list[str]:
        return sorted(c for c, p in self.parent.items() if p == path)

    def chain(self, path: str) -> list[str]:
        out: list[str] = []
        while path and path not in out:
            out.append(path)
            path = self.parent.get(path, "")
        return out


def graph_of(vs: VirtualSystem) -> Graph:
    parent: dict[str, str] = {}
    owned = {os.path.normpath(m.path) for m in referenced(vs)}
    todo = list(owned)
    while todo:
        path = todo.pop()
        if path in parent:
            continue
        try:
            up = backing_of(path)
        except (InvalidParameter, OSError, ValueError) as exc:
            log.warning("VM %s: cannot read the header of %s: %s", vs.guid, path, exc)
            up = ""
        parent[path] = up
        if up:
            todo.append(up)
    return Graph(parent, owned)


Redefine = Callable[[VirtualSystem], None]


def _repoint(vs: VirtualSystem, old: str, new: str, fmt: ImageFormat) -> None:
    for media in [*vs.media, *(m for s in vs.snapshots for m in s.config.media)]:
        if os.path.normpath(media.path) == old:
            media.path, media.format = new, fmt


def memory_file(vs: VirtualSystem, snapshot_id: str) -> str:
    """Where a snapshot's memory state goes: ``<overlay folder>/<snapshot GUID>.save``."""
    return os.path.join(snapshot_dir(vs), f"{snapshot_id.upper()}.save")


def qcow2_only(graph: Graph, vs: VirtualSystem) -> bool:
    """Is every image of every current disk chain qcow2 (so QEMU can save the memory)?"""
    try:
        return all(qemuimg.probe_format(p) is ImageFormat.QCOW2
                   for m in vs.disk_media() for p in graph.chain(os.path.normpath(m.path)))
    except (InvalidParameter, OSError):
        return False


def remove_overlay(roots: StorageRoots, path: str) -> bool:
    """Remove one overlay or memory file of ours (inside the roots, named as we name them)."""
    name = os.path.basename(path)
    if not (is_overlay_name(name) or _MEMORY_NAME.match(name)) \
            or not roots.contains(Path(os.path.realpath(path))):
        return False
    try:
        d, name = anchor.open_parent(path, roots.roots)
    except (InvalidParameter, OSError) as exc:
        log.warning("cannot open the folder of %s: %s", path, exc)
        return False
    with d:
        try:
            ident = Identity.of(d.lstat(name))
        except FileNotFoundError:
            return False
        return anchor.remove_file(d, name, ident)


def _sweep_memory(vs: VirtualSystem, roots: StorageRoots) -> int:
    """Remove the memory files in the VM's overlay folder that no snapshot names."""
    folder = snapshot_dir(vs)
    if not folder or not os.path.isdir(folder) \
            or not roots.contains(Path(os.path.realpath(folder))):
        return 0
    memories = {os.path.normpath(s.memory) for s in vs.snapshots if s.memory}
    removed = 0
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if _MEMORY_NAME.match(name) and path not in memories and remove_overlay(roots, path):
            log.info("VM %s: removed the unused memory file %s", vs.guid, path)
            removed += 1
    return removed


def _drop_discarded(vs: VirtualSystem, roots: StorageRoots, graph: Graph,
                    protected: set[str], redefine: Redefine) -> None:
    """Remove the discarded overlays nothing depends on any more; keep listing the others."""
    keep: list[str] = []
    for path in vs.discarded:
        norm = os.path.normpath(path)
        if norm in graph.owned or not is_overlay_of(vs, norm):
            continue  # used again (or never ours): not garbage
        if graph.children(norm) or norm in protected:
            keep.append(path)  # still a parent: removed after a later merge
            continue
        remove_overlay(roots, norm)
        log.info("VM %s: removed the discarded overlay %s", vs.guid, norm)
    if keep != vs.discarded:
        vs.discarded = keep
        redefine(vs)


def collapse(vs: VirtualSystem, roots: StorageRoots, redefine: Redefine, *, live: bool,
             progress: Callable[[str], None] = lambda _t: None,
             merge_live: LiveMergeFn | None = None) -> VirtualSystem:
    """Remove and merge the images of ``vs`` that no definition names (see the module text);
    ``redefine`` stores a changed definition. With ``live``, the images of the VM's current
    chains are merged by ``merge_live`` (a block commit in the running VM) when given, else
    left for a later collapse. Returns the VM as last defined."""
    failed: set[str] = set()  # images a live merge could not merge this time
    for _ in range(_MAX_ROUNDS):
        graph = graph_of(vs)
        protected: set[str] = set()
        if live:
            for media in vs.disk_media():
                protected.update(graph.chain(os.path.normpath(media.path)))
        movable = protected - failed if merge_live is not None else set()
        merge = next(((img, kids[0]) for img in sorted(graph.parent)
                      if img not in graph.owned and (img not in protected or img in movable)
                      and len(kids := graph.children(img)) == 1
                      and (kids[0] not in protected or kids[0] in movable)
                      and is_overlay_of(vs, kids[0])
                      and roots.contains(Path(os.path.realpath(img)))), None)
        if merge is None:
            _drop_discarded(vs, roots, graph, protected, redefine)
            _sweep_memory(vs, roots)
            return vs
        target, child = merge
        if child in protected and merge_live is not None:
            progress(f"Merging {child} into {target} (block commit)")
            merged = merge_live(vs, child, target)
            if merged is None:
                failed.add(child)
            else:
                vs = merged
            continue
        progress(f"Merging {child} into {target}")
        fmt = qemuimg.probe_format(target)
        qemuimg.overlay_commit(child, target, fmt)
        for grandchild in graph.children(child):
            qemuimg.overlay_rebacked(grandchild, target, fmt)
        if child in graph.owned:
            _repoint(vs, child, target, fmt)
            redefine(vs)
        remove_overlay(roots, child)
    raise InvalidParameter(f"the disks of VM {vs.guid} form more than {_MAX_ROUNDS} images "
                           "to merge in one go; run the removal again")


def finish_live_merge(host: VirtHost, guid: str, child: str, target: str
                      ) -> VirtualSystem | None:
    """After a block commit of ``child`` into ``target`` in VM ``guid`` ended (or a crash
    interrupted it): cancel a job still running, and when ``child`` has left the VM's chain,
    point the definitions that named it at ``target``, re-parent its other children (not open:
    QEMU re-parented the one it had open) and list it as discarded. Returns the VM as defined
    now (None: it is gone)."""
    vs = host.get_system(guid)
    if vs is None:
        return None
    if host.settle_block_commit(guid, child):
        return vs  # still in the chain: nothing merged, a later collapse merges it
    fmt = qemuimg.probe_format(target)
    for grandchild in graph_of(vs).children(child):
        qemuimg.overlay_rebacked(grandchild, target, fmt)
    _repoint(vs, child, target, fmt)
    if child not in vs.discarded:
        vs.discarded.append(child)
    host.define(vs)
    return vs
