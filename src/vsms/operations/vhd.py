"""Virtual hard disk operations behind Msvm_ImageManagementService.

Each create operation is two-phase: ``prepare_*`` runs every quick check (no side effects; a
``VsmsError`` becomes the method's ReturnValue at once) and returns a work object whose ``run``
does the job. The image is written under a hidden temporary name next to the target, with a
write-ahead ``remove_file`` undo entry, created exclusively relative to a handle of the target
folder (``operations.files``), written by qemu-img through ``/proc/self/fd/N``, and published
under its final name with ``linkat``, which never replaces a file that appeared meanwhile. A
failure or a Terminate request rolls it back, so no half-made image is ever left under the
requested name. The target is reserved (``StorageRoots.targets``) while the job runs.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vsms.cim.enums import EnabledState
from vsms.disks import anchor, qemuimg
from vsms.disks.anchor import Dir, Identity
from vsms.disks.api import ImageInfo, translate_oserror
from vsms.disks.qemuimg import LABEL
from vsms.errors import FileNotFound, InvalidParameter, NotSupported
from vsms.jobs.context import OpContext
from vsms.model.vm import ImageFormat
from vsms.operations import files
from vsms.operations.paths import StorageRoots
from vsms.operations.undo import RemoveFile

SECTOR = 512
DEFAULT_DYNAMIC_SIZE = 3 * 1024 * 1024  # CreateDynamicVirtualHardDisk with MaxInternalSize 0
EXTENSIONS: dict[str, ImageFormat] = {
    ".vhd": ImageFormat.VHD, ".vhdx": ImageFormat.VHDX, ".qcow2": ImageFormat.QCOW2,
}
MAX_SIZE: dict[ImageFormat, int] = {  # what qemu-img accepts for each format
    ImageFormat.VHD: 2040 * 1024**3,
    ImageFormat.VHDX: 64 * 1024**4,
}


class DiskHost(Protocol):
    """What GetVirtualHardDiskInfo needs of the libvirt host."""

    def paths_in_use(self) -> dict[str, str]: ...
    def states(self) -> dict[str, EnabledState]: ...


# --------------------------------------------------------------------------- quick checks

def format_for(path: Path, what: str = "Path") -> ImageFormat:
    """The image format named by the path's extension (.vhd, .vhdx or .qcow2)."""
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(EXTENSIONS)
        raise InvalidParameter(
            f"{what} {path} has an unsupported extension {path.suffix or '(none)'!r}: "
            f"the file name must end in one of {supported}")
    return fmt


def _new_image_path(roots: StorageRoots, raw: str, what: str) -> Path:
    """Confine a path for a new image and check that it is free and its directory exists."""
    path = roots.confine(raw, what)
    roots.targets.check([path])  # the target of a running job: 32774
    if raw.rstrip().endswith(("/", os.sep)):
        raise InvalidParameter(f"{what} {raw!r} names a directory: pass the path of the new file")
    if os.path.lexists(raw) or path.exists():
        raise InvalidParameter(
            f"{what} {raw} already exists: choose another file name or delete the file first")
    parent = path.parent
    if not parent.is_dir():
        raise InvalidParameter(
            f"the directory {parent} for {what} {raw} does not exist: create it first")
    return path


def _check_size(size: Any, fmt: ImageFormat, *, fixed: bool) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidParameter(f"MaxInternalSize must be an integer number of bytes, got {size!r}")
    if size == 0 and not fixed:
        return DEFAULT_DYNAMIC_SIZE
    if size <= 0 or size % SECTOR:
        raise InvalidParameter(
            f"MaxInternalSize {size} is not a positive multiple of {SECTOR} bytes: "
            f"pass a size in bytes rounded to {SECTOR}")
    limit = MAX_SIZE.get(fmt)
    if limit is not None and size > limit:
        raise InvalidParameter(
            f"MaxInternalSize {size} is larger than the {LABEL[fmt]} maximum of "
            f"{limit} bytes: pass a smaller size or use another format")
    return int(size)


# --------------------------------------------------------------------------- publishing

def _temp_name(path: Path, job_id: str) -> str:
    tag = (job_id or uuid.uuid4().hex)[:8].lower()
    return f".{path.stem}.vsms-{tag}{path.suffix}"


def _publish(d: Dir, tmp: str, final: Path) -> None:
    """Give ``tmp`` its final name in ``d`` without ever replacing an existing ``final``."""
    taken = InvalidParameter(f"{final} was created by someone else while the disk was being "
                             "made: choose another file name")
    try:
        try:
            os.link(tmp, final.name, src_dir_fd=d.fd, dst_dir_fd=d.fd, follow_symlinks=False)
        except FileExistsError:
            raise taken from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            # no hard links on this file system: a rename that never replaces
            try:
                anchor.rename_noreplace(d, tmp, d, final.name)
            except FileExistsError:
                raise taken from None
            return
        os.unlink(tmp, dir_fd=d.fd)
    except OSError as exc:
        raise translate_oserror(exc, f"give the new disk its name {final}") from None


def _make(ctx: OpContext, roots: StorageRoots, final: Path,
          create: Callable[[int], None]) -> None:
    """``write_new`` with ``final`` reserved (``StorageRoots.targets``) while it runs."""
    reservation = roots.targets.reserve([final], f"the creation of {final}")
    try:
        write_new(ctx, roots, final, create)
    finally:
        reservation.release()


