"""Edits of existing virtual hard disks: ExpandVirtualHardDisk, CompactVirtualHardDisk,
ConvertVirtualHardDisk, and CreateVirtualFloppyDisk.

Like the create methods (``operations.vhd``), each is two-phase: ``prepare_*`` runs the quick
checks (confinement, existence, type, size, a disk in use, a path reserved by another job:
the method's ReturnValue at once, nothing done) and reserves every path the job will write
(``StorageRoots.targets``; the job engine releases it when the job ends); ``run`` does the job.

Nothing is changed in place. Expansion and compaction write the whole new image into a new
hidden file next to the original (created exclusively relative to a handle of its folder,
journaled for removal), check that the original name still leads to the file that was read
and then rename the new file over it: the disk is either the old one or the finished new one.
Conversion and floppy creation publish a new file under a name that must stay free
(``operations.vhd.write_new``). A failure, a cancellation or a crash leaves only the original.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vsms.cim.enums import EnabledState, VirtualHardDiskType
from vsms.disks import anchor, imageops, qemuimg
from vsms.disks.anchor import Identity
from vsms.disks.api import ImageInfo, translate_oserror
from vsms.disks.qemuimg import LABEL
from vsms.errors import AccessDenied, InUse, InvalidParameter, NotSupported
from vsms.jobs.context import OpContext
from vsms.jobs.manager import Reservation
from vsms.model.vm import ImageFormat
from vsms.operations import files, vhd
from vsms.operations.paths import StorageRoots
from vsms.operations.vhd import DiskHost

FIXED, DYNAMIC, PHYSICAL_DRIVE = 2, 3, 5  # ConvertVirtualHardDisk Type
ACTIVE = "running, paused or saved"


# --------------------------------------------------------------------------- shared checks

@dataclass(frozen=True)
class Source:
    """An existing image named by a client: resolved path, file identity, format, facts."""

    path: Path
    ident: Identity
    info: ImageInfo


def existing_image(roots: StorageRoots, raw: str, what: str) -> Source:
    """Confine ``raw`` (with its backing chain), require a regular file; its facts."""
    path = roots.confine(raw, what)
    vhd._existing_file(path, raw, what)
    info = qemuimg.info(str(path), qemuimg.probe_format(str(path)))
    try:
        ident = Identity.of(os.stat(path))
    except OSError as exc:
        raise translate_oserror(exc, f"read {raw}") from None
    return Source(path, ident, info)


def chain_of(path: Path, limit: int = 32) -> list[Path]:
    """``path`` and the backing files its qcow2 headers name (resolved), nearest first; stops
    at the first file that is missing, not qcow2 or unreadable."""
    out = [path]
    while len(out) < limit:
        try:
            refs = qemuimg.referenced_files(str(out[-1]))
        except Exception:  # a broken link ends the chain; the caller's checks report it
            break
        backing = [name for kind, name in refs if kind == "backing file" and name]
        if not backing:
            break
        nxt = Path(os.path.realpath(os.path.join(out[-1].parent, backing[0])))
        if nxt in out:
            break
        out.append(nxt)
    return out


def users(host: DiskHost, paths: Iterable[Path]) -> dict[Path, tuple[str, EnabledState]]:
    """For each of ``paths`` that a virtual machine of this instance uses, directly or as a
    parent of one of its disks: that VM's GUID and state."""
    wanted = set(paths)
    used = host.paths_in_use()
    if not used:
        return {}
    states = host.states()
    found: dict[Path, tuple[str, EnabledState]] = {}
    for image, guid in used.items():
        for p in chain_of(Path(image)):
            if p in wanted:
                found.setdefault(p, (guid, states.get(guid, EnabledState.UNKNOWN)))
    return found


def refuse_if_used(host: DiskHost, paths: Iterable[Path], action: str, *,
                   only_active: bool) -> None:
    """InUse (32774) when a VM of this instance uses one of ``paths`` (``only_active``: a VM
    that is not off)."""
    for path, (guid, state) in users(host, paths).items():
        if only_active and state == EnabledState.DISABLED:
            continue
        why = f"virtual machine {guid} ({ACTIVE})" if only_active else f"virtual machine {guid}"
        raise InUse(f"cannot {action}: {path} is used by {why}; "
                    + ("turn the virtual machine off first" if only_active else
                       "remove the disk from the virtual machine first"))


def reserve(roots: StorageRoots, paths: Iterable[Path], holder: str) -> Reservation:
    return roots.targets.reserve(paths, holder)


