"""Differencing chains: MergeVirtualHardDisk, ReconnectParentVirtualHardDisk and
ValidateVirtualHardDisk.

A differencing disk here is a qcow2 overlay (QEMU can neither write nor read VHD/VHDX
differencing disks, so those are refused with 32770 where they would have to be opened).

* Merge writes the data of the source overlay (and of every overlay between it and the
  destination) into the destination with ``qemu-img commit`` (``-d`` / ``-b``: the source is
  left intact while it runs, so a failure or a cancellation changes nothing the source shows),
  then removes the source and those intermediate overlays, as Hyper-V's merge does: they are
  now part of the destination. Refused while any virtual machine of this instance uses a
  member of the chain, directly or as the parent of one of its disks.
* Reconnect rewrites the parent name in the child's header (``qemu-img rebase -u``, the
  parent's format named), through a handle of the child's folder. It is quick and finishes
  within the call (0), as on Hyper-V; ``Force`` has no effect, as the page says.
* Validate follows the chain from the image up, checking that each parent exists, lies under
  a storage root, and that the chain does not loop, then runs ``qemu-img check`` on every
  member. A broken link fails the job with 32779 (missing parent) or 32769 (outside the roots)
  and Msvm_StorageJob.Child / Parent name the two ends of the broken link.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vsms.cim.enums import VirtualHardDiskType
from vsms.disks import anchor, imageops, qemuimg
from vsms.disks.anchor import Identity
from vsms.errors import (
    AccessDenied,
    FileNotFound,
    InvalidParameter,
    NotSupported,
    OperationFailed,
    VsmsError,
)
from vsms.jobs.context import OpContext
from vsms.jobs.manager import Reservation
from vsms.model.vm import ImageFormat
from vsms.operations import vhd
from vsms.operations.paths import MAX_BACKING_CHAIN, StorageRoots, has_protocol
from vsms.operations.vhd import DiskHost
from vsms.operations.vhd_edit import chain_of, existing_image, refuse_if_used, reserve


def confine_file(roots: StorageRoots, raw: str, what: str) -> Path:
    """An existing regular file under a storage root (symlinks resolved, no mount point on the
    way), without following the parents its header names: ``StorageRoots.confine`` rules 1-2,
    for the methods whose job is to inspect or repair a broken chain."""
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise InvalidParameter(f"{what} is empty or not a valid path: pass a fully qualified path")
    if not os.path.isabs(raw):
        raise InvalidParameter(f"{what} {raw!r} is not a fully qualified path: pass an absolute "
                               "path")
    resolved = Path(os.path.realpath(raw))
    if not roots.contains(resolved) or roots.crossed_mount(resolved) is not None:
        raise AccessDenied(f"{what} {raw!r} is outside the storage roots "
                           f"({', '.join(str(r) for r in roots.roots)}): use a path under a "
                           "storage root")
    vhd._existing_file(resolved, raw, what)
    return resolved


def _differencing(path: Path, raw: str, what: str) -> None:
    """NotSupported for a VHD/VHDX differencing disk, InvalidParameter for a disk without a
    parent; returns for a qcow2 overlay."""
    fmt = qemuimg.probe_format(str(path))
    if fmt is ImageFormat.QCOW2:
        if any(kind == "backing file" for kind, _ in qemuimg.referenced_files(str(path))):
            return
    elif fmt in (ImageFormat.VHD, ImageFormat.VHDX) and qemuimg.info(
            str(path), fmt).type is VirtualHardDiskType.DIFFERENCING:
        raise NotSupported(f"{what} {raw} is a {qemuimg.LABEL[fmt]} differencing disk, which "
                           "QEMU cannot open: vsms works on qcow2 differencing disks only")
    raise InvalidParameter(f"{what} {raw} is not a differencing disk (it has no parent): pass "
                           "the path of a differencing disk")


# --------------------------------------------------------------------------- merge

@dataclass(frozen=True)
class MergeDisk:
    """MergeVirtualHardDisk: commit ``members[0]`` (and the overlays up to ``members[-1]``)
    into ``members[-1]``, then remove the merged overlays."""

    members: tuple[Path, ...]
    idents: tuple[Identity, ...]
    size: int
    roots: StorageRoots

    @property
    def description(self) -> str:
        return f"Merging virtual hard disk {self.members[0]} into {self.members[-1]}"

    def run(self, ctx: OpContext) -> None:
        src, dst = self.members[0], self.members[-1]
        ctx.set_result(Child=str(src), Parent=str(dst))
        for path, ident in zip(self.members, self.idents, strict=True):
            d, name = anchor.open_parent(path, self.roots.roots)
            with d:
                if not anchor.same_file(d, name, ident):
                    raise AccessDenied(f"{path} was replaced or renamed after the method call "
                                       "checked it; nothing was merged: run the operation again")
        ctx.check_cancelled()
        base = None if len(self.members) == 2 else str(dst)
        imageops.commit(str(src), base, size=self.size,
                        progress=lambda p: ctx.progress(2 + p * 0.9), cancel=ctx.cancel_event)
        ctx.progress(95)
        for path, ident in zip(self.members[:-1], self.idents, strict=False):
            d, name = anchor.open_parent(path, self.roots.roots)
            with d:
                anchor.remove_file(d, name, ident)


def prepare_merge(roots: StorageRoots, host: DiskHost, raw_src: str, raw_dst: str
                  ) -> tuple[MergeDisk, Reservation]:
    src = existing_image(roots, raw_src, "SourcePath")
    _differencing(src.path, raw_src, "SourcePath")
    dst = roots.confine(raw_dst, "DestinationPath")
    vhd._existing_file(dst, raw_dst, "DestinationPath")
    chain = chain_of(src.path)
    if dst == src.path or dst not in chain[1:]:
        raise InvalidParameter(
            f"DestinationPath {raw_dst} is not a parent of SourcePath {raw_src} (its chain is "
            f"{' -> '.join(str(p) for p in chain)}): pass its parent or an ancestor")
    members = chain[:chain.index(dst) + 1]
    refuse_if_used(host, members, f"merge {raw_src} into {raw_dst}", only_active=False)
    idents = tuple(Identity.of(os.stat(p)) for p in members)
    work = MergeDisk(tuple(members), idents, src.info.allocated, roots)
    return work, reserve(roots, members, f"the merge of {raw_src} into {raw_dst}")


# --------------------------------------------------------------------------- reconnect

def reconnect(roots: StorageRoots, host: DiskHost, raw_child: str, raw_parent: str) -> None:
    """ReconnectParentVirtualHardDisk(ChildPath, ParentPath, Force), within the call."""
    child = confine_file(roots, raw_child, "ChildPath")
    _differencing(child, raw_child, "ChildPath")
    parent = roots.confine(raw_parent, "ParentPath")
    vhd._existing_file(parent, raw_parent, "ParentPath")
    if parent == child or child in chain_of(parent):
        raise InvalidParameter(f"ParentPath {raw_parent} is {raw_child} itself or one of its "
                               "children: the chain would loop; pass the disk it was made from")
    parent_fmt = qemuimg.probe_format(str(parent))
    if qemuimg.info(str(parent), parent_fmt).type is VirtualHardDiskType.DIFFERENCING and \
            parent_fmt is not ImageFormat.QCOW2:
        raise NotSupported(f"ParentPath {raw_parent} is a {qemuimg.LABEL[parent_fmt]} "
                           "differencing disk, which QEMU cannot read")
    roots.targets.check([child, parent])
    refuse_if_used(host, [child], f"reconnect {raw_child}", only_active=True)
    d, name = anchor.open_parent(child, roots.roots)
    with d:
        imageops.rebase_unsafe(d.proc(name), str(parent), parent_fmt, pass_fds=(d.fd,))


# --------------------------------------------------------------------------- validate

@dataclass(frozen=True)
class ValidateDisk:
    """ValidateVirtualHardDisk: the chain is whole, inside the roots, and every member sound."""

    path: Path
    roots: StorageRoots

    @property
    def description(self) -> str:
        return f"Validating virtual hard disk {self.path}"

    def _parent(self, ctx: OpContext, current: Path) -> Path | None:
        fmt = qemuimg.probe_format(str(current))
        if fmt is ImageFormat.QCOW2:
            refs = dict(qemuimg.referenced_files(str(current)))
            if "external data file" in refs:
                raise AccessDenied(f"{current} keeps its data in an external file; vsms accepts "
                                   "only self-contained images")
            name = refs.get("backing file", "")
        else:
            name = qemuimg.info(str(current), fmt).parent_path
        if not name:
            return None
        ctx.set_result(Child=str(current), Parent=name)
        if has_protocol(name):
            raise AccessDenied(f"{current} names its parent as {name[:200]!r}, a protocol name, "
                               "not a file: reconnect it to its parent file "
                               "(ReconnectParentVirtualHardDisk)")
        parent = Path(os.path.realpath(os.path.join(current.parent, name)))
        if not self.roots.contains(parent) or self.roots.crossed_mount(parent) is not None:
            raise AccessDenied(f"the parent {name!r} of {current} is outside the storage roots: "
                               "move it under a root and reconnect the child to it")
        if not parent.is_file():
            raise FileNotFound(f"the parent {name!r} of {current} does not exist: restore it or "
                               "reconnect the child to its parent (ReconnectParentVirtualHardDisk)")
        return parent

    def run(self, ctx: OpContext) -> None:
        chain = [self.path]
        while (parent := self._parent(ctx, chain[-1])) is not None:
            if parent in chain:
                raise InvalidParameter(f"the chain of {self.path} loops: {chain[-1]} names "
                                       f"{parent}, which is already in the chain; reconnect "
                                       f"{chain[-1]} to the right parent")
            if len(chain) > MAX_BACKING_CHAIN:
                raise InvalidParameter(f"the chain of {self.path} is longer than "
                                       f"{MAX_BACKING_CHAIN} disks: merge it first")
            chain.append(parent)
        ctx.progress(10)
        for i, member in enumerate(reversed(chain)):
            ctx.check_cancelled()
            try:
                problem = qemuimg.check(str(member), qemuimg.probe_format(str(member)))
            except VsmsError as exc:
                problem = str(exc)
            if problem is not None:
                ctx.set_result(Child=str(member), Parent="")
                raise OperationFailed(f"{member} is damaged: {problem}")
            ctx.progress(10 + 90 * (i + 1) / len(chain))
        ctx.set_result(Child="", Parent="")


def prepare_validate(roots: StorageRoots, host: DiskHost, raw: str) -> ValidateDisk:
    path = confine_file(roots, raw, "Path")
    roots.targets.check([path])
    refuse_if_used(host, [path], f"validate {raw}", only_active=True)
    return ValidateDisk(path, roots)