def write_new(ctx: OpContext, roots: StorageRoots, final: Path,
              create: Callable[[int], None]) -> None:
    """Run ``create(fd)`` into a new file under a temporary name, created exclusively relative
    to a handle of the target folder, then publish it; rolled back on failure. Only the very
    inode the job created is ever removed, and the folder is never reached through a link."""
    ctx.check_cancelled()
    d, _ = anchor.open_parent(final, roots.roots)
    with d:
        tmp = _temp_name(final, ctx.job_id)
        fd = files.create_file(ctx, d, tmp)
        try:
            ctx.progress(5)
            create(fd)
            ident = Identity.of(os.fstat(fd))
        finally:
            os.close(fd)
        ctx.progress(90)
        ctx.check_cancelled()
        ctx.add_undo(RemoveFile(d.path, final.name, ident.dev, ident.ino))
        _publish(d, tmp, final)
    ctx.check_cancelled()


# --------------------------------------------------------------------------- work objects

@dataclass(frozen=True)
class CreateDisk:
    """Create a dynamic or fixed image (CreateDynamic/FixedVirtualHardDisk)."""

    path: Path
    format: ImageFormat
    size: int
    fixed: bool
    roots: StorageRoots

    @property
    def description(self) -> str:
        kind = "fixed-size" if self.fixed else "dynamically expanding"
        return (f"Creating {kind} {LABEL[self.format]} virtual hard disk {self.path} "
                f"of {self.size} bytes")

    def run(self, ctx: OpContext) -> None:
        ctx.set_result(Child=str(self.path))
        _make(ctx, self.roots, self.path, lambda fd: qemuimg.create(
            str(self.path), self.size, self.format, fixed=self.fixed, fd=fd))


@dataclass(frozen=True)
class CreateDifferencingDisk:
    """Create a child image over ``parent`` (CreateDifferencingVirtualHardDisk)."""

    path: Path
    parent: Path
    parent_format: ImageFormat
    roots: StorageRoots

    @property
    def description(self) -> str:
        return f"Creating differencing virtual hard disk {self.path} with parent {self.parent}"

    def run(self, ctx: OpContext) -> None:
        ctx.set_result(Child=str(self.path), Parent=str(self.parent))
        _make(ctx, self.roots, self.path, lambda fd: qemuimg.create_differencing(
            str(self.path), str(self.parent), self.parent_format, fd=fd))


def prepare_create(roots: StorageRoots, raw_path: str, size: Any, *, fixed: bool) -> CreateDisk:
    """Quick checks of CreateDynamic/FixedVirtualHardDisk(Path, MaxInternalSize)."""
    path = roots.confine(raw_path, "Path")
    fmt = format_for(path)
    if fixed and fmt is ImageFormat.QCOW2:
        raise InvalidParameter(
            f"Path {raw_path}: a fixed-size disk must be a VHD or VHDX: use a .vhd or .vhdx path")
    checked = _check_size(size, fmt, fixed=fixed)
    path = _new_image_path(roots, raw_path, "Path")
    return CreateDisk(path, fmt, checked, fixed, roots)


def prepare_differencing(roots: StorageRoots, raw_path: str,
                         raw_parent: str) -> CreateDifferencingDisk:
    """Quick checks of CreateDifferencingVirtualHardDisk(Path, ParentPath)."""
    path = roots.confine(raw_path, "Path")
    parent = roots.confine(raw_parent, "ParentPath")
    fmt = format_for(path)
    if fmt is not ImageFormat.QCOW2:
        raise NotSupported(
            f"Path {raw_path}: QEMU cannot create or run a {LABEL[fmt]} differencing "
            f"disk; pass a path ending in .qcow2 (the child is a qcow2 overlay on the parent)")
    path = _new_image_path(roots, raw_path, "Path")
    _existing_file(parent, raw_parent, "ParentPath")
    if parent == path:
        raise InvalidParameter("Path and ParentPath name the same file: pass two different paths")
    return CreateDifferencingDisk(path, parent, qemuimg.probe_format(str(parent)), roots)


# --------------------------------------------------------------------------- inspection

@dataclass(frozen=True)
class DiskFacts:
    info: ImageInfo
    in_use: bool  # attached to a virtual machine
    in_saved_state: bool  # attached to a virtual machine that is saved


def _existing_file(path: Path, raw: str, what: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFound(f"{what} {raw} does not exist: pass the path of an existing "
                           "virtual hard disk") from None
    except OSError as exc:
        raise InvalidParameter(f"{what} {raw} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidParameter(f"{what} {raw} is not a regular file: pass a disk image file")


def inspect(roots: StorageRoots, host: DiskHost, raw_path: str) -> DiskFacts:
    """GetVirtualHardDiskInfo(Path): the image's facts and whether a VM uses it."""
    path = roots.confine(raw_path, "Path")
    _existing_file(path, raw_path, "Path")
    info = qemuimg.info(str(path), qemuimg.probe_format(str(path)))
    owner = host.paths_in_use().get(str(path))
    saved = owner is not None and host.states().get(owner) == EnabledState.SUSPENDED
    return DiskFacts(info, owner is not None, saved)