def replace_in_place(ctx: OpContext, roots: StorageRoots, src: Source,
                     write: Callable[[int, str, tuple[int, ...]], None]) -> None:
    """Write the new version of ``src`` into a new hidden file of its folder (``write(fd,
    source, pass_fds)``, ``source`` naming the original through the folder handle), then
    rename it over the original if the name still leads to the file that was checked."""
    ctx.check_cancelled()
    d, name = anchor.open_parent(src.path, roots.roots)
    with d:
        changed = AccessDenied(
            f"{src.path} was replaced or renamed while the job ran; nothing was changed: run "
            "the operation again")
        if not anchor.same_file(d, name, src.ident):
            raise changed
        tmp = vhd._temp_name(src.path, ctx.job_id)
        fd = files.create_file(ctx, d, tmp)
        try:
            st = d.lstat(name)
            os.fchmod(fd, st.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.fchown(fd, st.st_uid, st.st_gid)
            write(fd, d.proc(name), (d.fd,))
        finally:
            os.close(fd)
        ctx.check_cancelled()
        if not anchor.same_file(d, name, src.ident):
            raise changed
        try:
            os.rename(tmp, name, src_dir_fd=d.fd, dst_dir_fd=d.fd)
        except OSError as exc:
            raise translate_oserror(exc, f"put the new {src.path} in place") from None


def _percent(ctx: OpContext, low: int, high: int) -> imageops.Percent:
    return lambda done: ctx.progress(low + (high - low) * done / 100)


# --------------------------------------------------------------------------- expand

@dataclass(frozen=True)
class ExpandDisk:
    """ExpandVirtualHardDisk: a larger empty image of the same kind, the data copied in."""

    src: Source
    size: int
    roots: StorageRoots

    @property
    def description(self) -> str:
        return f"Expanding virtual hard disk {self.src.path} to {self.size} bytes"

    def run(self, ctx: OpContext) -> None:
        info = self.src.info
        fixed = info.type is VirtualHardDiskType.FIXED

        def write(fd: int, source: str, fds: tuple[int, ...]) -> None:
            qemuimg.create(str(self.src.path), self.size, info.format, fixed=fixed, fd=fd)
            ctx.progress(10)
            imageops.convert_into(source, info.format, fd, info.format, existing=True,
                                  size=info.allocated, progress=_percent(ctx, 10, 95),
                                  cancel=ctx.cancel_event, dst_name=str(self.src.path),
                                  pass_fds=fds)

        replace_in_place(ctx, self.roots, self.src, write)


def prepare_expand(roots: StorageRoots, host: DiskHost, raw: str, size: object
                   ) -> tuple[ExpandDisk, Reservation]:
    src = existing_image(roots, raw, "Path")
    info = src.info
    if info.type is VirtualHardDiskType.DIFFERENCING:
        raise NotSupported(f"Path {raw} is a differencing disk; vsms expands dynamic and "
                           "fixed disks only: merge it into its parent first")
    if info.format is ImageFormat.RAW:
        raise InvalidParameter(f"Path {raw} is not a virtual hard disk (raw data): pass a "
                               ".vhd, .vhdx or .qcow2 image")
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidParameter(f"MaxInternalSize must be an integer number of bytes, got {size!r}")
    if size < info.virtual_size + vhd.SECTOR or size % vhd.SECTOR:
        raise InvalidParameter(
            f"MaxInternalSize {size} is not larger than the disk's size {info.virtual_size}: "
            f"pass at least {info.virtual_size + vhd.SECTOR} bytes, a multiple of {vhd.SECTOR}")
    limit = vhd.MAX_SIZE.get(info.format)
    if limit is not None and size > limit:
        raise InvalidParameter(f"MaxInternalSize {size} is larger than the {LABEL[info.format]} "
                               f"maximum of {limit} bytes: pass a smaller size")
    refuse_if_used(host, [src.path], f"expand {raw}", only_active=True)
    return ExpandDisk(src, int(size), roots), reserve(roots, [src.path], f"the expansion of {raw}")


# --------------------------------------------------------------------------- compact

@dataclass(frozen=True)
class CompactDisk:
    """CompactVirtualHardDisk: a copy of the dynamic disk without its zeroed blocks."""

    src: Source
    roots: StorageRoots

    @property
    def description(self) -> str:
        return f"Compacting virtual hard disk {self.src.path}"

    def run(self, ctx: OpContext) -> None:
        fmt = self.src.info.format

        def write(fd: int, source: str, fds: tuple[int, ...]) -> None:
            imageops.convert_into(source, fmt, fd, fmt, size=self.src.info.allocated,
                                  progress=_percent(ctx, 5, 95), cancel=ctx.cancel_event,
                                  dst_name=str(self.src.path), pass_fds=fds)

        replace_in_place(ctx, self.roots, self.src, write)


def prepare_compact(roots: StorageRoots, host: DiskHost, raw: str
                    ) -> tuple[CompactDisk, Reservation]:
    src = existing_image(roots, raw, "Path")
    kind = src.info.type
    if kind is VirtualHardDiskType.DIFFERENCING:
        raise NotSupported(f"Path {raw} is a differencing disk; vsms compacts dynamic disks "
                           "only: merge it into its parent first")
    if kind is not VirtualHardDiskType.DYNAMIC:
        raise InvalidParameter(f"Path {raw} is a fixed-size disk, which cannot be compacted: "
                               "convert it to a dynamic disk (ConvertVirtualHardDisk Type 3)")
    refuse_if_used(host, [src.path], f"compact {raw}", only_active=False)
    return CompactDisk(src, roots), reserve(roots, [src.path], f"the compaction of {raw}")


# --------------------------------------------------------------------------- convert

@dataclass(frozen=True)
class ConvertDisk:
    """ConvertVirtualHardDisk: a new fixed or dynamic image with the source's contents."""

    src: Source
    path: Path
    format: ImageFormat
    fixed: bool
    roots: StorageRoots

    @property
    def description(self) -> str:
        kind = "fixed-size" if self.fixed else "dynamically expanding"
        return (f"Converting virtual hard disk {self.src.path} to the {kind} "
                f"{LABEL[self.format]} disk {self.path}")

    def run(self, ctx: OpContext) -> None:
        ctx.set_result(Child=str(self.path), Parent=str(self.src.path))
        d, name = anchor.open_parent(self.src.path, self.roots.roots)
        with d:
            if not anchor.same_file(d, name, self.src.ident):
                raise AccessDenied(f"{self.src.path} was replaced or renamed after the method "
                                   "call checked it: run the operation again")
            vhd.write_new(ctx, self.roots, self.path, lambda fd: imageops.convert_into(
                d.proc(name), self.src.info.format, fd, self.format, fixed=self.fixed,
                size=self.src.info.allocated, progress=_percent(ctx, 5, 90),
                cancel=ctx.cancel_event, dst_name=str(self.path), pass_fds=(d.fd,)))


def prepare_convert(roots: StorageRoots, host: DiskHost, raw_src: str, raw_dst: str,
                    kind: object) -> tuple[ConvertDisk, Reservation]:
    if kind == PHYSICAL_DRIVE:
        raise NotSupported("Type 5 (PhysicalDrive) is not supported: vsms converts to a fixed "
                           "(2) or dynamic (3) virtual hard disk only")
    if kind not in (FIXED, DYNAMIC) or isinstance(kind, bool):
        raise InvalidParameter(f"Type {kind!r} is not a disk type: pass 2 (Fixed) or 3 (Dynamic)")
    fixed = kind == FIXED
    dst = roots.confine(raw_dst, "DestinationPath")
    fmt = vhd.format_for(dst, "DestinationPath")
    if fixed and fmt is ImageFormat.QCOW2:
        raise InvalidParameter(f"DestinationPath {raw_dst}: a fixed-size disk must be a VHD or "
                               "VHDX: use a .vhd or .vhdx path, or Type 3 (Dynamic)")
    src = existing_image(roots, raw_src, "SourcePath")
    diff = src.info.type is VirtualHardDiskType.DIFFERENCING
    if diff and src.info.format is not ImageFormat.QCOW2:
        raise NotSupported(f"SourcePath {raw_src} is a {LABEL[src.info.format]} differencing "
                           "disk, which QEMU cannot read: merge it into its parent first")
    dst = vhd._new_image_path(roots, raw_dst, "DestinationPath")
    if dst == src.path:
        raise InvalidParameter("SourcePath and DestinationPath name the same file: the source "
                               "is never modified; pass a new DestinationPath")
    refuse_if_used(host, [src.path], f"convert {raw_src}", only_active=True)
    reservation = reserve(roots, [dst, src.path], f"the conversion of {raw_src} to {raw_dst}")
    return ConvertDisk(src, dst, fmt, fixed, roots), reservation


# --------------------------------------------------------------------------- floppy

@dataclass(frozen=True)
class CreateFloppy:
    """CreateVirtualFloppyDisk: a 1.44 MB .vfd, FAT12 formatted when mkfs.fat is installed."""

    path: Path
    roots: StorageRoots

    @property
    def description(self) -> str:
        how = ("FAT12 formatted by mkfs.fat" if imageops.mkfs_fat() else
               "blank (all zeros): mkfs.fat (dosfstools) is not installed")
        return f"Creating 1.44 MB virtual floppy disk {self.path}, {how}"

    def run(self, ctx: OpContext) -> None:
        ctx.set_result(Child=str(self.path))
        vhd.write_new(ctx, self.roots, self.path, _floppy)


def _floppy(fd: int) -> None:
    imageops.format_floppy(fd)


def prepare_floppy(roots: StorageRoots, raw: str) -> tuple[CreateFloppy, Reservation]:
    path = roots.confine(raw, "Path")
    if path.suffix.lower() != ".vfd":
        raise InvalidParameter(f"Path {raw} must name a virtual floppy disk file ending in .vfd")
    path = vhd._new_image_path(roots, raw, "Path")
    return CreateFloppy(path, roots), reserve(roots, [path], f"the creation of {raw}")
